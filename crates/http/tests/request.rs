//! Request-head parser corpus: every request is parsed whole and fed byte by
//! byte, and both ways must give the same verdict.

use ferricorn_http::{
    parse_request_head, BodyKind, HeaderMapPolicy, HttpError, Parsed, ParserOptions, RequestHead,
    RequestHeadParser, Version,
};

type Outcome = Result<(RequestHead, usize), HttpError>;

/// Grow the buffer one byte at a time until the parser decides.
fn parse_bytewise(req: &[u8], opts: &ParserOptions) -> Option<Outcome> {
    for n in 0..=req.len() {
        match parse_request_head(&req[..n], opts) {
            Ok(Parsed::Partial) => continue,
            Ok(Parsed::Complete { head, consumed }) => {
                assert_eq!(consumed, n, "completed before the last byte of the head");
                return Some(Ok((head, consumed)));
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Same, through the resumable parser.
fn parse_resumable(req: &[u8], opts: &ParserOptions) -> Option<Outcome> {
    let mut parser = RequestHeadParser::new();
    for n in 0..=req.len() {
        match parser.parse(&req[..n], opts) {
            Ok(Parsed::Partial) => continue,
            Ok(Parsed::Complete { head, consumed }) => {
                assert_eq!(consumed, n, "completed before the last byte of the head");
                return Some(Ok((head, consumed)));
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => (a.status, &a.detail) == (b.status, &b.detail),
        _ => false,
    }
}

fn parse_both(req: &[u8], opts: &ParserOptions) -> Outcome {
    let whole = match parse_request_head(req, opts) {
        Ok(Parsed::Complete { head, consumed }) => Ok((head, consumed)),
        Ok(Parsed::Partial) => panic!(
            "whole request came out Partial: {:?}",
            req.escape_ascii().to_string()
        ),
        Err(e) => Err(e),
    };
    let bytewise = parse_bytewise(req, opts).expect("bytewise never decided");
    assert!(
        same(&whole, &bytewise),
        "whole and bytewise differ for {:?}: {whole:?} vs {bytewise:?}",
        req.escape_ascii().to_string()
    );
    let resumable = parse_resumable(req, opts).expect("resumable never decided");
    assert!(
        same(&whole, &resumable),
        "whole and resumable differ for {:?}: {whole:?} vs {resumable:?}",
        req.escape_ascii().to_string()
    );
    whole
}

fn ok_with(req: &[u8], opts: &ParserOptions) -> RequestHead {
    match parse_both(req, opts) {
        Ok((head, consumed)) => {
            assert_eq!(consumed, req.len(), "head should span the whole input");
            head
        }
        Err(e) => panic!("{:?} rejected: {e}", req.escape_ascii().to_string()),
    }
}

fn ok(req: &[u8]) -> RequestHead {
    ok_with(req, &ParserOptions::default())
}

fn err_with(req: &[u8], opts: &ParserOptions) -> u16 {
    match parse_both(req, opts) {
        Ok((head, _)) => panic!("{:?} accepted: {head:?}", req.escape_ascii().to_string()),
        Err(e) => e.status,
    }
}

fn err(req: &[u8]) -> u16 {
    err_with(req, &ParserOptions::default())
}

fn get_with_header(header: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------- valid

#[test]
fn simple_get() {
    let h = ok(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(h.method, "GET");
    assert_eq!(h.target, b"/index.html");
    assert_eq!(h.path, b"/index.html");
    assert_eq!(h.query, b"");
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.headers.len(), 2);
    assert_eq!(h.headers[0].name, "Host");
    assert_eq!(h.headers[0].value, b"example.com");
    assert_eq!(h.body, BodyKind::Empty);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert_eq!(h.header("host"), Some(&b"example.com"[..]));
    assert_eq!(h.header("ACCEPT"), Some(&b"*/*"[..]));
    assert_eq!(h.header("missing"), None);
}

#[test]
fn no_headers() {
    let h = ok(b"GET / HTTP/1.1\r\n\r\n");
    assert!(h.headers.is_empty());
    assert_eq!(h.path, b"/");
}

#[test]
fn query_and_fragment() {
    let h = ok(b"GET /a/b?x=1&y=%20#frag HTTP/1.1\r\n\r\n");
    assert_eq!(h.target, b"/a/b?x=1&y=%20#frag");
    assert_eq!(h.path, b"/a/b");
    assert_eq!(h.query, b"x=1&y=%20");

    let h = ok(b"GET /?a?b HTTP/1.1\r\n\r\n");
    assert_eq!(
        (h.path.as_slice(), h.query.as_slice()),
        (&b"/"[..], &b"a?b"[..])
    );

    let h = ok(b"GET /p#f?x HTTP/1.1\r\n\r\n");
    assert_eq!(
        (h.path.as_slice(), h.query.as_slice()),
        (&b"/p"[..], &b""[..])
    );

    let h = ok(b"GET /? HTTP/1.1\r\n\r\n");
    assert_eq!(
        (h.path.as_slice(), h.query.as_slice()),
        (&b"/"[..], &b""[..])
    );
}

#[test]
fn double_slash_is_a_path() {
    let h = ok(b"GET //evil.com/x?q HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, b"//evil.com/x");
    assert_eq!(h.query, b"q");
}

/// (path, query) of a request with `target`, or the error status.
fn target_parts(method: &str, target: &str) -> Result<(String, String), u16> {
    let req = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    match parse_both(req.as_bytes(), &ParserOptions::default()) {
        Ok((h, _)) => {
            assert_eq!(h.target, target.as_bytes(), "RAW_URI is the target as sent");
            Ok((
                String::from_utf8(h.path).unwrap(),
                String::from_utf8(h.query).unwrap(),
            ))
        }
        Err(e) => Err(e.status),
    }
}

fn parts(path: &str, query: &str) -> Result<(String, String), u16> {
    Ok((path.to_string(), query.to_string()))
}

#[test]
fn absolute_form() {
    // Every answer here is gunicorn 27's PATH_INFO (before decoding) and
    // QUERY_STRING for the same request line.
    for (target, expected) in [
        ("http://example.com", parts("", "")),
        ("http://example.com?x=1", parts("", "x=1")),
        ("http://example.com#f", parts("", "")),
        ("http://example.com/?", parts("/", "")),
        ("https://Example.com:8443/p/q?x=1#f", parts("/p/q", "x=1")),
        ("HTTP://h?x", parts("", "x")),
        ("HTTP://EXAMPLE.com/X", parts("/X", "")),
        ("http://example.com/a%20b", parts("/a%20b", "")),
        ("http://[::1]:80/v6", parts("/v6", "")),
        ("http://[fe80::1%25eth0]/z", parts("/z", "")),
        ("http://[v1.x]/p", parts("/p", "")),
        ("http://example.com:abc/p", parts("/p", "")),
        ("http://example.com/p]", parts("/p]", "")),
        ("ftp://example.com/x", parts("/x", "")),
        ("h+t.p-1://x/y", parts("/y", "")),
        ("a://b", parts("", "")),
    ] {
        assert_eq!(target_parts("GET", target), expected, "{target}");
    }
}

#[test]
fn absolute_form_with_userinfo() {
    for (target, expected) in [
        ("http://user:pw@example.com/p?q=1", parts("/p", "q=1")),
        ("http://@example.com/", parts("/", "")),
        ("http://user@[::1]:80/p", parts("/p", "")),
        ("http://a@b@c/p", parts("/p", "")),
    ] {
        assert_eq!(target_parts("GET", target), expected, "{target}");
    }
}

#[test]
fn invalid_absolute_form() {
    for target in [
        // urlsplit refuses these too (gunicorn: 400).
        "http://[::1/p",
        "http://[zz]/p",
        "http://ex]ample/p",
        "http://ex[ample/p",
        "http:/x",
        "http:",
        // Stricter than gunicorn, which accepts each with a nonsense path.
        "http:///nohost",
        "https://user@/p",
        "http://[::1]x/",
        "http://u[@h/p",
        "://b/c",
        "1http://x/y",
    ] {
        assert_eq!(target_parts("GET", target), Err(400), "{target}");
    }
}

#[test]
fn origin_and_asterisk_forms_as_gunicorn() {
    for (method, target, expected) in [
        ("OPTIONS", "*", parts("*", "")),
        ("OPTIONS", "/x", parts("/x", "")),
        ("GET", "//double/slash?q", parts("//double/slash", "q")),
        ("GET", "/p#frag", parts("/p", "")),
        ("GET", "/p?a=1#frag?b", parts("/p", "a=1")),
        ("GET", "/p?", parts("/p", "")),
        ("GET", "/a;b=c/d", parts("/a;b=c/d", "")),
        ("GET", "/p://x", parts("/p://x", "")),
        ("GET", "/x/http://y", parts("/x/http://y", "")),
    ] {
        assert_eq!(target_parts(method, target), expected, "{method} {target}");
    }
    for (method, target) in [
        ("GET", "*"),
        ("GET", "x"),
        ("GET", "?q=1"),
        ("GET", "example.com:443"),
        ("GET", "mailto:a@b"),
    ] {
        assert_eq!(target_parts(method, target), Err(400), "{method} {target}");
    }
}

#[test]
fn authority_form_for_connect() {
    // PATH_INFO is the authority: gunicorn 27 gives that for IP literals,
    // and for a host name only the port (its urlsplit reads "example.com"
    // as a scheme), which we do not copy.
    for (target, expected) in [
        ("example.com:443", parts("example.com:443", "")),
        ("[::1]:443", parts("[::1]:443", "")),
        ("127.0.0.1:8080", parts("127.0.0.1:8080", "")),
    ] {
        assert_eq!(target_parts("CONNECT", target), expected, "{target}");
    }
    for target in [
        "example.com",
        "/path",
        "http://example.com/",
        ":443",
        "example.com:",
        "example.com:443/x",
        "user@example.com:443",
        "::1:443",
        "[::1:443",
        "[zz]:443",
        "example.com:123456",
    ] {
        assert_eq!(target_parts("CONNECT", target), Err(400), "{target}");
    }
}

#[test]
fn unusual_but_valid_methods() {
    for m in [
        "M-SEARCH",
        "PROPFIND",
        "PUT",
        "BREW",
        "A.B_C$D",
        "ABCDEFGHIJKLMNOPQRST",
    ] {
        let h = ok(format!("{m} / HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(h.method, m);
    }
}

#[test]
fn keep_alive_rules() {
    assert!(ok(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
    assert!(
        !ok(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").keep_alive
    );
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive , foo\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").keep_alive);
}

#[test]
fn content_length() {
    let req = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    match parse_request_head(req, &ParserOptions::default()).unwrap() {
        Parsed::Complete { head, consumed } => {
            assert_eq!(head.body, BodyKind::Length(5));
            assert_eq!(&req[consumed..], b"hello");
        }
        Parsed::Partial => panic!("partial"),
    }
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
        BodyKind::Length(0)
    );
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n").body,
        BodyKind::Length(7)
    );
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nContent-Length:  18446744073709551615 \r\n\r\n").body,
        BodyKind::Length(u64::MAX)
    );
    assert_eq!(
        ok(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n").body,
        BodyKind::Length(3)
    );
}

#[test]
fn chunked_transfer_encoding() {
    let h = ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    assert!(h.keep_alive);
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: ChUnKeD\r\n\r\n").body,
        BodyKind::Chunked
    );
    let h =
        ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    // A content coding under chunked is passed through, but the connection is not reused.
    let h = ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    assert!(!h.keep_alive);
}

#[test]
fn expect_continue() {
    assert!(
        ok(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue
    );
    assert!(ok(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
    assert!(!ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nExpect: something-else\r\n\r\n"),
        417
    );
}

#[test]
fn header_values_are_trimmed_and_kept_in_order() {
    let h =
        ok(b"GET / HTTP/1.1\r\nX-A:   a  b \t\r\nX-B:\r\nx-a:\tsecond\r\nX-C: tab\tinside\r\n\r\n");
    let got: Vec<(&str, &[u8])> = h
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("X-A", &b"a  b"[..]),
            ("X-B", &b""[..]),
            ("x-a", &b"second"[..]),
            ("X-C", &b"tab\tinside"[..])
        ]
    );
    assert_eq!(h.header("X-A"), Some(&b"a  b"[..]));
}

#[test]
fn obs_text_in_value_is_accepted() {
    let h = ok(b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n");
    assert_eq!(h.header("x-name"), Some(&b"caf\xc3\xa9 \xff"[..]));
}

#[test]
fn leading_empty_lines_are_skipped() {
    let h = ok(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert_eq!(h.method, "GET");
    assert_eq!(
        err(b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
        400
    );
    assert_eq!(err(b"\r\nGET / HTTP/1.1\n\r\n"), 400);
}

#[test]
fn pipelined_requests() {
    let buf = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    let opts = ParserOptions::default();
    let Parsed::Complete { head, consumed } = parse_request_head(buf, &opts).unwrap() else {
        panic!("partial")
    };
    assert_eq!(head.path, b"/1");
    let Parsed::Complete { head, consumed: c2 } =
        parse_request_head(&buf[consumed..], &opts).unwrap()
    else {
        panic!("partial")
    };
    assert_eq!(head.path, b"/2");
    assert_eq!(consumed + c2, buf.len());
}

#[test]
fn partial_inputs() {
    let opts = ParserOptions::default();
    for p in [
        &b""[..],
        b"G",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        b"\r\n\r",
    ] {
        assert_eq!(
            parse_request_head(p, &opts).unwrap(),
            Parsed::Partial,
            "{p:?}"
        );
    }
}

// ------------------------------------------------------ underscore headers

#[test]
fn underscore_headers_follow_header_map() {
    let req = b"GET / HTTP/1.1\r\nX_Forwarded_For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n";
    let h = ok(req);
    assert_eq!(h.headers.len(), 1);
    assert_eq!(h.headers[0].name, "X-Forwarded-For");

    let dangerous = ParserOptions {
        header_map: HeaderMapPolicy::Dangerous,
        ..Default::default()
    };
    let h = ok_with(req, &dangerous);
    assert_eq!(h.headers.len(), 2);
    assert_eq!(h.headers[0].name, "X_Forwarded_For");

    let refuse = ParserOptions {
        header_map: HeaderMapPolicy::Refuse,
        ..Default::default()
    };
    assert_eq!(err_with(req, &refuse), 400);
}

#[test]
fn dropped_underscore_header_cannot_frame_the_body() {
    // Content_Length is dropped, so there is no body.
    let h = ok(b"POST / HTTP/1.1\r\nContent_Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyKind::Empty);
}

// ------------------------------------------------------------ framing

#[test]
fn content_length_with_transfer_encoding() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
        400
    );
}

#[test]
fn bad_content_lengths() {
    for v in [
        "5, 5",
        "5,5",
        "+5",
        "-1",
        "",
        " ",
        "5 5",
        "0x5",
        "5a",
        "1e3",
        "\u{0665}",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        assert_eq!(
            err(format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes()),
            400,
            "{v:?}"
        );
    }
}

#[test]
fn duplicate_content_length() {
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        400
    );
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n"),
        400
    );
}

#[test]
fn duplicate_host() {
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
}

#[test]
fn bad_transfer_encodings() {
    let cases: &[(&str, u16)] = &[
        ("Transfer-Encoding: chunked, gzip", 400),
        ("Transfer-Encoding: gzip", 400),
        ("Transfer-Encoding: identity", 400),
        ("Transfer-Encoding: chunked, chunked", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            400,
        ),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", 400),
        ("Transfer-Encoding: chunked, identity", 400),
        ("Transfer-Encoding: chunked,", 400),
        ("Transfer-Encoding: , chunked", 400),
        ("Transfer-Encoding:", 400),
        ("Transfer-Encoding: foo, chunked", 501),
        ("Transfer-Encoding: chunked;q=1", 501),
        ("Transfer-Encoding: xchunked", 501),
    ];
    for (h, status) in cases {
        assert_eq!(
            err(format!("POST / HTTP/1.1\r\n{h}\r\n\r\n").as_bytes()),
            *status,
            "{h}"
        );
    }
}

#[test]
fn transfer_encoding_on_http10() {
    assert_eq!(
        err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        err(b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"),
        400
    );
}

// ------------------------------------------------------------ header syntax

#[test]
fn whitespace_before_colon() {
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
    assert_eq!(err(b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"), 400);
    // A smuggling classic: the proxy ignores it, a lenient server uses it.
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"),
        400
    );
    let strip = ParserOptions {
        strip_header_spaces: true,
        ..Default::default()
    };
    let h = ok_with(b"GET / HTTP/1.1\r\nHost \t : x\r\n\r\n", &strip);
    assert_eq!(h.headers[0].name, "Host");
    assert_eq!(err_with(b"GET / HTTP/1.1\r\n : x\r\n\r\n", &strip), 400);
}

#[test]
fn bare_lf_anywhere() {
    for req in [
        &b"GET / HTTP/1.1\n\r\n"[..],
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        b"\nGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\n\n",
    ] {
        assert_eq!(err(req), 400, "{:?}", req.escape_ascii().to_string());
    }
}

#[test]
fn control_chars_in_values() {
    for v in [
        &b"a\rb"[..],
        b"a\x00b",
        b"\x01",
        b"a\x1fb",
        b"a\x7fb",
        b"a\x0bb",
        b"a\x0cb",
    ] {
        let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(err(&req), 400, "{:?}", v.escape_ascii().to_string());
    }
    assert_eq!(err(b"GET / HTTP/1.1\r\nX: a\r\r\n\r\n"), 400);
}

#[test]
fn invalid_header_names() {
    for name in [
        &b"X(Y"[..],
        b"X Y",
        b"",
        b"X\"",
        b"X/Y",
        b"X@",
        b"X\x00",
        b"\xc3\x9c",
        b"X\x7f",
        b"[X]",
        b"X,Y",
        b"\rX",
    ] {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(name);
        req.extend_from_slice(b": v\r\n\r\n");
        assert_eq!(err(&req), 400, "{:?}", name.escape_ascii().to_string());
    }
    assert_eq!(err(b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n"), 400);
}

#[test]
fn obs_fold() {
    let folded = b"GET / HTTP/1.1\r\nX-Long: first\r\n  second\r\n\tthird \r\nHost: h\r\n\r\n";
    assert_eq!(err(folded), 400);
    let permit = ParserOptions {
        permit_obsolete_folding: true,
        ..Default::default()
    };
    let h = ok_with(folded, &permit);
    assert_eq!(h.header("x-long"), Some(&b"first second third"[..]));
    assert_eq!(h.header("host"), Some(&b"h"[..]));
    // Folded continuation lines are still checked for control characters.
    assert_eq!(
        err_with(b"GET / HTTP/1.1\r\nX: a\r\n b\x00\r\n\r\n", &permit),
        400
    );
    // Whitespace before the first header is never a continuation.
    assert_eq!(err(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400);
    assert_eq!(
        err_with(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", &permit),
        400
    );
    // A fold cannot be used to hide a Transfer-Encoding.
    assert_eq!(
        err(b"POST / HTTP/1.1\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"),
        400
    );
}

// ------------------------------------------------------------ request line

#[test]
fn invalid_methods() {
    for m in [
        &b"get"[..],
        b"Get",
        b"GE",
        b"G",
        b"ABCDEFGHIJKLMNOPQRSTU",
        b"G#T",
        b"GE(T",
        b"GE\x80T",
        b"GE\tT",
        b"GE:T",
    ] {
        let mut req = m.to_vec();
        req.extend_from_slice(b" / HTTP/1.1\r\n\r\n");
        assert_eq!(err(&req), 400, "{:?}", m.escape_ascii().to_string());
    }
}

#[test]
fn unconventional_methods_when_permitted() {
    let permit = ParserOptions {
        permit_unconventional_http_method: true,
        ..Default::default()
    };
    assert_eq!(ok_with(b"get / HTTP/1.1\r\n\r\n", &permit).method, "get");
    assert_eq!(ok_with(b"G / HTTP/1.1\r\n\r\n", &permit).method, "G");
    assert_eq!(ok_with(b"G#T / HTTP/1.1\r\n\r\n", &permit).method, "G#T");
    assert_eq!(
        ok_with(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n\r\n", &permit)
            .method
            .len(),
        26
    );
    // Still has to be a token.
    assert_eq!(err_with(b"GE(T / HTTP/1.1\r\n\r\n", &permit), 400);
}

#[test]
fn casefold_method() {
    let fold = ParserOptions {
        casefold_http_method: true,
        ..Default::default()
    };
    assert_eq!(ok_with(b"get / HTTP/1.1\r\n\r\n", &fold).method, "GET");
    assert_eq!(ok_with(b"Post / HTTP/1.1\r\n\r\n", &fold).method, "POST");
    assert_eq!(err_with(b"g#t / HTTP/1.1\r\n\r\n", &fold), 400);
    let both = ParserOptions {
        casefold_http_method: true,
        permit_unconventional_http_method: true,
        ..Default::default()
    };
    assert_eq!(ok_with(b"g#t / HTTP/1.1\r\n\r\n", &both).method, "G#T");
}

#[test]
fn malformed_request_lines() {
    for req in [
        &b"GET /\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET /  HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 \r\n\r\n",
        b" GET / HTTP/1.1\r\n\r\n",
        b"GET\t/\tHTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\tfoo\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"\x00GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\r\n\r\n",
    ] {
        assert_eq!(err(req), 400, "{:?}", req.escape_ascii().to_string());
    }
}

#[test]
fn versions() {
    for (v, status) in [
        ("HTTP/1.10", 400),
        ("HTTP/01.1", 400),
        ("HTTP/1", 400),
        ("HTTP/1.", 400),
        ("http/1.1", 400),
        ("HTTP/1,1", 400),
        ("HTTPS/1.1", 400),
        ("HTTP/1.1x", 400),
        ("HTTP/a.b", 400),
        ("HTTP/2.0", 505),
        ("HTTP/3.0", 505),
        ("HTTP/0.9", 505),
        ("HTTP/1.2", 505),
        ("HTTP/1.9", 505),
    ] {
        assert_eq!(err(format!("GET / {v}\r\n\r\n").as_bytes()), status, "{v}");
    }
    let h = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::HTTP_10);
    assert_eq!(h.version.as_str(), "HTTP/1.0");

    let permit = ParserOptions {
        permit_unconventional_http_version: true,
        ..Default::default()
    };
    let h = ok_with(b"GET / HTTP/1.2\r\n\r\n", &permit);
    assert_eq!(h.version, Version { major: 1, minor: 2 });
    assert_eq!(h.version.as_str(), "HTTP/1.2");
    assert!(h.keep_alive);
    assert_eq!(err_with(b"GET / HTTP/2.0\r\n\r\n", &permit), 505);
    assert_eq!(err_with(b"GET / HTTP/0.9\r\n\r\n", &permit), 505);
    assert_eq!(err_with(b"GET / HTTP/1.10\r\n\r\n", &permit), 400);
}

#[test]
fn invalid_targets() {
    for req in [
        &b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"[..],
        b"GET /\x80 HTTP/1.1\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\n\r\n",
        b"GET /a\x7f HTTP/1.1\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\n\r\n",
        b"GET /a\x00 HTTP/1.1\r\n\r\n",
        b"GET * HTTP/1.1\r\n\r\n",
        b"POST * HTTP/1.1\r\n\r\n",
        b"OPTIONS *x HTTP/1.1\r\n\r\n",
        b"GET example.com:443 HTTP/1.1\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\n\r\n",
        b"CONNECT example.com:443/x HTTP/1.1\r\n\r\n",
        b"CONNECT :443 HTTP/1.1\r\n\r\n",
        b"CONNECT http://example.com/ HTTP/1.1\r\n\r\n",
        b"GET index.html HTTP/1.1\r\n\r\n",
        b"GET ?x HTTP/1.1\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\n\r\n",
        b"GET http:/host/x HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(err(req), 400, "{:?}", req.escape_ascii().to_string());
    }
}

// ------------------------------------------------------------ limits

#[test]
fn request_line_limit() {
    let opts = ParserOptions {
        limit_request_line: 30,
        ..Default::default()
    };
    // "GET /" + path + " HTTP/1.1" is exactly 30 bytes.
    let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(16));
    assert_eq!(at_limit.find('\r'), Some(30));
    ok_with(at_limit.as_bytes(), &opts);
    let over = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(17));
    assert_eq!(err_with(over.as_bytes(), &opts), 414);
    // Reported before the line ends, so a caller can stop buffering.
    let partial = format!("GET /{}", "a".repeat(26));
    assert_eq!(partial.len(), 31);
    assert_eq!(
        parse_request_head(partial.as_bytes(), &opts)
            .unwrap_err()
            .status,
        414
    );
    assert_eq!(
        parse_request_head(&partial.as_bytes()[..30], &opts).unwrap(),
        Parsed::Partial
    );
    // A CR right at the limit may still be the end of the line.
    let with_cr = format!("GET /{} HTTP/1.1\r", "a".repeat(16));
    assert_eq!(
        parse_request_head(with_cr.as_bytes(), &opts).unwrap(),
        Parsed::Partial
    );

    let unlimited = ParserOptions {
        limit_request_line: 0,
        ..Default::default()
    };
    ok_with(
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(5_000)).as_bytes(),
        &unlimited,
    );
    // Default is 4094.
    assert_eq!(
        err(format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(4094)).as_bytes()),
        414
    );
}

#[test]
fn field_size_limit() {
    let opts = ParserOptions {
        limit_request_field_size: 20,
        ..Default::default()
    };
    // "X: " + 15 bytes + CRLF = 20, counted like gunicorn (CRLF included).
    ok_with(
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(15)).as_bytes(),
        &opts,
    );
    assert_eq!(
        err_with(
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(16)).as_bytes(),
            &opts
        ),
        431
    );
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(16));
    assert_eq!(
        parse_request_head(partial.as_bytes(), &opts)
            .unwrap_err()
            .status,
        431
    );
    // Folded lines count towards the same field.
    let fold = ParserOptions {
        permit_obsolete_folding: true,
        ..opts.clone()
    };
    ok_with(b"GET / HTTP/1.1\r\nX: 12345\r\n 1234567\r\n\r\n", &fold);
    assert_eq!(
        err_with(b"GET / HTTP/1.1\r\nX: 12345\r\n 12345678\r\n\r\n", &fold),
        431
    );
    let unlimited = ParserOptions {
        limit_request_field_size: 0,
        ..Default::default()
    };
    ok_with(
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(9_000)).as_bytes(),
        &unlimited,
    );
    assert_eq!(
        err(format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(8186)).as_bytes()),
        431
    );
    ok(format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "v".repeat(8185)).as_bytes());
}

#[test]
fn field_count_limit() {
    let opts = ParserOptions {
        limit_request_fields: 3,
        ..Default::default()
    };
    let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    ok_with(three, &opts);
    assert_eq!(
        err_with(
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
            &opts
        ),
        431
    );
    // Detected as soon as the fourth field starts.
    assert_eq!(
        parse_request_head(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD", &opts)
            .unwrap_err()
            .status,
        431
    );
    // Dropped underscore headers still count: they cost buffer space all the same.
    assert_eq!(
        err_with(
            b"GET / HTTP/1.1\r\nA_1: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
            &opts
        ),
        431
    );
    // Default is 100.
    let hundred: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    ok(format!("GET / HTTP/1.1\r\n{hundred}\r\n").as_bytes());
    assert_eq!(
        err(format!("GET / HTTP/1.1\r\n{hundred}X: y\r\n\r\n").as_bytes()),
        431
    );
    let unlimited = ParserOptions {
        limit_request_fields: 0,
        ..Default::default()
    };
    let many: String = (0..200).map(|i| format!("H{i}: v\r\n")).collect();
    assert_eq!(
        ok_with(
            format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes(),
            &unlimited
        )
        .headers
        .len(),
        200
    );
}

// ------------------------------------------------------------ errors

#[test]
fn error_response_is_complete() {
    let e = err_value(b"GET / HTTP/2.0\r\n\r\n");
    assert_eq!(e.status, 505);
    assert_eq!(e.reason, "HTTP Version Not Supported");
    let resp = e.to_response();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("HTTP/1.1 505 HTTP Version Not Supported")
    );
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&"Connection: close"));
    assert!(headers
        .iter()
        .any(|h| h.starts_with("Content-Type: text/plain")));
    assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));
    assert!(body.contains("HTTP Version Not Supported"));
    assert_eq!(
        e.to_string(),
        format!("505 HTTP Version Not Supported: {}", e.detail)
    );

    assert_eq!(HttpError::bad_request("x").status, 400);
    assert_eq!(HttpError::bad_request("x").reason, "Bad Request");
    assert_eq!(HttpError::uri_too_long("x").status, 414);
    assert_eq!(HttpError::header_fields_too_large("x").status, 431);
    assert_eq!(HttpError::not_implemented("x").status, 501);
    assert_eq!(HttpError::version_not_supported("x").status, 505);
    assert_eq!(HttpError::new(417, "x").reason, "Expectation Failed");
}

fn err_value(req: &[u8]) -> HttpError {
    parse_request_head(req, &ParserOptions::default()).unwrap_err()
}

#[test]
fn defaults_match_gunicorn() {
    let o = ParserOptions::default();
    assert_eq!(
        (
            o.limit_request_line,
            o.limit_request_fields,
            o.limit_request_field_size
        ),
        (4094, 100, 8190)
    );
    assert!(!o.permit_obsolete_folding && !o.strip_header_spaces);
    assert!(!o.permit_unconventional_http_method && !o.permit_unconventional_http_version);
    assert!(!o.casefold_http_method);
    assert_eq!(o.header_map, HeaderMapPolicy::Drop);
}

#[test]
fn get_with_header_helper_requests() {
    // Smoke-test a few single-header variants through the shared helper.
    assert_eq!(
        ok(&get_with_header("X-Ok: fine")).header("x-ok"),
        Some(&b"fine"[..])
    );
    assert_eq!(err(&get_with_header("X-Bad: a\x00")), 400);
}

#[test]
fn resumable_parser_resets_after_complete() {
    let opts = ParserOptions::default();
    let mut p = RequestHeadParser::new();
    let buf = b"GET /1 HTTP/1.1\r\nA: b\r\n\r\nPOST /2 HTTP/1.1\r\n\r\n";
    assert_eq!(p.parse(&buf[..20], &opts).unwrap(), Parsed::Partial);
    let Parsed::Complete { head, consumed } = p.parse(buf, &opts).unwrap() else {
        panic!()
    };
    assert_eq!(head.path, b"/1");
    let Parsed::Complete { head, .. } = p.parse(&buf[consumed..], &opts).unwrap() else {
        panic!()
    };
    assert_eq!(head.method, "POST");
    // A shrunken buffer does not confuse it.
    assert_eq!(p.parse(&buf[..22], &opts).unwrap(), Parsed::Partial);
    assert_eq!(p.parse(b"GE", &opts).unwrap(), Parsed::Partial);
    p.reset();
    assert!(matches!(
        p.parse(&buf[..consumed], &opts).unwrap(),
        Parsed::Complete { .. }
    ));
}
