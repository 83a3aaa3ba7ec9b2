//! The SSRF guard: which backends the gateway may call.
//!
//! API groups are configured by workspace admins, but the gateway runs inside the
//! operator's network, so a base URL such as `http://169.254.169.254/` or
//! `http://localhost:5432/` would turn the gateway into a proxy into that network.
//! Backends must therefore be public addresses, unless the server's allow-list
//! (set by the operator, not by tenants) names them.
//!
//! The check is made twice: on the URL ([`BackendPolicy::check_url`]: scheme,
//! userinfo, literal IPs) when a group is saved and before each call, and on every
//! address a hostname resolves to ([`BackendPolicy::check_resolved`]) right before
//! connecting, so a public name that resolves to a private address (DNS
//! rebinding) is caught too. IPv4 addresses carried in IPv6 (mapped `::ffff:a.b.c.d`,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// An allow-list entry that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend allow-list entry '{entry}': {reason}")]
pub struct AllowListError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Why a backend may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendRefusal {
    /// Not `http` or `https`.
    #[error("backend URL scheme '{scheme}' is not allowed: use http or https")]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// The URL has a user name or password.
    #[error("backend URL may not contain a user name or password")]
    UserInfo,
    /// The URL has no host.
    #[error("backend URL has no host")]
    NoHost,
    /// The address is not public and not on the allow-list.
    #[error("backend address {ip}{} is {range}, and the server's backend allow-list does not name it", host.as_ref().map(|h| format!(" (of {h})")).unwrap_or_default())]
    NotPublic {
        /// The host name that resolved to it, if any.
        host: Option<String>,
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
        /// What kind of address it is, e.g. `private (RFC 1918)`.
        range: &'static str,
    },
    /// The host name is on the allow-list, but only with other ports.
    #[error("backend host {host} is allowed only on the ports the allow-list names, not {port}")]
    Port {
        /// The host name.
        host: String,
        /// The URL's port.
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A host name (lower case, no trailing dot), any port or one.
    Host(String, Option<u16>),
    /// `*.suffix`: any subdomain of `suffix` (not `suffix` itself).
    Subdomains(String, Option<u16>),
    /// An address, any port or one.
    Ip(IpAddr, Option<u16>),
    /// A network.
    Cidr(IpAddr, u8),
}

/// The server's backend allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendPolicy {
    rules: Vec<Rule>,
}

/// Judges IPv4 in IPv6 by its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // NAT64 well-known prefix (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    // 6to4 (RFC 3056): the IPv4 address is bits 16..48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            const RANGES: &[([u8; 4], u32, &str)] = &[
                ([0, 0, 0, 0], 8, "in 0.0.0.0/8 (this network)"),
                ([10, 0, 0, 0], 8, "private (RFC 1918)"),
                (
                    [100, 64, 0, 0],
                    10,
                    "shared address space (CGNAT, RFC 6598)",
                ),
                ([127, 0, 0, 0], 8, "loopback"),
                ([169, 254, 0, 0], 16, "link-local (incl. cloud metadata)"),
                ([172, 16, 0, 0], 12, "private (RFC 1918)"),
                ([192, 0, 0, 0], 24, "reserved for IETF protocols"),
                ([192, 0, 2, 0], 24, "documentation (TEST-NET-1)"),
                ([192, 88, 99, 0], 24, "6to4 relay anycast"),
                ([192, 168, 0, 0], 16, "private (RFC 1918)"),
                ([198, 18, 0, 0], 15, "benchmarking (RFC 2544)"),
                ([198, 51, 100, 0], 24, "documentation (TEST-NET-2)"),
                ([203, 0, 113, 0], 24, "documentation (TEST-NET-3)"),
                ([224, 0, 0, 0], 4, "multicast"),
                ([255, 255, 255, 255], 32, "broadcast"),
                ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
            ];
            RANGES
                .iter()
                .find(|(net, len, _)| in_v4(v4, *net, *len))
                .map(|(_, _, name)| *name)
        }
        IpAddr::V6(v6) => {
            const RANGES: &[(u128, u32, &str)] = &[
                (0, 128, "unspecified"),
                (1, 128, "loopback"),
                (0, 96, "IPv4-compatible (deprecated)"),
                (0x0064_ff9b_0001 << 80, 48, "local-use NAT64"),
                (0x0100 << 112, 64, "discard-only (RFC 6666)"),
                (0x2001_0db8 << 96, 32, "documentation"),
                (0x3fff << 112, 20, "documentation"),
                (
                    0x2001 << 112,
                    23,
                    "reserved for IETF protocols (incl. Teredo)",
                ),
                (0xfc00 << 112, 7, "unique-local (fc00::/7)"),
                (0xfe80 << 112, 10, "link-local"),
                (0xfec0 << 112, 10, "site-local (deprecated)"),
                (0xff00 << 112, 8, "multicast"),
            ];
            if let Some((_, _, name)) = RANGES
                .iter()
                .find(|(net, len, _)| in_v6(v6, Ipv6Addr::from(*net), *len))
            {
                return Some(name);
            }
            // Only 2000::/3 is allocated for global unicast.
            (!in_v6(v6, Ipv6Addr::from(0x2000u128 << 112), 3)).then_some("not global unicast")
        }
    }
}

fn parse_host_name(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

fn parse_rule(entry: &str) -> Result<Rule, &'static str> {
    let entry = entry.trim();
    if let Some((address, len)) = entry.split_once('/') {
        let ip: IpAddr = address
            .parse()
            .map_err(|_| "a CIDR is an address/prefix length")?;
        let len: u8 = len
            .parse()
            .map_err(|_| "a CIDR prefix length is a number")?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err("CIDR prefix length too long");
        }
        return Ok(Rule::Cidr(ip, len));
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Rule::Ip(ip, None));
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Ok(Rule::Ip(socket.ip(), Some(socket.port())));
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (
            host,
            Some(
                port.parse::<u16>()
                    .map_err(|_| "a port is a number up to 65535")?,
            ),
        ),
        None => (entry, None),
    };
    if let Some(suffix) = host.strip_prefix("*.") {
        let suffix = parse_host_name(suffix).ok_or("not a host name after '*.'")?;
        return Ok(Rule::Subdomains(suffix, port));
    }
    let host = parse_host_name(host).ok_or("not a host name, address or CIDR")?;
    Ok(Rule::Host(host, port))
}

/// Whether a rule's port admits `port`; `None` is a port not known yet (an HTTP
/// client's resolver sees only the name), which any rule admits.
fn port_matches(rule: Option<u16>, port: Option<u16>) -> bool {
    match (rule, port) {
        (Some(rule), Some(port)) => rule == port,
        _ => true,
    }
}

impl BackendPolicy {
    /// Parses the allow-list: `host`, `host:port`, `*.example.com` (its
    /// subdomains), an address, `ip:port` (`[v6]:port`), or a CIDR.
    pub fn new(allow: &[String]) -> Result<BackendPolicy, AllowListError> {
        let rules = allow
            .iter()
            .map(|entry| {
                parse_rule(entry).map_err(|reason| AllowListError {
                    entry: entry.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(BackendPolicy { rules })
    }

    fn allows_host(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        self.rules.iter().any(|rule| match rule {
            Rule::Host(name, p) => *name == host && port_matches(*p, port),
            Rule::Subdomains(suffix, p) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && port_matches(*p, port)
            }
            _ => false,
        })
    }

    fn allows_ip(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = canonical(ip);
        self.rules.iter().any(|rule| match *rule {
            Rule::Ip(allowed, p) => canonical(allowed) == ip && port_matches(p, port),
            Rule::Cidr(net, len) => match (net, ip) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip, net.octets(), u32::from(len)),
                (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip, net, u32::from(len)),
                // A mapped IPv6 network written for IPv4 addresses.
                (IpAddr::V6(net), IpAddr::V4(ip)) => {
                    in_v6(ip.to_ipv6_mapped(), net, u32::from(len))
                }
                (IpAddr::V4(_), IpAddr::V6(_)) => false,
            },
            _ => false,
        })
    }

    /// Checks an address (no host name): public, or named by an address, `ip:port`
    /// or CIDR entry.
    pub fn check_ip(&self, ip: IpAddr, port: u16) -> Result<(), BackendRefusal> {
        self.check(None, ip, Some(port))
    }

    fn check(
        &self,
        host: Option<&str>,
        ip: IpAddr,
        port: Option<u16>,
    ) -> Result<(), BackendRefusal> {
        let Some(range) = non_public_range(ip) else {
            return Ok(());
        };
        if self.allows_ip(ip, port) || host.is_some_and(|h| self.allows_host(h, port)) {
            return Ok(());
        }
        Err(BackendRefusal::NotPublic {
            host: host.map(str::to_owned),
            ip,
            port: port.unwrap_or(0),
            range,
        })
    }

    /// Checks a backend URL before it is resolved: `http` or `https`, no
    /// userinfo, a host; a literal address must pass [`Self::check_ip`]. A host
    /// name passes here; its addresses are checked with [`Self::check_resolved`].
    pub fn check_url(&self, url: &Url) -> Result<(), BackendRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(BackendRefusal::Scheme {
                scheme: url.scheme().to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(BackendRefusal::UserInfo);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            None => Err(BackendRefusal::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip), port),
            Some(Host::Domain("")) => Err(BackendRefusal::NoHost),
            Some(Host::Domain(host)) => {
                // A name listed only with other ports: its addresses are checked
                // without the port later (see `check_resolved_host`), so the port
                // is held to the list here.
                if self.allows_host(host, None) && !self.allows_host(host, Some(port)) {
                    return Err(BackendRefusal::Port {
                        host: host.to_owned(),
                        port,
                    });
                }
                Ok(())
            }
        }
    }

    /// Checks an address a host name resolved to when the port is not known, as
    /// in an HTTP client's DNS resolver: public, or allowed by an entry for the
    /// name or the address with any port. [`Self::check_url`] has held the URL's
    /// port to the name's entries already.
    pub fn check_resolved_host(&self, host: &str, ip: IpAddr) -> Result<(), BackendRefusal> {
        let Some(range) = non_public_range(ip) else {
            return Ok(());
        };
        // Address entries count only without a port (port 0 matches no `ip:port`
        // entry): `127.0.0.1:8080` must not let a name reach 127.0.0.1:22.
        // Name entries count with any port: check_url held the URL's to them.
        if self.allows_ip(ip, Some(0)) || self.allows_host(host, None) {
            return Ok(());
        }
        Err(BackendRefusal::NotPublic {
            host: Some(host.to_owned()),
            ip,
            port: 0,
            range,
        })
    }

    /// Checks one address a backend's host name resolved to, right before
    /// connecting: public, or the allow-list names the address, a CIDR holding it,
    /// the host name, or `host:port`.
    pub fn check_resolved(&self, host: &str, port: u16, ip: IpAddr) -> Result<(), BackendRefusal> {
        self.check(Some(host), ip, Some(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(entries: &[&str]) -> BackendPolicy {
        BackendPolicy::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn host_port_entries_hold_the_url_port_and_admit_the_resolved_address() {
        let p = policy(&["orders.internal:8080"]);
        assert!(p.check_url(&url("http://orders.internal:8080/")).is_ok());
        assert!(matches!(
            p.check_url(&url("http://orders.internal:22/")),
            Err(BackendRefusal::Port { .. })
        ));
        assert!(p
            .check_resolved_host("orders.internal", ip("10.0.0.5"))
            .is_ok());
        assert!(p
            .check_resolved_host("other.internal", ip("10.0.0.5"))
            .is_err());
        assert!(p
            .check_resolved_host("other.internal", ip("8.8.8.8"))
            .is_ok());
        let p = policy(&["127.0.0.1:8080", "10.9.0.0/16"]);
        assert!(
            p.check_resolved_host("localhost", ip("127.0.0.1")).is_err(),
            "an ip:port entry opens no other port to a name"
        );
        assert!(p.check_resolved_host("db.internal", ip("10.9.1.1")).is_ok());
    }

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.19.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "::127.0.0.1",
            "fec0::1",
            "2001::1",
            "100::1",
            "4000::1",
            "3fff::1",
        ] {
            assert!(non_public_range(ip(private)).is_some(), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(non_public_range(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn parses_entries() {
        let p = policy(&[
            "internal.svc",
            "api.local:8443",
            "*.corp.example",
            "10.0.0.5",
            "10.0.0.6:9000",
            "[fd00::1]:443",
            "192.168.0.0/16",
            "fd00::/8",
            "Upper.Example.",
            "*.x.example:80",
        ]);
        assert_eq!(p.rules.len(), 10);
        for bad in [
            "",
            "a b",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "host:99999",
            "host:",
            "*.",
            "bad/8",
            "-",
        ] {
            assert!(BackendPolicy::new(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        let err = BackendPolicy::new(&["a b".to_string()]).unwrap_err();
        assert!(err.to_string().contains("'a b'"));
    }

    #[test]
    fn checks_urls() {
        let p = policy(&["10.0.0.5", "internal.svc"]);
        assert!(p.check_url(&url("https://api.example.com/v1")).is_ok());
        assert!(p.check_url(&url("http://internal.svc:8080/")).is_ok());
        assert!(
            p.check_url(&url("http://localhost/")).is_ok(),
            "names are checked once resolved"
        );
        assert!(p.check_url(&url("http://10.0.0.5:81/")).is_ok());
        assert!(p.check_url(&url("http://8.8.8.8/")).is_ok());
        assert_eq!(
            p.check_url(&url("ftp://example.com/")),
            Err(BackendRefusal::Scheme {
                scheme: "ftp".into()
            })
        );
        assert!(matches!(
            p.check_url(&url("file:///etc/passwd")),
            Err(BackendRefusal::Scheme { .. })
        ));
        assert_eq!(
            p.check_url(&url("http://u:p@example.com/")),
            Err(BackendRefusal::UserInfo)
        );
        assert_eq!(
            p.check_url(&url("http://u@example.com/")),
            Err(BackendRefusal::UserInfo)
        );
        for refused in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.0.0.6/",
            "http://0/",
            "http://[fd00::1]/",
        ] {
            let err = p.check_url(&url(refused)).unwrap_err();
            assert!(matches!(err, BackendRefusal::NotPublic { .. }), "{refused}");
        }
        let err = p.check_url(&url("http://169.254.169.254/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend address 169.254.169.254 is link-local (incl. cloud metadata), and the server's backend allow-list does not name it"
        );
    }

    #[test]
    fn checks_resolved_addresses() {
        let p = policy(&[
            "internal.svc",
            "api.local:8443",
            "*.corp.example",
            "10.0.0.6:9000",
            "192.168.0.0/16",
            "fd00::/8",
        ]);
        assert!(p
            .check_resolved("example.com", 443, ip("93.184.216.34"))
            .is_ok());
        assert!(p.check_resolved("internal.svc", 1, ip("10.9.9.9")).is_ok());
        assert!(p.check_resolved("INTERNAL.svc.", 1, ip("10.9.9.9")).is_ok());
        assert!(p.check_resolved("api.local", 8443, ip("127.0.0.1")).is_ok());
        assert!(p
            .check_resolved("api.local", 8444, ip("127.0.0.1"))
            .is_err());
        assert!(p
            .check_resolved("a.corp.example", 80, ip("10.1.1.1"))
            .is_ok());
        assert!(p
            .check_resolved("b.a.corp.example", 80, ip("10.1.1.1"))
            .is_ok());
        assert!(
            p.check_resolved("corp.example", 80, ip("10.1.1.1"))
                .is_err(),
            "the apex is not a subdomain"
        );
        assert!(p
            .check_resolved("evilcorp.example", 80, ip("10.1.1.1"))
            .is_err());
        assert!(p.check_resolved("x", 9000, ip("10.0.0.6")).is_ok());
        assert!(p.check_resolved("x", 9001, ip("10.0.0.6")).is_err());
        assert!(p.check_resolved("x", 1, ip("192.168.44.1")).is_ok());
        assert!(p.check_resolved("x", 1, ip("::ffff:192.168.44.1")).is_ok());
        assert!(p.check_resolved("x", 1, ip("fd12::1")).is_ok());
        assert!(p.check_resolved("x", 1, ip("fe80::1")).is_err());
        // DNS rebinding: a public-looking name that resolves to metadata.
        let err = p
            .check_resolved("rebind.example.com", 80, ip("169.254.169.254"))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("169.254.169.254 (of rebind.example.com)"),
            "{err}"
        );
    }

    fn private_v4() -> impl Strategy<Value = Ipv4Addr> {
        prop_oneof![
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x0a00_0000 | (x & 0x00ff_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xac10_0000 | (x & 0x000f_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xc0a8_0000 | (x & 0x0000_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x7f00_0000 | (x & 0x00ff_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0xa9fe_0000 | (x & 0x0000_ffff))),
            any::<u32>().prop_map(|x| Ipv4Addr::from(0x6440_0000 | (x & 0x003f_ffff))),
        ]
    }

    proptest! {
        /// Every address in an allowed network passes; every private address
        /// outside it fails, in IPv4 and mapped IPv6 form alike.
        #[test]
        fn cidr_allows_exactly_its_addresses(net in any::<u32>(), len in 8u8..=32, addr in private_v4(), port in any::<u16>()) {
            let net = Ipv4Addr::from(net);
            let p = policy(&[&format!("{net}/{len}")]);
            let inside = in_v4(addr, net.octets(), u32::from(len));
            let v4 = p.check_resolved("h", port, IpAddr::V4(addr));
            let mapped = p.check_resolved("h", port, IpAddr::V6(addr.to_ipv6_mapped()));
            prop_assert_eq!(v4.is_ok(), inside);
            prop_assert_eq!(mapped.is_ok(), inside);
            // An address made inside the network always passes.
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let member = Ipv4Addr::from((u32::from(net) & mask) | (u32::from(addr) & !mask));
            prop_assert!(p.check_ip(IpAddr::V4(member), port).is_ok());
        }

        #[test]
        fn v6_cidr_allows_its_addresses(bits in any::<u128>(), len in 8u8..=128) {
            let p = policy(&["fd00::/8", &format!("{}/{len}", Ipv6Addr::from(bits))]);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let member = Ipv6Addr::from((bits & mask) | (!bits & !mask));
            prop_assert!(p.check_ip(IpAddr::V6(member), 1).is_ok());
            let ula = Ipv6Addr::from((0xfdu128 << 120) | (bits >> 8));
            prop_assert!(p.check_ip(IpAddr::V6(ula), 1).is_ok());
            let link_local = Ipv6Addr::from((0xfe80u128 << 112) | (bits >> 64));
            prop_assert_eq!(p.check_ip(IpAddr::V6(link_local), 1).is_ok(), in_v6(link_local, Ipv6Addr::from(bits), u32::from(len)));
        }

        /// With an empty allow-list, exactly the public addresses pass.
        #[test]
        fn empty_list_passes_only_public(bits in any::<u32>(), host in "[a-z]{1,8}\\.example") {
            let p = BackendPolicy::default();
            let addr = IpAddr::V4(Ipv4Addr::from(bits));
            prop_assert_eq!(p.check_resolved(&host, 443, addr).is_ok(), non_public_range(addr).is_none());
            let mapped = IpAddr::V6(Ipv4Addr::from(bits).to_ipv6_mapped());
            prop_assert_eq!(non_public_range(mapped), non_public_range(addr));
        }
    }
}
