//! A stand-in for GitHub Actions' OIDC token service, for the demo.
//!
//! `token.actions.githubusercontent.com` cannot be reached from here (and would not sign tokens for a
//! workflow that is not running), so the demo runs a small but real OpenID Connect issuer on 127.0.0.1:
//! a hyper server on a free port that serves its discovery document at `/.well-known/openid-configuration`
//! and its key set at `/.well-known/jwks`, with a P-256 key generated when it starts. It signs ES256 ID
//! tokens shaped like the ones a GitHub Actions job gets for `aws-actions/configure-aws-credentials`.
//! berth verifies them exactly as it would GitHub's: by fetching the discovery document and the key set
//! over HTTP (plain http is allowed for a loopback issuer).

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The audience GitHub puts in tokens requested for AWS.
pub const AUDIENCE: &str = "sts.amazonaws.com";
/// How long the tokens live, as GitHub's do.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/.well-known/jwks";

/// The workflow run a token speaks for.
pub struct WorkflowRun<'a> {
    pub repository: &'a str,
    /// `refs/heads/<branch>`.
    pub git_ref: &'a str,
    pub sha: &'a str,
    pub workflow: &'a str,
    pub run_id: &'a str,
    pub actor: &'a str,
    pub event_name: &'a str,
}

impl WorkflowRun<'_> {
    /// The token's subject, as GitHub forms it for a branch: `repo:<owner>/<repo>:ref:<ref>`.
    pub fn subject(&self) -> String {
        format!("repo:{}:ref:{}", self.repository, self.git_ref)
    }
}

/// The running issuer. [`StandInIssuer::stop`] ends it and its connections.
pub struct StandInIssuer {
    url: String,
    key: SigningKey,
    kid: String,
    /// Paths requested so far, in order, until taken.
    requests: Arc<Mutex<Vec<String>>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl StandInIssuer {
    /// Generates a signing key and starts serving on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<StandInIssuer> {
        let key = generate_key();
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot listen on 127.0.0.1 for the issuer")?;
        let url = format!("http://{}", listener.local_addr()?);
        let jwk = public_jwk(&key);
        let kid = jwk["kid"].as_str().unwrap_or_default().to_string();
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}{JWKS_PATH}"),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
                                 "repository_owner", "run_id", "run_number", "run_attempt", "workflow", "actor",
                                 "event_name", "ref_type"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid"],
        });
        let documents = Arc::new(Documents {
            discovery: Bytes::from(discovery.to_string()),
            jwks: Bytes::from(json!({ "keys": [jwk] }).to_string()),
        });
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, documents, requests.clone(), stopped));
        Ok(StandInIssuer { url, key, kid, requests, stop, task })
    }

    /// The issuer URL (`iss`), e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its scheme: the prefix of the condition keys `<host>:sub` and `<host>:aud`.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The paths requested since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A GitHub-Actions-shaped ID token for `run`, signed ES256 with the published key.
    pub fn mint(&self, run: &WorkflowRun<'_>) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let owner = run.repository.split('/').next().unwrap_or_default();
        let claims = json!({
            "jti": berth_aws::ids::uuid_v4(),
            "sub": run.subject(),
            "aud": AUDIENCE,
            "ref": run.git_ref,
            "sha": run.sha,
            "repository": run.repository,
            "repository_owner": owner,
            "run_id": run.run_id,
            "run_number": "1",
            "run_attempt": "1",
            "workflow": run.workflow,
            "actor": run.actor,
            "event_name": run.event_name,
            "ref_type": "branch",
            "iss": self.url,
            "iat": now,
            "nbf": now.saturating_sub(5),
            "exp": now + TOKEN_LIFETIME.as_secs(),
        });
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        // JWS ES256 is the raw 64-byte r || s.
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(signature.to_bytes()))
    }

    /// Stops accepting, closes every open connection and waits for the server task to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

struct Documents {
    discovery: Bytes,
    jwks: Bytes,
}

async fn serve(
    listener: TcpListener,
    documents: Arc<Documents>,
    requests: Arc<Mutex<Vec<String>>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors or the like: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let documents = documents.clone();
                let requests = requests.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = answer(&documents, &requests, &req);
                    async move { Ok::<_, Infallible>(answer) }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
    // The verifier's client may keep a connection open: close them all.
    connections.shutdown().await;
}

fn answer(documents: &Documents, requests: &Mutex<Vec<String>>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    requests.lock().unwrap_or_else(PoisonError::into_inner).push(path.to_string());
    let body = match (req.method(), path) {
        (&Method::GET, DISCOVERY_PATH) => Some(documents.discovery.clone()),
        (&Method::GET, JWKS_PATH) => Some(documents.jwks.clone()),
        _ => None,
    };
    let mut resp = match body {
        Some(body) => Response::new(Full::new(body)),
        None => {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"not found\"}")));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    };
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// A fresh P-256 key from the operating system's random source.
fn generate_key() -> SigningKey {
    loop {
        let mut scalar = [0u8; 32];
        berth_aws::ids::random_bytes(&mut scalar);
        // Zero or a value past the group order (about 2^-32 of draws): draw again.
        if let Ok(key) = SigningKey::from_slice(&scalar) {
            return key;
        }
    }
}

/// The key's public JWK, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let x = b64(point.x().map(|x| x.to_vec()).unwrap_or_default());
    let y = b64(point.y().map(|y| y.to_vec()).unwrap_or_default());
    // The thumbprint hashes the required members in lexicographic order, without whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64(Sha256::digest(canonical.as_bytes()));
    json!({ "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid, "x": x, "y": y })
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
