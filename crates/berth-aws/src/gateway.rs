//! The API gateway: one request in, one AWS-shaped response out.
//!
//! Order of work, as AWS does it: find the signature → look up the key → verify the signature →
//! resolve the service and operation → decode the input → authorize → call the handler → frame the
//! response. Every response carries `x-amzn-RequestId`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use subtle::ConstantTimeEq;

use crate::context::AwsContext;
use crate::error::{AwsError, WireError};
use crate::identity::{Authorizer, AuthzRequest, CredentialStore, Principal, PrincipalKind};
use crate::ids;
use crate::protocol::Protocol;
use crate::query::QueryInput;
use crate::service::{Auth, Input, Operation, Output, RequestContext, ResourceRule, Service};
use crate::sigv4::{self, RequestParts, SigV4Error, SignatureClaim};
use crate::time::{SharedClock, Timestamp};

pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Routes signed requests to services.
pub struct Gateway {
    aws: Arc<AwsContext>,
    max_body_bytes: usize,
    services: Vec<Arc<dyn Service>>,
    by_signing_name: HashMap<&'static str, usize>,
    by_target_prefix: HashMap<&'static str, usize>,
    credentials: Arc<dyn CredentialStore>,
    authorizer: Arc<dyn Authorizer>,
    clock: SharedClock,
    signing_keys: SigningKeyCache,
}

/// Signing keys by access key id: deriving one takes four HMACs, and it changes only with the
/// date (daily), the region and the service. An entry is used only for the same secret.
#[derive(Default)]
struct SigningKeyCache {
    entries: std::sync::Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    scope: String,
    secret: crate::identity::Secret,
    key: [u8; 32],
}

impl SigningKeyCache {
    /// Bounds memory if many keys are seen (e.g. many short sessions): the cache then starts over.
    const MAX_ENTRIES: usize = 4096;

    fn get(&self, claim: &SignatureClaim, secret: &str) -> [u8; 32] {
        let scope = claim.scope();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = entries.get(&claim.access_key_id) {
            if c.scope == scope && bool::from(c.secret.expose().as_bytes().ct_eq(secret.as_bytes())) {
                return c.key;
            }
        }
        let key = sigv4::signing_key(secret, &claim.scope_date, &claim.region, &claim.service);
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        let secret = crate::identity::Secret::new(secret);
        entries.insert(claim.access_key_id.clone(), CachedKey { scope: scope.to_string(), secret, key });
        key
    }
}

/// A request as the gateway sees it.
struct Call<'a> {
    parts: &'a http::request::Parts,
    body: &'a [u8],
    peer: Option<SocketAddr>,
    request_id: String,
}

/// How far routing got, for logging and for the shape of an error.
struct Route {
    protocol: Protocol,
    service: Option<usize>,
    operation: Option<&'static str>,
}

impl Gateway {
    pub fn new(
        aws: AwsContext,
        credentials: Arc<dyn CredentialStore>,
        authorizer: Arc<dyn Authorizer>,
        clock: SharedClock,
    ) -> Gateway {
        Gateway {
            aws: Arc::new(aws),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            services: Vec::new(),
            by_signing_name: HashMap::new(),
            by_target_prefix: HashMap::new(),
            credentials,
            authorizer,
            clock,
            signing_keys: SigningKeyCache::default(),
        }
    }

    pub fn with_max_body_bytes(mut self, limit: usize) -> Gateway {
        self.max_body_bytes = limit;
        self
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The services this gateway serves, with their operation tables.
    pub fn specs(&self) -> Vec<&'static crate::service::ServiceSpec> {
        self.services.iter().map(|s| s.spec()).collect()
    }

    pub fn aws(&self) -> &AwsContext {
        &self.aws
    }

    /// Adds a service. Panics if its signing name or target prefix is taken: a wiring bug.
    pub fn register(&mut self, service: Arc<dyn Service>) {
        let spec = service.spec();
        let idx = self.services.len();
        assert!(
            self.by_signing_name.insert(spec.signing_name, idx).is_none(),
            "two services registered for signing name {}",
            spec.signing_name
        );
        if spec.protocol.is_json() {
            assert!(self.by_target_prefix.insert(spec.target_prefix, idx).is_none());
        }
        self.services.push(service);
    }

    /// Handles one request whose body has been read in full.
    /// `peer` is the caller's address (for `aws:SourceIp`), when known.
    pub async fn handle(&self, parts: &http::request::Parts, body: &[u8], peer: Option<SocketAddr>) -> Response<Bytes> {
        let started = Instant::now();
        let call = Call { parts, body, peer, request_id: ids::request_id() };
        let mut route = Route { protocol: self.protocol_hint(parts), service: None, operation: None };
        let result = self.dispatch(&call, &mut route).await;
        self.respond(&call, &route, result, started)
    }

    /// The response for a request whose body exceeded the limit (the body was not read).
    pub fn body_too_large(&self, parts: &http::request::Parts) -> Response<Bytes> {
        let call = Call { parts, body: &[], peer: None, request_id: ids::request_id() };
        let route = Route { protocol: self.protocol_hint(parts), service: None, operation: None };
        let err = WireError::BodyTooLarge { limit: self.max_body_bytes }.to_aws(route.protocol);
        self.respond(&call, &route, Err(err), Instant::now())
    }

    fn protocol_hint(&self, parts: &http::request::Parts) -> Protocol {
        match parts.headers.get("x-amz-target") {
            Some(target) => {
                let prefix = target.to_str().ok().and_then(|t| t.split_once('.')).map(|(p, _)| p);
                prefix
                    .and_then(|p| self.by_target_prefix.get(p))
                    .map(|&i| self.services[i].spec().protocol)
                    .unwrap_or(Protocol::AwsJson1_1)
            }
            None => Protocol::AwsQuery,
        }
    }

    async fn dispatch(&self, call: &Call<'_>, route: &mut Route) -> Result<Output, AwsError> {
        let parts = call.parts;
        let wire = |route: &Route, e: WireError| e.to_aws(route.protocol);
        if parts.method != Method::POST && parts.method != Method::GET {
            return Err(wire(route, WireError::MethodNotAllowed));
        }
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        let rp = RequestParts { method: parts.method.as_str(), path, query, headers: &parts.headers, body: call.body };
        let now = Timestamp::from_system(self.clock.now());

        // Who signed it, and for which service.
        let (principal, idx) = match sigv4::parse(&rp) {
            Ok(Some(claim)) => self.authenticate(&rp, &claim, now, route)?,
            Ok(None) => match self.unsigned_operation_service(call) {
                Some(idx) => {
                    route.service = Some(idx);
                    route.protocol = self.services[idx].spec().protocol;
                    (Arc::new(Principal::anonymous()), idx)
                }
                None => return Err(wire(route, WireError::Signature(SigV4Error::Missing))),
            },
            Err(e) => return Err(wire(route, WireError::Signature(e))),
        };

        // Which operation, with which input.
        let service = &self.services[idx];
        let (operation, input) = self.decode(service.as_ref(), call, route)?;
        route.operation = Some(operation.name);
        if principal.kind == PrincipalKind::Anonymous && !matches!(operation.auth, Auth::Unsigned) {
            return Err(wire(route, WireError::Signature(SigV4Error::Missing)));
        }
        let ctx = RequestContext {
            request_id: call.request_id.clone(),
            operation: operation.name,
            principal,
            aws: self.aws.clone(),
            source_ip: call.peer.map(|p| p.ip()),
        };

        // May they?
        if let Auth::Action { action, resource } = &operation.auth {
            let resource = match resource {
                ResourceRule::Any => "*".to_string(),
                ResourceRule::Arn(arn_of) => arn_of(&ctx, &input)?,
            };
            let resource_policy = service.resource_policy(&resource);
            let request = AuthzRequest {
                principal: &ctx.principal,
                action,
                resource: &resource,
                source_ip: ctx.source_ip,
                now,
                region: &self.aws.region,
                resource_policy: resource_policy.as_deref(),
            };
            if !self.authorizer.is_allowed(&request) {
                let principal_arn = ctx.principal.arn.clone();
                return Err(wire(
                    route,
                    WireError::AccessDenied { principal_arn, action: action.to_string(), resource },
                ));
            }
        }
        service.call(&ctx, input).await
    }

    /// Verifies a signature claim: the key, the session token, the signature, the expiry and the
    /// region. Returns the principal and the service the claim's scope names.
    fn authenticate(
        &self,
        rp: &RequestParts<'_>,
        claim: &SignatureClaim,
        now: Timestamp,
        route: &mut Route,
    ) -> Result<(Arc<Principal>, usize), AwsError> {
        let wire = |route: &Route, e: WireError| e.to_aws(route.protocol);
        if let Some(&idx) = self.by_signing_name.get(claim.service.as_str()) {
            route.service = Some(idx);
            route.protocol = self.services[idx].spec().protocol;
        }
        let credential =
            self.credentials.lookup(&claim.access_key_id).ok_or_else(|| wire(route, WireError::UnknownAccessKey))?;
        let token_ok = match (&credential.session_token, &claim.security_token) {
            (None, None) => true,
            (Some(expected), Some(given)) => bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes())),
            _ => false,
        };
        if !token_ok {
            return Err(wire(route, WireError::InvalidSessionToken));
        }
        let key = self.signing_keys.get(claim, credential.secret_access_key.expose());
        sigv4::verify_with_key(rp, claim, &key, now).map_err(|e| wire(route, WireError::Signature(e)))?;
        if credential.expires_at.is_some_and(|exp| exp <= now) {
            return Err(wire(route, WireError::ExpiredSessionToken));
        }
        let Some(idx) = route.service else {
            return Err(wire(route, WireError::UnknownService { service: claim.service.clone() }));
        };
        let spec = self.services[idx].spec();
        if !spec.global && claim.region != self.aws.region {
            return Err(wire(
                route,
                WireError::Signature(SigV4Error::Incomplete(format!(
                    "Credential should be scoped to a valid region, not '{}'. This berth serves region '{}'.",
                    claim.region, self.aws.region
                ))),
            ));
        }
        Ok((credential.principal.clone(), idx))
    }

    /// For a request without a signature: the service of the operation it names, if that
    /// operation needs no signature.
    fn unsigned_operation_service(&self, call: &Call<'_>) -> Option<usize> {
        let unsigned = |idx: usize, op: &str| {
            self.services[idx].spec().operation(op).is_some_and(|o| matches!(o.auth, Auth::Unsigned))
        };
        if let Some(target) = call.parts.headers.get("x-amz-target") {
            let (prefix, op) = target.to_str().ok()?.split_once('.')?;
            let idx = *self.by_target_prefix.get(prefix)?;
            return unsigned(idx, op).then_some(idx);
        }
        let form = if call.parts.method == Method::GET {
            call.parts.uri.query().unwrap_or("")
        } else {
            std::str::from_utf8(call.body).ok()?
        };
        let action = QueryInput::parse(form).ok()?.remove("Action")?;
        (0..self.services.len())
            .find(|&idx| self.services[idx].spec().protocol == Protocol::AwsQuery && unsigned(idx, &action))
    }

    fn decode(
        &self,
        service: &dyn Service,
        call: &Call<'_>,
        route: &Route,
    ) -> Result<(&'static Operation, Input), AwsError> {
        let spec = service.spec();
        let parts = call.parts;
        let wire = |e: WireError| e.to_aws(route.protocol);
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase())
            .unwrap_or_default();
        let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
        match spec.protocol {
            Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => {
                let target = parts.headers.get("x-amz-target").ok_or_else(|| wire(WireError::MissingOperation))?;
                let target = target.to_str().map_err(|_| wire(WireError::MissingOperation))?;
                let (prefix, op) = target.split_once('.').unwrap_or(("", target));
                let operation = (prefix == spec.target_prefix)
                    .then(|| spec.operation(op))
                    .flatten()
                    .ok_or_else(|| wire(WireError::UnknownOperation { operation: target.to_string() }))?;
                if parts.method != Method::POST {
                    return Err(wire(WireError::MethodNotAllowed));
                }
                if !matches!(
                    mime.as_str(),
                    "application/x-amz-json-1.0" | "application/x-amz-json-1.1" | "application/json"
                ) {
                    return Err(wire(WireError::UnsupportedMediaType(content_type)));
                }
                let body = if call.body.iter().all(|b| b.is_ascii_whitespace()) { b"{}".as_slice() } else { call.body };
                match serde_json::from_slice::<serde_json::Value>(body) {
                    Ok(serde_json::Value::Object(map)) => Ok((operation, Input::Json(map))),
                    Ok(_) => Err(wire(WireError::Serialization("The request body must be a JSON object".into()))),
                    Err(e) => Err(wire(WireError::Serialization(format!("The request body is not valid JSON: {e}")))),
                }
            }
            Protocol::AwsQuery => {
                let mut input = QueryInput::default();
                if parts.method == Method::POST && !call.body.is_empty() {
                    if mime != "application/x-www-form-urlencoded" {
                        return Err(wire(WireError::UnsupportedMediaType(content_type)));
                    }
                    let text = std::str::from_utf8(call.body)
                        .map_err(|_| wire(WireError::Serialization("The request body is not valid UTF-8".into())))?;
                    input.extend(text).map_err(|e| wire(WireError::Serialization(e.to_string())))?;
                }
                // Parameters may also come in the URL (GET, presigned URLs); the signature's own are not input.
                let url_params: Vec<&str> = parts
                    .uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter(|p| !p.is_empty() && !p.starts_with("X-Amz-"))
                    .collect();
                input.extend(&url_params.join("&")).map_err(|e| wire(WireError::Serialization(e.to_string())))?;
                let action = input.remove("Action").ok_or_else(|| wire(WireError::MissingOperation))?;
                let operation = spec
                    .operation(&action)
                    .ok_or_else(|| wire(WireError::UnknownOperation { operation: action.clone() }))?;
                Ok((operation, Input::Query(input)))
            }
        }
    }

    fn respond(
        &self,
        call: &Call<'_>,
        route: &Route,
        result: Result<Output, AwsError>,
        started: Instant,
    ) -> Response<Bytes> {
        let spec = route.service.map(|i| self.services[i].spec());
        let (status, content_type, body, error_code) = match result {
            Ok(Output::Json(value)) => (200, route.protocol.content_type(), value.to_string(), None),
            Ok(Output::Xml(result)) => {
                let ns = spec.map_or("", |s| s.xml_namespace);
                let op = route.operation.unwrap_or("Unknown");
                (200, "text/xml", Protocol::query_response(op, ns, result.as_deref(), &call.request_id), None)
            }
            Err(err) => {
                let ns = spec.map(|s| s.xml_namespace);
                let body = route.protocol.error_body(&err, &call.request_id, ns);
                (err.status, route.protocol.content_type(), body, Some(err.code))
            }
        };
        tracing::debug!(
            request_id = %call.request_id,
            service = spec.map_or("-", |s| s.signing_name),
            operation = route.operation.unwrap_or("-"),
            status,
            error = error_code.as_deref().unwrap_or(""),
            latency_us = started.elapsed().as_micros() as u64,
            "api request"
        );
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = resp.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(v) = HeaderValue::from_str(&call.request_id) {
            headers.insert("x-amzn-requestid", v);
        }
        if let Some(code) = error_code {
            if route.protocol.is_json() {
                if let Ok(v) = HeaderValue::from_str(&code) {
                    headers.insert("x-amzn-errortype", v);
                }
            }
        }
        resp
    }
}
