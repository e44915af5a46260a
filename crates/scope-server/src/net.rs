//! Who the client is: the trusted-proxy list (CIDRs), the client address of
//! a request (the TCP peer, or behind trusted proxies the right-most
//! `X-Forwarded-For` hop that is not one of them), and the bucket an address
//! is counted in by the failure limiters (IPv6 by /64: one host usually
//! holds a whole /64, so counting single addresses would let it rotate
//! through 2^64 of them).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// block of one. Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

fn mask4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    Ipv4Addr::from(bits & mask)
}

fn mask6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
    Ipv6Addr::from(bits & mask)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask4(a, prefix)),
            IpAddr::V6(a) => IpAddr::V6(mask6(a, prefix)),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default):
/// nobody's, the client is always the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request that came from `peer`: the peer
    /// itself unless it is a trusted proxy; then, reading `X-Forwarded-For`
    /// from the right (each proxy appends the address it saw), the first hop
    /// that is not a trusted proxy. Hops left of it were written by the
    /// client and are never believed. A malformed hop where one is needed,
    /// or no header at all, gives the peer; a chain of trusted proxies only
    /// gives its left-most hop.
    pub fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut last = None;
        // Several header lines are one list, in order.
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else { return peer };
            for hop in value.rsplit(',') {
                let Some(ip) = parse_hop(hop) else { return peer };
                if !self.contains(ip) {
                    return ip;
                }
                last = Some(ip);
            }
        }
        last.unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`) as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if hop.is_empty() || hop.len() > 64 {
        return None;
    }
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    Some(canonical(ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket
/// reports for an IPv4 client) as the IPv4 address they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The bucket the failure limiters count `ip` in: the address itself for
/// IPv4, its /64 for IPv6.
pub fn limiter_bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(mask6(v6, 64)),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap_or_else(|e| panic!("{e}"))).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")));
        }
        h
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.9")), "IPv4-mapped addresses match IPv4 blocks");
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(ip("203.0.113.5")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "10.0.0.0/-1", "10.0.0.0/8/8", "example.com"]
        {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = xff(&["198.51.100.7"]);
        assert_eq!(TrustedProxies::default().client_addr(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(proxies(&["10.0.0.0/8"]).client_addr(ip("192.0.2.1"), &h), ip("192.0.2.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:1::/48"]);
        let peer = ip("10.0.0.1");
        // The client wrote a fake hop; the proxy appended what it saw.
        assert_eq!(p.client_addr(peer, &xff(&["1.1.1.1, 203.0.113.5"])), ip("203.0.113.5"));
        // Chained proxies are skipped, across several header lines too.
        assert_eq!(p.client_addr(peer, &xff(&["1.1.1.1, 203.0.113.5", "10.9.9.9"])), ip("203.0.113.5"));
        assert_eq!(p.client_addr(peer, &xff(&["203.0.113.5:4711, 2001:db8:1::9"])), ip("203.0.113.5"));
        assert_eq!(p.client_addr(peer, &xff(&["[2001:db8:2::1]:443"])), ip("2001:db8:2::1"));
        // Junk left of the client's hop is never read.
        assert_eq!(p.client_addr(peer, &xff(&["garbage, 198.51.100.7"])), ip("198.51.100.7"));
        // Only proxies: the farthest one.
        assert_eq!(p.client_addr(peer, &xff(&["10.1.1.1, 10.2.2.2"])), ip("10.1.1.1"));
    }

    #[test]
    fn a_malformed_or_missing_header_gives_the_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(p.client_addr(peer, &HeaderMap::new()), peer);
        for bad in ["", "not-an-ip", "203.0.113.5, ", "203.0.113.5 198.51.100.7", "unknown"] {
            assert_eq!(p.client_addr(peer, &xff(&[bad])), peer, "{bad:?}");
        }
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_slash_64() {
        assert_eq!(limiter_bucket(ip("2001:db8:1:2:aaaa::1")), limiter_bucket(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(limiter_bucket(ip("2001:db8:1:2::1")), limiter_bucket(ip("2001:db8:1:3::1")));
        assert_eq!(limiter_bucket(ip("203.0.113.5")), ip("203.0.113.5"));
        assert_eq!(limiter_bucket(ip("::ffff:203.0.113.5")), ip("203.0.113.5"));
    }
}
