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
    /// Trailers follow the body (the response is chunked for them).
    trailers: bool,
    /// Trailer fields sent with `more_trailers`, held for the last chunk.
    held_trailers: Fields,
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
            trailers: false,
            held_trailers: Vec::new(),
        }
    }

    /// Records `http.response.start`; `trailers`: the app sends
    /// `http.response.trailers` after the body (only offered on HTTP/1.1).
    pub(crate) fn start(&mut self, status: u16, headers: Fields, trailers: bool) {
        self.pending = Some((status, headers));
        self.trailers = trailers && self.version == Version::HTTP_11;
    }

    /// Appends an interim 1xx response (early hints) to `out`; nothing once
    /// the head is out or on HTTP/1.0, which has no interim responses.
    pub(crate) fn informational(&self, status: u16, headers: &Fields, out: &mut Vec<u8>) {
        if self.head_written || self.version != Version::HTTP_11 {
            return;
        }
        write_status_line(
            out,
            self.version,
            status,
            ferricorn_http::response::reason_phrase(status),
        );
        push_fields(out, headers);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends `http.response.trailers` to `out`: the last chunk and the
    /// fields once `more` is false (earlier ones are held until then).
    pub(crate) fn trailers(&mut self, headers: Fields, more: bool, out: &mut Vec<u8>) {
        self.held_trailers.extend(headers);
        if more {
            return;
        }
        let announced = std::mem::replace(&mut self.trailers, false);
        if !announced || self.framing != Framing::Chunked {
            // A HEAD or bodiless response carries no trailers.
            return;
        }
        out.extend_from_slice(b"0\r\n");
        push_fields(out, &self.held_trailers);
        out.extend_from_slice(b"\r\n");
    }

    /// Frames the head for a `http.response.pathsend` of a `len`-byte file
    /// into `out`; returns how many of the file's bytes may follow (none
    /// for HEAD, 204, 304; at most the app's `Content-Length`).
    pub(crate) fn file_head(&mut self, len: u64, out: &mut Vec<u8>) -> u64 {
        self.trailers = false;
        if let Some((_, headers)) = self.pending.as_mut() {
            let has_length = headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(b"content-length"));
            if !has_length {
                // HEAD gets the file's length too.
                headers.push((b"content-length".to_vec(), len.to_string().into_bytes()));
            }
        }
        self.write_head(len, false, out);
        let n = match self.framing {
            Framing::None => 0,
            Framing::Length => self.owed.min(len),
            Framing::Chunked | Framing::UntilClose => len,
        };
        if self.framing == Framing::Length {
            self.owed -= n;
        }
        self.body_bytes += n;
        n
    }

    /// Whether the body is done and `http.response.trailers` is awaited.
    pub(crate) fn awaits_trailers(&self) -> bool {
        self.trailers
    }

    /// Whether the connection may be reused after a complete response.
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive && self.framing != Framing::UntilClose && self.owed == 0
    }

    /// Frames the held head; `first_len` is the length of the first body
    /// piece, which is the whole body when `more` is false.
    fn write_head(&mut self, first_len: u64, more: bool, out: &mut Vec<u8>) {
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
                if self.trailers {
                    // Trailers need chunked framing, which excludes a length.
                    continue;
                }
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
        } else if !more && !self.trailers {
            let n = first_len;
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
        self.write_head(data.len() as u64, more, out);
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
                if !more && !self.trailers {
                    out.extend_from_slice(LAST_CHUNK);
                }
            }
            Framing::UntilClose => out.extend_from_slice(data),
        }
    }
}

/// Appends `name: value\r\n` for each field.
fn push_fields(out: &mut Vec<u8>, fields: &Fields) {
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
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
            false,
        );
        let mut out = Vec::new();
        whole.body(b"hello", false, &mut out);
        let out = text(&out);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("content-length: 5\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nhello"), "{out}");
        assert!(whole.keep_alive());

        let mut stream = Response::new(Version::HTTP_11, false, true);
        stream.start(
            200,
            vec![(b"transfer-encoding".to_vec(), b"gzip".to_vec())],
            false,
        );
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
        old.start(200, vec![], false);
        let mut out = Vec::new();
        old.body(b"x", true, &mut out);
        assert!(!old.keep_alive());
        assert!(text(&out).contains("Connection: close"));

        let mut short = Response::new(Version::HTTP_11, false, true);
        short.start(
            200,
            vec![(b"content-length".to_vec(), b"10".to_vec())],
            false,
        );
        let mut out = Vec::new();
        short.body(b"12345", false, &mut out);
        assert!(!short.keep_alive());
    }

    #[test]
    fn trailers_go_after_the_last_chunk() {
        let mut r = Response::new(Version::HTTP_11, false, true);
        r.start(200, vec![(b"content-length".to_vec(), b"2".to_vec())], true);
        let mut out = Vec::new();
        r.body(b"ab", false, &mut out);
        r.trailers(vec![(b"x-a".to_vec(), b"1".to_vec())], true, &mut out);
        r.trailers(vec![(b"x-b".to_vec(), b"2".to_vec())], false, &mut out);
        let out = text(&out);
        assert!(!out.contains("content-length"), "{out}");
        assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\n2\r\nab\r\n0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"),
            "{out}"
        );
        assert!(r.keep_alive());
    }

    #[test]
    fn file_head_uses_the_file_length_unless_the_app_gave_one() {
        let mut r = Response::new(Version::HTTP_11, false, true);
        r.start(200, vec![], false);
        let mut out = Vec::new();
        assert_eq!(r.file_head(7, &mut out), 7);
        assert!(text(&out).contains("content-length: 7\r\n"));
        assert!(r.keep_alive());

        let mut head = Response::new(Version::HTTP_11, true, true);
        head.start(
            200,
            vec![(b"content-length".to_vec(), b"7".to_vec())],
            false,
        );
        let mut out = Vec::new();
        assert_eq!(head.file_head(7, &mut out), 0);
        assert!(text(&out).contains("content-length: 7\r\n"));
    }
}
