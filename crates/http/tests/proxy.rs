//! PROXY protocol v1/v2 parsing, whole and byte by byte.

use std::net::SocketAddr;

use ferricorn_http::proxy::{parse_proxy_header, ProxyInfo, ProxyParsed};

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Parse whole, and check every proper prefix is Partial or the same error.
fn parse_checked(buf: &[u8]) -> Result<ProxyParsed, u16> {
    let whole = parse_proxy_header(buf).map_err(|e| e.status);
    for n in 0..buf.len() {
        match parse_proxy_header(&buf[..n]) {
            Ok(ProxyParsed::Partial) => {}
            Ok(c @ ProxyParsed::Complete { .. }) => {
                // Only possible if the header ended before the extra bytes.
                assert_eq!(Ok(c), whole, "prefix {n} completed differently");
                return whole;
            }
            Err(e) => {
                assert_eq!(Err(e.status), whole, "prefix {n} failed but whole did not");
                return whole;
            }
        }
    }
    whole
}

fn complete(buf: &[u8]) -> (Option<ProxyInfo>, usize) {
    match parse_checked(buf) {
        Ok(ProxyParsed::Complete { info, consumed }) => (info, consumed),
        other => panic!("{:?}: {other:?}", buf.escape_ascii().to_string()),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = SIG.to_vec();
    b.push(ver_cmd);
    b.push(fam);
    b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn v1_tcp4() {
    let buf = b"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\nGET / HTTP/1.1\r\n\r\n";
    let (info, consumed) = complete(buf);
    assert_eq!(
        info,
        Some(ProxyInfo {
            source: addr("192.168.0.1:56324"),
            destination: addr("10.0.0.2:443")
        })
    );
    assert_eq!(&buf[consumed..], b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn v1_tcp6() {
    let buf = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    let (info, consumed) = complete(buf);
    assert_eq!(
        info,
        Some(ProxyInfo {
            source: addr("[2001:db8::1]:65535"),
            destination: addr("[::1]:0")
        })
    );
    assert_eq!(consumed, buf.len());
}

#[test]
fn v1_unknown() {
    assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (None, 15));
    let buf = b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\nrest";
    assert_eq!(complete(buf), (None, buf.len() - 4));
}

#[test]
fn v1_max_length() {
    // The longest legal line is exactly 107 bytes.
    let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), 104);
    complete(line);
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(120, b'x');
    assert_eq!(parse_checked(&long), Err(400));
    let mut exactly = b"PROXY UNKNOWN ".to_vec();
    exactly.resize(105, b'x');
    exactly.extend_from_slice(b"\r\n");
    assert_eq!(exactly.len(), 107);
    assert_eq!(complete(&exactly), (None, 107));
}

#[test]
fn v1_truncated_is_partial() {
    for p in [
        &b""[..],
        b"P",
        b"PROXY",
        b"PROXY ",
        b"PROXY TCP4 1.2.3.4",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
    ] {
        assert_eq!(
            parse_proxy_header(p).unwrap(),
            ProxyParsed::Partial,
            "{p:?}"
        );
    }
}

#[test]
fn v1_invalid() {
    for line in [
        &b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY \r\n",
        b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
    ] {
        assert_eq!(
            parse_checked(line),
            Err(400),
            "{:?}",
            line.escape_ascii().to_string()
        );
    }
}

#[test]
fn not_a_proxy_header() {
    for buf in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"X",
        b"\r\n\r\nGET",
        b"\r\n\r\n\0\r\nQUIX\n",
    ] {
        assert_eq!(parse_checked(buf), Err(400), "{buf:?}");
    }
}

#[test]
fn v2_tcp4() {
    let payload = [192, 168, 1, 10, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];
    let mut buf = v2(0x21, 0x11, &payload);
    let header_len = buf.len();
    buf.extend_from_slice(b"GET /");
    let (info, consumed) = complete(&buf);
    assert_eq!(consumed, header_len);
    assert_eq!(
        info,
        Some(ProxyInfo {
            source: addr("192.168.1.10:56324"),
            destination: addr("10.0.0.1:443")
        })
    );
}

#[test]
fn v2_tcp6_with_tlvs() {
    let mut payload = Vec::new();
    payload.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    payload.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    payload.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
    // A TLV (PP2_TYPE_AUTHORITY) after the addresses is skipped.
    payload.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'b', b'c']);
    let buf = v2(0x21, 0x21, &payload);
    let (info, consumed) = complete(&buf);
    assert_eq!(consumed, buf.len());
    assert_eq!(
        info,
        Some(ProxyInfo {
            source: addr("[2001:db8::1]:12345"),
            destination: addr("[::1]:80")
        })
    );
}

#[test]
fn v2_local_unspec_unix() {
    // LOCAL ignores whatever address block follows.
    let buf = v2(0x20, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    assert_eq!(complete(&buf), (None, buf.len()));
    let buf = v2(0x20, 0x00, &[]);
    assert_eq!(complete(&buf), (None, 16));
    let buf = v2(0x21, 0x00, &[]);
    assert_eq!(complete(&buf), (None, 16));
    let buf = v2(0x21, 0x31, &[0u8; 216]);
    assert_eq!(complete(&buf), (None, buf.len()));
}

#[test]
fn v2_truncated_is_partial() {
    let buf = v2(0x21, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
    for n in 0..buf.len() {
        assert_eq!(
            parse_proxy_header(&buf[..n]).unwrap(),
            ProxyParsed::Partial,
            "prefix {n}"
        );
    }
}

#[test]
fn v2_invalid() {
    let addrs4 = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
    for buf in [
        v2(0x11, 0x11, &addrs4),       // version 1
        v2(0x31, 0x11, &addrs4),       // version 3
        v2(0x22, 0x11, &addrs4),       // command 2
        v2(0x21, 0x12, &addrs4),       // UDP
        v2(0x21, 0x10, &addrs4),       // UNSPEC protocol with INET
        v2(0x21, 0x41, &addrs4),       // family 4
        v2(0x21, 0x11, &addrs4[..11]), // short INET block
        v2(0x21, 0x21, &[0u8; 35]),    // short INET6 block
    ] {
        assert_eq!(parse_checked(&buf), Err(400), "{buf:?}");
    }
}
