//! Where a request comes from, checked against where it is going: the
//! `Host` must be one of the device's own names or addresses (a DNS-rebinding
//! page arrives with its own name), and a request that changes something must
//! come from the page's own origin (`Origin`, else `Referer`, naming the same
//! scheme-less authority as `Host`), so another site cannot make the owner's
//! browser stop recording or delete footage.

use std::net::IpAddr;

/// The names this device answers to.
#[derive(Clone, Debug)]
pub struct Hosts {
    names: Vec<String>,
}

/// Splits `host[:port]` (or `[v6]:port`) into the host part.
fn host_part(authority: &str) -> &str {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match a.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => a,
    }
}

impl Hosts {
    /// `localhost`, this machine's host name and `NAME.local` (mDNS), and
    /// the names configured (`http.allowed_hosts`); IP literals always.
    pub fn new(configured: &[String]) -> Self {
        let mut names: Vec<String> = vec!["localhost".into()];
        if let Ok(h) = nix::unistd::gethostname()
            && let Some(h) = h.to_str()
            && !h.is_empty()
        {
            names.push(h.to_ascii_lowercase());
            names.push(format!("{}.local", h.to_ascii_lowercase()));
        }
        names.extend(configured.iter().map(|n| n.trim().to_ascii_lowercase()));
        names.retain(|n| !n.is_empty());
        names.dedup();
        Self { names }
    }

    /// Whether a `Host` header names this device.
    pub fn allows(&self, host: &str) -> bool {
        let h = host_part(host).trim_end_matches('.').to_ascii_lowercase();
        if h.is_empty() {
            return false;
        }
        h.parse::<IpAddr>().is_ok() || self.names.contains(&h)
    }
}

/// What `Origin` and `Referer` say about a request's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The page itself.
    Same,
    /// Another site (or an opaque `null` origin).
    Foreign,
    /// Neither header: not a browser's cross-site request (browsers send
    /// `Origin` on every cross-site POST), but not proof of the page either.
    Unknown,
}

/// The `scheme://authority` of a URL, without the scheme.
fn authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(""))
}

/// Classifies a request by its `Origin` (else `Referer`) against its `Host`.
pub fn source(host: Option<&str>, origin: Option<&str>, referer: Option<&str>) -> Source {
    let Some(host) = host.map(|h| h.trim().to_ascii_lowercase()) else {
        return Source::Foreign;
    };
    let named = match (origin, referer) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return Source::Unknown,
    };
    match authority(named.trim()) {
        Some(a) if a.to_ascii_lowercase() == host => Source::Same,
        _ => Source::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = Hosts::new(&["Dashcam.example".into()]);
        for ok in [
            "127.0.0.1:8080",
            "192.168.1.20",
            "[::1]:8080",
            "localhost:8080",
            "dashcam.example",
            "DASHCAM.EXAMPLE:80",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "",
            "localhost.evil.example",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn sources() {
        let host = Some("192.168.1.20:8080");
        assert_eq!(
            source(host, Some("http://192.168.1.20:8080"), None),
            Source::Same
        );
        assert_eq!(
            source(host, None, Some("http://192.168.1.20:8080/#recordings")),
            Source::Same
        );
        assert_eq!(
            source(host, Some("http://evil.example"), None),
            Source::Foreign
        );
        assert_eq!(source(host, Some("null"), None), Source::Foreign);
        assert_eq!(
            source(host, Some("http://192.168.1.20:8081"), None),
            Source::Foreign,
            "another port is another origin"
        );
        assert_eq!(
            source(host, None, Some("http://192.168.1.20:8080.evil.example/")),
            Source::Foreign
        );
        assert_eq!(source(host, None, None), Source::Unknown);
        assert_eq!(source(None, Some("http://x"), None), Source::Foreign);
    }
}
