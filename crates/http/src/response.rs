//! Response serialization helpers: status line, headers, chunks, dates.

use crate::token::is_token;
use crate::Version;

/// Terminating zero-size chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Canonical reason phrase for `status`, or `""` if unknown.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Append `"HTTP/x.y status reason\r\n"` to `buf`.
///
/// `status` is written as three digits (values above 999 are clamped, as no
/// valid status has more). The SP before the reason is kept even when the
/// reason is empty, as RFC 9112 §4 requires.
pub fn write_status_line(buf: &mut Vec<u8>, version: Version, status: u16, reason: &str) {
    let status = status.min(999);
    buf.extend_from_slice(version.as_str().as_bytes());
    buf.extend_from_slice(&[
        b' ',
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    push_latin1(buf, reason);
    buf.extend_from_slice(b"\r\n");
}

/// Append `"name: value\r\n"` to `buf`, encoded as latin-1. Callers
/// validate with [`is_valid_header_name`] / [`is_valid_header_value`] /
/// [`is_latin1`] first.
pub fn write_header(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.reserve(name.len() + value.len() + 4);
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    push_latin1(buf, value);
    buf.extend_from_slice(b"\r\n");
}

/// Whether every character of `s` is in latin-1 (U+0000..=U+00FF), the
/// only characters a WSGI response header or status can carry (PEP 3333).
pub fn is_latin1(s: &str) -> bool {
    s.is_ascii() || s.chars().all(|c| u32::from(c) <= 0xff)
}

/// Appends `s` encoded as latin-1: one byte per character, as PEP 3333's
/// "native strings" go on the wire. A character past U+00FF (which callers
/// refuse with [`is_latin1`]) becomes `?` rather than UTF-8 bytes.
pub fn push_latin1(buf: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    buf.extend(
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
    );
}

/// Append one chunk (hex size, CRLF, data, CRLF); nothing for empty data,
/// since an empty chunk would terminate the body.
pub fn encode_chunk(buf: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = data.len();
    let mut i = digits.len();
    while n > 0 && i > 0 {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
    }
    buf.reserve(data.len() + 20);
    buf.extend_from_slice(digits.get(i..).unwrap_or_default());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// Whether `name` is a valid RFC 9110 token (non-empty).
pub fn is_valid_header_name(name: &str) -> bool {
    is_token(name.as_bytes())
}

/// Whether `value` contains no CR, LF, NUL or other control chars except HTAB.
///
/// Non-ASCII characters pass: they are obs-text once encoded, and rejecting
/// them is the caller's policy decision, not a framing problem.
pub fn is_valid_header_value(value: &str) -> bool {
    crate::token::is_field_value(value.as_bytes())
}

/// Whether `name` is a hop-by-hop header (RFC 9110 §7.6.1 / PEP 3333) that a
/// WSGI application must not set, because the server owns connection management.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// IMF-fixdate (`"Sun, 06 Nov 1994 08:49:37 GMT"`) for seconds since the Unix epoch.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month = MONTHS
        .get(usize::from(month).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) for days since 1970-01-01.
///
/// Counts in 400-year eras starting on 0000-03-01, so the leap day is the last
/// day of each era-year and the month lengths follow a fixed pattern.
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}
