//! The OCI distribution data path (`/v2/…`, distribution spec v1.1) on berth's endpoint: what
//! `docker push`/`pull` and `skopeo` speak. Bodies stream in and out; nothing is buffered whole.
//!
//! Auth: HTTP Basic with user `AWS` and the password from `GetAuthorizationToken`. The password
//! names an access key; the key is looked up again on every request and the request is authorized
//! with IAM for that identity (identity policies and the repository policy), as the ECR API action
//! the request corresponds to. Anonymous requests get the `401` challenge.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use berth_aws::{Authorizer, AuthzRequest, CredentialStore, Principal};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::registry::Registry;

/// The response body type of the data path (and of berth's whole HTTP server).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Who a data-path request is, once its Basic credentials checked out.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub source_ip: Option<std::net::IpAddr>,
}

/// An OCI error: status, spec code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError { status, code, message: message.into() }
    }
    pub fn unauthorized(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }
    pub fn denied(message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::FORBIDDEN, "DENIED", message)
    }
}

/// The `/v2/` handler.
pub struct DataPath {
    registry: Registry,
    credentials: Arc<dyn CredentialStore>,
    authorizer: Arc<dyn Authorizer>,
}

impl DataPath {
    pub fn new(registry: Registry, credentials: Arc<dyn CredentialStore>, authorizer: Arc<dyn Authorizer>) -> DataPath {
        DataPath { registry, credentials, authorizer }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether a request path belongs to the data path.
    pub fn handles(path: &str) -> bool {
        path == "/v2" || path.starts_with("/v2/")
    }

    /// Answers one data-path request.
    pub async fn handle<B>(&self, req: Request<B>, peer: Option<SocketAddr>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let caller = match self.authenticate(req.headers(), peer) {
            Ok(c) => c,
            Err(e) => return self.error_response(&e),
        };
        let path = req.uri().path();
        if path == "/v2" || path == "/v2/" {
            let _ = caller;
            let mut resp = Response::new(full(Bytes::from_static(b"{}")));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp.headers_mut().insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
            return resp;
        }
        self.error_response(&OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ))
    }

    /// Checks the Basic credentials: user `AWS`, a password berth issued and that has not expired,
    /// for an access key that still exists (and, for a session, has not expired).
    pub fn authenticate(&self, headers: &http::HeaderMap, peer: Option<SocketAddr>) -> Result<Caller, OciError> {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| OciError::unauthorized("authentication required"))?;
        let encoded = auth.strip_prefix("Basic ").or_else(|| auth.strip_prefix("basic ")).ok_or_else(|| {
            OciError::unauthorized("use Basic credentials: docker login -u AWS -p $(aws ecr get-login-password)")
        })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OciError::unauthorized("malformed Basic credentials"))?;
        let (user, password) =
            decoded.split_once(':').ok_or_else(|| OciError::unauthorized("malformed Basic credentials"))?;
        if user != "AWS" {
            return Err(OciError::unauthorized("the user name is AWS"));
        }
        let now = self.registry.now();
        let claims =
            self.registry.tokens().verify_password(password, now).map_err(|e| OciError::unauthorized(e.to_string()))?;
        let credential = self
            .credentials
            .lookup(&claims.access_key_id)
            .ok_or_else(|| OciError::unauthorized("the credentials this password was issued for no longer exist"))?;
        if credential.expires_at.is_some_and(|exp| now >= exp) {
            return Err(OciError::unauthorized("the credentials this password was issued for have expired"));
        }
        Ok(Caller { principal: credential.principal.clone(), source_ip: peer.map(|p| p.ip()) })
    }

    /// Authorizes `action` (`ecr:BatchGetImage`) on `repository` for the caller, with IAM: identity
    /// policies together with the repository policy.
    pub fn authorize(&self, caller: &Caller, action: &str, repository: &str) -> Result<(), OciError> {
        let resource = self.registry.repository_arn(repository);
        let policy = self.registry.repository_policy(repository);
        let request = AuthzRequest {
            principal: &caller.principal,
            action,
            resource: &resource,
            source_ip: caller.source_ip,
            now: self.registry.now(),
            region: &self.registry.aws().region,
            resource_policy: policy.as_deref(),
        };
        if self.authorizer.is_allowed(&request) {
            Ok(())
        } else {
            Err(OciError::denied(format!(
                "User: {} is not authorized to perform: {action} on resource: {resource}",
                caller.principal.arn
            )))
        }
    }

    /// The spec's error body, with the Basic challenge on 401.
    pub fn error_response(&self, e: &OciError) -> Response<Body> {
        let body = json!({ "errors": [{ "code": e.code, "message": e.message, "detail": null }] });
        let mut resp = Response::new(full(body.to_string()));
        *resp.status_mut() = e.status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
        if e.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"https://{}/\",service=\"ecr.amazonaws.com\"", self.registry.host());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}
