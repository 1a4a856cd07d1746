//! `BodyDecoder` for Content-Length and empty bodies: the framing every
//! worker class shares with chunked (see chunked.rs for that corpus).

use ferricorn_http::{BodyDecoder, BodyKind, Decoded};

#[test]
fn length_body_stops_at_its_end() {
    let mut dec = BodyDecoder::new(&BodyKind::Length(5));
    assert_eq!(dec.read_size(64), 5, "never reads past the body");
    let mut buf = b"helloGET / HTTP/1.1\r\n\r\n".to_vec();
    let decoded = dec.decode_in_place(&mut buf).unwrap();
    assert_eq!(
        decoded,
        Decoded {
            consumed: 5,
            body: 5
        }
    );
    assert_eq!(&buf[..5], b"hello");
    assert!(dec.is_done());
    assert_eq!(dec.read_size(64), 0);
    assert_eq!(dec.end_of_input(), Ok(()));
}

#[test]
fn length_body_byte_by_byte() {
    let mut dec = BodyDecoder::new(&BodyKind::Length(3));
    for (i, b) in b"abc".iter().enumerate() {
        assert!(!dec.is_done());
        assert_eq!(dec.read_size(1), 1);
        let mut buf = vec![*b];
        assert_eq!(dec.decode_in_place(&mut buf).unwrap().body, 1, "byte {i}");
    }
    assert!(dec.is_done());
}

#[test]
fn empty_body_is_done_at_once() {
    let mut dec = BodyDecoder::new(&BodyKind::Empty);
    assert!(dec.is_done());
    assert_eq!(dec.read_size(10), 0);
    let mut buf = b"GET".to_vec();
    assert_eq!(dec.decode_in_place(&mut buf).unwrap().consumed, 0);
    assert_eq!(dec.end_of_input(), Ok(()));
}

#[test]
fn short_length_body_is_a_400_and_stays_failed() {
    let mut dec = BodyDecoder::new(&BodyKind::Length(10));
    let mut buf = b"abc".to_vec();
    assert_eq!(dec.decode_in_place(&mut buf).unwrap().body, 3);
    let error = dec.end_of_input().unwrap_err();
    assert_eq!(error.status, 400);
    assert!(error.detail.contains("7 bytes before the end"), "{error}");
    assert!(!dec.is_done());
    assert_eq!(dec.decode_in_place(&mut b"x".to_vec()).unwrap_err(), error);
}

#[test]
fn an_io_failure_is_recorded_once() {
    let mut dec = BodyDecoder::new(&BodyKind::Length(10));
    let timeout = ferricorn_http::HttpError::bad_request("timed out");
    assert_eq!(dec.fail(timeout.clone()), timeout);
    let later = ferricorn_http::HttpError::bad_request("other");
    assert_eq!(dec.fail(later), timeout, "the first failure wins");
    assert_eq!(dec.end_of_input().unwrap_err(), timeout);
}
