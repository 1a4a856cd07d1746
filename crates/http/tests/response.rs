//! Response serialization helpers.

use ferricorn_http::response::{
    encode_chunk, http_date, is_hop_by_hop, is_latin1, is_valid_header_name, is_valid_header_value,
    reason_phrase, write_header, write_status_line, LAST_CHUNK,
};
use ferricorn_http::{ChunkedDecoder, Version};

#[test]
fn reason_phrases() {
    assert_eq!(reason_phrase(200), "OK");
    assert_eq!(reason_phrase(404), "Not Found");
    assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
    assert_eq!(reason_phrase(299), "");
    assert_eq!(reason_phrase(0), "");
}

#[test]
fn status_lines() {
    let mut b = Vec::new();
    write_status_line(&mut b, Version::HTTP_11, 200, "OK");
    write_status_line(&mut b, Version::HTTP_10, 404, "Not Found");
    write_status_line(&mut b, Version::HTTP_11, 299, "");
    write_status_line(&mut b, Version::HTTP_11, 7, "Odd");
    assert_eq!(
        b,
        b"HTTP/1.1 200 OK\r\nHTTP/1.0 404 Not Found\r\nHTTP/1.1 299 \r\nHTTP/1.1 007 Odd\r\n"
    );
}

#[test]
fn headers() {
    let mut b = Vec::new();
    write_header(&mut b, "Content-Type", "text/html; charset=utf-8");
    write_header(&mut b, "X-Empty", "");
    assert_eq!(
        b,
        b"Content-Type: text/html; charset=utf-8\r\nX-Empty: \r\n"
    );
}

#[test]
fn headers_and_reasons_are_latin1_on_the_wire() {
    let mut b = Vec::new();
    write_header(&mut b, "X-Name", "caf\u{e9}");
    write_status_line(&mut b, Version::HTTP_11, 200, "Tr\u{e8}s bien");
    assert_eq!(b, b"X-Name: caf\xe9\r\nHTTP/1.1 200 Tr\xe8s bien\r\n");
    assert!(is_latin1("caf\u{e9} \u{ff}"));
    assert!(!is_latin1("10 \u{20ac}"));
    // Refused by callers; never written as UTF-8 if one slips through.
    let mut b = Vec::new();
    write_header(&mut b, "X-Price", "10 \u{20ac}");
    assert_eq!(b, b"X-Price: 10 ?\r\n");
}

#[test]
fn chunks_round_trip() {
    let mut b = Vec::new();
    encode_chunk(&mut b, b"");
    assert!(b.is_empty());
    encode_chunk(&mut b, b"a");
    assert_eq!(b, b"1\r\na\r\n");
    b.clear();
    encode_chunk(&mut b, &[b'x'; 255]);
    assert!(b.starts_with(b"ff\r\n"));
    b.clear();
    encode_chunk(&mut b, &[b'x'; 4096]);
    assert!(b.starts_with(b"1000\r\n"));

    let mut body = Vec::new();
    let pieces: [&[u8]; 4] = [b"hello", b"", b" ", &[7u8; 300]];
    for p in pieces {
        encode_chunk(&mut body, p);
    }
    body.extend_from_slice(LAST_CHUNK);
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    assert_eq!(dec.decode(&body, &mut out).unwrap(), (body.len(), true));
    assert_eq!(out, pieces.concat());
}

#[test]
fn header_name_validity() {
    for ok in ["Content-Type", "x", "X_Y", "!#$%&'*+-.^_`|~09azAZ"] {
        assert!(is_valid_header_name(ok), "{ok}");
    }
    for bad in [
        "", "X Y", "X:Y", "X\r\nY", "é", "X(", "X\"", "X\0", "X/Y", "X\t",
    ] {
        assert!(!is_valid_header_name(bad), "{bad:?}");
    }
}

#[test]
fn header_value_validity() {
    for ok in ["", "text/plain", "a\tb", " spaced ", "café", "\"quoted\""] {
        assert!(is_valid_header_value(ok), "{ok:?}");
    }
    for bad in [
        "a\rb",
        "a\nb",
        "a\r\nX-Injected: 1",
        "\0",
        "\x01",
        "\x1f",
        "\x7f",
    ] {
        assert!(!is_valid_header_value(bad), "{bad:?}");
    }
}

#[test]
fn hop_by_hop() {
    for h in [
        "Connection",
        "keep-alive",
        "PROXY-AUTHENTICATE",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "upgrade",
    ] {
        assert!(is_hop_by_hop(h), "{h}");
    }
    for h in ["Content-Length", "Trailer", "X-Connection", "Date", ""] {
        assert!(!is_hop_by_hop(h), "{h}");
    }
}

#[test]
fn dates() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(951_825_600), "Tue, 29 Feb 2000 12:00:00 GMT");
    assert_eq!(http_date(946_684_799), "Fri, 31 Dec 1999 23:59:59 GMT");
    assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    assert_eq!(http_date(2_147_483_648), "Tue, 19 Jan 2038 03:14:08 GMT");
    assert_eq!(http_date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
    // Far-future values must not panic.
    let _ = http_date(u64::MAX);
}

#[test]
fn dates_are_consistent_day_by_day() {
    // Walk 1970..2400 a day at a time: days advance by one, months and years roll over correctly.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (mut y, mut m, mut d) = (1970u64, 0usize, 1u64);
    for day in 0..(430 * 365) {
        let s = http_date(day * 86_400 + 43_200);
        assert_eq!(
            &s[5..],
            format!("{d:02} {} {y} 12:00:00 GMT", MONTHS[m]),
            "day {day}"
        );
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let len = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][m];
        d += 1;
        if d > len {
            d = 1;
            m += 1;
            if m == 12 {
                m = 0;
                y += 1;
            }
        }
    }
}

#[test]
fn version_strings() {
    assert_eq!(Version::HTTP_11.as_str(), "HTTP/1.1");
    assert_eq!(Version::HTTP_10.as_str(), "HTTP/1.0");
    assert_eq!(Version { major: 2, minor: 0 }.as_str(), "HTTP/2"); // RFC 9113 spelling, used for SERVER_PROTOCOL
    assert_eq!(Version { major: 0, minor: 9 }.as_str(), "HTTP/0.9");
    assert_eq!(Version { major: 9, minor: 9 }.as_str(), "HTTP/9.9");
    assert_eq!(Version { major: 1, minor: 7 }.as_str(), "HTTP/1.7");
    assert_eq!(
        Version {
            major: 10,
            minor: 0
        }
        .as_str(),
        "HTTP/1.1"
    );
}
