//! PROXY protocol (v1 text and v2 binary) header parsing.
//!
//! A load balancer prepends this header to a connection to pass on the real
//! client address. Only accept it from trusted peers; that check is the
//! caller's, this module only parses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::HttpError;

/// Addresses carried by a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyInfo {
    /// The original client address.
    pub source: SocketAddr,
    /// The address the client connected to.
    pub destination: SocketAddr,
}

/// Outcome of [`parse_proxy_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyParsed {
    /// More bytes are needed.
    Partial,
    /// A full PROXY header was parsed.
    Complete {
        /// Addresses, or `None` for v1 `UNKNOWN`, v2 `LOCAL` or non-IP families.
        info: Option<ProxyInfo>,
        /// Bytes of the buffer used by the PROXY header.
        consumed: usize,
    },
}

/// The 12-byte v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part of a v2 header: signature, version/command, family/protocol, length.
const V2_HEADER_LEN: usize = 16;
/// A v1 line, CRLF included, is at most 107 bytes (spec §2.1).
const V1_MAX_LEN: usize = 107;
const V1_PREFIX: &[u8; 6] = b"PROXY ";

fn invalid(detail: &'static str) -> HttpError {
    HttpError::bad_request(detail)
}

/// Parse a PROXY protocol v1 or v2 header at the start of `buf`.
///
/// The version is detected from the first bytes; anything that cannot be
/// the start of either is an error (400), so a caller that requires the
/// PROXY header never mistakes a plain request for one.
pub fn parse_proxy_header(buf: &[u8]) -> Result<ProxyParsed, HttpError> {
    if buf.is_empty() {
        return Ok(ProxyParsed::Partial);
    }
    if is_prefix_of(buf, V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if is_prefix_of(buf, V1_PREFIX) {
        return parse_v1(buf);
    }
    Err(invalid("missing PROXY protocol header"))
}

/// Whether `buf` and `expected` agree on their common length.
fn is_prefix_of(buf: &[u8], expected: &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    buf.get(..n) == expected.get(..n)
}

fn parse_v1(buf: &[u8]) -> Result<ProxyParsed, HttpError> {
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or_default();
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX_LEN {
            Err(invalid("PROXY v1 line too long"))
        } else {
            Ok(ProxyParsed::Partial)
        };
    };
    let Some((b'\r', line)) = window.get(..lf).and_then(|l| l.split_last()) else {
        return Err(invalid("PROXY v1 line not terminated by CRLF"));
    };
    let consumed = lf + 1;
    let rest = line.get(V1_PREFIX.len()..).unwrap_or_default();
    // The spec tells receivers to ignore whatever follows UNKNOWN.
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        return Ok(ProxyParsed::Complete {
            info: None,
            consumed,
        });
    }
    let mut parts = rest.split(|&b| b == b' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid("malformed PROXY v1 line"));
    };
    let (src, dst) = match proto {
        b"TCP4" => (
            IpAddr::V4(parse_addr::<Ipv4Addr>(src)?),
            IpAddr::V4(parse_addr::<Ipv4Addr>(dst)?),
        ),
        b"TCP6" => (
            IpAddr::V6(parse_addr::<Ipv6Addr>(src)?),
            IpAddr::V6(parse_addr::<Ipv6Addr>(dst)?),
        ),
        _ => return Err(invalid("unsupported PROXY v1 protocol")),
    };
    Ok(ProxyParsed::Complete {
        info: Some(ProxyInfo {
            source: SocketAddr::new(src, parse_port(sport)?),
            destination: SocketAddr::new(dst, parse_port(dport)?),
        }),
        consumed,
    })
}

fn parse_addr<T: std::str::FromStr>(raw: &[u8]) -> Result<T, HttpError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("invalid address in PROXY v1 line"))
}

/// Decimal 0-65535 without leading zeros, as the spec requires.
fn parse_port(raw: &[u8]) -> Result<u16, HttpError> {
    let bad = || invalid("invalid port in PROXY v1 line");
    if raw.is_empty() || raw.len() > 5 || (raw.len() > 1 && raw.first() == Some(&b'0')) {
        return Err(bad());
    }
    raw.iter()
        .try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(bad)
}

fn parse_v2(buf: &[u8]) -> Result<ProxyParsed, HttpError> {
    let Some(&[ver_cmd, fam_proto, len_hi, len_lo]) = buf.get(V2_SIGNATURE.len()..V2_HEADER_LEN)
    else {
        return Ok(ProxyParsed::Partial);
    };
    if ver_cmd >> 4 != 2 {
        return Err(invalid("unsupported PROXY v2 version"));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(invalid("unsupported PROXY v2 command"));
    }
    let consumed = V2_HEADER_LEN + usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let Some(payload) = buf.get(V2_HEADER_LEN..consumed) else {
        return Ok(ProxyParsed::Partial);
    };
    // LOCAL: the proxy's own connection (health checks); addresses are ignored.
    if command == 0 {
        return Ok(ProxyParsed::Complete {
            info: None,
            consumed,
        });
    }
    let family = fam_proto >> 4;
    let protocol = fam_proto & 0x0f;
    let info = match family {
        0 => None,
        1 | 2 => {
            if protocol != 1 {
                return Err(invalid("only TCP is supported in PROXY v2"));
            }
            Some(v2_addresses(payload, if family == 1 { 4 } else { 16 })?)
        }
        // AF_UNIX: no IP to report.
        3 => None,
        _ => return Err(invalid("unsupported PROXY v2 address family")),
    };
    Ok(ProxyParsed::Complete { info, consumed })
}

/// Source and destination of an INET (`addr_len` 4) or INET6 (16) payload;
/// TLVs after the addresses are ignored.
fn v2_addresses(payload: &[u8], addr_len: usize) -> Result<ProxyInfo, HttpError> {
    let short = || invalid("PROXY v2 address block too short");
    let block = payload.get(..2 * addr_len + 4).ok_or_else(short)?;
    let (src, rest) = block.split_at(addr_len);
    let (dst, ports) = rest.split_at(addr_len);
    let &[sp_hi, sp_lo, dp_hi, dp_lo] = ports else {
        return Err(short());
    };
    let ip = |b: &[u8]| -> Result<IpAddr, HttpError> {
        if let Ok(v4) = <[u8; 4]>::try_from(b) {
            Ok(IpAddr::V4(Ipv4Addr::from(v4)))
        } else {
            <[u8; 16]>::try_from(b)
                .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
                .map_err(|_| short())
        }
    };
    Ok(ProxyInfo {
        source: SocketAddr::new(ip(src)?, u16::from_be_bytes([sp_hi, sp_lo])),
        destination: SocketAddr::new(ip(dst)?, u16::from_be_bytes([dp_hi, dp_lo])),
    })
}
