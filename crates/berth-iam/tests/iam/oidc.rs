//! OIDC web-identity token verification against a real issuer on a real socket: a hyper server on
//! 127.0.0.1 serving discovery and JWKS, counting its fetches, rotating keys and stalling on demand.
//! Tokens are GitHub-Actions-shaped and signed with the committed test keys in `tests/data/`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use berth_aws::time::{Clock, SharedClock, Timestamp};
use berth_aws::AwsError;
use berth_iam::oidc::{validate_issuer_url, OidcConfig, OidcError, OidcVerifier, VerifiedToken};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

/// 2025-10-09T08:53:20Z: the tests' "now".
const NOW: i64 = 1_760_000_000;
const AUDIENCE: &str = "sts.amazonaws.com";
const SUBJECT: &str = "repo:acme/shop:ref:refs/heads/main";
const KID_A: &str = "rsa-a";
const KID_B: &str = "rsa-b";
const KID_EC: &str = "ec-p256";

// ---------------------------------------------------------------------------------------------------
// Time, keys and tokens

/// A clock the test sets and advances.
struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    fn at(unix: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(UNIX_EPOCH + Duration::from_secs(unix as u64))))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

fn load_rsa(file: &str) -> RsaPrivateKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    RsaPrivateKey::from_pkcs8_der(&STANDARD.decode(body).unwrap()).unwrap()
}

/// The issuer's current signing key.
fn rsa_a() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load_rsa("rsa-2048-a.pem"))
}

/// Another 2048-bit key: the rotated-in key, or the forger's.
fn rsa_b() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load_rsa("rsa-2048-b.pem"))
}

fn rsa_weak() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| load_rsa("rsa-1024-weak.pem"))
}

fn ec_key() -> SigningKey {
    SigningKey::from_slice(&[0x5a; 32]).unwrap()
}

fn other_ec_key() -> SigningKey {
    SigningKey::from_slice(&[0x3c; 32]).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(key: &RsaPublicKey, kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
           "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())})
}

fn ec_jwk(key: &SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
           "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// The keys GitHub-like issuers publish here: RSA key A and the P-256 key.
fn default_jwks() -> Value {
    jwks(&[rsa_jwk(&rsa_a().to_public_key(), KID_A), ec_jwk(&ec_key(), KID_EC)])
}

/// Claims shaped like a GitHub Actions ID token for a push to main.
fn github_claims(iss: &str) -> Value {
    json!({
        "jti": "0e4a54a3-5f38-4d56-8e36-0d2b8e1bb0c4",
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "ref": "refs/heads/main",
        "sha": "2f7c4a3e9d1b6a8c0e5f4d3c2b1a09876543210f",
        "repository": "acme/shop",
        "repository_owner": "acme",
        "run_id": "8812345678",
        "run_number": "42",
        "workflow": "deploy",
        "actor": "octocat",
        "event_name": "push",
        "ref_type": "branch",
        "iss": iss,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 290,
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

fn sign_rs256(key: &RsaPrivateKey, input: &[u8]) -> Vec<u8> {
    key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input)).unwrap()
}

fn mint_rs256(key: &RsaPrivateKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = signing_input(&header, claims);
    let signature = sign_rs256(key, input.as_bytes());
    format!("{input}.{}", b64(signature))
}

fn mint_es256(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let input = signing_input(&header, claims);
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.to_bytes()))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    block.resize(64, 0);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

fn client_ids() -> Vec<String> {
    vec![AUDIENCE.to_string()]
}

fn verifier_with(config: OidcConfig, clock: &Arc<ManualClock>) -> OidcVerifier {
    let clock: SharedClock = clock.clone();
    OidcVerifier::new(config, clock)
}

fn verifier(clock: &Arc<ManualClock>) -> OidcVerifier {
    verifier_with(OidcConfig::default(), clock)
}

fn invalid_token(result: Result<VerifiedToken, OidcError>) -> String {
    match result {
        Err(OidcError::InvalidToken(message)) => message,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

fn communication(result: Result<VerifiedToken, OidcError>) -> String {
    match result {
        Err(OidcError::Communication(message)) => message,
        other => panic!("expected Communication, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// The test issuer

#[derive(Default)]
struct IssuerState {
    jwks: Mutex<Value>,
    /// Replaces the discovery document.
    discovery: Mutex<Option<Value>>,
    /// Replaces the JWKS answer: status and raw body.
    jwks_raw: Mutex<Option<(StatusCode, Vec<u8>)>>,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
    stall_discovery: AtomicBool,
    stall_jwks: AtomicBool,
}

/// An OIDC issuer on 127.0.0.1: `<issuer>/.well-known/openid-configuration` and `<issuer>/jwks`.
struct TestIssuer {
    issuer: String,
    port: u16,
    state: Arc<IssuerState>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl TestIssuer {
    async fn start() -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}/issuer");
        let state = Arc::new(IssuerState { jwks: Mutex::new(default_jwks()), ..IssuerState::default() });
        let accept_loop = tokio::spawn(serve(listener, state.clone(), issuer.clone()));
        TestIssuer { issuer, port, state, accept_loop }
    }

    fn set_jwks(&self, keys: Value) {
        *self.state.jwks.lock().unwrap() = keys;
    }

    fn set_discovery(&self, doc: Value) {
        *self.state.discovery.lock().unwrap() = Some(doc);
    }

    fn set_jwks_raw(&self, status: StatusCode, body: Vec<u8>) {
        *self.state.jwks_raw.lock().unwrap() = Some((status, body));
    }

    /// (discovery fetches, JWKS fetches) so far.
    fn hits(&self) -> (usize, usize) {
        (self.state.discovery_hits.load(Ordering::SeqCst), self.state.jwks_hits.load(Ordering::SeqCst))
    }

    fn claims(&self) -> Value {
        github_claims(&self.issuer)
    }
}

async fn serve(listener: TcpListener, state: Arc<IssuerState>, issuer: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (state, issuer) = (state.clone(), issuer.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (state, issuer) = (state.clone(), issuer.clone());
                async move { Ok::<_, Infallible>(answer(&state, &issuer, request.uri().path()).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(state: &IssuerState, issuer: &str, path: &str) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, body: Vec<u8>| {
        Response::builder().status(status).header("content-type", "application/json").body(Full::from(body)).unwrap()
    };
    match path.strip_prefix("/issuer") {
        Some("/.well-known/openid-configuration") => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            if state.stall_discovery.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let doc = state.discovery.lock().unwrap().clone().unwrap_or_else(|| {
                json!({
                    "issuer": issuer,
                    "jwks_uri": format!("{issuer}/jwks"),
                    "subject_types_supported": ["public", "pairwise"],
                    "response_types_supported": ["id_token"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "sha"],
                })
            });
            respond(StatusCode::OK, doc.to_string().into_bytes())
        }
        Some("/jwks") => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            if state.stall_jwks.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if let Some((status, body)) = state.jwks_raw.lock().unwrap().clone() {
                return respond(status, body);
            }
            respond(StatusCode::OK, state.jwks.lock().unwrap().to_string().into_bytes())
        }
        _ => respond(StatusCode::NOT_FOUND, b"{}".to_vec()),
    }
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------------
// Valid tokens

#[tokio::test]
async fn rs256_github_actions_token_verifies_and_exposes_its_claims() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let token = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());

    let verified = verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await.unwrap();

    assert_eq!(verified.issuer, issuer.issuer);
    assert_eq!(verified.subject, SUBJECT);
    assert_eq!(verified.audience, AUDIENCE);
    assert_eq!(verified.expires_at, Timestamp(NOW + 290));
    assert_eq!(verified.claims["repository"], "acme/shop");
    assert_eq!(verified.claims["ref"], "refs/heads/main");
    assert_eq!(verified.claims["sha"], "2f7c4a3e9d1b6a8c0e5f4d3c2b1a09876543210f");
    assert_eq!(verified.claims["workflow"], "deploy");
    assert_eq!(verified.claims["run_id"], "8812345678");
    assert_eq!(verified.claims["actor"], "octocat");
    assert_eq!(verified.claims["event_name"], "push");
    assert_eq!(issuer.hits(), (1, 1));
}

#[tokio::test]
async fn es256_token_verifies() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let claims = with(issuer.claims(), json!({"sub": "repo:acme/shop:environment:production"}));
    let token = mint_es256(&ec_key(), KID_EC, &claims);

    let verified = verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await.unwrap();

    assert_eq!(verified.subject, "repo:acme/shop:environment:production");
    assert_eq!(verified.audience, AUDIENCE);
}

#[tokio::test]
async fn audience_array_matches_any_of_the_client_ids() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let claims = with(issuer.claims(), json!({"aud": ["https://github.com/acme", "my-app"]}));
    let token = mint_es256(&ec_key(), KID_EC, &claims);
    let ids = vec!["sts.amazonaws.com".to_string(), "my-app".to_string()];

    let verified = verifier(&clock).verify(&token, &issuer.issuer, &ids).await.unwrap();

    assert_eq!(verified.audience, "my-app");
}

#[tokio::test]
async fn trailing_slashes_of_issuer_and_provider_url_are_tolerated() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let slashed = format!("{}/", issuer.issuer);

    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"iss": slashed})));
    assert_eq!(verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap().issuer, issuer.issuer);

    let token = mint_es256(&ec_key(), KID_EC, &issuer.claims());
    assert_eq!(verifier.verify(&token, &slashed, &client_ids()).await.unwrap().issuer, issuer.issuer);
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key_of_its_type() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let token = mint_rs256(rsa_a(), None, &issuer.claims());

    // One RSA key (and one EC key, which does not count for RS256).
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();

    // Two RSA keys: which one is meant is ambiguous.
    issuer.set_jwks(jwks(&[rsa_jwk(&rsa_a().to_public_key(), KID_A), rsa_jwk(&rsa_b().to_public_key(), KID_B)]));
    let fresh = verifier_with(OidcConfig::default(), &clock);
    let message = invalid_token(fresh.verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("several keys"), "{message}");
}

#[tokio::test]
async fn fractional_numeric_dates_are_accepted() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let claims = with(issuer.claims(), json!({"exp": (NOW + 60) as f64 + 0.5, "iat": NOW as f64 - 0.25}));
    let token = mint_es256(&ec_key(), KID_EC, &claims);

    let verified = verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(verified.expires_at, Timestamp(NOW + 60));
}

// ---------------------------------------------------------------------------------------------------
// Claims

#[tokio::test]
async fn wrong_audience_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    for aud in [json!("sts.amazon.com"), json!(["a", "b"]), json!([]), json!(42)] {
        let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({ "aud": aud })));
        let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
        assert_eq!(message, "Incorrect token audience");
    }
    // A provider with no client ids accepts no audience.
    let token = mint_es256(&ec_key(), KID_EC, &issuer.claims());
    assert_eq!(invalid_token(verifier.verify(&token, &issuer.issuer, &[]).await), "Incorrect token audience");
}

#[tokio::test]
async fn missing_required_claims_are_named() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    for claim in ["aud", "sub", "exp"] {
        let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({ claim: null })));
        let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
        assert_eq!(message, format!("Missing a required claim: {claim}"));
    }
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"iss": null})));
    let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    assert_eq!(message, "Missing a required claim: iss");

    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"exp": "tomorrow"})));
    let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("exp"), "{message}");
}

#[tokio::test]
async fn expired_token_gives_expired_with_both_dates() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let claims = with(issuer.claims(), json!({"iat": NOW - 400, "nbf": NOW - 400, "exp": NOW - 100}));
    let token = mint_rs256(rsa_a(), Some(KID_A), &claims);

    match verifier.verify(&token, &issuer.issuer, &client_ids()).await {
        Err(OidcError::Expired(message)) => assert_eq!(
            message,
            format!("Token expired: current date/time {NOW} must be before the expiration date/time {}", NOW - 100)
        ),
        other => panic!("expected Expired, got {other:?}"),
    }

    // `exp` is the first second the token is no longer valid.
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"exp": NOW})));
    assert!(matches!(verifier.verify(&token, &issuer.issuer, &client_ids()).await, Err(OidcError::Expired(_))));
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"exp": NOW + 1})));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();

    // The clock moves on: a token that was valid expires.
    clock.advance(Duration::from_secs(1));
    assert!(matches!(verifier.verify(&token, &issuer.issuer, &client_ids()).await, Err(OidcError::Expired(_))));
}

#[tokio::test]
async fn clock_leeway_applies_to_exp_and_nbf() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let config = OidcConfig { clock_leeway: Duration::from_secs(30), ..OidcConfig::default() };
    let verifier = verifier_with(config, &clock);

    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"exp": NOW - 20})));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"exp": NOW - 30})));
    assert!(matches!(verifier.verify(&token, &issuer.issuer, &client_ids()).await, Err(OidcError::Expired(_))));
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"nbf": NOW + 30})));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"nbf": NOW + 31})));
    invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let token = mint_rs256(rsa_a(), Some(KID_A), &with(issuer.claims(), json!({"nbf": NOW + 60})));

    let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("not yet valid"), "{message}");

    clock.advance(Duration::from_secs(60));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
}

#[tokio::test]
async fn iat_far_in_the_future_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let claims = with(issuer.claims(), json!({"iat": NOW + 3600, "nbf": null, "exp": NOW + 7200}));
    let token = mint_es256(&ec_key(), KID_EC, &claims);
    let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("issued in the future"), "{message}");

    // A little ahead (a few seconds of skew) is fine.
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"iat": NOW + 5, "nbf": null})));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
}

#[tokio::test]
async fn wrong_issuer_is_refused_without_fetching() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    for iss in ["https://token.actions.githubusercontent.com", "http://127.0.0.1:1/issuer", "", "HTTP://127.0.0.1"] {
        let token = mint_rs256(rsa_a(), Some(KID_A), &with(issuer.claims(), json!({ "iss": iss })));
        let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
        assert_eq!(message, format!("No OpenIDConnect provider found in your account for {iss}"));
    }
    let token = mint_es256(&ec_key(), KID_EC, &with(issuer.claims(), json!({"iss": 7})));
    invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    assert_eq!(issuer.hits(), (0, 0));
}

// ---------------------------------------------------------------------------------------------------
// Signatures and algorithms

#[tokio::test]
async fn token_signed_by_another_key_with_the_same_kid_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);

    let forged = mint_rs256(rsa_b(), Some(KID_A), &issuer.claims());
    let message = invalid_token(verifier.verify(&forged, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("signature"), "{message}");

    let forged = mint_es256(&other_ec_key(), KID_EC, &issuer.claims());
    invalid_token(verifier.verify(&forged, &issuer.issuer, &client_ids()).await);

    // A bad signature is not a reason to refetch the keys.
    assert_eq!(issuer.hits(), (1, 1));
}

#[tokio::test]
async fn alg_none_with_empty_signature_is_refused_before_any_fetch() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let claims = issuer.claims();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "typ": "JWT", "kid": KID_A}),
        json!({"alg": "None"}),
        json!({"typ": "JWT"}),
        json!({"alg": null}),
    ] {
        let token = format!("{}.", signing_input(&header, &claims));
        let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
        assert!(message.contains("algorithm"), "{header}: {message}");
    }
    assert_eq!(issuer.hits(), (0, 0));
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let public = rsa_a().to_public_key();
    let der = public.to_public_key_der().unwrap();
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in STANDARD.encode(der.as_bytes()).as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    let secrets: Vec<Vec<u8>> = vec![
        pem.into_bytes(),
        der.as_bytes().to_vec(),
        public.n().to_bytes_be(),
        rsa_jwk(&public, KID_A).to_string().into_bytes(),
    ];
    for alg in ["HS256", "HS384", "HS512"] {
        for secret in &secrets {
            let header = json!({"alg": alg, "typ": "JWT", "kid": KID_A});
            let input = signing_input(&header, &issuer.claims());
            let token = format!("{input}.{}", b64(hmac_sha256(secret, input.as_bytes())));
            let message = invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
            assert!(message.contains(alg), "{message}");
        }
    }
    for alg in ["RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA", "rs256"] {
        let header = json!({"alg": alg, "kid": KID_A});
        let input = signing_input(&header, &issuer.claims());
        let token = format!("{input}.{}", b64(sign_rs256(rsa_a(), input.as_bytes())));
        invalid_token(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    }
    assert_eq!(issuer.hits(), (0, 0));
}

#[tokio::test]
async fn algorithm_and_key_type_must_agree() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);

    // An ES256 header naming the RSA key, and an RS256 header naming the EC key.
    let es_on_rsa = mint_es256(&ec_key(), KID_A, &issuer.claims());
    let message = invalid_token(verifier.verify(&es_on_rsa, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("RS256") && message.contains("ES256"), "{message}");
    let rs_on_ec = mint_rs256(rsa_a(), Some(KID_EC), &issuer.claims());
    invalid_token(verifier.verify(&rs_on_ec, &issuer.issuer, &client_ids()).await);

    // A JWK that declares another alg is not used for this one.
    let mut jwk = rsa_jwk(&rsa_a().to_public_key(), KID_A);
    jwk["alg"] = json!("RS512");
    issuer.set_jwks(jwks(&[jwk]));
    let token = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());
    let fresh = verifier_with(OidcConfig::default(), &clock);
    let message = invalid_token(fresh.verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("RS512"), "{message}");
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    for token in [mint_rs256(rsa_a(), Some(KID_A), &issuer.claims()), mint_es256(&ec_key(), KID_EC, &issuer.claims())] {
        let parts: Vec<&str> = token.split('.').collect();
        let other_branch = with(issuer.claims(), json!({"sub": "repo:acme/shop:ref:refs/heads/evil"}));
        let tampered = format!("{}.{}.{}", parts[0], b64(other_branch.to_string()), parts[2]);
        let message = invalid_token(verifier.verify(&tampered, &issuer.issuer, &client_ids()).await);
        assert!(message.contains("signature"), "{message}");

        // A flipped bit in the signature, and a truncated signature.
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
        invalid_token(verifier.verify(&flipped, &issuer.issuer, &client_ids()).await);
        let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&signature[..signature.len() - 1]));
        invalid_token(verifier.verify(&truncated, &issuer.issuer, &client_ids()).await);

        // The untouched token still verifies.
        verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let good = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());
    let parts: Vec<&str> = good.split('.').collect();
    let (h, c, s) = (parts[0], parts[1], parts[2]);
    let malformed = vec![
        String::new(),
        "not-a-token".to_string(),
        ".".to_string(),
        "..".to_string(),
        format!("{h}.{c}"),
        format!("{h}.{c}.{s}.{s}"),
        // A JWE has five parts.
        format!("{h}.{c}.{s}.{c}.{s}"),
        format!("{h}.{c}.{s}="),
        format!("{h}=.{c}.{s}"),
        format!("{h}.{c}!.{s}"),
        format!("{h}.{c}.+{}", &s[1..]),
        format!("{h}.+{}.{s}", &c[1..]),
        format!(" {good}"),
        format!("{good}\n"),
        format!("{}.{c}.{s}", b64("not json")),
        format!("{}.{c}.{s}", b64("[\"RS256\"]")),
        format!("{h}.{}.{s}", b64("{\"sub\": ")),
        format!("{h}.{}.{s}", b64("\"a string\"")),
        format!("{h}.{}.{s}", b64([0xff, 0xfe, 0x00])),
        format!("{}.{c}.{s}", b64(json!({"alg": "RS256", "kid": 5}).to_string())),
        format!("{}.{c}.{s}", b64(json!({"alg": "RS256", "crit": ["exp"]}).to_string())),
        format!("é.{c}.{s}"),
        "a".repeat(20_001),
    ];
    for token in &malformed {
        let result = verifier.verify(token, &issuer.issuer, &client_ids()).await;
        assert!(matches!(result, Err(OidcError::InvalidToken(_))), "{token:.80}: {result:?}");
    }
    let message = invalid_token(verifier.verify(&format!("{h}.{c}"), &issuer.issuer, &client_ids()).await);
    assert_eq!(
        message,
        "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)"
    );
    // None of these needed the issuer's keys.
    assert_eq!(issuer.hits(), (0, 0));
}

#[tokio::test]
async fn weak_and_unusable_keys_are_not_used() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);

    // A 1024-bit RSA key is refused, with the reason.
    issuer.set_jwks(jwks(&[rsa_jwk(&rsa_weak().to_public_key(), "weak")]));
    let token = mint_rs256(rsa_weak(), Some("weak"), &issuer.claims());
    let message = invalid_token(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("1024 bits"), "{message}");

    // A key for encryption only, and key types berth does not use, are as good as absent.
    let mut enc = rsa_jwk(&rsa_a().to_public_key(), KID_A);
    enc["use"] = json!("enc");
    let oct = json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")});
    let p384 = json!({"kty": "EC", "crv": "P-384", "kid": KID_EC, "x": b64([1u8; 48]), "y": b64([2u8; 48])});
    issuer.set_jwks(jwks(&[enc, oct, p384, json!("junk"), json!({"kty": "RSA", "kid": "broken", "n": "!!"})]));
    for token in [
        mint_rs256(rsa_a(), Some(KID_A), &issuer.claims()),
        mint_es256(&ec_key(), KID_EC, &issuer.claims()),
        mint_rs256(rsa_a(), None, &issuer.claims()),
    ] {
        let message = invalid_token(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
        assert_eq!(
            message,
            "Couldn't retrieve verification key from your identity provider,  please reference \
             AssumeRoleWithWebIdentity documentation for requirements"
        );
    }
    let token = mint_rs256(rsa_a(), Some("broken"), &issuer.claims());
    let message = invalid_token(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("malformed"), "{message}");

    // An EC point that is not on the curve.
    let mut off_curve = ec_jwk(&ec_key(), KID_EC);
    off_curve["y"] = json!(b64([7u8; 32]));
    issuer.set_jwks(jwks(&[off_curve]));
    let token = mint_es256(&ec_key(), KID_EC, &issuer.claims());
    let message = invalid_token(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
    assert!(message.contains("curve"), "{message}");
}

// ---------------------------------------------------------------------------------------------------
// The key cache

#[tokio::test]
async fn cache_serves_a_second_verification_without_any_fetch_until_the_ttl() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let config = OidcConfig { jwks_ttl: Duration::from_secs(600), ..OidcConfig::default() };
    let verifier = verifier_with(config, &clock);
    let claims = with(issuer.claims(), json!({"exp": NOW + 3600}));
    let token = mint_rs256(rsa_a(), Some(KID_A), &claims);

    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 1));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    verifier.verify(&mint_es256(&ec_key(), KID_EC, &claims), &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 1));

    clock.advance(Duration::from_secs(599));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 1));

    // Past the TTL both documents are fetched again.
    clock.advance(Duration::from_secs(1));
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (2, 2));
}

#[tokio::test]
async fn unknown_kid_refetches_once_and_then_is_rate_limited() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let claims = with(issuer.claims(), json!({"exp": NOW + 3600}));

    verifier.verify(&mint_rs256(rsa_a(), Some(KID_A), &claims), &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 1));

    // The issuer rotates to key B; a token signed with B makes exactly one refetch of the key set.
    clock.advance(Duration::from_secs(60));
    issuer.set_jwks(jwks(&[rsa_jwk(&rsa_b().to_public_key(), KID_B)]));
    let rotated = mint_rs256(rsa_b(), Some(KID_B), &claims);
    verifier.verify(&rotated, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 2));
    verifier.verify(&rotated, &issuer.issuer, &client_ids()).await.unwrap();
    assert_eq!(issuer.hits(), (1, 2));

    // Another unknown kid within min_refetch_interval does not refetch.
    clock.advance(Duration::from_secs(29));
    let unknown = mint_rs256(rsa_a(), Some("rsa-c"), &claims);
    let message = invalid_token(verifier.verify(&unknown, &issuer.issuer, &client_ids()).await);
    assert!(message.starts_with("Couldn't retrieve verification key"), "{message}");
    invalid_token(verifier.verify(&unknown, &issuer.issuer, &client_ids()).await);
    assert_eq!(issuer.hits(), (1, 2));
    // The rotated-out key A is gone from the set.
    let old = mint_rs256(rsa_a(), Some(KID_A), &claims);
    invalid_token(verifier.verify(&old, &issuer.issuer, &client_ids()).await);
    assert_eq!(issuer.hits(), (1, 2));

    // Once the interval has passed, an unknown kid may refetch again (once).
    clock.advance(Duration::from_secs(1));
    invalid_token(verifier.verify(&unknown, &issuer.issuer, &client_ids()).await);
    invalid_token(verifier.verify(&unknown, &issuer.issuer, &client_ids()).await);
    assert_eq!(issuer.hits(), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_share_one_fetch() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let verifier = Arc::new(verifier(&clock));
    let token = mint_es256(&ec_key(), KID_EC, &issuer.claims());
    let ids = client_ids();

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (verifier, token, provider, ids) =
                (verifier.clone(), token.clone(), issuer.issuer.clone(), ids.clone());
            tokio::spawn(async move { verifier.verify(&token, &provider, &ids).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(issuer.hits(), (1, 1));
}

// ---------------------------------------------------------------------------------------------------
// An issuer that is slow, gone or misbehaving

#[tokio::test]
async fn issuer_that_never_answers_gives_communication_within_the_timeout() {
    let issuer = TestIssuer::start().await;
    issuer.state.stall_discovery.store(true, Ordering::SeqCst);
    let clock = ManualClock::at(NOW);
    let config = OidcConfig { fetch_timeout: Duration::from_millis(300), ..OidcConfig::default() };
    let verifier = verifier_with(config, &clock);
    let token = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());

    let started = Instant::now();
    let message = communication(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(280) && took < Duration::from_millis(1000), "took {took:?}");
    assert!(message.contains("did not answer within 300 ms"), "{message}");
    assert_eq!(issuer.hits(), (1, 0));

    // A stalled key set, behind a discovery document that answers, is bounded the same way.
    issuer.state.stall_discovery.store(false, Ordering::SeqCst);
    issuer.state.stall_jwks.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let message = communication(verifier.verify(&token, &issuer.issuer, &client_ids()).await);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert!(message.contains("/jwks"), "{message}");

    // Once the issuer answers again, verification works (failures are not cached).
    issuer.state.stall_jwks.store(false, Ordering::SeqCst);
    verifier.verify(&token, &issuer.issuer, &client_ids()).await.unwrap();
}

#[tokio::test]
async fn unreachable_issuer_gives_communication() {
    let port = closed_port().await;
    let provider = format!("http://127.0.0.1:{port}/issuer");
    let clock = ManualClock::at(NOW);
    let verifier = verifier(&clock);
    let token = mint_rs256(rsa_a(), Some(KID_A), &github_claims(&provider));

    let started = Instant::now();
    let message = communication(verifier.verify(&token, &provider, &client_ids()).await);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(message.contains(&provider) && message.contains("could not be reached"), "{message}");
}

#[tokio::test]
async fn https_issuer_goes_through_tls() {
    // The test issuer speaks plain http: an https URL must make a TLS handshake, which fails.
    let issuer = TestIssuer::start().await;
    let provider = format!("https://127.0.0.1:{}/issuer", issuer.port);
    let clock = ManualClock::at(NOW);
    let config = OidcConfig { fetch_timeout: Duration::from_secs(2), ..OidcConfig::default() };
    let verifier = verifier_with(config, &clock);
    let token = mint_rs256(rsa_a(), Some(KID_A), &github_claims(&provider));

    let message = communication(verifier.verify(&token, &provider, &client_ids()).await);
    assert!(message.contains("could not be reached"), "{message}");
    assert_eq!(issuer.hits(), (0, 0));
}

#[tokio::test]
async fn bad_discovery_documents_give_communication() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let token = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());
    let jwks_uri = format!("{}/jwks", issuer.issuer);
    let cases = [
        (json!({"issuer": "https://token.actions.githubusercontent.com", "jwks_uri": jwks_uri}), "names the issuer"),
        (json!({"jwks_uri": jwks_uri}), "no issuer"),
        (json!({"issuer": issuer.issuer}), "no jwks_uri"),
        (json!({"issuer": issuer.issuer, "jwks_uri": "http://example.com/jwks"}), "loopback"),
        (json!({"issuer": issuer.issuer, "jwks_uri": "file:///etc/passwd"}), "https://"),
        (json!(["not", "an", "object"]), "not a JSON object"),
    ];
    for (doc, expected) in cases {
        issuer.set_discovery(doc);
        let message = communication(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    assert_eq!(issuer.hits().1, 0);
}

#[tokio::test]
async fn bad_key_sets_give_communication() {
    let issuer = TestIssuer::start().await;
    let clock = ManualClock::at(NOW);
    let token = mint_rs256(rsa_a(), Some(KID_A), &issuer.claims());
    let huge = format!("{{\"keys\": [], \"padding\": \"{}\"}}", "x".repeat(2 << 20)).into_bytes();
    let cases = [
        (StatusCode::NOT_FOUND, b"{}".to_vec(), "HTTP 404"),
        (StatusCode::FOUND, b"{}".to_vec(), "HTTP 302"),
        (StatusCode::OK, b"<html>".to_vec(), "JSON"),
        (StatusCode::OK, b"{\"keys\": {}}".to_vec(), "keys"),
        (StatusCode::OK, huge, "larger than 1048576 bytes"),
    ];
    for (status, body, expected) in cases {
        issuer.set_jwks_raw(status, body);
        let message = communication(verifier(&clock).verify(&token, &issuer.issuer, &client_ids()).await);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[tokio::test]
async fn provider_url_outside_the_url_rule_is_not_fetched() {
    let clock = ManualClock::at(NOW);
    let provider = "http://example.com/issuer";
    let token = mint_rs256(rsa_a(), Some(KID_A), &github_claims(provider));
    let message = communication(verifier(&clock).verify(&token, provider, &client_ids()).await);
    assert!(message.contains("loopback"), "{message}");
}

// ---------------------------------------------------------------------------------------------------
// Issuer URLs, peeking, AWS errors

#[test]
fn issuer_url_rule() {
    for (url, normalized) in [
        ("https://token.actions.githubusercontent.com", "https://token.actions.githubusercontent.com"),
        ("https://token.actions.githubusercontent.com/", "https://token.actions.githubusercontent.com"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
        ("http://127.0.0.1:8080/x/", "http://127.0.0.1:8080/x"),
        ("http://localhost:1/", "http://localhost:1"),
        ("http://LOCALHOST:1", "http://LOCALHOST:1"),
        ("http://127.8.9.10/issuer", "http://127.8.9.10/issuer"),
        ("http://[::1]:9000/issuer", "http://[::1]:9000/issuer"),
        (
            "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        ),
        ("https://[2001:db8::1]:8443/", "https://[2001:db8::1]:8443"),
    ] {
        assert_eq!(validate_issuer_url(url).as_deref(), Ok(normalized), "{url}");
    }
    for url in [
        "",
        "http://example.com",
        "http://example.com/issuer",
        "http://10.0.0.1/",
        "http://[::2]/",
        "http://localhost.evil.com/",
        "http://127.0.0.1.nip.io/",
        "ftp://token.actions.githubusercontent.com",
        "token.actions.githubusercontent.com",
        "https://",
        "https:///path",
        "https://:443/",
        "https://token.actions.githubusercontent.com?x=1",
        "https://token.actions.githubusercontent.com/path?x=1",
        "https://token.actions.githubusercontent.com#frag",
        "https://user@token.actions.githubusercontent.com",
        "http://user:pw@127.0.0.1/",
        "https://token.actions.githubusercontent.com:99999",
        "https://token.actions.githubusercontent.com:",
        "https://token.actions.githubusercontent.com:x",
        "https://bad host/",
        "https://tökén.example/",
        "https://[::1/",
        "HTTPS://token.actions.githubusercontent.com",
    ] {
        assert!(validate_issuer_url(url).is_err(), "{url} was accepted");
    }
    let long = format!("https://example.com/{}", "a".repeat(300));
    assert!(validate_issuer_url(&long).is_err());
}

#[test]
fn peek_issuer_reads_iss_without_verifying() {
    let claims = github_claims("https://token.actions.githubusercontent.com");
    let token = mint_es256(&other_ec_key(), "whatever", &claims);
    assert_eq!(OidcVerifier::peek_issuer(&token).unwrap(), "https://token.actions.githubusercontent.com");

    let unsigned = format!("{}.", signing_input(&json!({"alg": "none"}), &claims));
    assert_eq!(OidcVerifier::peek_issuer(&unsigned).unwrap(), "https://token.actions.githubusercontent.com");

    for bad in ["", "a.b", "a.b.c", &format!("{}.", signing_input(&json!({}), &json!({"sub": "x"})))] {
        assert!(matches!(OidcVerifier::peek_issuer(bad), Err(OidcError::InvalidToken(_))), "{bad}");
    }
}

#[test]
fn errors_map_to_sts_codes() {
    let cases = [
        (OidcError::InvalidToken("Incorrect token audience".into()), "InvalidIdentityToken"),
        (OidcError::Expired("Token expired: …".into()), "ExpiredTokenException"),
        (OidcError::Communication("unreachable".into()), "IDPCommunicationError"),
    ];
    for (error, code) in cases {
        let message = error.to_string();
        let aws = AwsError::from(error);
        assert_eq!((aws.status, aws.code.as_ref(), aws.message.as_str()), (400, code, message.as_str()));
    }
}
