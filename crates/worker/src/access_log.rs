//! The access log: gunicorn's `access_log_format` atoms, compiled once.
//!
//! Supported atoms: `h l u t r m U q H s B b f a T M D L p`, `{name}i`
//! (request header), `{name}o` (response header) and `{name}e` (a key of
//! the request's WSGI environ as the app left it, so middleware can log a
//! request id), each written `%(atom)s` as in gunicorn 27's `glogging`.
//! Every value has `"` escaped as `\"` (gunicorn's `SafeAtoms`) and, where
//! gunicorn writes them raw, control characters as `\xNN`, so no value can
//! end a quoted field or forge a log line. Lines go out through `tracing`
//! with target `ferricorn.access`; the binary routes them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use ferricorn_http::RequestLine;
use ferricorn_python::environ::percent_decode;

mod json;

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Atom(char),
    RequestHeader(String),
    ResponseHeader(String),
    /// Index into [`AccessFormat::environ_keys`].
    Environ(usize),
}

/// A compiled `access_log_format`.
#[derive(Debug, Clone)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
    environ_keys: Vec<String>,
    json: bool,
}

/// What one finished (or refused) request looks like to the access log.
pub struct AccessRecord<'a> {
    /// The client's address, `None` on unix sockets.
    pub remote: Option<SocketAddr>,
    /// The request line; its parts are empty when it was unreadable.
    pub line: RequestLine<'a>,
    /// The mount point, cut from the path for `U` (`PATH_INFO`).
    pub script_name: &'a str,
    /// Request headers.
    pub request_headers: &'a [(String, Vec<u8>)],
    /// Response status.
    pub status: u16,
    /// Response headers.
    pub response_headers: &'a [(String, String)],
    /// Body bytes that went on the wire (0 for HEAD, 204, 304).
    pub bytes_sent: u64,
    /// How long the request took.
    pub elapsed: Duration,
    /// When the request started, in seconds since the epoch.
    pub started_unix: u64,
    /// The values of [`AccessFormat::environ_keys`] in the request's
    /// environ, in the same order (`None`: absent, or no environ).
    pub environ: &'a [Option<String>],
}

impl AccessFormat {
    /// Compiles a gunicorn-style format. Unknown atoms are kept literally,
    /// as gunicorn prints them (`%(x)s` with no value becomes `-`).
    pub fn compile(format: &str) -> Self {
        let mut pieces = Vec::new();
        let mut environ_keys: Vec<String> = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(start) = rest.find("%(") {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find(")s") else {
                literal.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let piece = if let Some(inner) = name.strip_prefix('{') {
                match (
                    inner.strip_suffix("}i"),
                    inner.strip_suffix("}o"),
                    inner.strip_suffix("}e"),
                ) {
                    (Some(h), _, _) => Some(Piece::RequestHeader(h.to_ascii_lowercase())),
                    (_, Some(h), _) => Some(Piece::ResponseHeader(h.to_ascii_lowercase())),
                    (_, _, Some(key)) => {
                        // gunicorn lower-cases both the atom and the
                        // environ's keys: the match ignores case.
                        let key = key.to_lowercase();
                        let index =
                            environ_keys
                                .iter()
                                .position(|k| *k == key)
                                .unwrap_or_else(|| {
                                    environ_keys.push(key);
                                    environ_keys.len() - 1
                                });
                        Some(Piece::Environ(index))
                    }
                    _ => None,
                }
            } else {
                let mut chars = name.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if "hlutrmUqHsBbfaTMDLp".contains(c) => Some(Piece::Atom(c)),
                    _ => None,
                }
            };
            match piece {
                Some(piece) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                None => literal.push('-'),
            }
            rest = &after[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Self {
            pieces,
            environ_keys,
            json: false,
        }
    }

    /// Makes [`AccessFormat::format`] write `--log-format json` lines: one
    /// ECS object whose `message` is the line this format renders.
    pub fn with_json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }

    /// The environ keys (lower-cased) the format's `{name}e` atoms read;
    /// empty when it has none, so no environ needs keeping.
    pub fn environ_keys(&self) -> &[String] {
        &self.environ_keys
    }

    /// Formats one access-log line for `record`: the text line, or with
    /// [`AccessFormat::with_json`] the JSON object carrying it.
    pub fn format(&self, record: &AccessRecord<'_>) -> String {
        let text = self.text(record);
        if self.json {
            json::render(record, &text)
        } else {
            text
        }
    }

    /// The line `access_log_format` renders for `record`.
    fn text(&self, record: &AccessRecord<'_>) -> String {
        let mut line = String::with_capacity(160);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => line.push_str(text),
                Piece::Atom(atom) => write_atom(&mut line, *atom, record),
                Piece::RequestHeader(name) => {
                    push_bytes_or_dash(&mut line, request_header(record, name));
                }
                Piece::ResponseHeader(name) => {
                    // The last of repeated headers, as gunicorn's dict of atoms.
                    let value = record
                        .response_headers
                        .iter()
                        .rev()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str());
                    push_escaped(&mut line, value.unwrap_or("-"));
                }
                Piece::Environ(index) => {
                    let value = record.environ.get(*index).and_then(Option::as_deref);
                    push_escaped(&mut line, value.unwrap_or("-"));
                }
            }
        }
        line
    }
}

/// The body bytes a response put on the wire: none for HEAD or a status
/// that has no body, whatever the app handed over (gunicorn counts only
/// what it sends).
pub fn wire_body_bytes(method: &str, status: u16, handed: u64) -> u64 {
    if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        0
    } else {
        handed
    }
}

/// The last request header named `name`, as gunicorn's dict of atoms.
pub(crate) fn request_header<'a>(record: &'a AccessRecord<'_>, name: &str) -> Option<&'a [u8]> {
    record
        .request_headers
        .iter()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Appends `text` with `"` as `\"` and control characters as `\xNN`.
fn push_escaped(line: &mut String, text: &str) {
    for c in text.chars() {
        push_char(line, c);
    }
}

fn push_char(line: &mut String, c: char) {
    match c {
        '"' => line.push_str("\\\""),
        c if c.is_ascii_control() => {
            let _ = write!(line, "\\x{:02x}", u32::from(c));
        }
        c => line.push(c),
    }
}

/// Appends raw request bytes as gunicorn shows them: each byte one
/// character (ISO-8859-1, as the environ holds them), escaped.
fn push_bytes(line: &mut String, bytes: &[u8]) {
    for &b in bytes {
        push_char(line, char::from(b));
    }
}

fn push_bytes_or_dash(line: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => push_bytes(line, bytes),
        None => line.push('-'),
    }
}

fn push_or_dash(line: &mut String, text: &str) {
    if text.is_empty() {
        line.push('-');
    } else {
        push_escaped(line, text);
    }
}

fn write_atom(line: &mut String, atom: char, r: &AccessRecord<'_>) {
    match atom {
        'h' => match r.remote {
            Some(addr) => {
                let _ = write!(line, "{}", addr.ip());
            }
            None => line.push('-'),
        },
        'l' => line.push('-'),
        'u' => match basic_auth_user(request_header(r, "authorization")) {
            Some(user) => push_escaped(line, &user),
            None => line.push('-'),
        },
        't' => {
            let _ = write!(line, "[{}]", clf_time(r.started_unix));
        }
        'r' if r.line.method.is_empty() => line.push('-'),
        'r' => {
            push_escaped(line, r.line.method);
            line.push(' ');
            push_bytes(line, r.line.target);
            line.push(' ');
            push_escaped(line, r.line.version);
        }
        'm' => push_or_dash(line, r.line.method),
        'U' if r.line.method.is_empty() => line.push('-'),
        'U' => {
            // PATH_INFO: decoded, without the mount point.
            let decoded = percent_decode(r.line.path);
            let script = r.script_name.as_bytes();
            let path_info = match decoded.strip_prefix(script) {
                Some(rest) if !script.is_empty() => rest,
                _ => &decoded[..],
            };
            push_bytes(line, path_info);
        }
        'q' => push_bytes(line, r.line.query),
        'H' => push_or_dash(line, r.line.version),
        's' => {
            let _ = write!(line, "{}", r.status);
        }
        // gunicorn's `b` is `-` only when nothing was counted at all,
        // which never happens for a response: an empty body is `0`.
        'B' | 'b' => {
            let _ = write!(line, "{}", r.bytes_sent);
        }
        'f' => push_bytes_or_dash(line, request_header(r, "referer")),
        'a' => push_bytes_or_dash(line, request_header(r, "user-agent")),
        'T' => {
            let _ = write!(line, "{}", r.elapsed.as_secs());
        }
        'M' => {
            let _ = write!(line, "{}", r.elapsed.as_millis());
        }
        'D' => {
            let _ = write!(line, "{}", r.elapsed.as_micros());
        }
        'L' => {
            let _ = write!(line, "{:.6}", r.elapsed.as_secs_f64());
        }
        'p' => {
            let _ = write!(line, "<{}>", std::process::id());
        }
        _ => line.push('-'),
    }
}

/// The user name of a `Basic` `Authorization` header, as gunicorn's `u`.
pub(crate) fn basic_auth_user(header: Option<&[u8]>) -> Option<String> {
    let header = std::str::from_utf8(header?).ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(user, _)| user.to_string()),
    )
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for byte in input.bytes().filter(|&b| b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Common Log Format time, `23/Nov/2026:16:33:58 +0000` (UTC).
fn clf_time(unix: u64) -> String {
    // IMF-fixdate carries every field we need: "Mon, 23 Nov 2026 16:33:58 GMT".
    let date = ferricorn_http::response::http_date(unix);
    let parts: Vec<&str> = date.split(' ').collect();
    match parts.as_slice() {
        [_, day, month, year, time, _] => format!("{day}/{month}/{year}:{time} +0000"),
        _ => date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUNICORN_DEFAULT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

    fn record<'a>(
        headers: &'a [(String, Vec<u8>)],
        out: &'a [(String, String)],
        environ: &'a [Option<String>],
    ) -> AccessRecord<'a> {
        AccessRecord {
            remote: Some("127.0.0.1:5555".parse().unwrap()),
            line: RequestLine {
                method: "GET",
                target: b"/app/a%20b?b=1",
                path: b"/app/a%20b",
                query: b"b=1",
                version: "HTTP/1.1",
            },
            script_name: "/app",
            request_headers: headers,
            status: 200,
            response_headers: out,
            bytes_sent: 12,
            elapsed: Duration::from_micros(1500),
            started_unix: 0,
            environ,
        }
    }

    #[test]
    fn default_format_matches_gunicorn() {
        let headers = vec![
            ("User-Agent".to_string(), b"curl/8".to_vec()),
            ("Authorization".to_string(), b"Basic dXNlcjpwYXNz".to_vec()),
        ];
        let line = AccessFormat::compile(GUNICORN_DEFAULT).format(&record(&headers, &[], &[]));
        assert_eq!(
            line,
            r#"127.0.0.1 - user [01/Jan/1970:00:00:00 +0000] "GET /app/a%20b?b=1 HTTP/1.1" 200 12 "-" "curl/8""#
        );
    }

    #[test]
    fn every_atom_and_header_kind() {
        let headers = vec![("X-Id".to_string(), b"42".to_vec())];
        let out = vec![("Content-Type".to_string(), "text/plain".to_string())];
        let format = AccessFormat::compile(
            "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(T)s %(M)s %(D)s %(L)s %({x-id}i)s %({content-type}o)s %({REQUEST_ID}e)s %({missing}e)s %(zz)s",
        );
        assert_eq!(format.environ_keys(), ["request_id", "missing"]);
        let environ = [Some("rid-1".to_string()), None];
        let line = format.format(&record(&headers, &out, &environ));
        assert_eq!(
            line,
            "GET /a b b=1 HTTP/1.1 200 12 0 1 1500 0.001500 42 text/plain rid-1 - -"
        );
    }

    #[test]
    fn environ_atoms_ignore_case_and_share_a_slot() {
        let format = AccessFormat::compile("%({Request_Id}e)s %({request_id}e)s");
        assert_eq!(format.environ_keys(), ["request_id"]);
        let environ = [Some("x".to_string())];
        assert_eq!(format.format(&record(&[], &[], &environ)), "x x");
    }

    #[test]
    fn empty_body_is_zero_not_dash() {
        let mut r = record(&[], &[], &[]);
        r.bytes_sent = 0;
        assert_eq!(AccessFormat::compile("%(b)s %(B)s").format(&r), "0 0");
    }

    #[test]
    fn quotes_and_control_characters_are_escaped() {
        let headers = vec![
            ("User-Agent".to_string(), b"a\"b\tc".to_vec()),
            ("Referer".to_string(), b"caf\xe9".to_vec()),
            // "x\"y\nz:pw": a user name that would forge a line if raw.
            ("Authorization".to_string(), b"Basic eCJ5Cno6cHc=".to_vec()),
        ];
        let out = vec![("X-Out".to_string(), "say \"hi\"".to_string())];
        let environ = [Some("line\nbreak \"q\"".to_string())];
        let format = AccessFormat::compile(r#""%(a)s" "%(f)s" %(u)s %({x-out}o)s %({k}e)s"#);
        assert_eq!(
            format.format(&record(&headers, &out, &environ)),
            r#""a\"b\x09c" "café" x\"y\x0az say \"hi\" line\x0abreak \"q\""#
        );
    }

    #[test]
    fn repeated_headers_log_the_last_as_gunicorn() {
        let headers = vec![
            ("X-Id".to_string(), b"1".to_vec()),
            ("x-id".to_string(), b"2".to_vec()),
        ];
        let out = vec![
            ("Set-Cookie".to_string(), "a".to_string()),
            ("Set-Cookie".to_string(), "b".to_string()),
        ];
        let format = AccessFormat::compile("%({x-id}i)s %({set-cookie}o)s");
        assert_eq!(format.format(&record(&headers, &out, &[])), "2 b");
    }

    #[test]
    fn unreadable_request_line_logs_dashes() {
        let mut r = record(&[], &[], &[]);
        r.line = RequestLine::default();
        r.status = 414;
        let format = AccessFormat::compile(r#""%(r)s" %(m)s %(U)s %(H)s %(s)s"#);
        assert_eq!(format.format(&r), r#""-" - - - 414"#);
    }

    #[test]
    fn bodyless_responses_send_no_body_bytes() {
        assert_eq!(wire_body_bytes("HEAD", 200, 10), 0);
        assert_eq!(wire_body_bytes("GET", 204, 10), 0);
        assert_eq!(wire_body_bytes("GET", 304, 10), 0);
        assert_eq!(wire_body_bytes("GET", 200, 10), 10);
    }
}
