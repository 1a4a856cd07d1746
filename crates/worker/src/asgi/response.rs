//! HTTP/1.x framing of an ASGI response (sans-I/O): `http.response.start`
//! is held until the first body so a failing app can still get a 500, and
//! the framing is chosen then, as for WSGI: the app's `Content-Length`, a
//! length computed from a body sent in one piece, else chunked on HTTP/1.1,
//! else the end of the connection.

use ferricorn_http::response::{encode_chunk, push_latin1, write_status_line, LAST_CHUNK};
use ferricorn_http::Version;

use crate::clock::write_date_header;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    UntilClose,
}

/// Header fields as the app sent them (name, value).
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One response's framing state.
pub(crate) struct Response {
    version: Version,
    head_request: bool,
    keep_alive: bool,
    pending: Option<(u16, Fields)>,
    framing: Framing,
    /// `Content-Length` bytes still owed.
    owed: u64,
    /// The status sent (0 before).
    pub(crate) status: u16,
    /// The headers sent, for `{name}o` access-log atoms.
    pub(crate) headers: Vec<(String, String)>,
    /// Body bytes framed (handed by the app).
    pub(crate) body_bytes: u64,
    /// The head has been framed.
    pub(crate) head_written: bool,
}

impl Response {
    /// A response to a request of `version` (`head_request`: HEAD);
    /// `keep_alive`: the connection may carry another request.
    pub(crate) fn new(version: Version, head_request: bool, keep_alive: bool) -> Self {
        Self {
            version,
            head_request,
            keep_alive,
            pending: None,
            framing: Framing::None,
            owed: 0,
            status: 0,
            headers: Vec::new(),
            body_bytes: 0,
            head_written: false,
        }
    }

    /// Records `http.response.start`.
    pub(crate) fn start(&mut self, status: u16, headers: Fields) {
        self.pending = Some((status, headers));
    }

    /// Whether the connection may be reused after a complete response.
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive && self.framing != Framing::UntilClose && self.owed == 0
    }

    fn write_head(&mut self, first: &[u8], more: bool, out: &mut Vec<u8>) {
        let Some((status, headers)) = self.pending.take() else {
            return;
        };
        self.head_written = true;
        self.status = status;
        let no_body = self.head_request || status < 200 || status == 204 || status == 304;
        let mut length = None;
        let mut has_server = false;
        let mut has_date = false;
        write_status_line(
            out,
            self.version,
            status,
            ferricorn_http::response::reason_phrase(status),
        );
        for (name, value) in headers {
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.eq_ignore_ascii_case("transfer-encoding") {
                // The server frames the body (ASGI: ignore the app's).
                continue;
            }
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case(b"close") {
                    self.keep_alive = false;
                }
                continue;
            }
            if name.eq_ignore_ascii_case("content-length") {
                let parsed = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                match parsed {
                    Some(n) => length = Some(n),
                    None => continue,
                }
            }
            has_server |= name.eq_ignore_ascii_case("server");
            has_date |= name.eq_ignore_ascii_case("date");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
            self.headers
                .push((name, String::from_utf8_lossy(&value).into_owned()));
        }
        self.framing = if no_body {
            Framing::None
        } else if let Some(n) = length {
            self.owed = n;
            Framing::Length
        } else if !more {
            let n = first.len() as u64;
            self.owed = n;
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            self.headers.push(("content-length".into(), n.to_string()));
            Framing::Length
        } else if self.version == Version::HTTP_11 {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        } else {
            self.keep_alive = false;
            Framing::UntilClose
        };
        if !has_server {
            push_latin1(out, "Server: ferricorn\r\n");
        }
        if !has_date {
            write_date_header(out);
        }
        out.extend_from_slice(if self.keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }

    /// Appends the bytes for one `http.response.body` to `out` (the head
    /// too the first time). Bytes past `Content-Length` are dropped.
    pub(crate) fn body(&mut self, data: &[u8], more: bool, out: &mut Vec<u8>) {
        self.write_head(data, more, out);
        self.body_bytes += data.len() as u64;
        match self.framing {
            Framing::None => {}
            Framing::Length => {
                let n = usize::try_from(self.owed)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                out.extend_from_slice(&data[..n]);
                self.owed -= n as u64;
            }
            Framing::Chunked => {
                if !data.is_empty() {
                    encode_chunk(out, data);
                }
                if !more {
                    out.extend_from_slice(LAST_CHUNK);
                }
            }
            Framing::UntilClose => out.extend_from_slice(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn one_piece_gets_a_length_and_streams_get_chunked() {
        let mut whole = Response::new(Version::HTTP_11, false, true);
        whole.start(
            200,
            vec![(b"content-type".to_vec(), b"text/plain".to_vec())],
        );
        let mut out = Vec::new();
        whole.body(b"hello", false, &mut out);
        let out = text(&out);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("content-length: 5\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nhello"), "{out}");
        assert!(whole.keep_alive());

        let mut stream = Response::new(Version::HTTP_11, false, true);
        stream.start(200, vec![(b"transfer-encoding".to_vec(), b"gzip".to_vec())]);
        let mut out = Vec::new();
        stream.body(b"ab", true, &mut out);
        stream.body(b"", false, &mut out);
        let out = text(&out);
        assert!(!out.contains("gzip"), "{out}");
        assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\n2\r\nab\r\n0\r\n\r\n"), "{out}");
    }

    #[test]
    fn http10_stream_closes_and_short_length_is_not_reusable() {
        let mut old = Response::new(Version::HTTP_10, false, true);
        old.start(200, vec![]);
        let mut out = Vec::new();
        old.body(b"x", true, &mut out);
        assert!(!old.keep_alive());
        assert!(text(&out).contains("Connection: close"));

        let mut short = Response::new(Version::HTTP_11, false, true);
        short.start(200, vec![(b"content-length".to_vec(), b"10".to_vec())]);
        let mut out = Vec::new();
        short.body(b"12345", false, &mut out);
        assert!(!short.keep_alive());
    }
}
