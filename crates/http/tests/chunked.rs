//! Chunked decoder corpus, through [`BodyDecoder`] as the workers drive it:
//! every body is decoded whole, byte by byte and split in two at every
//! offset, and all ways must agree. Each rule cites gunicorn 27's
//! `gunicorn/http/body.py` behaviour where it has one.

use ferricorn_http::{BodyDecoder, BodyKind, ChunkedDecoder, HttpError};

type Outcome = Result<(Vec<u8>, usize, bool), HttpError>;

/// Feed `input` in the given piece sizes, decoding in place; the caller
/// keeps unconsumed bytes, as a real connection loop would.
fn decode_pieces(input: &[u8], piece: impl Fn(usize) -> usize) -> Outcome {
    let mut dec = BodyDecoder::new(&BodyKind::Chunked);
    let mut out = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut consumed_total = 0;
    loop {
        let n = piece(fed).max(1).min(input.len() - fed);
        buffered.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        let decoded = dec.decode_in_place(&mut buffered)?;
        assert!(decoded.body <= decoded.consumed && decoded.consumed <= buffered.len());
        out.extend_from_slice(&buffered[..decoded.body]);
        buffered.drain(..decoded.consumed);
        consumed_total += decoded.consumed;
        if dec.is_done() || fed == input.len() {
            return Ok((out, consumed_total, dec.is_done()));
        }
    }
}

fn decode_all_ways(input: &[u8]) -> Outcome {
    let whole = decode_pieces(input, |_| usize::MAX);
    let bytewise = decode_pieces(input, |_| 1);
    assert_outcome_eq(&whole, &bytewise, input, "bytewise");
    // Every offset for short inputs; a sample for long ones to keep the test fast.
    let step = if input.len() <= 512 { 1 } else { 97 };
    for split in (1..input.len()).step_by(step) {
        let two = decode_pieces(input, |fed| if fed == 0 { split } else { usize::MAX });
        assert_outcome_eq(&whole, &two, input, &format!("split at {split}"));
    }
    whole
}

fn assert_outcome_eq(a: &Outcome, b: &Outcome, input: &[u8], how: &str) {
    let same = match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => (a.status, &a.detail) == (b.status, &b.detail),
        _ => false,
    };
    assert!(
        same,
        "{how} differs for {:?}: {a:?} vs {b:?}",
        input.escape_ascii().to_string()
    );
}

/// A complete body: returns decoded bytes and bytes consumed.
fn ok(input: &[u8]) -> (Vec<u8>, usize) {
    match decode_all_ways(input) {
        Ok((out, consumed, true)) => (out, consumed),
        Ok((_, _, false)) => panic!("{:?} incomplete", input.escape_ascii().to_string()),
        Err(e) => panic!("{:?} rejected: {e}", input.escape_ascii().to_string()),
    }
}

fn err(input: &[u8]) -> u16 {
    match decode_all_ways(input) {
        Err(e) => e.status,
        Ok(r) => panic!("{:?} accepted: {r:?}", input.escape_ascii().to_string()),
    }
}

fn incomplete(input: &[u8]) {
    match decode_all_ways(input) {
        Ok((_, consumed, false)) => assert_eq!(consumed, input.len()),
        other => panic!("{:?}: {other:?}", input.escape_ascii().to_string()),
    }
}

#[test]
fn simple_body() {
    let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    assert_eq!(ok(input), (b"hello world".to_vec(), input.len()));
}

#[test]
fn empty_body() {
    assert_eq!(ok(b"0\r\n\r\n"), (Vec::new(), 5));
    assert_eq!(ok(b"000\r\n\r\n"), (Vec::new(), 7));
}

#[test]
fn hex_sizes() {
    let data = vec![b'x'; 0x1a];
    let mut input = b"1A\r\n".to_vec();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(ok(&input).0, data);
    let mut input = b"1a\r\n".to_vec();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(ok(&input).0, data);
    // gunicorn parses the size with int(size, 16): any number of leading
    // zeros, either case.
    assert_eq!(ok(b"0000000000000003\r\nabc\r\n0\r\n\r\n").0, b"abc");
    assert_eq!(
        ok(b"00000000000000000003\r\nabc\r\n00000000000000000\r\n\r\n").0,
        b"abc"
    );
    assert_eq!(ok(b"00000000000000005\r\nhello\r\n0\r\n\r\n").0, b"hello");
    let data = vec![b'y'; 0xabc];
    let mut input = b"ABC\r\n".to_vec();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(ok(&input).0, data);
}

#[test]
fn does_not_consume_past_the_body() {
    let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let (used, done) = dec.decode(input, &mut out).unwrap();
    assert!(done);
    assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(out, b"abc");
    // Once done, nothing more is consumed.
    assert_eq!(dec.decode(&input[used..], &mut out).unwrap(), (0, true));
    assert_eq!(dec.decode(b"", &mut out).unwrap(), (0, true));
}

#[test]
fn extensions() {
    for ext in [
        ";a",
        ";a=b",
        ";a=b;c;d=e",
        ";name=\"quoted value\"",
        ";q=\"esc\\\"aped\\\\\"",
        ";q=\"\"",
        " ;a",
        "\t; a = b ; c",
        ";a=\"caf\u{e9}\"",
        ";!#$%&'*+-.^_`|~=x",
        ";a=\"b\";c=\"d;e\"",
        ";a=\"b\" ;c",
        " \t ;a",
    ] {
        let input = format!("3{ext}\r\nabc\r\n0{ext}\r\n\r\n");
        assert_eq!(ok(input.as_bytes()).0, b"abc", "{ext:?}");
    }
}

#[test]
fn trailers_are_validated_and_dropped() {
    let input = b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\n";
    assert_eq!(ok(input), (b"abc".to_vec(), input.len()));
}

#[test]
fn forbidden_trailer_fields_are_rejected() {
    // RFC 9110 §6.5.1, gunicorn's RFC9110_6_5_1_FORBIDDEN_TRAILER.
    for name in [
        "Content-Length",
        "content-length",
        "Host",
        "HOST",
        "Transfer-Encoding",
        "Trailer",
        "Authorization",
        "TE",
    ] {
        let input = format!("3\r\nabc\r\n0\r\nX-Ok: 1\r\n{name}: 5\r\n\r\n");
        assert_eq!(err(input.as_bytes()), 400, "{name}");
    }
    // Names that merely start or end like a forbidden one are fine.
    let input = b"0\r\nHosts: a\r\nXTE: b\r\nContent-Length-X: c\r\nT: d\r\n\r\n";
    ok(input);
    let long_name = format!("0\r\n{}: v\r\n\r\n", "Transfer-Encoding".repeat(3));
    ok(long_name.as_bytes());
}

#[test]
fn trailers_then_pipelined_request() {
    let input = b"2\r\nab\r\n0\r\nX-Sum: 9\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let (body, consumed) = ok(input);
    assert_eq!(body, b"ab");
    assert_eq!(&input[consumed..], b"GET /next HTTP/1.1\r\n\r\n");
}

#[test]
fn many_one_byte_chunks() {
    let data: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut input = Vec::new();
    for &b in &data {
        input.extend_from_slice(b"1\r\n");
        input.push(b);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(ok(&input), (data, input.len()));
}

#[test]
fn incomplete_bodies() {
    for input in [
        &b""[..],
        b"5",
        b"5\r",
        b"5\r\n",
        b"5\r\nhel",
        b"5\r\nhello",
        b"5\r\nhello\r",
        b"5\r\nhello\r\n",
        b"5;a=\"x",
        b"0\r\n",
        b"0\r\n\r",
        b"0\r\nX: y",
        b"0\r\nX: y\r\n",
    ] {
        incomplete(input);
    }
}

#[test]
fn invalid_sizes() {
    for input in [
        &b"\r\n\r\n"[..],
        b"g\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\t5\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5g\r\n",
        b"10000000000000000\r\n",
        b"5_0\r\n",
        b"1_0\r\nhello world12345\r\n0\r\n\r\n",
        b"5 5\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b";a\r\n",
    ] {
        assert_eq!(err(input), 400, "{:?}", input.escape_ascii().to_string());
    }
}

#[test]
fn invalid_extensions() {
    for ext in [
        &b";"[..],
        b";;",
        b";=b",
        b";a=",
        b";a=;",
        b";a b",
        b";a=b c",
        b";a=\"unterminated\r\n",
        b";a=\"x\"y",
        b";a=\"\x00\"",
        b";a=\"x\\\x01\"",
        b";a(b)",
        b";a\x00",
        b"\x00",
        b";a=b\x7f",
        // BWS is allowed around ';' and '=' only, not before the CRLF
        // (RFC 9112 §7.1.1; gunicorn's CHUNK_EXT_RE).
        b";a ",
        b";a=b ",
        b";a=\"b\" ",
        b" ",
        // A bare CR inside an extension.
        b";a\rb",
        b";a=b\rc",
        b";a=\"b\rc\"",
        b";a=\"b\"\rc",
        b";a=\"x\x7f\"",
    ] {
        let mut input = b"3".to_vec();
        input.extend_from_slice(ext);
        input.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
        assert_eq!(err(&input), 400, "{:?}", ext.escape_ascii().to_string());
    }
    // gunicorn bounds the size line by limit_request_field_size (8190).
    let long = format!("3;a={}\r\nabc\r\n0\r\n\r\n", "x".repeat(8200));
    assert_eq!(err(long.as_bytes()), 400);
    let fits = format!("3;a={}\r\nabc\r\n0\r\n\r\n", "x".repeat(8000));
    assert_eq!(ok(fits.as_bytes()).0, b"abc");
}

#[test]
fn chunk_data_must_end_in_crlf() {
    for input in [
        &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"5\r\nhello world\r\n0\r\n\r\n",
        b"3\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(err(input), 400, "{:?}", input.escape_ascii().to_string());
    }
}

#[test]
fn bare_lf_is_rejected() {
    for input in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5;a=b\nhello\r\n0\r\n\r\n",
        b"0\n\r\n",
        b"0\r\n\n",
        b"0\r\nX: y\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
    ] {
        assert_eq!(err(input), 400, "{:?}", input.escape_ascii().to_string());
    }
}

#[test]
fn missing_final_crlf() {
    // The next request would be swallowed as a trailer; it is not a valid one.
    assert_eq!(err(b"0\r\nGET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(err(b"0\r\n\rX"), 400);
}

#[test]
fn invalid_trailers() {
    for trailer in [
        &b" folded: x"[..],
        b"\tX: y",
        b"NoColon",
        b": empty-name",
        b"X : space",
        b"X(: y",
        b"X: a\x00b",
        b"X: a\rb",
        b"X: a\x7f",
    ] {
        let mut input = b"0\r\n".to_vec();
        input.extend_from_slice(trailer);
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(err(&input), 400, "{:?}", trailer.escape_ascii().to_string());
    }
    // Over gunicorn's limits: 431, as gunicorn's LimitRequestHeaders.
    let long = format!("0\r\nX: {}\r\n\r\n", "v".repeat(9000));
    assert_eq!(err(long.as_bytes()), 431);
    let many: String = (0..101).map(|i| format!("T{i}: v\r\n")).collect();
    assert_eq!(err(format!("0\r\n{many}\r\n").as_bytes()), 431);
    let hundred: String = (0..100).map(|i| format!("T{i}: v\r\n")).collect();
    ok(format!("0\r\n{hundred}\r\n").as_bytes());
}

#[test]
fn large_chunk_streams_through() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut input = format!("{:x}\r\n", data.len()).into_bytes();
    input.extend_from_slice(&data);
    input.extend_from_slice(b"\r\n0\r\n\r\n");
    // The plain decoder's appending convenience API.
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while !dec.is_done() {
        let end = (pos + 4096).min(input.len());
        let (used, _) = dec.decode(&input[pos..end], &mut out).unwrap();
        assert_eq!(used, end - pos, "fully consumed while inside the body");
        pos += used;
    }
    assert_eq!(out, data);
    assert_eq!(pos, input.len());
}

#[test]
fn huge_declared_size_is_fine_until_data_runs_out() {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    assert_eq!(
        dec.decode(b"ffffffffffffffff\r\nabc", &mut out).unwrap(),
        (21, false)
    );
    assert_eq!(out, b"abc");
}

#[test]
fn errors_are_sticky() {
    let mut dec = BodyDecoder::new(&BodyKind::Chunked);
    let mut bad = b"5_\r\n".to_vec();
    let first = dec.decode_in_place(&mut bad).unwrap_err();
    assert_eq!(first.status, 400);
    assert!(!dec.is_done());
    // Whatever comes next, the body stays failed with the first error.
    let mut good = b"0\r\n\r\n".to_vec();
    assert_eq!(dec.decode_in_place(&mut good).unwrap_err(), first);
    assert_eq!(dec.end_of_input().unwrap_err(), first);
    assert_eq!(dec.error(), Some(&first));
}

#[test]
fn end_of_input_inside_the_body_is_a_400() {
    for input in [
        &b""[..],
        b"5\r\nhel",
        b"5\r\nhello\r\n",
        b"0\r\n",
        b"0\r\nX: y\r\n",
    ] {
        let mut dec = BodyDecoder::new(&BodyKind::Chunked);
        let mut buf = input.to_vec();
        dec.decode_in_place(&mut buf).unwrap();
        let error = dec.end_of_input().unwrap_err();
        assert_eq!(error.status, 400, "{:?}", input.escape_ascii().to_string());
        assert!(error.detail.contains("closed"), "{error}");
        assert!(dec.decode_in_place(&mut Vec::new()).is_err());
    }
    let mut dec = BodyDecoder::new(&BodyKind::Chunked);
    let mut buf = b"0\r\n\r\n".to_vec();
    dec.decode_in_place(&mut buf).unwrap();
    assert!(dec.is_done());
    assert_eq!(dec.end_of_input(), Ok(()));
}
