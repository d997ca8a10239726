//! OIDC web-identity tokens: the verification behind `AssumeRoleWithWebIdentity`.
//!
//! A token is a compact JWS signed RS256 or ES256 by the issuer of an IAM OIDC provider.
//! [`OidcVerifier::verify`] checks, in this order: the structure (three base64url parts, JSON header and
//! claims), the algorithm (`none`, `HS*` and everything else refused before any key is looked up), `iss`
//! against the provider URL, the signature against the issuer's published keys, then `exp`, `nbf`, `iat`,
//! `aud` (against the provider's client ids) and `sub`.
//!
//! The keys come from `<issuer>/.well-known/openid-configuration` → `jwks_uri`. The discovery document is
//! cached per issuer and the key set per `jwks_uri`, each for [`OidcConfig::jwks_ttl`]; a token naming a
//! key the cached set lacks (a rotation) makes one refetch of the set, at most once per
//! [`OidcConfig::min_refetch_interval`]. Concurrent verifications share one fetch. Every fetch is bounded
//! by [`OidcConfig::fetch_timeout`] and 1 MiB, so an unreachable or stalled issuer gives
//! [`OidcError::Communication`] quickly, never a hang: a verification makes at most two fetches in a row
//! (discovery, then key set), each possibly after waiting for another caller's fetch of the same
//! document, so it ends within four times `fetch_timeout` at worst (one, alone against a silent issuer).
//!
//! Tokens never reach logs or errors: log lines name the provider, the key id and the reason.

mod fetch;
mod issuer_url;
mod jwks;
mod jws;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use berth_aws::time::{Clock, SharedClock, Timestamp};
use berth_aws::AwsError;
use serde_json::{Map, Value};

pub use issuer_url::validate_issuer_url;

use jwks::{JwkSet, Selection};
use jws::{printable, Jws};

/// AWS's message for a token that is not a compact JWS.
const NOT_A_JWT: &str =
    "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)";
/// AWS's message (double space included) when no published key can check a token.
const NO_VERIFICATION_KEY: &str = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";
/// How far in the future (beyond the leeway) a token's `iat` may lie.
const MAX_IAT_AHEAD: Duration = Duration::from_secs(300);
/// Cached issuers or key sets kept at most; past it the cache starts over.
const MAX_CACHE_ENTRIES: usize = 1024;

/// Timings of token verification.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Bound on one fetch of a discovery document or key set: connect, TLS, headers and body. Default 5 s.
    pub fetch_timeout: Duration,
    /// How long a fetched discovery document and key set are used before being fetched again. Default 1 h.
    pub jwks_ttl: Duration,
    /// A token with an unknown `kid` refetches the key set at most this often. Default 30 s.
    pub min_refetch_interval: Duration,
    /// Tolerated clock difference with the issuer, applied to `exp` and `nbf` (and on top of the 5 minutes
    /// allowed for `iat`). Default 0: like STS, a token is refused from its `exp` second on, and before its
    /// `nbf`.
    pub clock_leeway: Duration,
}

impl Default for OidcConfig {
    fn default() -> OidcConfig {
        OidcConfig {
            fetch_timeout: Duration::from_secs(5),
            jwks_ttl: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
            clock_leeway: Duration::ZERO,
        }
    }
}

/// A token whose signature, issuer, audience and lifetime have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The provider URL the token was verified against (normalized, no trailing slash).
    pub issuer: String,
    pub subject: String,
    /// The token's `aud` value that matched one of the provider's client ids.
    pub audience: String,
    /// All claims of the token, for the trust policy's condition keys.
    pub claims: Map<String, Value>,
    pub expires_at: Timestamp,
}

/// Why a token was refused, by STS error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// STS `InvalidIdentityToken`.
    #[error("{0}")]
    InvalidToken(String),
    /// STS `ExpiredTokenException`.
    #[error("{0}")]
    Expired(String),
    /// STS `IDPCommunicationError`: the issuer is unreachable, too slow, or answers with bad documents.
    #[error("{0}")]
    Communication(String),
}

impl From<OidcError> for AwsError {
    fn from(e: OidcError) -> AwsError {
        match e {
            OidcError::InvalidToken(message) => AwsError::client("InvalidIdentityToken", message),
            OidcError::Expired(message) => AwsError::client("ExpiredTokenException", message),
            OidcError::Communication(message) => AwsError::client("IDPCommunicationError", message),
        }
    }
}

/// Verifies web-identity tokens against their issuers' published keys, with a cache of those keys.
pub struct OidcVerifier {
    config: OidcConfig,
    clock: SharedClock,
    fetcher: fetch::Fetcher,
    /// Discovery documents by provider URL.
    discovery: Cache<Discovery>,
    /// Key sets by `jwks_uri`.
    jwks: Cache<JwkSet>,
}

/// What berth uses of a discovery document.
struct Discovery {
    jwks_uri: String,
}

impl OidcVerifier {
    pub fn new(config: OidcConfig, clock: SharedClock) -> OidcVerifier {
        OidcVerifier {
            fetcher: fetch::Fetcher::new(config.fetch_timeout),
            config,
            clock,
            discovery: Cache::default(),
            jwks: Cache::default(),
        }
    }

    /// Verifies `token` as issued by the IAM OIDC provider at `provider_url` (its URL as stored by
    /// `CreateOpenIDConnectProvider`, e.g. `https://token.actions.githubusercontent.com` or
    /// `http://127.0.0.1:PORT/issuer`; the token's `iss` must equal it, trailing slash aside).
    /// `client_ids` is the provider's client-id list; the token's `aud` (a string or an array) must contain
    /// one of them.
    pub async fn verify(
        &self,
        token: &str,
        provider_url: &str,
        client_ids: &[String],
    ) -> Result<VerifiedToken, OidcError> {
        let result = self.verify_token(token, provider_url, client_ids).await;
        match &result {
            Ok(verified) => {
                tracing::debug!(provider = provider_url, sub = %verified.subject, "web identity token verified")
            }
            Err(OidcError::Communication(reason)) => {
                tracing::warn!(provider = provider_url, reason = %reason, "identity provider could not be used")
            }
            Err(e) => tracing::debug!(provider = provider_url, reason = %e, "web identity token refused"),
        }
        result
    }

    /// The issuer (`iss`) of a token, without verifying anything, to find which provider to verify it with.
    pub fn peek_issuer(token: &str) -> Result<String, OidcError> {
        issuer_of(&Jws::parse(token)?.claims)
    }

    async fn verify_token(
        &self,
        token: &str,
        provider_url: &str,
        client_ids: &[String],
    ) -> Result<VerifiedToken, OidcError> {
        let provider = validate_issuer_url(provider_url).map_err(|reason| {
            OidcError::Communication(format!("The identity provider URL {provider_url} cannot be used: {reason}"))
        })?;
        let jws = Jws::parse(token)?;
        let alg = jws.alg()?;
        let kid = jws.kid()?;
        let iss = issuer_of(&jws.claims)?;
        if iss.trim_end_matches('/') != provider {
            return Err(OidcError::InvalidToken(format!(
                "No OpenIDConnect provider found in your account for {}",
                printable(&iss)
            )));
        }

        let jwks_uri = self.jwks_uri(&provider).await?;
        let slot = self.jwks.slot(&jwks_uri);
        let fetch_jwks = || async {
            let doc = self.fetcher.get_json(&jwks_uri).await.map_err(OidcError::Communication)?;
            JwkSet::from_document(doc)
                .map_err(|reason| OidcError::Communication(format!("The key set at {jwks_uri} is unusable: {reason}")))
        };
        let mut cached = slot.get(self.clock.as_ref(), self.config.jwks_ttl, None, fetch_jwks).await?;
        if matches!(cached.value.select(kid, alg), Selection::Unknown) && !cached.fetched_now {
            tracing::debug!(provider = %provider, kid = ?kid, "unknown key id; refetching the key set");
            let min_interval = Some(self.config.min_refetch_interval);
            cached = slot.get(self.clock.as_ref(), self.config.jwks_ttl, min_interval, fetch_jwks).await?;
        }
        let key = match cached.value.select(kid, alg) {
            Selection::Key(key) => key,
            Selection::Unknown => {
                tracing::debug!(provider = %provider, kid = ?kid, "no published key matches the token");
                return Err(OidcError::InvalidToken(NO_VERIFICATION_KEY.into()));
            }
            Selection::Unusable(reason) => return Err(OidcError::InvalidToken(reason)),
        };
        if key.verify(alg, jws.signing_input.as_bytes(), &jws.signature).is_err() {
            return Err(OidcError::InvalidToken(
                "The token's signature does not verify with the identity provider's key".into(),
            ));
        }

        let claims = jws.claims;
        let now = Timestamp::from_system(self.clock.now()).0;
        let leeway = i64::try_from(self.config.clock_leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = numeric_date(&claims, "exp")?.ok_or_else(|| missing_claim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(OidcError::Expired(format!(
                "Token expired: current date/time {now} must be before the expiration date/time {exp}"
            )));
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")? {
            if now.saturating_add(leeway) < nbf {
                return Err(OidcError::InvalidToken(format!(
                    "Token not yet valid: current date/time {now} must not be before the not-before date/time {nbf}"
                )));
            }
        }
        if let Some(iat) = numeric_date(&claims, "iat")? {
            let ahead = leeway.saturating_add(MAX_IAT_AHEAD.as_secs() as i64);
            if iat > now.saturating_add(ahead) {
                return Err(OidcError::InvalidToken(format!(
                    "Token issued in the future: the issued-at date/time {iat} is after the current date/time {now}"
                )));
            }
        }
        let audience = matching_audience(&claims, client_ids)?;
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(Value::String(_)) | None => return Err(missing_claim("sub")),
            Some(_) => return Err(OidcError::InvalidToken("The token's subject (sub) is not a string".into())),
        };
        Ok(VerifiedToken { issuer: provider, subject, audience, claims, expires_at: Timestamp(exp) })
    }

    /// The provider's `jwks_uri`, from its (cached) discovery document.
    async fn jwks_uri(&self, provider: &str) -> Result<String, OidcError> {
        let fetch_discovery = || async {
            let url = format!("{provider}/.well-known/openid-configuration");
            let doc = self.fetcher.get_json(&url).await.map_err(OidcError::Communication)?;
            discovery_from(provider, &url, doc).map_err(OidcError::Communication)
        };
        let slot = self.discovery.slot(provider);
        let cached = slot.get(self.clock.as_ref(), self.config.jwks_ttl, None, fetch_discovery).await?;
        Ok(cached.value.jwks_uri.clone())
    }
}

fn discovery_from(provider: &str, url: &str, doc: Value) -> Result<Discovery, String> {
    let Value::Object(doc) = doc else {
        return Err(format!("The discovery document at {url} is not a JSON object"));
    };
    match doc.get("issuer") {
        Some(Value::String(issuer)) if issuer.trim_end_matches('/') == provider => {}
        Some(Value::String(issuer)) => {
            return Err(format!(
                "The discovery document at {url} names the issuer {}, not {provider}",
                printable(issuer)
            ))
        }
        _ => return Err(format!("The discovery document at {url} has no issuer")),
    }
    let Some(Value::String(jwks_uri)) = doc.get("jwks_uri") else {
        return Err(format!("The discovery document at {url} has no jwks_uri"));
    };
    let jwks_uri = issuer_url::validate_document_url(jwks_uri)
        .map_err(|reason| format!("The jwks_uri {} of {url} cannot be used: {reason}", printable(jwks_uri)))?;
    Ok(Discovery { jwks_uri })
}

fn issuer_of(claims: &Map<String, Value>) -> Result<String, OidcError> {
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        Some(_) => Err(OidcError::InvalidToken("The token's issuer (iss) is not a string".into())),
        None => Err(missing_claim("iss")),
    }
}

fn missing_claim(name: &str) -> OidcError {
    OidcError::InvalidToken(format!("Missing a required claim: {name}"))
}

/// A NumericDate claim (seconds since the epoch, an integer or a fraction), if present.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, OidcError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64)),
        _ => None,
    };
    seconds.map(Some).ok_or_else(|| OidcError::InvalidToken(format!("The token's {name} claim is not a date")))
}

/// The token's `aud` value (a string, or the first of an array) that is one of the client ids.
fn matching_audience(claims: &Map<String, Value>, client_ids: &[String]) -> Result<String, OidcError> {
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(missing_claim("aud")),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => Vec::new(),
    };
    audiences
        .into_iter()
        .find(|aud| client_ids.iter().any(|id| id == aud))
        .map(str::to_owned)
        .ok_or_else(|| OidcError::InvalidToken("Incorrect token audience".into()))
}

/// Fetched documents by URL, each in its own [`Slot`].
struct Cache<T> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

impl<T> Default for Cache<T> {
    fn default() -> Cache<T> {
        Cache { slots: Mutex::new(HashMap::new()) }
    }
}

impl<T> Cache<T> {
    fn slot(&self, key: &str) -> Arc<Slot<T>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= MAX_CACHE_ENTRIES && !slots.contains_key(key) {
            slots.clear();
        }
        slots.entry(key.to_owned()).or_insert_with(|| Arc::new(Slot::default())).clone()
    }
}

/// One cached document. Fetches happen under the slot's lock, so concurrent callers share one fetch.
struct Slot<T> {
    /// Fetch attempts completed, to tell a caller that waited for the lock that a fetch happened meanwhile.
    attempts: AtomicU64,
    state: tokio::sync::Mutex<SlotState<T>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Slot<T> {
        Slot {
            attempts: AtomicU64::new(0),
            state: tokio::sync::Mutex::new(SlotState {
                value: None,
                fetched_at: None,
                attempted_at: None,
                last_error: None,
            }),
        }
    }
}

struct SlotState<T> {
    value: Option<Arc<T>>,
    /// When `value` was fetched.
    fetched_at: Option<SystemTime>,
    /// When the last fetch, successful or not, started.
    attempted_at: Option<SystemTime>,
    /// The outcome of the last fetch, if it failed.
    last_error: Option<OidcError>,
}

struct Cached<T> {
    value: Arc<T>,
    /// The value comes from a fetch made for (or while waiting for) this call.
    fetched_now: bool,
}

impl<T> Slot<T> {
    /// The cached value if younger than `ttl`; otherwise (or, with `refetch_after`, when the last attempt is
    /// at least that old) a new fetch.
    async fn get<F, Fut>(
        &self,
        clock: &dyn Clock,
        ttl: Duration,
        refetch_after: Option<Duration>,
        fetch: F,
    ) -> Result<Cached<T>, OidcError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, OidcError>>,
    {
        let seen = self.attempts.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let now = clock.now();
        // A time in the future (the clock went back) counts as old.
        let younger_than = |t: Option<SystemTime>, limit: Duration| {
            t.and_then(|t| now.duration_since(t).ok()).is_some_and(|age| age < limit)
        };
        let fresh = state.value.as_ref().filter(|_| younger_than(state.fetched_at, ttl));
        if self.attempts.load(Ordering::Acquire) != seen {
            // Another caller fetched while this one waited for the lock: share its outcome rather than fetch
            // again (a failure too, unless this caller is content with the fresh value it failed to replace).
            match (&state.last_error, fresh) {
                (None, Some(value)) => return Ok(Cached { value: value.clone(), fetched_now: true }),
                (Some(_), Some(value)) if refetch_after.is_none() => {
                    return Ok(Cached { value: value.clone(), fetched_now: false })
                }
                (Some(e), _) => return Err(e.clone()),
                (None, None) => {}
            }
        }
        let wanted = refetch_after.is_some_and(|min| !younger_than(state.attempted_at, min));
        if let Some(value) = fresh {
            if !wanted {
                return Ok(Cached { value: value.clone(), fetched_now: false });
            }
        }
        state.attempted_at = Some(now);
        let outcome = fetch().await;
        let result = match outcome {
            Ok(value) => {
                let value = Arc::new(value);
                state.value = Some(value.clone());
                state.fetched_at = Some(now);
                state.last_error = None;
                Ok(Cached { value, fetched_now: true })
            }
            Err(e) => {
                state.last_error = Some(e.clone());
                Err(e)
            }
        };
        self.attempts.fetch_add(1, Ordering::Release);
        result
    }
}
