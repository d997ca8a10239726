//! The OCI distribution data path (`/v2/…`, distribution spec v1.1) on berth's endpoint: what
//! `docker push`/`pull` and `skopeo` speak. Bodies stream in and out; nothing is buffered whole.
//!
//! Auth: HTTP Basic with user `AWS` and the password from `GetAuthorizationToken`. The password
//! names an access key; the key is looked up again on every request and the request is authorized
//! with IAM for that identity (identity policies and the repository policy), as the ECR API action
//! the request corresponds to. Anonymous requests get the `401` challenge. The one exception is a
//! blob `GET` carrying a valid signature from `GetDownloadUrlForLayer`: the URL is the credential.
//!
//! Every change goes through [`Registry`]; this module only speaks HTTP. Uploads are streamed into
//! the blob store in batches of about 1 MiB while the next batch is read from the socket, so a large
//! layer never sits in memory and the disk and the network work at the same time. Blobs are served
//! from their file in chunks read on the blocking pool, one chunk ahead of the socket.

use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use base64::Engine as _;
use berth_aws::{Authorizer, AuthzRequest, CredentialStore, Principal};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use crate::blob_store::{Digest, UploadId};
use crate::error::RegistryError;
use crate::manifest::{self, MAX_MANIFEST_BYTES};
use crate::registry::{validate_repository_name, validate_tag, Reference, Registry};

/// The response body type of the data path (and of berth's whole HTTP server).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    full(Bytes::new())
}

/// How much of an upload is gathered before it is handed to the blob store: large enough that the
/// per-call costs (a blocking-pool hop, a lock) vanish, small enough to bound memory per upload.
const UPLOAD_BATCH: usize = 1024 * 1024;
/// Batches read ahead of the disk per upload.
const UPLOAD_QUEUE: usize = 2;
/// One read of a blob being served; one more is read ahead while the socket takes this one.
const DOWNLOAD_CHUNK: u64 = 512 * 1024;
/// Blobs up to this size (configs, small layers) are read whole instead of streamed.
const SMALL_BLOB: u64 = 64 * 1024;
/// ECR's largest page of tags.
const MAX_TAGS_PAGE: usize = 1000;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

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
    fn bad_request(code: &'static str, message: impl Into<String>) -> OciError {
        OciError::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn digest_invalid(message: impl Into<String>) -> OciError {
        OciError::bad_request("DIGEST_INVALID", message)
    }
    fn blob_unknown(digest: &Digest) -> OciError {
        OciError::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", format!("blob {digest} is unknown to this repository"))
    }
    fn upload_unknown() -> OciError {
        OciError::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    }
    fn body_unreadable() -> OciError {
        OciError::bad_request("BLOB_UPLOAD_INVALID", "the request body could not be read to its end")
    }
}

/// What a request was doing when the registry refused it: the same [`RegistryError`] means a
/// different spec error for a manifest push than for a blob read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Doing {
    ManifestPut,
    Other,
}

/// The one mapping from the registry's errors to the spec's. Server faults are logged here and
/// answered without their internals.
fn registry_error(e: RegistryError, doing: Doing) -> OciError {
    use RegistryError as E;
    let (status, code) = match &e {
        E::RepositoryNotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        E::ImageNotFound(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        E::LayersNotFound(_) if doing == Doing::ManifestPut => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
        E::LayersNotFound(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        E::ReferencedImagesNotFound(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
        E::ImageTagAlreadyExists(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
        E::ImageDigestDoesNotMatch(_) | E::InvalidLayer(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        E::UploadNotFound(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
        E::InvalidLayerPart(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
        E::EmptyUpload(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
        E::LimitExceeded(_) => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
        E::InvalidManifest(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        E::InvalidName(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
        E::InvalidTag(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
        E::InvalidDigest(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
        E::InvalidParameter(_) if doing == Doing::ManifestPut => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
        E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        E::Store(_) | E::Blob(_) => {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "registry data path failure");
            return OciError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "berth could not complete the request; the server log has the cause",
            );
        }
        E::RepositoryAlreadyExists(_)
        | E::RepositoryNotEmpty(_)
        | E::ImageAlreadyExists(_)
        | E::LayerAlreadyExists(_)
        | E::LifecyclePolicyNotFound(_)
        | E::RepositoryPolicyNotFound(_)
        | E::InvalidTagParameter(_)
        | E::TooManyTags(_)
        | E::Validation(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
    };
    OciError::new(status, code, e.to_string())
}

/// A `/v2/<name>/…` request, its path decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Base,
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    UploadStart { name: String },
    Upload { name: String, id: String },
    TagsList { name: String },
    Referrers { name: String, digest: String },
}

impl Route {
    fn name(&self) -> Option<&str> {
        match self {
            Route::Base => None,
            Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::TagsList { name }
            | Route::Referrers { name, .. } => Some(name),
        }
    }

    /// For the log line.
    fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } | Route::Upload { .. } => "upload",
            Route::TagsList { .. } => "tags",
            Route::Referrers { .. } => "referrers",
        }
    }
}

fn unknown_path() -> OciError {
    OciError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "the registry has no API at this path")
}

/// Splits `/v2/<name>/<endpoint>` where `<name>` may itself contain `/`: the endpoint is recognised
/// from the end of the path. Each segment is percent-decoded on its own, so an encoded `/` cannot
/// change the routing.
fn parse_route(path: &str) -> Result<Route, OciError> {
    if path == "/v2" || path == "/v2/" {
        return Ok(Route::Base);
    }
    let rest = path.strip_prefix("/v2/").ok_or_else(unknown_path)?;
    let mut segs = Vec::new();
    for raw in rest.split('/') {
        let seg = percent_decode(raw)
            .filter(|s| !s.contains('/'))
            .ok_or_else(|| OciError::bad_request("NAME_INVALID", "the path has invalid percent-encoding"))?;
        segs.push(seg);
    }
    let n = segs.len();
    let at = |i: usize| segs[i].as_str();
    let name_of = |end: usize| (end > 0).then(|| segs[..end].join("/"));
    let route = if n >= 4 && at(n - 3) == "blobs" && at(n - 2) == "uploads" {
        let id = segs[n - 1].clone();
        let name = name_of(n - 3);
        if id.is_empty() {
            name.map(|name| Route::UploadStart { name })
        } else {
            name.map(|name| Route::Upload { name, id })
        }
    } else if n >= 3 && at(n - 2) == "blobs" && at(n - 1) == "uploads" {
        name_of(n - 2).map(|name| Route::UploadStart { name })
    } else if n >= 3 && at(n - 2) == "tags" && at(n - 1) == "list" {
        name_of(n - 2).map(|name| Route::TagsList { name })
    } else if n >= 3 && !at(n - 1).is_empty() {
        let last = segs[n - 1].clone();
        match at(n - 2) {
            "manifests" => name_of(n - 2).map(|name| Route::Manifest { name, reference: last }),
            "blobs" => name_of(n - 2).map(|name| Route::Blob { name, digest: last }),
            "referrers" => name_of(n - 2).map(|name| Route::Referrers { name, digest: last }),
            _ => None,
        }
    } else {
        None
    };
    route.ok_or_else(unknown_path)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The query's parameters, decoded (`+` is a space); malformed pairs are skipped.
fn query_params(uri: &http::Uri) -> Vec<(String, String)> {
    let Some(q) = uri.query() else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(&k.replace('+', " "))?, percent_decode(&v.replace('+', " "))?))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_digest(s: &str) -> Result<Digest, OciError> {
    Digest::parse(s).map_err(|e| OciError::digest_invalid(format!("invalid digest: {e}")))
}

/// A manifest reference: a digest if it has a `:`, else a tag.
fn parse_reference(s: &str) -> Result<Reference, OciError> {
    if s.contains(':') {
        parse_digest(s).map(Reference::Digest)
    } else {
        validate_tag(s).map_err(|e| OciError::bad_request("TAG_INVALID", e.to_string()))?;
        Ok(Reference::Tag(s.to_string()))
    }
}

/// A decimal number; one too large for a `u64` is `u64::MAX` (never satisfiable, never a panic).
fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable range (absent, several ranges, another unit, malformed): serve the whole blob, as
    /// RFC 9110 allows.
    Whole,
    /// First and last byte, inclusive, within the blob.
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: Option<&HeaderValue>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else { return RangeRequest::Whole };
    let (first, last) = (first.trim(), last.trim());
    let (first, last) = if first.is_empty() {
        // A suffix: the last `n` bytes.
        match parse_number(last) {
            None => return RangeRequest::Whole,
            Some(0) => return RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => return RangeRequest::Unsatisfiable,
            Some(n) => (size - n.min(size), size - 1),
        }
    } else {
        let Some(first) = parse_number(first) else { return RangeRequest::Whole };
        let last = if last.is_empty() {
            u64::MAX
        } else {
            match parse_number(last) {
                Some(l) => l,
                None => return RangeRequest::Whole,
            }
        };
        if first > last {
            return RangeRequest::Whole;
        }
        (first, last)
    };
    if first >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part(first, last.min(size - 1))
}

/// A chunk's `Content-Range: <first>-<last>` (also accepted: a `bytes ` prefix and a `/<total>`).
fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64)> {
    let s = v.to_str().ok()?.trim();
    let s = s.strip_prefix("bytes ").or_else(|| s.strip_prefix("bytes=")).unwrap_or(s);
    let s = s.split('/').next()?;
    let (first, last) = s.split_once('-')?;
    let (first, last) = (parse_number(first)?, parse_number(last)?);
    (first <= last).then_some((first, last))
}

/// The `Range` header of an upload that has `size` bytes: `0-<last byte>` (`0-0` when empty).
fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn response(status: StatusCode, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

/// Why streaming a request body into an upload stopped.
enum AppendFailure {
    Registry(RegistryError),
    Body,
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

    /// Answers one data-path request. Every answer carries `Docker-Distribution-API-Version`;
    /// answers to `HEAD` have no body.
    pub async fn handle<B>(&self, req: Request<B>, peer: Option<SocketAddr>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let route = parse_route(req.uri().path());
        let kind = route.as_ref().map(Route::kind).unwrap_or("unknown");
        let mut resp = match self.dispatch(req, route, peer).await {
            Ok(resp) => resp,
            Err(e) => self.error_response(&e),
        };
        resp.headers_mut().insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        if method == Method::HEAD {
            *resp.body_mut() = empty();
        }
        // No query string: it may hold a download signature.
        tracing::debug!(
            %method,
            route = kind,
            status = resp.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "registry request"
        );
        resp
    }

    async fn dispatch<B>(
        &self,
        req: Request<B>,
        route: Result<Route, OciError>,
        peer: Option<SocketAddr>,
    ) -> Result<Response<Body>, OciError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let params = query_params(req.uri());
        // A `GetDownloadUrlForLayer` URL: the signature is the credential.
        if let Ok(Route::Blob { name, digest }) = &route {
            if req.method() == Method::GET {
                if let (Some(expires), Some(signature)) =
                    (param(&params, "X-Berth-Expires"), param(&params, "X-Berth-Signature"))
                {
                    self.registry
                        .tokens()
                        .verify_download(name, digest, expires, signature, self.registry.now())
                        .map_err(|e| OciError::denied(format!("the download URL is not valid: {e}")))?;
                    let digest = parse_digest(digest)?;
                    return self.blob_get(name, &digest, req.headers(), false).await;
                }
            }
        }
        let caller = self.authenticate(req.headers(), peer)?;
        let route = route?;
        if let Some(name) = route.name() {
            validate_repository_name(name).map_err(|e| OciError::bad_request("NAME_INVALID", e.to_string()))?;
        }
        let method = req.method().clone();
        match route {
            Route::Base => {
                let mut resp = response(StatusCode::OK, full(Bytes::from_static(b"{}")));
                resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(resp)
            }
            Route::Manifest { name, reference } => match method {
                Method::GET | Method::HEAD => {
                    self.authorize(&caller, "ecr:BatchGetImage", &name)?;
                    self.manifest_get(&name, &reference, method == Method::HEAD).await
                }
                Method::PUT => {
                    self.authorize(&caller, "ecr:PutImage", &name)?;
                    self.manifest_put(&name, &reference, req).await
                }
                Method::DELETE => {
                    self.authorize(&caller, "ecr:BatchDeleteImage", &name)?;
                    self.manifest_delete(&name, &reference).await
                }
                _ => self.method_not_allowed("GET, HEAD, PUT, DELETE"),
            },
            Route::Blob { name, digest } => match method {
                Method::GET | Method::HEAD => {
                    let action = if method == Method::HEAD {
                        "ecr:BatchCheckLayerAvailability"
                    } else {
                        "ecr:GetDownloadUrlForLayer"
                    };
                    self.authorize(&caller, action, &name)?;
                    let digest = parse_digest(&digest)?;
                    self.blob_get(&name, &digest, req.headers(), method == Method::HEAD).await
                }
                // ECR removes blobs by garbage collection, never through the data path.
                _ => self.method_not_allowed("GET, HEAD"),
            },
            Route::UploadStart { name } => match method {
                Method::POST => {
                    self.authorize(&caller, "ecr:InitiateLayerUpload", &name)?;
                    self.upload_start(&caller, &name, &params, req).await
                }
                _ => self.method_not_allowed("POST"),
            },
            Route::Upload { name, id } => {
                let action = match method {
                    Method::GET | Method::PATCH => "ecr:UploadLayerPart",
                    Method::PUT => "ecr:CompleteLayerUpload",
                    Method::DELETE => "ecr:InitiateLayerUpload",
                    _ => return self.method_not_allowed("GET, PATCH, PUT, DELETE"),
                };
                self.authorize(&caller, action, &name)?;
                let id = UploadId::parse(&id).ok_or_else(OciError::upload_unknown)?;
                match method {
                    Method::GET => self.upload_status(&name, &id).await,
                    Method::PATCH => self.upload_patch(&name, &id, req).await,
                    Method::PUT => self.upload_complete(&name, &id, &params, req).await,
                    _ => self.upload_cancel(&name, &id).await,
                }
            }
            Route::TagsList { name } => match method {
                Method::GET | Method::HEAD => {
                    self.authorize(&caller, "ecr:ListImages", &name)?;
                    self.tags_list(&name, &params).await
                }
                _ => self.method_not_allowed("GET, HEAD"),
            },
            Route::Referrers { name, digest } => match method {
                Method::GET | Method::HEAD => {
                    self.authorize(&caller, "ecr:DescribeImages", &name)?;
                    let digest = parse_digest(&digest)?;
                    self.referrers(&name, &digest, &params).await
                }
                _ => self.method_not_allowed("GET, HEAD"),
            },
        }
    }

    /// 405 with `Allow`.
    fn method_not_allowed(&self, allow: &'static str) -> Result<Response<Body>, OciError> {
        let mut resp = self.error_response(&OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("the operation is unsupported; this path allows {allow}"),
        ));
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        Ok(resp)
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
        h.insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
        if e.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"https://{}/\",service=\"ecr.amazonaws.com\"", self.registry.host());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }

    // ---- manifests ----

    async fn manifest_get(&self, name: &str, reference: &str, head: bool) -> Result<Response<Body>, OciError> {
        let reference = parse_reference(reference)?;
        let m = self.registry.manifest(name, &reference).await.map_err(|e| registry_error(e, Doing::Other))?;
        if !head {
            // `lastRecordedPullTime` must not slow the pull down, nor fail it.
            let registry = self.registry.clone();
            let (repo, digest) = (name.to_string(), m.digest.clone());
            tokio::spawn(async move {
                if let Err(e) = registry.record_pull(&repo, &digest).await {
                    tracing::warn!(repository = %repo, %digest, error = %e, "could not record a pull");
                }
            });
        }
        let len = m.body.len();
        let mut resp = response(StatusCode::OK, full(m.body));
        let h = resp.headers_mut();
        set(h, header::CONTENT_TYPE, &m.media_type);
        set(h, CONTENT_DIGEST, &m.digest.to_string());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        Ok(resp)
    }

    async fn manifest_put<B>(&self, name: &str, reference: &str, req: Request<B>) -> Result<Response<Body>, OciError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let reference = parse_reference(reference)?;
        // The rest of the body is not read: the connection closes after the answer.
        let too_large = || {
            let e =
                OciError::bad_request("MANIFEST_INVALID", format!("a manifest is at most {MAX_MANIFEST_BYTES} bytes"));
            let mut resp = self.error_response(&e);
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(resp)
        };
        let declared_len =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(parse_number);
        if declared_len.is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
            return too_large();
        }
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = match Limited::new(req.into_body(), MAX_MANIFEST_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return too_large(),
            Err(_) => return Err(OciError::bad_request("MANIFEST_INVALID", "the manifest could not be read")),
        };
        let (tag, expected) = match &reference {
            Reference::Tag(t) => (Some(t.as_str()), None),
            Reference::Digest(d) => (None, Some(d)),
        };
        let put = self
            .registry
            .put_manifest(name, body, content_type.as_deref(), tag, expected)
            .await
            .map_err(|e| registry_error(e, Doing::ManifestPut))?;
        let digest = put.manifest.digest.to_string();
        let mut resp = response(StatusCode::CREATED, empty());
        let h = resp.headers_mut();
        set(h, header::LOCATION, &format!("/v2/{name}/manifests/{digest}"));
        set(h, CONTENT_DIGEST, &digest);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        if let Some(subject) = &put.manifest.subject {
            set(h, OCI_SUBJECT, &subject.digest.to_string());
        }
        Ok(resp)
    }

    async fn manifest_delete(&self, name: &str, reference: &str) -> Result<Response<Body>, OciError> {
        let reference = parse_reference(reference)?;
        match self.registry.delete_image(name, &reference).await.map_err(|e| registry_error(e, Doing::Other))? {
            Ok(_) => Ok(response(StatusCode::ACCEPTED, empty())),
            // ECR's ImageReferencedByManifestList: an index in the repository still needs it.
            Err(reason) => Err(OciError::new(StatusCode::CONFLICT, "DENIED", reason)),
        }
    }

    // ---- blobs ----

    /// `NAME_UNKNOWN` if the repository does not exist, else `BLOB_UNKNOWN`.
    async fn blob_missing(&self, name: &str, digest: &Digest) -> OciError {
        match self.registry.repository(name).await {
            Ok(_) => OciError::blob_unknown(digest),
            Err(e) => registry_error(e, Doing::Other),
        }
    }

    async fn blob_get(
        &self,
        name: &str,
        digest: &Digest,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Response<Body>, OciError> {
        let Some(size) = self.registry.blob_size(name, digest).await.map_err(|e| registry_error(e, Doing::Other))?
        else {
            return Err(self.blob_missing(name, digest).await);
        };
        let range = if head { RangeRequest::Whole } else { parse_range(headers.get(header::RANGE), size) };
        let (status, range) = match range {
            RangeRequest::Whole => (StatusCode::OK, None),
            RangeRequest::Part(first, last) => (StatusCode::PARTIAL_CONTENT, Some((first, last))),
            RangeRequest::Unsatisfiable => {
                let mut resp = self.error_response(&OciError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "UNSUPPORTED",
                    format!("the requested range is not satisfiable for a blob of {size} bytes"),
                ));
                set(resp.headers_mut(), header::CONTENT_RANGE, &format!("bytes */{size}"));
                return Ok(resp);
            }
        };
        let (body, len, total) = if head {
            (empty(), size, size)
        } else {
            let read = match self.registry.blobs().open_read(digest, range).await {
                Ok(read) => read,
                Err(crate::BlobError::BlobUnknown { .. }) => return Err(self.blob_missing(name, digest).await),
                Err(e) => return Err(registry_error(RegistryError::from_blob(e), Doing::Other)),
            };
            let (len, total) = (read.len, read.size);
            (self.blob_body(read).await?, len, total)
        };
        let mut resp = response(status, body);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        set(h, CONTENT_DIGEST, &digest.to_string());
        if let Some((first, _)) = range {
            set(h, header::CONTENT_RANGE, &format!("bytes {first}-{}/{total}", first + len - 1));
        }
        Ok(resp)
    }

    /// The bytes of an opened blob: small ones whole, the rest streamed from the file.
    async fn blob_body(&self, read: crate::BlobRead) -> Result<Body, OciError> {
        use tokio::io::AsyncReadExt as _;
        let fault = |e: std::io::Error| {
            let path = self.registry.blobs().root().to_path_buf();
            registry_error(RegistryError::Blob(crate::BlobError::Io { path, source: e }), Doing::Other)
        };
        if read.len <= SMALL_BLOB {
            let mut buf = Vec::with_capacity(read.len as usize);
            read.file.take(read.len).read_to_end(&mut buf).await.map_err(fault)?;
            if buf.len() as u64 != read.len {
                return Err(fault(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob shorter than its size",
                )));
            }
            return Ok(full(buf));
        }
        let file = read.file.into_std().await;
        Ok(FileBody { file: Some(file), pending: None, unread: read.len, unsent: read.len }.boxed())
    }

    // ---- uploads ----

    fn upload_location(name: &str, id: &UploadId) -> String {
        format!("/v2/{name}/blobs/uploads/{id}")
    }

    /// 202 (or 204) with where the upload is and how much it has.
    fn upload_progress(status: StatusCode, name: &str, id: &UploadId, size: u64) -> Response<Body> {
        let mut resp = response(status, empty());
        let h = resp.headers_mut();
        set(h, header::LOCATION, &Self::upload_location(name, id));
        set(h, header::RANGE, &upload_range(size));
        set(h, UPLOAD_UUID, id.as_str());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        resp
    }

    fn blob_created(name: &str, digest: &Digest) -> Response<Body> {
        let mut resp = response(StatusCode::CREATED, empty());
        let h = resp.headers_mut();
        set(h, header::LOCATION, &format!("/v2/{name}/blobs/{digest}"));
        set(h, CONTENT_DIGEST, &digest.to_string());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        resp
    }

    /// 416 for a chunk that does not follow on, with the upload's current `Range`.
    async fn range_refused(&self, name: &str, id: &UploadId, message: String) -> Response<Body> {
        let mut resp =
            self.error_response(&OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message));
        let h = resp.headers_mut();
        set(h, header::LOCATION, &Self::upload_location(name, id));
        set(h, UPLOAD_UUID, id.as_str());
        if let Ok(size) = self.registry.upload_size(name, id).await {
            set(h, header::RANGE, &upload_range(size));
        }
        resp
    }

    async fn append_failed(
        &self,
        name: &str,
        id: &UploadId,
        failure: AppendFailure,
    ) -> Result<Response<Body>, OciError> {
        match failure {
            AppendFailure::Registry(e @ RegistryError::InvalidLayerPart(_)) => {
                Ok(self.range_refused(name, id, e.to_string()).await)
            }
            AppendFailure::Registry(e) => Err(registry_error(e, Doing::Other)),
            AppendFailure::Body => Err(OciError::body_unreadable()),
        }
    }

    async fn upload_start<B>(
        &self,
        caller: &Caller,
        name: &str,
        params: &[(String, String)],
        req: Request<B>,
    ) -> Result<Response<Body>, OciError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(mount) = param(params, "mount") {
            // A mount the caller may not read, or whose source lacks the blob, is an ordinary
            // upload instead (the spec's fallback); the client then pushes the bytes.
            let source = param(params, "from").filter(|from| {
                validate_repository_name(from).is_ok()
                    && self.authorize(caller, "ecr:GetDownloadUrlForLayer", from).is_ok()
            });
            if let (Ok(digest), Some(from)) = (Digest::parse(mount), source) {
                match self.registry.mount_blob(from, name, &digest).await {
                    Ok(Some(_)) => return Ok(Self::blob_created(name, &digest)),
                    Ok(None) => {}
                    Err(e) => return Err(registry_error(e, Doing::Other)),
                }
            }
        } else if let Some(digest) = param(params, "digest") {
            // Monolithic: the whole blob in this request.
            let digest = parse_digest(digest)?;
            let id = self.registry.start_upload(name).await.map_err(|e| registry_error(e, Doing::Other))?;
            if let Err(failure) = self.append_body(name, &id, req.into_body(), 0).await {
                if let Err(e) = self.registry.cancel_upload(name, &id).await {
                    tracing::debug!(upload_id = %id, error = %e, "could not cancel a failed monolithic upload");
                }
                return match failure {
                    AppendFailure::Registry(e) => Err(registry_error(e, Doing::Other)),
                    AppendFailure::Body => Err(OciError::body_unreadable()),
                };
            }
            self.registry.complete_upload(name, &id, &digest).await.map_err(|e| registry_error(e, Doing::Other))?;
            return Ok(Self::blob_created(name, &digest));
        }
        let id = self.registry.start_upload(name).await.map_err(|e| registry_error(e, Doing::Other))?;
        Ok(Self::upload_progress(StatusCode::ACCEPTED, name, &id, 0))
    }

    async fn upload_status(&self, name: &str, id: &UploadId) -> Result<Response<Body>, OciError> {
        let size = self.registry.upload_size(name, id).await.map_err(|e| registry_error(e, Doing::Other))?;
        Ok(Self::upload_progress(StatusCode::NO_CONTENT, name, id, size))
    }

    /// The upload's size, after checking that a chunk's `Content-Range` (if any) starts there and
    /// agrees with its `Content-Length` (if any). `Err(Ok(resp))` is the 416 to answer.
    async fn chunk_start(
        &self,
        name: &str,
        id: &UploadId,
        headers: &HeaderMap,
    ) -> Result<u64, Result<Response<Body>, OciError>> {
        let size = self.registry.upload_size(name, id).await.map_err(|e| Err(registry_error(e, Doing::Other)))?;
        let Some(range) = headers.get(header::CONTENT_RANGE) else { return Ok(size) };
        let refuse = |why: String| async move { Err(Ok(self.range_refused(name, id, why).await)) };
        let Some((first, last)) = parse_content_range(range) else {
            return refuse("Content-Range must be <first>-<last>".into()).await;
        };
        if first != size {
            return refuse(format!("the chunk starts at byte {first} but the upload has {size} bytes")).await;
        }
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(parse_number);
        if let Some(len) = declared {
            if last - first != len.wrapping_sub(1) || len == 0 {
                return refuse(format!("Content-Range {first}-{last} does not match Content-Length {len}")).await;
            }
        }
        Ok(size)
    }

    async fn upload_patch<B>(&self, name: &str, id: &UploadId, req: Request<B>) -> Result<Response<Body>, OciError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = match self.chunk_start(name, id, req.headers()).await {
            Ok(start) => start,
            Err(answer) => return answer,
        };
        match self.append_body(name, id, req.into_body(), start).await {
            Ok(size) => Ok(Self::upload_progress(StatusCode::ACCEPTED, name, id, size)),
            Err(failure) => self.append_failed(name, id, failure).await,
        }
    }

    async fn upload_complete<B>(
        &self,
        name: &str,
        id: &UploadId,
        params: &[(String, String)],
        req: Request<B>,
    ) -> Result<Response<Body>, OciError>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let digest = param(params, "digest")
            .ok_or_else(|| OciError::digest_invalid("completing an upload needs ?digest=<digest>"))
            .and_then(parse_digest)?;
        let start = match self.chunk_start(name, id, req.headers()).await {
            Ok(start) => start,
            Err(answer) => return answer,
        };
        if let Err(failure) = self.append_body(name, id, req.into_body(), start).await {
            return self.append_failed(name, id, failure).await;
        }
        self.registry.complete_upload(name, id, &digest).await.map_err(|e| registry_error(e, Doing::Other))?;
        Ok(Self::blob_created(name, &digest))
    }

    async fn upload_cancel(&self, name: &str, id: &UploadId) -> Result<Response<Body>, OciError> {
        self.registry.cancel_upload(name, id).await.map_err(|e| registry_error(e, Doing::Other))?;
        let mut resp = response(StatusCode::NO_CONTENT, empty());
        resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        Ok(resp)
    }

    /// Streams a request body into an upload that has `start` bytes, in batches of about
    /// [`UPLOAD_BATCH`]; a writer task appends one batch while the next is read from the socket.
    /// Bytes received before the body failed are kept (the client can ask how far it got).
    /// Returns the upload's new size.
    async fn append_body<B>(&self, name: &str, id: &UploadId, mut body: B, start: u64) -> Result<u64, AppendFailure>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(UPLOAD_QUEUE);
        let writer = {
            let (registry, repo, id) = (self.registry.clone(), name.to_string(), id.clone());
            tokio::spawn(async move {
                let mut size = start;
                while let Some(batch) = rx.recv().await {
                    // The offset is checked on every batch: a concurrent PATCH cannot interleave.
                    size = registry.append(&repo, &id, &batch, Some(size)).await?;
                }
                Ok::<u64, RegistryError>(size)
            })
        };
        let mut batch = BytesMut::new();
        let mut body_failed = false;
        loop {
            match body.frame().await {
                None => break,
                Some(Err(e)) => {
                    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                    tracing::debug!(upload_id = %id, error = %e, "upload body ended early");
                    body_failed = true;
                    break;
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    let full_batch = if batch.is_empty() && data.len() >= UPLOAD_BATCH {
                        data
                    } else {
                        if batch.capacity() == 0 {
                            batch.reserve(UPLOAD_BATCH);
                        }
                        batch.extend_from_slice(&data);
                        if batch.len() < UPLOAD_BATCH {
                            continue;
                        }
                        batch.split().freeze()
                    };
                    if tx.send(full_batch).await.is_err() {
                        // The writer stopped on an error; it is reported below.
                        break;
                    }
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(batch.freeze()).await;
        }
        drop(tx);
        let size = match writer.await {
            Ok(result) => result.map_err(AppendFailure::Registry)?,
            Err(join) => {
                let path = self.registry.blobs().root().to_path_buf();
                let source = std::io::Error::other(join.to_string());
                return Err(AppendFailure::Registry(RegistryError::Blob(crate::BlobError::Io { path, source })));
            }
        };
        if body_failed {
            return Err(AppendFailure::Body);
        }
        Ok(size)
    }

    // ---- tags and referrers ----

    async fn tags_list(&self, name: &str, params: &[(String, String)]) -> Result<Response<Body>, OciError> {
        let n = match param(params, "n") {
            None | Some("") => None,
            Some(n) => Some(parse_number(n).ok_or_else(|| {
                OciError::bad_request("PAGINATION_NUMBER_INVALID", "n must be a non-negative number")
            })?),
        };
        let n = n.map(|n| n.min(MAX_TAGS_PAGE as u64) as usize);
        let last = param(params, "last").filter(|l| !l.is_empty());
        let tags = self.registry.tags(name).await.map_err(|e| registry_error(e, Doing::Other))?;
        // Tags come sorted by byte order, which is `str`'s order.
        let start = last.map(|l| tags.partition_point(|t| t.as_str() <= l)).unwrap_or(0);
        let rest = &tags[start..];
        let (page, more) = match n {
            Some(n) => (&rest[..n.min(rest.len())], rest.len() > n),
            None => (rest, false),
        };
        let body = json!({ "name": name, "tags": page });
        let mut resp = response(StatusCode::OK, full(body.to_string()));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let (true, Some(n), Some(last)) = (more, n, page.last()) {
            set(h, header::LINK, &format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\""));
        }
        Ok(resp)
    }

    async fn referrers(
        &self,
        name: &str,
        digest: &Digest,
        params: &[(String, String)],
    ) -> Result<Response<Body>, OciError> {
        let filter = param(params, "artifactType").filter(|a| !a.is_empty());
        let found = self.registry.referrers(name, digest).await.map_err(|e| registry_error(e, Doing::Other))?;
        let mut descriptors = Vec::with_capacity(found.len());
        for m in found {
            let parsed = manifest::parse(&m.body, Some(&m.media_type)).ok();
            let artifact_type = parsed.as_ref().and_then(|p| p.artifact_type.clone());
            if filter.is_some_and(|f| artifact_type.as_deref() != Some(f)) {
                continue;
            }
            let mut d = json!({ "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.body.len() });
            if let Some(a) = artifact_type {
                d["artifactType"] = Value::String(a);
            }
            if let Some(a) = parsed.and_then(|p| p.annotations) {
                d["annotations"] = a;
            }
            descriptors.push(d);
        }
        let body = json!({ "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": descriptors });
        let mut resp = response(StatusCode::OK, full(body.to_string()));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(manifest::OCI_INDEX));
        if filter.is_some() {
            h.insert(OCI_FILTERS_APPLIED, HeaderValue::from_static("artifactType"));
        }
        Ok(resp)
    }
}

type ReadResult = (std::fs::File, std::io::Result<Vec<u8>>);

/// A blob's bytes streamed from its file: each chunk is read on the blocking pool (no runtime
/// thread waits on the disk, and no thread is held while a slow client drains the socket), and the
/// next chunk is read while the current one is sent.
struct FileBody {
    /// The file, when no read is in flight.
    file: Option<std::fs::File>,
    pending: Option<tokio::task::JoinHandle<ReadResult>>,
    /// Bytes not yet asked of the file.
    unread: u64,
    /// Bytes not yet handed to the connection.
    unsent: u64,
}

impl FileBody {
    fn read_ahead(&mut self) {
        if self.pending.is_some() || self.unread == 0 {
            return;
        }
        let Some(mut file) = self.file.take() else { return };
        let want = self.unread.min(DOWNLOAD_CHUNK);
        self.unread -= want;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(want as usize);
            let result = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(n) if n as u64 == want => Ok(buf),
                Ok(_) => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob shorter than its size")),
                Err(e) => Err(e),
            };
            (file, result)
        }));
    }

    fn fail(&mut self, e: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        tracing::warn!(error = %e, "reading a blob being served failed");
        self.unread = 0;
        self.unsent = 0;
        Poll::Ready(Some(Err(e)))
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.read_ahead();
        let Some(pending) = this.pending.as_mut() else { return Poll::Ready(None) };
        let done = ready!(Pin::new(pending).poll(cx));
        this.pending = None;
        match done {
            Ok((file, Ok(buf))) => {
                this.file = Some(file);
                this.unsent = this.unsent.saturating_sub(buf.len() as u64);
                this.read_ahead();
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
            Ok((_, Err(e))) => this.fail(e),
            Err(join) => this.fail(std::io::Error::other(join.to_string())),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.unread == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.unsent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<Route, OciError> {
        parse_route(path)
    }

    #[test]
    fn routes_names_with_slashes_from_the_end() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(route("/v2/").unwrap(), Route::Base);
        assert_eq!(
            route("/v2/team/app/manifests/latest").unwrap(),
            Route::Manifest { name: "team/app".into(), reference: "latest".into() }
        );
        assert_eq!(
            route(&format!("/v2/a/blobs/blobs/{d}")).unwrap(),
            Route::Blob { name: "a/blobs".into(), digest: d.clone() }
        );
        assert_eq!(route("/v2/x/y/blobs/uploads/").unwrap(), Route::UploadStart { name: "x/y".into() });
        assert_eq!(route("/v2/x/blobs/uploads").unwrap(), Route::UploadStart { name: "x".into() });
        assert_eq!(route("/v2/x/blobs/uploads/abc").unwrap(), Route::Upload { name: "x".into(), id: "abc".into() });
        assert_eq!(route("/v2/tags/tags/list").unwrap(), Route::TagsList { name: "tags".into() });
        assert_eq!(
            route(&format!("/v2/app/referrers/{}", d.replace(':', "%3A"))).unwrap(),
            Route::Referrers { name: "app".into(), digest: d }
        );
        for bad in ["/v2/manifests/x", "/v2/_catalog", "/v2/app/manifests/", "/v2/app/other/x", "/v3/app"] {
            assert_eq!(route(bad).unwrap_err().status, StatusCode::NOT_FOUND, "{bad}");
        }
        for bad in ["/v2/a%2Fb/manifests/x", "/v2/app/manifests/%zz", "/v2/app/manifests/%ff%fe", "/v2/app/manifests/%"]
        {
            assert_eq!(route(bad).unwrap_err().code, "NAME_INVALID", "{bad}");
        }
    }

    #[test]
    fn ranges_follow_rfc_9110_and_never_overflow() {
        let r = |s: &str, size| parse_range(Some(&HeaderValue::from_str(s).unwrap()), size);
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(r("bytes=0-4", 10), RangeRequest::Part(0, 4));
        assert_eq!(r("bytes=5-", 10), RangeRequest::Part(5, 9));
        assert_eq!(r("bytes=5-100", 10), RangeRequest::Part(5, 9));
        assert_eq!(r("bytes=-3", 10), RangeRequest::Part(7, 9));
        assert_eq!(r("bytes=-30", 10), RangeRequest::Part(0, 9));
        assert_eq!(r("bytes=10-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=0-0", 0), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-", 10), RangeRequest::Unsatisfiable);
        assert_eq!(r("bytes=0-99999999999999999999999", 10), RangeRequest::Part(0, 9));
        for ignored in ["bytes=1-2,4-5", "items=0-1", "bytes=x-1", "bytes=5-1", "bytes=", "0-1"] {
            assert_eq!(r(ignored, 10), RangeRequest::Whole, "{ignored}");
        }
    }

    #[test]
    fn content_ranges_are_parsed_strictly() {
        let c = |s: &str| parse_content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(c("0-99"), Some((0, 99)));
        assert_eq!(c("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(c("5-4"), None);
        assert_eq!(c("a-b"), None);
        assert_eq!(c("-5"), None);
        assert_eq!(c("99999999999999999999-99999999999999999999"), Some((u64::MAX, u64::MAX)));
    }

    /// Whatever arrives, the parsers answer instead of panicking.
    #[test]
    fn garbage_never_panics() {
        let pieces = [
            "",
            "/",
            "%",
            "%2",
            "%zz",
            "%c3%28",
            "%2F",
            "..",
            "blobs",
            "uploads",
            "manifests",
            "tags",
            "list",
            "referrers",
            "sha256:",
            "sha256:%",
            ":",
            "-",
            "99999999999999999999999",
            "\u{e9}",
            "a b",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let _ = parse_route(&format!("/v2/{a}/{b}/{c}"));
                    let _ = parse_route(&format!("/v2/x/{a}{b}/{c}"));
                    let _ = parse_reference(&format!("{a}{b}{c}"));
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes={a}-{b}{c}")) {
                        for size in [0, 1, 10, u64::MAX] {
                            let _ = parse_range(Some(&v), size);
                        }
                        let _ = parse_content_range(&v);
                    }
                    if let Ok(uri) = format!("/v2/x?{a}={b}&{c}").parse::<http::Uri>() {
                        let _ = query_params(&uri);
                    }
                }
            }
        }
    }

    #[test]
    fn queries_are_decoded() {
        let uri: http::Uri = "/v2/a/blobs/uploads/?mount=sha256%3Aab&from=team%2Fapp&x&bad=%zz".parse().unwrap();
        let p = query_params(&uri);
        assert_eq!(param(&p, "mount"), Some("sha256:ab"));
        assert_eq!(param(&p, "from"), Some("team/app"));
        assert_eq!(param(&p, "x"), Some(""));
        assert_eq!(param(&p, "bad"), None);
    }

    #[test]
    fn registry_errors_map_to_spec_codes() {
        let m = |e, d| {
            let e = registry_error(e, d);
            (e.status.as_u16(), e.code)
        };
        use RegistryError as E;
        assert_eq!(m(E::LayersNotFound("x".into()), Doing::ManifestPut), (400, "MANIFEST_BLOB_UNKNOWN"));
        assert_eq!(m(E::LayersNotFound("x".into()), Doing::Other), (404, "BLOB_UNKNOWN"));
        assert_eq!(m(E::ImageTagAlreadyExists("x".into()), Doing::ManifestPut), (400, "TAG_INVALID"));
        assert_eq!(m(E::InvalidLayerPart("x".into()), Doing::Other), (416, "BLOB_UPLOAD_INVALID"));
        assert_eq!(
            m(E::InvalidManifest("Invalid parameter at 'ImageManifest': bad digest".into()), Doing::ManifestPut),
            (400, "MANIFEST_INVALID")
        );
        assert_eq!(m(E::InvalidTag("Invalid parameter at 'imageTag'".into()), Doing::Other), (400, "TAG_INVALID"));
        let io = std::io::Error::other("secret path");
        let e = registry_error(E::Blob(crate::BlobError::Io { path: "/secret/path".into(), source: io }), Doing::Other);
        assert_eq!((e.status.as_u16(), e.code), (500, "UNKNOWN"));
        assert!(!e.message.contains("secret"));
    }
}
