//! The WSGI bridge against a real embedded interpreter: environ contents,
//! `start_response` rules, iteration, `write()`, `close()` and errors, with
//! the response captured by an in-memory sink.

use std::io::{self, Cursor};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, OnceLock};

use ferricorn_http::RequestLine;
use ferricorn_python::environ::{KeptEnviron, RequestInfo};
use ferricorn_python::interpreter::{self, InterpreterOptions};
use ferricorn_python::response::ResponseSink;
use ferricorn_python::wsgi::{Called, Outcome, WsgiApp};
use pyo3::prelude::*;
use pyo3::types::PyModule;

const APPS: &str = r#"
import json, sys

closed = []

def environ_app(environ, start_response):
    keys = {k: v for k, v in environ.items() if isinstance(v, str)}
    keys["wsgi.version"] = list(environ["wsgi.version"])
    keys["wsgi.multithread"] = environ["wsgi.multithread"]
    keys["body"] = environ["wsgi.input"].read().decode("latin-1")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(keys).encode()]

class Closing:
    def __init__(self, parts, fail=False):
        self.parts, self.fail = parts, fail
    def __iter__(self):
        for part in self.parts:
            yield part
        if self.fail:
            raise RuntimeError("iteration failed")
    def close(self):
        closed.append(len(self.parts))

def request_id_app(environ, start_response):
    environ["REQUEST_ID"] = "rid-9"
    environ["Mixed_Case"] = 42
    start_response("200 OK", [])
    return [b""]

def generator_app(environ, start_response):
    start_response("201 Created", [("X-A", "1")])
    return Closing([b"one", b"", b"two"])

def failing_after_head(environ, start_response):
    start_response("200 OK", [])
    return Closing([b"partial"], fail=True)

def write_app(environ, start_response):
    write = start_response("200 OK", [])
    write(b"written ")
    return [b"returned"]

def twice_app(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b""]

def exc_info_app(environ, start_response):
    write = start_response("200 OK", [])
    write(b"sent")
    try:
        raise ValueError("late")
    except ValueError:
        start_response("500 Oops", [], sys.exc_info())
    return [b"not reached"]

def recover_app(environ, start_response):
    start_response("200 OK", [("X-Stage", "first")])
    try:
        raise ValueError("early")
    except ValueError:
        start_response("503 Busy", [("X-Stage", "second")], sys.exc_info())
    return [b"recovered"]

def bad_status_app(environ, start_response):
    start_response("200OK", [])
    return [b""]

def bad_header_app(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b""]

def exit_app(environ, start_response):
    sys.exit(3)

resumed_closed = []
aborted_closed = []

class Logged:
    def __init__(self, parts, log):
        self.parts, self.log, self.pulled = parts, log, 0
    def __iter__(self):
        for part in self.parts:
            self.pulled += 1
            yield part
    def close(self):
        self.log.append(self.pulled)

def resumed_app(environ, start_response):
    start_response("200 OK", [])
    return Logged([b"one", b"two", b"three"], resumed_closed)

def aborted_app(environ, start_response):
    start_response("200 OK", [])
    return Logged([b"one", b"two", b"three"], aborted_closed)

def hop_app(environ, start_response):
    start_response("200 OK", [("Connection", "close"), ("X-Kept", "yes")])
    return [b"ok"]
"#;

/// What the sink saw.
#[derive(Default, Debug)]
struct Captured {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    heads: usize,
    finished: bool,
}

struct MemorySink(Arc<Mutex<Captured>>);

impl ResponseSink for MemorySink {
    fn send_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        _complete: bool,
    ) -> io::Result<()> {
        let mut c = self.0.lock().unwrap();
        c.status = status;
        c.reason = reason.to_string();
        c.headers = headers.to_vec();
        c.body.extend_from_slice(body);
        c.heads += 1;
        Ok(())
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap().body.extend_from_slice(data);
        Ok(())
    }

    fn send_file(&mut self, _fd: RawFd, _offset: u64, _count: u64) -> io::Result<bool> {
        Ok(false)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().finished = true;
        Ok(())
    }
}

/// A sink that is always full: every body write suspends an iterable.
struct FullSink(MemorySink);

impl ResponseSink for FullSink {
    fn send_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
        body: &[u8],
        complete: bool,
    ) -> io::Result<()> {
        self.0.send_head(status, reason, headers, body, complete)
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.send_body(data)
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, count: u64) -> io::Result<bool> {
        self.0.send_file(fd, offset, count)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.0.finish()
    }

    fn wants_more(&self) -> bool {
        false
    }
}

fn module() -> &'static Py<PyModule> {
    static MODULE: OnceLock<Py<PyModule>> = OnceLock::new();
    MODULE.get_or_init(|| {
        interpreter::start(&InterpreterOptions {
            chdir: std::env::temp_dir(),
            pythonpath: Vec::new(),
        })
        .expect("interpreter starts");
        Python::attach(|py| {
            let code = std::ffi::CString::new(APPS).unwrap();
            PyModule::from_code(py, &code, c"bridge_apps.py", c"bridge_apps")
                .expect("test apps compile")
                .unbind()
        })
    })
}

fn call(name: &str, body: &[u8], headers: &[(&str, &[u8])]) -> (Outcome, Captured) {
    call_keeping(name, body, headers, None)
}

fn call_keeping(
    name: &str,
    body: &[u8],
    headers: &[(&str, &[u8])],
    keep: Option<&KeptEnviron>,
) -> (Outcome, Captured) {
    let module = module();
    let app = Python::attach(|py| {
        let callable = module.bind(py).getattr(name).unwrap().unbind();
        WsgiApp::new(py, callable, true, false).unwrap()
    });
    let captured = Arc::new(Mutex::new(Captured::default()));
    let request = RequestInfo {
        line: RequestLine {
            method: "POST",
            target: b"/caf%C3%A9/x?a=1&b=%20",
            path: b"/caf%C3%A9/x",
            query: b"a=1&b=%20",
            version: "HTTP/1.1",
        },
        headers: headers.iter().copied(),
        remote: Some("127.0.0.1:4000".parse().unwrap()),
        server_name: "example.com",
        server_port: "8080",
        url_scheme: "http",
        script_name: "",
        keep,
    };
    let called = app.call(
        request,
        Box::new(Cursor::new(body.to_vec())),
        Box::new(MemorySink(Arc::clone(&captured))),
    );
    // The memory sink never fills, so no response is ever suspended.
    let Called::Done(outcome) = called else {
        panic!("a response to a sink with room was suspended");
    };
    let captured = std::mem::take(&mut *captured.lock().unwrap());
    (outcome, captured)
}

fn closed_count() -> usize {
    let module = module();
    Python::attach(|py| module.bind(py).getattr("closed").unwrap().len().unwrap())
}

#[test]
fn environ_follows_pep_3333() {
    let headers: &[(&str, &[u8])] = &[
        ("Content-Type", b"text/plain"),
        ("Content-Length", b"5"),
        ("X-Multi", b"a"),
        ("X-Multi", b"b"),
        ("User-Agent", b"t\xe9st"),
    ];
    let (outcome, captured) = call("environ_app", b"hello", headers);
    assert!(!outcome.failed);
    assert_eq!(captured.status, 200);
    let env: std::collections::HashMap<String, serde_like::Value> =
        serde_like::parse(&String::from_utf8(captured.body).unwrap());
    let get = |k: &str| env.get(k).map(|v| v.to_string()).unwrap_or_default();
    assert_eq!(get("REQUEST_METHOD"), "POST");
    assert_eq!(get("PATH_INFO"), "/caf\u{c3}\u{a9}/x");
    assert_eq!(get("QUERY_STRING"), "a=1&b=%20");
    assert_eq!(get("RAW_URI"), "/caf%C3%A9/x?a=1&b=%20");
    assert_eq!(get("CONTENT_TYPE"), "text/plain");
    assert_eq!(get("CONTENT_LENGTH"), "5");
    assert_eq!(get("HTTP_X_MULTI"), "a,b");
    assert_eq!(get("HTTP_USER_AGENT"), "t\u{e9}st");
    assert_eq!(get("SERVER_NAME"), "example.com");
    assert_eq!(get("SERVER_PORT"), "8080");
    assert_eq!(get("SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(get("REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(get("REMOTE_PORT"), "4000");
    assert_eq!(get("wsgi.url_scheme"), "http");
    assert_eq!(get("wsgi.multithread"), "true");
    assert_eq!(get("wsgi.version"), "[1, 0]");
    assert_eq!(get("body"), "hello");
    assert!(!env.contains_key("HTTP_CONTENT_TYPE"));
}

#[test]
fn kept_environ_shows_what_the_app_added() {
    let kept = KeptEnviron::default();
    call_keeping("request_id_app", b"", &[("X-Id", b"7")], Some(&kept));
    let keys: Vec<String> = [
        "request_id",
        "mixed_case",
        "http_x_id",
        "request_method",
        "nope",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        kept.into_values(&keys),
        [
            Some("rid-9".to_string()),
            Some("42".to_string()),
            Some("7".to_string()),
            Some("POST".to_string()),
            None
        ]
    );
    // Nothing kept: every value is absent.
    assert_eq!(KeptEnviron::default().into_values(&keys), vec![None; 5]);
}

#[test]
fn generator_is_sent_in_order_and_closed() {
    let before = closed_count();
    let (outcome, captured) = call("generator_app", b"", &[]);
    assert!(!outcome.failed);
    assert_eq!(
        (captured.status, captured.reason.as_str()),
        (201, "Created")
    );
    assert_eq!(captured.headers, vec![("X-A".to_string(), "1".to_string())]);
    assert_eq!(captured.body, b"onetwo");
    assert_eq!(captured.heads, 1);
    assert!(captured.finished);
    assert!(closed_count() > before);
}

#[test]
fn failure_after_the_head_closes_the_iterable_and_the_connection() {
    let before = closed_count();
    let (outcome, captured) = call("failing_after_head", b"", &[]);
    assert!(outcome.failed);
    assert!(outcome.head_sent);
    assert!(outcome.must_close);
    assert_eq!(captured.body, b"partial");
    assert!(closed_count() > before);
}

#[test]
fn write_callable_sends_before_the_iterable() {
    let (outcome, captured) = call("write_app", b"", &[]);
    assert!(!outcome.failed);
    assert_eq!(captured.body, b"written returned");
}

#[test]
fn start_response_twice_without_exc_info_fails() {
    let (outcome, captured) = call("twice_app", b"", &[]);
    assert!(outcome.failed);
    assert_eq!(captured.heads, 0);
}

#[test]
fn exc_info_after_the_head_was_sent_reraises() {
    let (outcome, captured) = call("exc_info_app", b"", &[]);
    assert!(outcome.failed);
    assert!(outcome.head_sent);
    assert_eq!(captured.status, 200);
    assert_eq!(captured.body, b"sent");
}

#[test]
fn exc_info_replaces_an_unsent_head() {
    let (outcome, captured) = call("recover_app", b"", &[]);
    assert!(!outcome.failed);
    assert_eq!(captured.status, 503);
    assert_eq!(
        captured.headers,
        vec![("X-Stage".to_string(), "second".to_string())]
    );
    assert_eq!(captured.body, b"recovered");
}

#[test]
fn invalid_status_and_headers_fail_before_anything_is_sent() {
    for app in ["bad_status_app", "bad_header_app", "exit_app"] {
        let (outcome, captured) = call(app, b"", &[]);
        assert!(outcome.failed, "{app}");
        assert!(!outcome.head_sent, "{app}");
        assert_eq!(captured.heads, 0, "{app}");
    }
}

#[test]
fn hop_by_hop_headers_are_dropped_and_close_is_honoured() {
    let (outcome, captured) = call("hop_app", b"", &[]);
    assert!(!outcome.failed);
    assert!(outcome.must_close);
    assert_eq!(
        captured.headers,
        vec![("X-Kept".to_string(), "yes".to_string())]
    );
}

/// A tiny reader for the flat JSON object `environ_app` returns, so the
/// test needs no JSON crate.
mod serde_like {
    use std::collections::HashMap;
    use std::fmt;

    pub enum Value {
        Str(String),
        Raw(String),
    }

    impl fmt::Display for Value {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Value::Str(s) | Value::Raw(s) => f.write_str(s),
            }
        }
    }

    fn string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
        let mut out = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16).unwrap();
                        out.push(char::from_u32(code).unwrap());
                    }
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => break,
                },
                other => out.push(other),
            }
        }
        out
    }

    pub fn parse(text: &str) -> HashMap<String, Value> {
        let mut map = HashMap::new();
        let mut chars = text.trim().trim_start_matches('{').chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c != '"') {
                chars.next();
            }
            if chars.next().is_none() {
                break;
            }
            let key = string(&mut chars);
            while chars.peek().is_some_and(|c| *c == ':' || *c == ' ') {
                chars.next();
            }
            let value = if chars.peek() == Some(&'"') {
                chars.next();
                Value::Str(string(&mut chars))
            } else {
                let mut raw = String::new();
                let mut depth = 0;
                while let Some(&c) = chars.peek() {
                    if depth == 0 && (c == ',' || c == '}') {
                        break;
                    }
                    if c == '[' {
                        depth += 1;
                    } else if c == ']' {
                        depth -= 1;
                    }
                    raw.push(c);
                    chars.next();
                }
                Value::Raw(raw.trim().to_string())
            };
            map.insert(key, value);
        }
        map
    }
}

/// Calls `name` with a sink that is always full.
fn call_full(name: &str) -> (Called, Arc<Mutex<Captured>>) {
    let module = module();
    let app = Python::attach(|py| {
        let callable = module.bind(py).getattr(name).unwrap().unbind();
        WsgiApp::new(py, callable, true, false).unwrap()
    });
    let captured = Arc::new(Mutex::new(Captured::default()));
    let request = RequestInfo {
        line: RequestLine {
            method: "GET",
            target: b"/",
            path: b"/",
            query: b"",
            version: "HTTP/1.1",
        },
        headers: std::iter::empty(),
        remote: None,
        server_name: "example.com",
        server_port: "80",
        url_scheme: "http",
        script_name: "",
        keep: None,
    };
    let called = app.call(
        request,
        Box::new(Cursor::new(Vec::new())),
        Box::new(FullSink(MemorySink(Arc::clone(&captured)))),
    );
    (called, captured)
}

fn closes(list: &str) -> Vec<usize> {
    let module = module();
    Python::attach(|py| module.bind(py).getattr(list).unwrap().extract().unwrap())
}

#[test]
fn a_full_sink_suspends_the_iterable_until_resumed() {
    let (called, captured) = call_full("resumed_app");
    let Called::Suspended(mut paused) = called else {
        panic!("not suspended");
    };
    assert_eq!(captured.lock().unwrap().body, b"one");
    assert!(
        closes("resumed_closed").is_empty(),
        "closed while suspended"
    );
    let outcome = loop {
        match paused.resume() {
            Called::Suspended(next) => paused = next,
            Called::Done(outcome) => break outcome,
        }
    };
    assert!(!outcome.failed && !outcome.must_close, "{outcome:?}");
    let captured = captured.lock().unwrap();
    assert_eq!(captured.body, b"onetwothree");
    assert!(captured.finished);
    assert_eq!(outcome.bytes_sent, 11);
    assert_eq!(closes("resumed_closed"), vec![3]);
}

#[test]
fn aborting_a_suspended_iterable_closes_it() {
    let (called, captured) = call_full("aborted_app");
    let Called::Suspended(paused) = called else {
        panic!("not suspended");
    };
    let outcome = paused.abort(io::ErrorKind::TimedOut.into());
    assert!(outcome.must_close);
    assert!(!captured.lock().unwrap().finished);
    assert_eq!(closes("aborted_closed"), vec![1]);
}
