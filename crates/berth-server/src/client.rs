//! A small SigV4-signing client for berth's own API: used by the demo, the test harness and the
//! benchmarks. It makes the same calls the aws CLI makes.

use berth_aws::sigv4::{self, SigningCredentials};
use std::sync::Arc;

use berth_aws::time::{SharedClock, SystemClock, Timestamp};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("endpoint '{0}' is not an http:// URL with a host and port")]
    Endpoint(String),
    #[error("request failed: {0}")]
    Http(String),
}

/// An answer from the API.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The text of the first `<tag>…</tag>` in an XML body (enough for berth's own callers).
    pub fn xml_value(&self, tag: &str) -> Option<String> {
        let text = self.text();
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{tag}>"))? + start;
        Some(text[start..end].to_string())
    }

    pub fn request_id(&self) -> Option<&str> {
        self.headers.get("x-amzn-requestid").and_then(|v| v.to_str().ok())
    }
}

/// Signs and sends API calls.
#[derive(Clone)]
pub struct ApiClient {
    host: String,
    creds: SigningCredentials,
    region: String,
    clock: SharedClock,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    pub fn new(endpoint: &str, creds: SigningCredentials, region: &str) -> Result<ApiClient, ClientError> {
        let host = endpoint
            .strip_prefix("http://")
            .map(|h| h.trim_end_matches('/'))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| ClientError::Endpoint(endpoint.to_string()))?
            .to_string();
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(ApiClient { host, creds, region: region.to_string(), clock: Arc::new(SystemClock), http })
    }

    /// Signs with the time of `clock` (a test's manual clock) instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> ApiClient {
        self.clock = clock;
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// An awsQuery call: `Action=<action>&Version=<version>&<params>`.
    pub async fn query(
        &self,
        service: &str,
        action: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> Result<ApiResponse, ClientError> {
        let mut body = format!(
            "Action={}&Version={}",
            sigv4::uri_encode(action.as_bytes()),
            sigv4::uri_encode(version.as_bytes())
        );
        for (k, v) in params {
            body.push('&');
            body.push_str(&sigv4::uri_encode(k.as_bytes()));
            body.push('=');
            body.push_str(&sigv4::uri_encode(v.as_bytes()));
        }
        let req = self.signed(service, "application/x-www-form-urlencoded; charset=utf-8", None, Bytes::from(body));
        self.send(req).await
    }

    /// An awsJson 1.1 call with `X-Amz-Target: <target>`.
    pub async fn json(
        &self,
        service: &str,
        target: &str,
        input: &serde_json::Value,
    ) -> Result<ApiResponse, ClientError> {
        let req = self.signed(service, "application/x-amz-json-1.1", Some(target), Bytes::from(input.to_string()));
        self.send(req).await
    }

    /// A signed `POST /` with the given content type and body.
    pub fn signed(&self, service: &str, content_type: &str, target: Option<&str>, body: Bytes) -> Request<Full<Bytes>> {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_str(&self.host).unwrap_or(HeaderValue::from_static("localhost")));
        headers.insert(
            "content-type",
            HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        if let Some(t) = target.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert("x-amz-target", t);
        }
        let now = Timestamp::from_system(self.clock.now());
        sigv4::sign("POST", "/", "", &mut headers, &body, &self.creds, &self.region, service, now);
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("http://{}/", self.host).parse().unwrap_or_default();
        *req.headers_mut() = headers;
        req
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<ApiResponse, ClientError> {
        let resp = self.http.request(req).await.map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| ClientError::Http(e.to_string()))?.to_bytes();
        Ok(ApiResponse { status: parts.status.as_u16(), headers: parts.headers, body })
    }
}
