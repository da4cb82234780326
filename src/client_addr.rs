//! The client's address behind a proxy: `TRUSTED_PROXIES` (CIDR list) and `CLIENT_IP_HEADER`.
//!
//! A header is read only when the TCP peer is one of our own proxies; otherwise the peer is the
//! client, whatever headers it sent (a spoofed `X-Forwarded-For` from the internet changes nothing).
//! `X-Forwarded-For` is walked from the right: each trusted proxy appends the address it accepted
//! the connection from, so the first address from the right that is not a trusted proxy is the
//! client (the leftmost values are whatever the client wrote). The single-value headers of the
//! platforms (`X-Real-IP` on Railway and nginx, `Fly-Client-IP`, `CF-Connecting-IP`) are parsed by
//! the maintained `client-ip` crate (the one under `axum-client-ip`). A malformed header is
//! ignored (the router counts it and logs a warning): the peer's address is used, never a 500.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Which header the trusted proxy writes the client's address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, the rightmost address that is not a trusted proxy (nginx, most balancers).
    XForwardedFor,
    /// `X-Real-IP` (Railway; nginx with `proxy_set_header X-Real-IP $remote_addr`).
    XRealIp,
    /// `Fly-Client-IP` (Fly.io; rightmost `X-Forwarded-For` is Fly's own address there).
    FlyClientIp,
    /// `CF-Connecting-IP` (Cloudflare).
    CfConnectingIp,
}

impl ClientIpHeader {
    /// The accepted values of `CLIENT_IP_HEADER`, for the catalogue.
    pub const NAMES: &'static [&'static str] = &[
        "x-forwarded-for",
        "x-real-ip",
        "fly-client-ip",
        "cf-connecting-ip",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::XRealIp => "x-real-ip",
            Self::FlyClientIp => "fly-client-ip",
            Self::CfConnectingIp => "cf-connecting-ip",
        }
    }
}

impl FromStr for ClientIpHeader {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "x-real-ip" => Ok(Self::XRealIp),
            "fly-client-ip" => Ok(Self::FlyClientIp),
            "cf-connecting-ip" => Ok(Self::CfConnectingIp),
            _ => Err(()),
        }
    }
}

impl fmt::Display for ClientIpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list of networks, `TRUSTED_PROXIES` (`10.0.0.0/8, 127.0.0.1, ::1`; a bare address is a /32
/// or /128).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// `TRUSTED_PROXIES` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected comma-separated addresses or CIDR networks, e.g. 127.0.0.1/32,10.0.0.0/8")]
pub struct InvalidTrustedProxies;

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxies;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| InvalidTrustedProxies)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// How this instance derives the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpPolicy {
    pub trusted: TrustedProxies,
    pub header: ClientIpHeader,
}

impl Default for ClientIpPolicy {
    /// Trust nobody: the TCP peer is the client.
    fn default() -> Self {
        Self {
            trusted: TrustedProxies::default(),
            header: ClientIpHeader::XForwardedFor,
        }
    }
}

/// Where a request's client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The TCP peer (not a trusted proxy, or no proxies configured).
    Peer,
    /// The header a trusted proxy wrote.
    Header,
    /// A trusted proxy sent no usable header (its own health check, say): the peer.
    Absent,
    /// The header was malformed: ignored, counted, the peer used.
    Malformed,
}

/// The client's address as derived for this request, a request extension set by the router's
/// outermost layer. The throttle, the audit log and the request's log span all read this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    pub origin: Origin,
}

impl ClientIpPolicy {
    /// The client's address for a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        let peer = canonical(peer);
        if !self.trusted.contains(peer) {
            return ClientAddr {
                ip: peer,
                origin: Origin::Peer,
            };
        }
        let found = match self.header {
            ClientIpHeader::XForwardedFor => self.rightmost_untrusted(headers),
            ClientIpHeader::XRealIp => single(&client_ip::x_real_ip(headers)),
            ClientIpHeader::FlyClientIp => single(&client_ip::fly_client_ip(headers)),
            ClientIpHeader::CfConnectingIp => single(&client_ip::cf_connecting_ip(headers)),
        };
        let (ip, origin) = match found {
            Found::Address(ip) => (canonical(ip), Origin::Header),
            Found::Absent => (peer, Origin::Absent),
            Found::Malformed => (peer, Origin::Malformed),
        };
        ClientAddr { ip, origin }
    }

    /// `X-Forwarded-For` (every occurrence, in order, as one list) from the right, skipping our own
    /// proxies. A list of only trusted proxies has no client in it.
    fn rightmost_untrusted(&self, headers: &HeaderMap) -> Found {
        const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
        let mut values = Vec::new();
        for value in headers.get_all(XFF) {
            let Ok(text) = value.to_str() else {
                return Found::Malformed;
            };
            values.extend(text.split(',').map(str::trim));
        }
        if values.is_empty() {
            return Found::Absent;
        }
        for entry in values.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return Found::Malformed;
            };
            if !self.trusted.contains(ip) {
                return Found::Address(ip);
            }
        }
        Found::Absent
    }
}

enum Found {
    Address(IpAddr),
    Absent,
    Malformed,
}

fn single(result: &Result<IpAddr, client_ip::Error>) -> Found {
    match result {
        Ok(ip) => Found::Address(*ip),
        Err(client_ip::Error::AbsentHeader { .. }) => Found::Absent,
        Err(_) => Found::Malformed,
    }
}

/// One `X-Forwarded-For` entry: an address, or an IPv4 address with a port, or `[v6]:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

/// IPv4-mapped IPv6 (`::ffff:203.0.113.7`, what a dual-stack socket reports) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key the login throttle counts an address under: IPv4 as is, IPv6 by its /64 (one
/// customer's allocation; a client changing the low bits is still the same client).
pub fn throttle_group(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let network = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn policy(trusted: &str, header: &str) -> ClientIpPolicy {
        ClientIpPolicy {
            trusted: trusted.parse().unwrap(),
            header: header.parse().unwrap(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusting_nobody_the_peer_is_the_client_whatever_it_sends() {
        let p = ClientIpPolicy::default();
        let got = p.client(
            ip("203.0.113.9"),
            &headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "1.2.3.4")]),
        );
        assert_eq!(got.ip, ip("203.0.113.9"));
        assert_eq!(got.origin, Origin::Peer);
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_the_header() {
        let p = policy("127.0.0.1/32", "x-forwarded-for");
        let got = p.client(
            ip("198.51.100.4"),
            &headers(&[("x-forwarded-for", "10.9.9.9")]),
        );
        assert_eq!((got.ip, got.origin), (ip("198.51.100.4"), Origin::Peer));
    }

    #[test]
    fn rightmost_untrusted_hop_of_x_forwarded_for() {
        let p = policy("127.0.0.1, 10.0.0.0/8", "x-forwarded-for");
        // The client wrote "6.6.6.6"; nginx appended the real peer, a CDN hop before it is ours.
        let got = p.client(
            ip("127.0.0.1"),
            &headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]),
        );
        assert_eq!((got.ip, got.origin), (ip("198.51.100.7"), Origin::Header));
        // Several header lines form one list, in order.
        let got = p.client(
            ip("127.0.0.1"),
            &headers(&[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "198.51.100.8"),
            ]),
        );
        assert_eq!(got.ip, ip("198.51.100.8"));
    }

    #[test]
    fn malformed_and_absent_headers_fall_back_to_the_peer() {
        let p = policy("127.0.0.0/8", "x-forwarded-for");
        for bad in ["not-an-ip", "1.2.3.4, ", "1.2.3.4,,", "999.1.1.1"] {
            let got = p.client(ip("127.0.0.1"), &headers(&[("x-forwarded-for", bad)]));
            assert_eq!(
                (got.ip, got.origin),
                (ip("127.0.0.1"), Origin::Malformed),
                "{bad}"
            );
        }
        let got = p.client(ip("127.0.0.1"), &HeaderMap::new());
        assert_eq!((got.ip, got.origin), (ip("127.0.0.1"), Origin::Absent));
        let got = p.client(
            ip("127.0.0.1"),
            &headers(&[("x-forwarded-for", "127.0.0.2")]),
        );
        assert_eq!(got.origin, Origin::Absent);
    }

    #[test]
    fn platform_headers() {
        let peer = ip("10.0.0.1");
        let cases = [
            ("x-real-ip", "203.0.113.1"),
            ("fly-client-ip", "2001:db8::1"),
            ("cf-connecting-ip", "203.0.113.3"),
        ];
        for (name, value) in cases {
            let p = policy("10.0.0.0/8", name);
            let got = p.client(
                peer,
                &headers(&[(name, value), ("x-forwarded-for", "9.9.9.9")]),
            );
            assert_eq!((got.ip, got.origin), (ip(value), Origin::Header), "{name}");
            // Twice is a proxy misconfiguration: ignored, the peer used.
            let got = p.client(peer, &headers(&[(name, value), (name, value)]));
            assert_eq!(got.origin, Origin::Malformed, "{name}");
        }
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let p = policy("127.0.0.1", "x-real-ip");
        let got = p.client(
            ip("::ffff:127.0.0.1"),
            &headers(&[("x-real-ip", "::ffff:203.0.113.5")]),
        );
        assert_eq!(got.ip, ip("203.0.113.5"));
    }

    #[test]
    fn trusted_proxies_parse() {
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let t: TrustedProxies = "127.0.0.1, ::1, 10.0.0.0/8, fd00::/8".parse().unwrap();
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("localhost".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn ipv6_throttles_by_64() {
        assert_eq!(
            throttle_group(ip("2001:db8:1:2:aaaa::1")),
            throttle_group(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            throttle_group(ip("2001:db8:1:2::1")),
            throttle_group(ip("2001:db8:1:3::1"))
        );
        assert_eq!(throttle_group(ip("203.0.113.5")), "203.0.113.5");
        assert_eq!(throttle_group(ip("::ffff:203.0.113.5")), "203.0.113.5");
    }

    proptest! {
        #[test]
        fn never_panics_and_never_trusts_an_untrusted_peer(
            value in "[ -~]{0,80}",
            peer in any::<[u8; 4]>(),
        ) {
            let p = policy("127.0.0.0/8", "x-forwarded-for");
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                map.insert("x-forwarded-for", v);
            }
            let peer = IpAddr::from(peer);
            let got = p.client(peer, &map);
            if !p.trusted.contains(peer) {
                prop_assert_eq!(got.ip, peer);
            }
        }
    }
}
