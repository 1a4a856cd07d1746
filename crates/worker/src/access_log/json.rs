//! `--log-format json` access lines: one ECS object per request.
//!
//! Keys follow the ECS logging spec (`@timestamp`, `log.level`, `message`
//! first, dotted names at the top level) and ECS's HTTP field set, which
//! OpenTelemetry's semantic conventions share for method, status, `url.*`
//! and `user_agent.original`. Absent values are left out rather than
//! written as `-`. `message` is the line `--access-logformat` renders, so
//! nothing a text format printed is lost. Request bytes that are valid
//! UTF-8 are shown as such; others as ISO-8859-1, one character per byte
//! (as the WSGI environ and the text line hold them), so nothing is lost
//! to replacement characters.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::{basic_auth_user, request_header, AccessRecord};

/// The ECS release whose field reference the names were checked against.
pub const ECS_VERSION: &str = "8.11.0";

/// Renders `record` as one JSON object (no trailing newline); `message` is
/// the text-format line.
pub fn render(record: &AccessRecord<'_>, message: &str) -> String {
    let mut out = String::with_capacity(512);
    // The request's start, as `%(t)s`, to the microsecond.
    let started = SystemTime::now()
        .checked_sub(record.elapsed)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    out.push_str("{\"@timestamp\":");
    push_str(&mut out, &rfc3339_micros(started));
    out.push_str(",\"log.level\":\"INFO\",\"message\":");
    push_str(&mut out, message);
    let _ = write!(
        out,
        ",\"ecs.version\":\"{ECS_VERSION}\",\"log.logger\":\"ferricorn.access\",\"process.pid\":{}",
        std::process::id()
    );
    if !record.line.method.is_empty() {
        member(&mut out, "http.request.method", record.line.method);
        member_bytes(&mut out, "url.original", record.line.target);
        member_bytes(&mut out, "url.path", record.line.path);
        if !record.line.query.is_empty() {
            member_bytes(&mut out, "url.query", record.line.query);
        }
    }
    if let Some(version) = record.line.version.strip_prefix("HTTP/") {
        member(&mut out, "http.version", version);
    }
    let _ = write!(
        out,
        ",\"http.response.status_code\":{},\"http.response.body.bytes\":{},\"event.duration\":{}",
        record.status,
        record.bytes_sent,
        duration_ns(record.elapsed)
    );
    if let Some(addr) = record.remote {
        let _ = write!(
            out,
            ",\"client.address\":\"{ip}\",\"client.ip\":\"{ip}\",\"client.port\":{}",
            addr.port(),
            ip = addr.ip()
        );
    }
    if let Some(agent) = request_header(record, "user-agent") {
        member_bytes(&mut out, "user_agent.original", agent);
    }
    if let Some(referrer) = request_header(record, "referer") {
        member_bytes(&mut out, "http.request.referrer", referrer);
    }
    if let Some(user) = basic_auth_user(request_header(record, "authorization")) {
        member(&mut out, "user.name", &user);
    }
    if let Some(id) = request_header(record, "x-request-id") {
        member_bytes(&mut out, "http.request.id", id);
    }
    out.push('}');
    out
}

fn duration_ns(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// `2026-11-23T16:33:58.123456Z`.
pub fn rfc3339_micros(at: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::from(at)
        .format(&format)
        .unwrap_or_default()
}

fn member(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_str(out, value);
}

fn member_bytes(out: &mut String, key: &str, value: &[u8]) {
    match std::str::from_utf8(value) {
        Ok(text) => member(out, key, text),
        Err(_) => member(
            out,
            key,
            &value.iter().map(|&b| char::from(b)).collect::<String>(),
        ),
    }
}

/// Appends `text` as a JSON string.
pub fn push_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            // Line and paragraph separators end lines in some readers.
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferricorn_http::RequestLine;

    fn record<'a>(headers: &'a [(String, Vec<u8>)]) -> AccessRecord<'a> {
        AccessRecord {
            remote: Some("127.0.0.1:5555".parse().unwrap()),
            line: RequestLine {
                method: "GET",
                target: b"/a?b=1",
                path: b"/a",
                query: b"b=1",
                version: "HTTP/1.1",
            },
            script_name: "",
            request_headers: headers,
            status: 200,
            response_headers: &[],
            bytes_sent: 12,
            elapsed: Duration::from_micros(1500),
            started_unix: 0,
            environ: &[],
        }
    }

    #[test]
    fn fields_in_ecs_order() {
        let headers = vec![
            ("User-Agent".to_string(), b"q\"\\\t\xffz".to_vec()),
            ("Referer".to_string(), "café".as_bytes().to_vec()),
        ];
        let line = render(&record(&headers), "GET /a?b=1 HTTP/1.1 200");
        assert!(line.starts_with("{\"@timestamp\":\""), "{line}");
        let rest =
            line.split_once(",\"log.level\":\"INFO\",\"message\":\"GET /a?b=1 HTTP/1.1 200\",");
        assert!(rest.is_some(), "{line}");
        for part in [
            r#""http.request.method":"GET""#,
            r#""url.original":"/a?b=1","url.path":"/a","url.query":"b=1""#,
            r#""http.version":"1.1""#,
            r#""http.response.status_code":200,"http.response.body.bytes":12,"event.duration":1500000"#,
            r#""client.address":"127.0.0.1","client.ip":"127.0.0.1","client.port":5555"#,
            "\"user_agent.original\":\"q\\\"\\\\\\t\u{ff}z\"",
            "\"http.request.referrer\":\"café\"",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
        assert!(line.ends_with('}'));
    }

    #[test]
    fn unreadable_request_omits_request_fields() {
        let mut r = record(&[]);
        r.line = RequestLine::default();
        r.status = 400;
        let line = render(&r, "-");
        assert!(!line.contains("http.request.method"), "{line}");
        assert!(!line.contains("url."), "{line}");
        assert!(line.contains("\"http.response.status_code\":400"), "{line}");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = String::new();
        push_str(&mut out, "a\u{1}b\u{2028}");
        assert_eq!(out, r#""a\u0001b\u2028""#);
    }
}
