//! The URL rule for OIDC issuers and the documents berth fetches from them: https in general; plain http
//! only towards a loopback host, so that tests and local pipelines can run an issuer on 127.0.0.1.

use std::net::{Ipv4Addr, Ipv6Addr};

/// AWS's limit on an OIDC provider URL.
const MAX_URL_LEN: usize = 255;

/// Checks an issuer URL (as given to `CreateOpenIDConnectProvider`, or as a token's `iss`) and returns it
/// normalized: trailing slashes removed, nothing else changed.
///
/// The scheme is `https`, or `http` when the host is a loopback address (`127.0.0.0/8`, `[::1]`,
/// `localhost`). The host must not be empty; user info, a query and a fragment are refused.
pub fn validate_issuer_url(url: &str) -> Result<String, String> {
    check_url(url, false)
}

/// The same rule for a document URL announced by an issuer (`jwks_uri`), where a query is allowed.
pub(super) fn validate_document_url(url: &str) -> Result<String, String> {
    check_url(url, true)
}

fn check_url(url: &str, allow_query: bool) -> Result<String, String> {
    if url.is_empty() {
        return Err("the URL is empty".into());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("the URL contains the character {c:?}"));
    }
    if url.contains('#') {
        return Err("the URL must not have a fragment".into());
    }
    if url.contains('\\') {
        return Err("the URL must not contain a backslash".into());
    }
    let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("the URL must begin with https:// (or http:// for a loopback host)".into());
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if path_and_query.contains('?') && !allow_query {
        return Err("the URL must not have a query".into());
    }
    if authority.contains('@') {
        return Err("the URL must not carry user information".into());
    }
    let host = host_of(authority)?;
    if !secure && !is_loopback(host) {
        return Err(format!("http:// is allowed only for a loopback host (127.0.0.1, [::1], localhost), not {host}"));
    }
    let normalized = if path_and_query.contains('?') { url } else { url.trim_end_matches('/') };
    Ok(normalized.to_string())
}

/// The host of `host[:port]` or `[v6][:port]`, checked.
fn host_of(authority: &str) -> Result<&str, String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or("the URL has an unterminated IPv6 address")?;
        let literal = &v6[..end];
        literal.parse::<Ipv6Addr>().map_err(|_| format!("{literal} is not an IPv6 address"))?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("the URL's host is malformed".into()),
        };
        (&authority[..end + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    if !host.starts_with('[') && !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(format!("the URL's host {host} is not a host name"));
    }
    if let Some(port) = port {
        let valid =
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(format!("the URL's port {port} is not a port number"));
        }
    }
    Ok(host)
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}
