//! IP networks in CIDR notation and allow-lists of them, used by
//! `forwarded_allow_ips` and `proxy_allow_ips`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::ParseError;

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `::1/128`. A bare address
/// is a single-host network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits cleared.
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Builds the network `addr/prefix`, clearing any host bits in `addr`.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ParseError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(ParseError::new(format!(
                "prefix length {prefix} is too long for {addr} (at most {max})"
            )));
        }
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`), which is how dual-stack sockets report IPv4 peers,
    /// is matched against IPv4 networks as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            // A shift by the full width (prefix 0) overflows: nothing is kept.
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & kept).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & kept).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            ParseError::new(format!(
                "'{text}' is not an IP address or CIDR network (expected e.g. 10.0.0.0/8, ::1 or '*')"
            ))
        })?;
        let prefix = match prefix_text {
            None => max_prefix(addr),
            Some(p) => match p.parse::<u8>() {
                Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(ParseError::new(format!(
                        "'{text}' has an invalid prefix length (expected 0 to {})",
                        max_prefix(addr)
                    )))
                }
            },
        };
        Cidr::new(addr, prefix).map_err(|_| {
            ParseError::new(format!(
                "'{text}' has an invalid prefix length (expected 0 to {})",
                max_prefix(addr)
            ))
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Which peers are trusted: everyone (`*`) or a list of networks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    all: bool,
    nets: Vec<Cidr>,
}

impl AllowList {
    /// An allow-list that trusts every peer (`*`).
    pub fn all() -> Self {
        AllowList {
            all: true,
            nets: Vec::new(),
        }
    }

    /// An allow-list of the given networks.
    pub fn from_networks(nets: Vec<Cidr>) -> Self {
        AllowList { all: false, nets }
    }

    /// Parses entries as gunicorn does: empty entries are skipped and a `*`
    /// anywhere means every peer is trusted.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ParseError> {
        let mut list = AllowList::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                list.all = true;
            } else {
                list.nets.push(entry.parse()?);
            }
        }
        Ok(list)
    }

    /// Whether a peer at `ip` is trusted.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.all || self.nets.iter().any(|net| net.contains(ip))
    }

    /// Whether every peer is trusted (`*`).
    pub fn allows_all(&self) -> bool {
        self.all
    }

    /// The listed networks (empty when the list is just `*`).
    pub fn networks(&self) -> &[Cidr] {
        &self.nets
    }
}

impl FromStr for AllowList {
    type Err = ParseError;

    /// Parses a comma-separated list such as `127.0.0.1,::1,10.0.0.0/8` or `*`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AllowList::from_entries(text.split(','))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all {
            return f.write_str("*");
        }
        let parts: Vec<String> = self.nets.iter().map(Cidr::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        match text.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn net(text: &str) -> Cidr {
        match text.parse() {
            Ok(n) => n,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn v4_contains() {
        let n = net("10.0.0.0/8");
        assert!(n.contains(ip("10.255.1.2")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("::1")));
        let host = net("127.0.0.1");
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        let everything = net("0.0.0.0/0");
        assert!(everything.contains(ip("203.0.113.9")));
        assert!(!everything.contains(ip("2001:db8::1")));
    }

    #[test]
    fn v6_contains() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:1::5")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("::/0").contains(ip("fe80::1")));
    }

    #[test]
    fn host_bits_are_cleared_and_display() {
        let n = net("10.1.2.3/8");
        assert_eq!(n.addr(), ip("10.0.0.0"));
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert_eq!(net("::1").to_string(), "::1");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn bad_networks() {
        for bad in [
            "abc",
            "10.0.0.0/33",
            "::1/129",
            "1.2.3.4/",
            "1.2.3.4/x",
            "1.2.3",
            "/8",
            "1.2.3.4/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} should be rejected");
        }
        assert_eq!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .err()
                .map(|e| e.reason().to_string()),
            Some("'10.0.0.0/33' has an invalid prefix length (expected 0 to 32)".to_string())
        );
        assert_eq!(
            "abc".parse::<Cidr>().err().map(|e| e.reason().to_string()),
            Some(
                "'abc' is not an IP address or CIDR network (expected e.g. 10.0.0.0/8, ::1 or '*')"
                    .to_string()
            )
        );
    }

    #[test]
    fn allow_lists() {
        let list: AllowList = match "127.0.0.1, ::1,,10.0.0.0/8".parse() {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert!(!list.allows_all());
        assert!(list.allows(ip("127.0.0.1")));
        assert!(list.allows(ip("::1")));
        assert!(list.allows(ip("10.9.9.9")));
        assert!(!list.allows(ip("192.168.0.1")));
        assert_eq!(list.to_string(), "127.0.0.1,::1,10.0.0.0/8");
        assert_eq!(list.networks().len(), 3);

        let star: AllowList = match "*".parse() {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert!(star.allows_all());
        assert!(star.allows(ip("8.8.8.8")));
        assert!(star.allows(ip("2001:db8::1")));
        assert_eq!(star.to_string(), "*");
        assert_eq!(AllowList::all(), star);

        let empty: AllowList = match "".parse() {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert!(!empty.allows(ip("127.0.0.1")));
        assert!("127.0.0.1,nope".parse::<AllowList>().is_err());
    }
}
