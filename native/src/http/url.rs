//! The small part of URL syntax sluice needs: `http://host[:port]/path[?query]`, plus
//! percent-encoding of path segments.
//!
//! `https://` is recognised only to refuse it with a clear message: the native client has no
//! TLS (that would pull in a TLS stack for what is meant to be a loopback or LAN weights
//! host). Put a plain-HTTP proxy in front of an HTTPS origin if needed.

use std::fmt;

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host as written (an IPv6 literal keeps its brackets).
    pub host: String,
    pub port: u16,
    /// Path and query as sent in the request line (`/` when empty).
    pub target: String,
}

impl HttpUrl {
    /// Parses `text`; errors say what is wrong.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(format!(
                "{text}: https is not supported by this build (no TLS); use http:// or a local proxy"
            ));
        }
        if !lower.starts_with("http://") {
            return Err(format!("{text}: not an http:// URL"));
        }
        let rest = &text[7..];
        let (authority, target) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let target = target.split('#').next().unwrap_or("");
        let target = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        if authority.contains('@') {
            return Err(format!("{text}: user information in URLs is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (inner, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text}: unterminated IPv6 literal"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{text}: junk after IPv6 literal"))?,
                ),
            };
            (format!("[{inner}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text}: missing or invalid host"));
        }
        let port = match port {
            None | Some("") => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{text}: invalid port {p:?}"))?,
        };
        if target.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{text}: spaces or control characters must be percent-encoded"
            ));
        }
        Ok(HttpUrl { host, port, target })
    }

    /// `host:port` as a socket address string.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The value for the `Host` header (port omitted when it is 80).
    pub fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            self.authority()
        }
    }

    /// Resolves a `Location` value (absolute `http://` URL or absolute path) against self.
    pub fn join_location(&self, location: &str) -> Result<HttpUrl, String> {
        if location.starts_with('/') && !location.starts_with("//") {
            return Ok(HttpUrl {
                target: location.to_string(),
                ..self.clone()
            });
        }
        HttpUrl::parse(location)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.target)
    }
}

/// Whether `path` looks like a URL this client can open.
pub fn is_http_url(path: &str) -> bool {
    let p = path.get(..8).unwrap_or(path).to_ascii_lowercase();
    p.starts_with("http://") || p.starts_with("https://")
}

/// Percent-decodes a path (`%XX` only; `+` is literal). `None` on a malformed escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/a/b-00001-of-00002.gguf?x=1#f").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/a/b-00001-of-00002.gguf?x=1");
        let u = HttpUrl::parse("HTTP://[::1]/m.gguf").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 80));
        assert_eq!(HttpUrl::parse("http://h").unwrap().target, "/");
        assert!(HttpUrl::parse("https://h/x")
            .unwrap_err()
            .contains("no TLS"));
        assert!(HttpUrl::parse("http://h:99999/x").is_err());
        assert!(HttpUrl::parse("ftp://h/x").is_err());
        assert_eq!(
            u.join_location("/other").unwrap().to_string(),
            "http://[::1]/other"
        );
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%2Fb%2e").unwrap(), b"a/b.");
        assert!(percent_decode("a%2").is_none());
        assert!(percent_decode("a%zz").is_none());
        assert_eq!(encode_segment("a b/ü.gguf"), "a%20b%2F%C3%BC.gguf");
    }
}
