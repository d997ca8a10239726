//! Bounded GETs of an issuer's JSON documents: over https (rustls, Mozilla's roots) or, for loopback
//! issuers, plain http; every call ends within the configured timeout and reads at most
//! [`MAX_DOCUMENT_BYTES`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

/// The largest discovery document or key set berth reads.
pub(super) const MAX_DOCUMENT_BYTES: usize = 1 << 20;

pub(super) struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    pub(super) fn new(timeout: Duration) -> Fetcher {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        // rustls with ring (the only crypto provider compiled in) and Mozilla's roots. `https_or_http`: the
        // URL rule (validate_issuer_url) has already limited plain http to loopback hosts.
        let connector =
            HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Fetcher { client, timeout }
    }

    /// GETs `url` and parses the body as JSON. The error says what went wrong, naming the URL.
    pub(super) async fn get_json(&self, url: &str) -> Result<Value, String> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|_| format!("{url} is not a URL berth can fetch"))?;
        let exchange = async {
            let response =
                self.client.request(request).await.map_err(|e| format!("{url} could not be reached: {}", chain(&e)))?;
            let status = response.status();
            if status != http::StatusCode::OK {
                return Err(format!("{url} answered HTTP {status}"));
            }
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64) {
                return Err(format!("{url} answered with a document larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES).collect().await.map_err(|e| {
                if e.is::<LengthLimitError>() {
                    format!("{url} answered with a document larger than {MAX_DOCUMENT_BYTES} bytes")
                } else {
                    format!("{url} broke off its answer: {}", chain(e.as_ref()))
                }
            })?;
            serde_json::from_slice(&body.to_bytes()).map_err(|e| format!("{url} did not answer with JSON: {e}"))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("{url} did not answer within {} ms", self.timeout.as_millis())),
        }
    }
}

/// An error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}
