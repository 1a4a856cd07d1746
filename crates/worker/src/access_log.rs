//! The access log: gunicorn's `access_log_format` atoms, compiled once.
//!
//! Supported atoms: `h l u t r m U q H s B b f a T M D L p`, `{name}i`
//! (request header), `{name}o` (response header) and `{name}e` (environment
//! variable), each written `%(atom)s` as in gunicorn. Lines go out through
//! `tracing` with target `ferricorn.access`; the binary routes them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Atom(char),
    RequestHeader(String),
    ResponseHeader(String),
    Environ(String),
}

/// A compiled `access_log_format`.
#[derive(Debug, Clone)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
}

/// What one finished request looks like to the access log.
pub struct AccessRecord<'a> {
    /// The client's address, `None` on unix sockets.
    pub remote: Option<SocketAddr>,
    /// The request method.
    pub method: &'a str,
    /// The raw request target.
    pub target: &'a [u8],
    /// The raw path.
    pub path: &'a [u8],
    /// The raw query string.
    pub query: &'a [u8],
    /// `HTTP/1.1` etc.
    pub protocol: &'a str,
    /// Request headers.
    pub request_headers: &'a [(String, Vec<u8>)],
    /// Response status.
    pub status: u16,
    /// Response headers.
    pub response_headers: &'a [(String, String)],
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// How long the request took.
    pub elapsed: Duration,
    /// When the request started, in seconds since the epoch.
    pub started_unix: u64,
}

impl AccessFormat {
    /// Compiles a gunicorn-style format. Unknown atoms are kept literally,
    /// as gunicorn prints them (`%(x)s` with no value becomes `-`).
    pub fn compile(format: &str) -> Self {
        let mut pieces = Vec::new();
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
                    (_, _, Some(v)) => Some(Piece::Environ(v.to_string())),
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
        Self { pieces }
    }

    /// Formats one line for `record`.
    pub fn format(&self, record: &AccessRecord<'_>) -> String {
        let mut line = String::with_capacity(160);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => line.push_str(text),
                Piece::Atom(atom) => write_atom(&mut line, *atom, record),
                Piece::RequestHeader(name) => {
                    let value = record
                        .request_headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                    line.push_str(value.as_deref().unwrap_or("-"));
                }
                Piece::ResponseHeader(name) => {
                    let value = record
                        .response_headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str());
                    line.push_str(value.unwrap_or("-"));
                }
                Piece::Environ(name) => {
                    line.push_str(&std::env::var(name).unwrap_or_else(|_| "-".into()));
                }
            }
        }
        line
    }
}

fn request_header<'a>(record: &'a AccessRecord<'_>, name: &str) -> Option<&'a [u8]> {
    record
        .request_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

fn write_atom(line: &mut String, atom: char, r: &AccessRecord<'_>) {
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let _ = match atom {
        'h' => match r.remote {
            Some(addr) => write!(line, "{}", addr.ip()),
            None => write!(line, "-"),
        },
        'l' => write!(line, "-"),
        'u' => write!(
            line,
            "{}",
            basic_auth_user(request_header(r, "authorization")).unwrap_or_else(|| "-".into())
        ),
        't' => write!(line, "[{}]", clf_time(r.started_unix)),
        'r' => write!(line, "{} {} {}", r.method, lossy(r.target), r.protocol),
        'm' => write!(line, "{}", r.method),
        'U' => write!(line, "{}", lossy(r.path)),
        'q' => write!(line, "{}", lossy(r.query)),
        'H' => write!(line, "{}", r.protocol),
        's' => write!(line, "{}", r.status),
        'B' => write!(line, "{}", r.bytes_sent),
        'b' => {
            if r.bytes_sent == 0 {
                write!(line, "-")
            } else {
                write!(line, "{}", r.bytes_sent)
            }
        }
        'f' => write!(
            line,
            "{}",
            request_header(r, "referer").map_or("-".into(), lossy)
        ),
        'a' => write!(
            line,
            "{}",
            request_header(r, "user-agent").map_or("-".into(), lossy)
        ),
        'T' => write!(line, "{}", r.elapsed.as_secs()),
        'M' => write!(line, "{}", r.elapsed.as_millis()),
        'D' => write!(line, "{}", r.elapsed.as_micros()),
        'L' => write!(line, "{:.6}", r.elapsed.as_secs_f64()),
        'p' => write!(line, "<{}>", std::process::id()),
        _ => write!(line, "-"),
    };
}

/// The user name of a `Basic` `Authorization` header, as gunicorn's `u`.
fn basic_auth_user(header: Option<&[u8]>) -> Option<String> {
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
    ) -> AccessRecord<'a> {
        AccessRecord {
            remote: Some("127.0.0.1:5555".parse().unwrap()),
            method: "GET",
            target: b"/a?b=1",
            path: b"/a",
            query: b"b=1",
            protocol: "HTTP/1.1",
            request_headers: headers,
            status: 200,
            response_headers: out,
            bytes_sent: 12,
            elapsed: Duration::from_micros(1500),
            started_unix: 0,
        }
    }

    #[test]
    fn default_format_matches_gunicorn() {
        let headers = vec![
            ("User-Agent".to_string(), b"curl/8".to_vec()),
            ("Authorization".to_string(), b"Basic dXNlcjpwYXNz".to_vec()),
        ];
        let line = AccessFormat::compile(GUNICORN_DEFAULT).format(&record(&headers, &[]));
        assert_eq!(
            line,
            r#"127.0.0.1 - user [01/Jan/1970:00:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 12 "-" "curl/8""#
        );
    }

    #[test]
    fn every_atom_and_header_kind() {
        let headers = vec![("X-Id".to_string(), b"42".to_vec())];
        let out = vec![("Content-Type".to_string(), "text/plain".to_string())];
        std::env::set_var("FERRICORN_ACCESS_TEST", "env-value");
        let format = "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(T)s %(M)s %(D)s %(L)s %({x-id}i)s %({content-type}o)s %({FERRICORN_ACCESS_TEST}e)s %(zz)s";
        let line = AccessFormat::compile(format).format(&record(&headers, &out));
        assert_eq!(
            line,
            "GET /a b=1 HTTP/1.1 200 12 0 1 1500 0.001500 42 text/plain env-value -"
        );
    }
}
