//! AWS Signature Version 4: verification of incoming requests (the `Authorization` header form and
//! the presigned query form) and signing of outgoing ones (berth's own clients, tests, benchmarks).
//!
//! The canonical form follows the SigV4 specification for every service but S3: the path is
//! normalized and its segments URI-encoded once more than they arrive (so a path that arrives as
//! `/a%3D` is canonicalized as `/a%253D`, as botocore and the CRT test suite do).

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::time::Timestamp;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a request's date may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest a presigned request may be valid.
pub const MAX_PRESIGN_SECONDS: i64 = 7 * 24 * 3600;

/// The parts of an HTTP request that SigV4 covers.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as it appears on the request line (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without the `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Where the signature was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLocation {
    Header,
    Query { expires_seconds: i64 },
}

/// What a request claims about its signature, parsed but not yet verified.
#[derive(Clone, Debug)]
pub struct SignatureClaim {
    pub access_key_id: String,
    pub amz_date: String,
    pub timestamp: Timestamp,
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub location: SignatureLocation,
    pub security_token: Option<String>,
    scope: String,
}

impl SignatureClaim {
    /// `<date>/<region>/<service>/aws4_request`, built once at parse time.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// Why a signature was refused. Mapped to AWS error codes per protocol in [`crate::error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    Expired(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<std::borrow::Cow<'h, str>> {
    headers.get(name).map(value_str)
}

/// A header value as text: borrowed when it is visible ASCII (always, from SDKs), else decoded lossily.
fn value_str(v: &http::HeaderValue) -> std::borrow::Cow<'_, str> {
    match v.to_str() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

/// Parses the signature a request carries. `Ok(None)`: the request carries no signature at all.
pub fn parse(parts: &RequestParts<'_>) -> Result<Option<SignatureClaim>, SigV4Error> {
    if let Some(auth) = header_str(parts.headers, "authorization") {
        return parse_header(&auth, parts).map(Some);
    }
    let params = query_pairs(parts.query);
    if params.iter().any(|(k, _)| k == "X-Amz-Algorithm" || k == "X-Amz-Signature" || k == "X-Amz-Credential") {
        return parse_query(&params).map(Some);
    }
    Ok(None)
}

fn parse_header(auth: &str, parts: &RequestParts<'_>) -> Result<SignatureClaim, SigV4Error> {
    let rest = auth
        .trim()
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| SigV4Error::Incomplete(format!("Authorization header must use the {ALGORITHM} algorithm.")))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for item in rest.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(SigV4Error::Incomplete(format!(
                "Authorization header requires each component to be of the form key=value, got '{item}'."
            )));
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim().to_string()),
            "SignedHeaders" => signed_headers = Some(v.trim().to_string()),
            "Signature" => signature = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let missing = |what: &str| SigV4Error::Incomplete(format!("Authorization header requires '{what}' parameter."));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let amz_date = header_str(parts.headers, "x-amz-date").map(|d| d.trim().to_string()).ok_or_else(|| {
        SigV4Error::Incomplete("Authorization header requires existence of a 'X-Amz-Date' header.".into())
    })?;
    let security_token = header_str(parts.headers, "x-amz-security-token").map(|t| t.trim().to_string());
    build_claim(&credential, &signed_headers, signature, amz_date, SignatureLocation::Header, security_token)
}

fn parse_query(params: &[(String, String)]) -> Result<SignatureClaim, SigV4Error> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let missing =
        |what: &str| SigV4Error::Incomplete(format!("Query-string authentication requires the {what} parameter."));
    let algorithm = get("X-Amz-Algorithm").ok_or_else(|| missing("X-Amz-Algorithm"))?;
    if algorithm != ALGORITHM {
        return Err(SigV4Error::Incomplete(format!("X-Amz-Algorithm only supports \"{ALGORITHM}\".")));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
    let signed_headers = get("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
    let signature = get("X-Amz-Signature").ok_or_else(|| missing("X-Amz-Signature"))?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
    let expires = get("X-Amz-Expires").ok_or_else(|| missing("X-Amz-Expires"))?;
    let expires_seconds: i64 =
        expires.parse().ok().filter(|e| (1..=MAX_PRESIGN_SECONDS).contains(e)).ok_or_else(|| {
            SigV4Error::Incomplete(format!(
                "X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_SECONDS}."
            ))
        })?;
    build_claim(
        &credential,
        &signed_headers,
        signature,
        amz_date,
        SignatureLocation::Query { expires_seconds },
        get("X-Amz-Security-Token"),
    )
}

fn build_claim(
    credential: &str,
    signed_headers: &str,
    signature: String,
    amz_date: String,
    location: SignatureLocation,
    security_token: Option<String>,
) -> Result<SignatureClaim, SigV4Error> {
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope.iter().any(|s| s.is_empty()) {
        return Err(SigV4Error::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    }
    if scope[4] != "aws4_request" {
        return Err(SigV4Error::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            scope[4]
        )));
    }
    let timestamp = Timestamp::parse_amz_date(&amz_date).ok_or_else(|| {
        SigV4Error::Incomplete(format!(
            "Date must be in ISO-8601 'basic format', e.g. 20150830T123600Z; got '{amz_date}'."
        ))
    })?;
    if !amz_date.starts_with(scope[1]) {
        return Err(SigV4Error::Incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            scope[1],
            &amz_date[..8]
        )));
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.".into()));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigV4Error::Incomplete("Signature must be 64 hexadecimal characters.".into()));
    }
    Ok(SignatureClaim {
        scope: format!("{}/{}/{}/aws4_request", scope[1], scope[2], scope[3]),
        access_key_id: scope[0].to_string(),
        scope_date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        amz_date,
        timestamp,
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        location,
        security_token,
    })
}

/// Checks the claim's freshness and recomputes the signature with `secret_access_key`.
pub fn verify(
    parts: &RequestParts<'_>,
    claim: &SignatureClaim,
    secret_access_key: &str,
    now: Timestamp,
) -> Result<(), SigV4Error> {
    let key = signing_key(secret_access_key, &claim.scope_date, &claim.region, &claim.service);
    verify_with_key(parts, claim, &key, now)
}

/// [`verify`] with the signing key of the claim's scope already derived (callers may cache it: it
/// depends only on the secret, the date, the region and the service).
pub fn verify_with_key(
    parts: &RequestParts<'_>,
    claim: &SignatureClaim,
    key: &[u8; 32],
    now: Timestamp,
) -> Result<(), SigV4Error> {
    check_time(claim, now)?;
    let payload_hashes: Vec<String> = match header_str(parts.headers, "x-amz-content-sha256") {
        Some(declared) if declared == UNSIGNED_PAYLOAD => vec![declared.into_owned()],
        Some(declared) => {
            let declared = declared.trim().to_ascii_lowercase();
            if declared != hex_sha256(parts.body) {
                return Err(SigV4Error::ContentSha256Mismatch);
            }
            vec![declared]
        }
        None => match claim.location {
            SignatureLocation::Header => vec![hex_sha256(parts.body)],
            // Presigned URLs are signed over the body when the client knew it, else UNSIGNED-PAYLOAD.
            SignatureLocation::Query { .. } => vec![hex_sha256(parts.body), UNSIGNED_PAYLOAD.to_string()],
        },
    };
    let provided = claim.signature.as_bytes();
    let mut matched = subtle::Choice::from(0u8);
    for payload_hash in &payload_hashes {
        let creq = canonical_request(parts, &claim.signed_headers, payload_hash, claim.location);
        let sts = string_to_sign(&claim.amz_date, claim.scope(), &creq);
        let expected = hex(&hmac(key, sts.as_bytes()));
        matched |= expected.as_bytes().ct_eq(provided);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

fn check_time(claim: &SignatureClaim, now: Timestamp) -> Result<(), SigV4Error> {
    let t = claim.timestamp.0;
    match claim.location {
        SignatureLocation::Header => {
            if t < now.0 - MAX_SKEW_SECONDS {
                return Err(SigV4Error::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    claim.amz_date,
                    Timestamp(now.0 - MAX_SKEW_SECONDS).amz_date(),
                    now.amz_date()
                )));
            }
        }
        SignatureLocation::Query { expires_seconds } => {
            if t + expires_seconds < now.0 {
                return Err(SigV4Error::Expired(format!(
                    "Request has expired: signed at {} for {} seconds, now {}",
                    claim.amz_date,
                    expires_seconds,
                    now.amz_date()
                )));
            }
        }
    }
    if t > now.0 + MAX_SKEW_SECONDS {
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            claim.amz_date,
            Timestamp(now.0 + MAX_SKEW_SECONDS).amz_date(),
            now.amz_date()
        )));
    }
    Ok(())
}

/// The canonical request (task 1 of the SigV4 specification).
pub fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    location: SignatureLocation,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(parts.method);
    out.push('\n');
    out.push_str(&canonical_uri(parts.path));
    out.push('\n');
    let skip_signature = matches!(location, SignatureLocation::Query { .. });
    out.push_str(&canonical_query(parts.query, skip_signature));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in parts.headers.get_all(name.as_str()) {
            if !first {
                out.push(',');
            }
            first = false;
            push_trimmed(&mut out, &value_str(value));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Header values are trimmed and runs of whitespace collapsed to one space.
fn push_trimmed(out: &mut String, value: &str) {
    let mut space = false;
    for c in value.trim().chars() {
        if c.is_ascii_whitespace() {
            space = true;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
}

/// Normalizes the path (removing `.`/`..` and empty segments) and URI-encodes each segment.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for seg in &segments {
        out.push('/');
        uri_encode_into(&mut out, seg.as_bytes());
    }
    if out.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

/// Splits a raw query string into percent-decoded pairs (`+` is a literal plus, as in RFC 3986).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn canonical_query(query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k = percent_encoding::percent_decode_str(k).collect::<Vec<u8>>();
            if skip_signature && k == b"X-Amz-Signature" {
                return None;
            }
            let v = percent_encoding::percent_decode_str(v).collect::<Vec<u8>>();
            Some((uri_encode(&k), uri_encode(&v)))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// RFC 3986 encoding: everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded, in upper-case hex.
pub fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    uri_encode_into(&mut out, bytes);
    out
}

fn uri_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex_sha256(canonical_request.as_bytes()))
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex, without the per-character collection of `hex::encode`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Credentials for signing a request.
#[derive(Clone)]
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for SigningCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Signs a request in place, adding `X-Amz-Date`, `X-Amz-Security-Token` (with a session token) and
/// `Authorization`. The `host` header must already be set. Signs `host`, `content-type` and every
/// `x-amz-*` header. An `x-amz-content-sha256` header already set (e.g. `UNSIGNED-PAYLOAD`) is the
/// payload hash; without one the body is hashed.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &SigningCredentials,
    region: &str,
    service: &str,
    now: Timestamp,
) {
    let amz_date = now.amz_date();
    headers.insert("x-amz-date", header_value(&amz_date));
    if let Some(token) = &creds.session_token {
        headers.insert("x-amz-security-token", header_value(token));
    }
    let mut signed: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k == "host" || k == "content-type" || k.starts_with("x-amz-"))
        .collect();
    signed.sort();
    signed.dedup();
    let payload_hash = match header_str(headers, "x-amz-content-sha256") {
        Some(declared) => declared.trim().to_string(),
        None => hex_sha256(body),
    };
    let parts = RequestParts { method, path, query, headers, body };
    let creq = canonical_request(&parts, &signed, &payload_hash, SignatureLocation::Header);
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(&creds.secret_access_key, &amz_date[..8], region, service);
    let signature = hex(&hmac(&key, sts.as_bytes()));
    let auth = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id,
        signed.join(";")
    );
    headers.insert("authorization", header_value(&auth));
}

/// Returns the query string of a presigned request: `query` plus the `X-Amz-*` parameters.
/// Only the `host` header is signed; the payload is signed as `UNSIGNED-PAYLOAD`.
#[allow(clippy::too_many_arguments)]
pub fn presign(
    method: &str,
    path: &str,
    query: &str,
    host: &str,
    creds: &SigningCredentials,
    region: &str,
    service: &str,
    now: Timestamp,
    expires_seconds: i64,
) -> String {
    let amz_date = now.amz_date();
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let mut q = String::from(query);
    let mut add = |k: &str, v: &str| {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(k);
        q.push('=');
        q.push_str(&uri_encode(v.as_bytes()));
    };
    add("X-Amz-Algorithm", ALGORITHM);
    add("X-Amz-Credential", &format!("{}/{scope}", creds.access_key_id));
    add("X-Amz-Date", &amz_date);
    add("X-Amz-Expires", &expires_seconds.to_string());
    add("X-Amz-SignedHeaders", "host");
    if let Some(token) = &creds.session_token {
        add("X-Amz-Security-Token", token);
    }
    let mut headers = HeaderMap::new();
    headers.insert("host", header_value(host));
    let parts = RequestParts { method, path, query: &q, headers: &headers, body: &[] };
    let location = SignatureLocation::Query { expires_seconds };
    let creq = canonical_request(&parts, &["host".to_string()], UNSIGNED_PAYLOAD, location);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(&creds.secret_access_key, &amz_date[..8], region, service);
    let signature = hex(&hmac(&key, sts.as_bytes()));
    format!("{q}&X-Amz-Signature={signature}")
}

fn header_value(s: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(s).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}
