//! The gateway end to end: signed `http` requests in, AWS-shaped responses out, through an
//! awsQuery and an awsJson service defined here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use berth_aws::identity::{Authorizer, AuthzRequest, Credential, CredentialStore, Principal, PrincipalKind, Secret};
use berth_aws::service::{
    Auth, BoxFuture, Input, Operation, Output, RequestContext, ResourceRule, Service, ServiceSpec,
};
use berth_aws::sigv4::{self, SigningCredentials};
use berth_aws::time::{Clock, Timestamp};
use berth_aws::{xml, AwsContext, AwsError, Gateway, Protocol};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use serde_json::{json, Value};

use crate::support::{block_on, check_xml, creds, t0, xml_text};

const HOST: &str = "localhost:4566";

const ROOT_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const ROOT_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ROOT_ARN: &str = "arn:aws:iam::000000000000:root";
const TEMP_KEY: &str = "ASIAIOSFODNN7EXAMPLE";
const TEMP_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";
const TEMP_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE//TOKEN+=";
const TEMP_ARN: &str = "arn:aws:sts::000000000000:assumed-role/deployer/session-1";
const EXPIRED_KEY: &str = "ASIAEXPIREDEXAMPLE00";
const EXPIRED_TOKEN: &str = "expired-session-token";

const QUERY_NS: &str = "https://qsvc.example.com/doc/2020-01-01/";
const JSON_TARGET: &str = "JsonService_20200101";
const DENIED_QUERY: &str = "qsvc:Forbidden";
const DENIED_JSON: &str = "jsvc:Forbidden";

static QUERY_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "qsvc",
    action_prefix: "qsvc",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: QUERY_NS,
    global: false,
    operations: &[
        Operation::action("Echo", "qsvc:Echo", ResourceRule::Any),
        Operation::action("Forbidden", DENIED_QUERY, ResourceRule::Arn(thing_arn)),
        Operation { name: "Hello", auth: Auth::Unsigned },
    ],
};

/// The resource of `Forbidden`: `arn:aws:<prefix>:<region>:<acct>:thing/x`.
fn thing_arn(ctx: &RequestContext, _input: &Input) -> Result<String, AwsError> {
    Ok(ctx.aws.arn("qsvc", "thing/x"))
}

fn json_thing_arn(ctx: &RequestContext, _input: &Input) -> Result<String, AwsError> {
    Ok(ctx.aws.arn("jsvc", "thing/x"))
}

static JSON_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "jsvc",
    action_prefix: "jsvc",
    protocol: Protocol::AwsJson1_1,
    target_prefix: JSON_TARGET,
    xml_namespace: "",
    global: false,
    operations: &[
        Operation::action("Echo", "jsvc:Echo", ResourceRule::Any),
        Operation::action("Forbidden", DENIED_JSON, ResourceRule::Arn(json_thing_arn)),
    ],
};

/// A global awsQuery service (as IAM and STS are): signatures for any region are accepted.
static GLOBAL_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "gsvc",
    action_prefix: "gsvc",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: "https://gsvc.example.com/doc/2020-01-01/",
    global: true,
    operations: &[Operation::action("Echo", "gsvc:Echo", ResourceRule::Any)],
};

/// An in-test service: `Echo` returns its input and the caller; `Forbidden` needs a permission the
/// authorizer never grants. Counts the calls that reach it.
struct EchoService {
    spec: &'static ServiceSpec,
    calls: AtomicUsize,
}

impl Service for EchoService {
    fn spec(&self) -> &'static ServiceSpec {
        self.spec
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match input {
                Input::Query(q) => Ok(Output::Xml(Some(format!(
                    "<Message>{}</Message><Caller>{}</Caller><Keys>{}</Keys>",
                    xml::escape(q.get("Message").unwrap_or("")),
                    xml::escape(&ctx.principal.arn),
                    xml::escape(&q.iter().map(|(k, _)| k).collect::<Vec<_>>().join(","))
                )))),
                Input::Json(map) => Ok(Output::Json(json!({ "Echo": map, "Caller": ctx.principal.arn }))),
            }
        })
    }
}

/// An in-memory credential store with a root key, a temporary key and an expired temporary key.
struct TestCredentials(HashMap<&'static str, Arc<Credential>>);

impl CredentialStore for TestCredentials {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        self.0.get(access_key_id).cloned()
    }
}

/// Allows everything but the two `Forbidden` actions.
struct DenyForbidden;

impl Authorizer for DenyForbidden {
    fn is_allowed(&self, request: &AuthzRequest<'_>) -> bool {
        request.action != DENIED_QUERY && request.action != DENIED_JSON
    }
}

struct FixedClock(SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

fn principal(arn: &str, key: &str, kind: PrincipalKind) -> Principal {
    Principal {
        arn: arn.into(),
        user_id: "AIDAEXAMPLEUSERID0001".into(),
        account_id: "000000000000".into(),
        access_key_id: key.into(),
        kind,
    }
}

struct Fixture {
    gateway: Gateway,
    services: Vec<Arc<EchoService>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_limit(None)
    }

    fn with_limit(limit: Option<usize>) -> Fixture {
        let assumed = PrincipalKind::AssumedRole { role_name: "deployer".into(), session_name: "session-1".into() };
        let store = TestCredentials(HashMap::from([
            (
                ROOT_KEY,
                Arc::new(Credential {
                    secret_access_key: Secret::new(ROOT_SECRET),
                    session_token: None,
                    expires_at: None,
                    principal: principal(ROOT_ARN, ROOT_KEY, PrincipalKind::Root).into(),
                }),
            ),
            (
                TEMP_KEY,
                Arc::new(Credential {
                    secret_access_key: Secret::new(TEMP_SECRET),
                    session_token: Some(Secret::new(TEMP_TOKEN)),
                    expires_at: Some(Timestamp(t0().0 + 3600)),
                    principal: principal(TEMP_ARN, TEMP_KEY, assumed.clone()).into(),
                }),
            ),
            (
                EXPIRED_KEY,
                Arc::new(Credential {
                    secret_access_key: Secret::new(TEMP_SECRET),
                    session_token: Some(Secret::new(EXPIRED_TOKEN)),
                    expires_at: Some(Timestamp(t0().0 - 1)),
                    principal: principal(TEMP_ARN, EXPIRED_KEY, assumed).into(),
                }),
            ),
        ]));
        let clock = Arc::new(FixedClock(t0().to_system()));
        let mut gateway = Gateway::new(AwsContext::default(), Arc::new(store), Arc::new(DenyForbidden), clock);
        if let Some(limit) = limit {
            gateway = gateway.with_max_body_bytes(limit);
        }
        let services: Vec<Arc<EchoService>> = [&QUERY_SPEC, &JSON_SPEC, &GLOBAL_SPEC]
            .into_iter()
            .map(|spec| Arc::new(EchoService { spec, calls: AtomicUsize::new(0) }))
            .collect();
        for s in &services {
            gateway.register(s.clone());
        }
        Fixture { gateway, services }
    }

    /// Calls that reached any handler.
    fn handler_calls(&self) -> usize {
        self.services.iter().map(|s| s.calls.load(Ordering::SeqCst)).sum()
    }

    fn send(&self, req: Req) -> Sent {
        let (parts, body) = req.build();
        Sent::from(block_on(self.gateway.handle(&parts, &body, None)))
    }
}

fn root() -> SigningCredentials {
    creds(ROOT_KEY, ROOT_SECRET, None)
}

fn temp() -> SigningCredentials {
    creds(TEMP_KEY, TEMP_SECRET, Some(TEMP_TOKEN))
}

/// A request under construction, signed (or not) when built.
#[derive(Clone)]
struct Req {
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    signer: Option<(SigningCredentials, String, String)>,
    at: Timestamp,
}

impl Req {
    /// An awsQuery POST of `form` to `qsvc`, signed by root in us-east-1.
    fn query(form: &str) -> Req {
        Req {
            method: "POST",
            uri: "/".into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded; charset=utf-8".into())],
            body: form.as_bytes().to_vec(),
            signer: Some((root(), "us-east-1".into(), "qsvc".into())),
            at: t0(),
        }
    }

    /// An awsJson POST of `body` to `jsvc`'s `operation`, signed by root in us-east-1.
    fn json(operation: &str, body: &str) -> Req {
        Req {
            method: "POST",
            uri: "/".into(),
            headers: vec![
                ("content-type".into(), "application/x-amz-json-1.1".into()),
                ("x-amz-target".into(), format!("{JSON_TARGET}.{operation}")),
            ],
            body: body.as_bytes().to_vec(),
            signer: Some((root(), "us-east-1".into(), "jsvc".into())),
            at: t0(),
        }
    }

    fn signed_by(mut self, creds: SigningCredentials) -> Req {
        if let Some(s) = self.signer.as_mut() {
            s.0 = creds;
        }
        self
    }

    fn scoped(mut self, region: &str, service: &str) -> Req {
        if let Some(s) = self.signer.as_mut() {
            s.1 = region.into();
            s.2 = service.into();
        }
        self
    }

    fn unsigned(mut self) -> Req {
        self.signer = None;
        self
    }

    fn at(mut self, at: Timestamp) -> Req {
        self.at = at;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    fn without_header(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    fn build(&self) -> (http::request::Parts, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static(HOST));
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        let uri: http::Uri = self.uri.parse().expect("uri");
        if let Some((creds, region, service)) = &self.signer {
            let (path, query) = (uri.path(), uri.query().unwrap_or(""));
            sigv4::sign(self.method, path, query, &mut headers, &self.body, creds, region, service, self.at);
        }
        let (mut parts, ()) =
            http::Request::builder().method(self.method).uri(uri).body(()).expect("request").into_parts();
        parts.headers = headers;
        (parts, self.body.clone())
    }
}

/// A response, with the checks every response must pass.
#[derive(Debug)]
struct Sent {
    status: u16,
    headers: HeaderMap,
    body: String,
    request_id: String,
}

impl From<Response<Bytes>> for Sent {
    fn from(resp: Response<Bytes>) -> Sent {
        let request_id = resp
            .headers()
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .expect("every response carries x-amzn-RequestId")
            .to_string();
        assert!(is_uuid(&request_id), "request id {request_id}");
        Sent {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: String::from_utf8(resp.body().to_vec()).expect("UTF-8 body"),
            request_id,
        }
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

impl Sent {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Checks an awsQuery error response and returns its message.
    fn query_error(&self, status: u16, code: &str) -> String {
        assert_eq!((self.status, self.header("content-type")), (status, Some("text/xml")), "{}", self.body);
        assert_eq!(check_xml(&self.body).as_deref(), Ok("ErrorResponse"), "{}", self.body);
        assert_eq!(xml_text(&self.body, "Code"), Some(code), "{}", self.body);
        assert_eq!(xml_text(&self.body, "Type"), Some(if status >= 500 { "Receiver" } else { "Sender" }));
        assert_eq!(xml_text(&self.body, "RequestId"), Some(self.request_id.as_str()));
        assert_eq!(self.header("x-amzn-errortype"), None, "awsQuery errors carry the code in the body");
        unescape(xml_text(&self.body, "Message").expect("Message"))
    }

    /// Checks an awsJson 1.1 error response and returns its message.
    fn json_error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            (self.status, self.header("content-type")),
            (status, Some("application/x-amz-json-1.1")),
            "{}",
            self.body
        );
        assert_eq!(self.header("x-amzn-errortype"), Some(code));
        let v: Value = serde_json::from_str(&self.body).expect("error body is JSON");
        let obj = v.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 2, "{}", self.body);
        assert_eq!(v["__type"], code);
        v["message"].as_str().expect("message").to_string()
    }

    fn json_ok(&self) -> Value {
        assert_eq!(
            (self.status, self.header("content-type")),
            (200, Some("application/x-amz-json-1.1")),
            "{}",
            self.body
        );
        assert_eq!(self.header("x-amzn-errortype"), None);
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

#[test]
fn query_echo_answers_in_the_awsquery_shape() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Echo&Version=2020-01-01&Message=a%26b+%3Cc%3E"));
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/xml")), "{}", r.body);
    assert_eq!(check_xml(&r.body).as_deref(), Ok("EchoResponse"));
    assert_eq!(
        r.body,
        format!(
            "<EchoResponse xmlns=\"{QUERY_NS}\"><EchoResult><Message>a&amp;b &lt;c&gt;</Message><Caller>{ROOT_ARN}</Caller><Keys>Message,Version</Keys></EchoResult>\
             <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></EchoResponse>",
            r.request_id
        )
    );
    assert_eq!(f.handler_calls(), 1);
    // Each request gets its own id.
    let again = f.send(Req::query("Action=Echo"));
    assert_eq!(again.status, 200);
    assert_ne!(again.request_id, r.request_id);
}

#[test]
fn query_parameters_may_come_in_the_url() {
    let f = Fixture::new();
    let mut req = Req::query("").without_header("content-type");
    req.method = "GET";
    req.uri = "/?Action=Echo&Message=from%20url".into();
    let r = f.send(req);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(xml_text(&r.body, "Message"), Some("from url"));
    assert_eq!(xml_text(&r.body, "Keys"), Some("Message"));

    // A presigned URL, with the temporary key's session token in it.
    let query =
        sigv4::presign("GET", "/", "Action=Echo&Message=presigned", HOST, &temp(), "us-east-1", "qsvc", t0(), 300);
    let mut req = Req::query("").unsigned().without_header("content-type");
    req.method = "GET";
    req.uri = format!("/?{query}");
    let r = f.send(req.clone());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(xml_text(&r.body, "Message"), Some("presigned"));
    assert_eq!(xml_text(&r.body, "Caller"), Some(TEMP_ARN));
    // The signature's own parameters are not input.
    assert_eq!(xml_text(&r.body, "Keys"), Some("Message"));

    // The same URL after it expired.
    let f = Fixture::new();
    let mut late = req;
    late.uri = format!(
        "/?{}",
        sigv4::presign("GET", "/", "Action=Echo", HOST, &root(), "us-east-1", "qsvc", Timestamp(t0().0 - 301), 300)
    );
    let msg = f.send(late).query_error(403, "SignatureDoesNotMatch");
    assert!(msg.starts_with("Request has expired"), "{msg}");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn json_echo_answers_in_the_awsjson_shape() {
    let f = Fixture::new();
    let r = f.send(Req::json("Echo", r#"{"Message":"hi","List":[1,2,{"a":null}]}"#));
    assert_eq!(r.json_ok(), json!({ "Echo": { "Message": "hi", "List": [1, 2, { "a": null }] }, "Caller": ROOT_ARN }));
    // An empty body is an empty input.
    let r = f.send(Req::json("Echo", ""));
    assert_eq!(r.json_ok(), json!({ "Echo": {}, "Caller": ROOT_ARN }));
    let r = f.send(Req::json("Echo", " \n "));
    assert_eq!(r.json_ok(), json!({ "Echo": {}, "Caller": ROOT_ARN }));
    // awsJson 1.0 and plain JSON content types are accepted too.
    let r = f.send(Req::json("Echo", "{}").header("content-type", "application/x-amz-json-1.0"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(f.handler_calls(), 4);
}

#[test]
fn temporary_credentials_with_their_session_token_are_accepted() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Echo").signed_by(temp()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(xml_text(&r.body, "Caller"), Some(TEMP_ARN));
    let r = f.send(Req::json("Echo", "{}").signed_by(temp()));
    assert_eq!(r.json_ok()["Caller"], TEMP_ARN);
}

#[test]
fn missing_authentication_is_refused() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Echo").unsigned());
    assert_eq!(r.query_error(403, "MissingAuthenticationToken"), "Request is missing Authentication Token");
    // The service is unknown without a signature: no namespace.
    assert!(r.body.starts_with("<ErrorResponse><Error>"), "{}", r.body);
    let r = f.send(Req::json("Echo", "{}").unsigned());
    assert_eq!(r.json_error(400, "MissingAuthenticationTokenException"), "Request is missing Authentication Token");
    assert_eq!(f.handler_calls(), 0);
}

/// An operation declared `Auth::Unsigned` (as STS `AssumeRoleWithWebIdentity` is) is served without
/// a signature, to the anonymous principal; the other operations of the same service are not.
#[test]
fn unsigned_operations_need_no_signature() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Hello&Message=hi").unsigned());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(xml_text(&r.body, "Caller"), Some("anonymous"));
    assert_eq!(xml_text(&r.body, "Message"), Some("hi"));
    assert!(r.body.starts_with(&format!("<HelloResponse xmlns=\"{QUERY_NS}\">")), "{}", r.body);
    assert_eq!(f.handler_calls(), 1);
    // Signed, it is served to the signer.
    let r = f.send(Req::query("Action=Hello"));
    assert_eq!(xml_text(&r.body, "Caller"), Some(ROOT_ARN));
    // Echo is not unsigned: refused, and the handler is not reached.
    let r = f.send(Req::query("Action=Echo").unsigned());
    r.query_error(403, "MissingAuthenticationToken");
    let r = f.send(Req::query("Action=Hello&Action=Echo").unsigned());
    r.query_error(403, "MissingAuthenticationToken");
    assert_eq!(f.handler_calls(), 2);
}

#[test]
fn unknown_access_key_is_refused() {
    let f = Fixture::new();
    let stranger = creds("AKIAUNKNOWNEXAMPLE00", ROOT_SECRET, None);
    let r = f.send(Req::query("Action=Echo").signed_by(stranger.clone()));
    assert_eq!(r.query_error(403, "InvalidClientTokenId"), INVALID_TOKEN);
    assert!(r.body.starts_with(&format!("<ErrorResponse xmlns=\"{QUERY_NS}\">")), "{}", r.body);
    let r = f.send(Req::json("Echo", "{}").signed_by(stranger));
    assert_eq!(r.json_error(400, "UnrecognizedClientException"), INVALID_TOKEN);
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn wrong_secret_is_refused() {
    let f = Fixture::new();
    let forger = creds(ROOT_KEY, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ", None);
    let mismatch = "The request signature we calculated does not match the signature you provided. \
                    Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    let r = f.send(Req::query("Action=Echo").signed_by(forger.clone()));
    assert_eq!(r.query_error(403, "SignatureDoesNotMatch"), mismatch);
    let r = f.send(Req::json("Echo", "{}").signed_by(forger));
    assert_eq!(r.json_error(400, "InvalidSignatureException"), mismatch);
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn tampered_body_is_refused() {
    let f = Fixture::new();
    let (mut parts, _) = Req::query("Action=Echo&Message=a").build();
    let r = Sent::from(block_on(f.gateway.handle(&parts, b"Action=Echo&Message=b", None)));
    r.query_error(403, "SignatureDoesNotMatch");
    // With a declared payload hash, the hash is checked first.
    let hash = sigv4::hex_sha256(b"Action=Echo&Message=a");
    (parts, _) = Req::query("Action=Echo&Message=a").header("x-amz-content-sha256", &hash).build();
    let r = Sent::from(block_on(f.gateway.handle(&parts, b"Action=Echo&Message=b", None)));
    assert_eq!(
        r.query_error(400, "XAmzContentSHA256Mismatch"),
        "The provided 'x-amz-content-sha256' header does not match what was computed."
    );
    let r = Sent::from(block_on(f.gateway.handle(&parts, b"Action=Echo&Message=a", None)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(f.handler_calls(), 1);
}

#[test]
fn session_token_must_match_the_key() {
    let f = Fixture::new();
    let cases = [
        ("temporary key without its token", creds(TEMP_KEY, TEMP_SECRET, None)),
        ("temporary key with another token", creds(TEMP_KEY, TEMP_SECRET, Some("IQoJb3JpZ2luX2VjEXAMPLE//TOKEN+/"))),
        ("long-term key with a token", creds(ROOT_KEY, ROOT_SECRET, Some(TEMP_TOKEN))),
    ];
    for (what, c) in cases {
        let r = f.send(Req::query("Action=Echo").signed_by(c.clone()));
        assert_eq!(r.query_error(403, "InvalidClientTokenId"), INVALID_TOKEN, "{what}");
        let r = f.send(Req::json("Echo", "{}").signed_by(c));
        assert_eq!(r.json_error(400, "UnrecognizedClientException"), INVALID_TOKEN, "{what}");
    }
    // A token that has expired.
    let expired = creds(EXPIRED_KEY, TEMP_SECRET, Some(EXPIRED_TOKEN));
    let r = f.send(Req::query("Action=Echo").signed_by(expired.clone()));
    assert_eq!(r.query_error(403, "ExpiredToken"), "The security token included in the request is expired");
    let r = f.send(Req::json("Echo", "{}").signed_by(expired));
    r.json_error(400, "ExpiredTokenException");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn denied_action_is_refused_with_the_principal_action_and_resource() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Forbidden"));
    assert_eq!(
        r.query_error(403, "AccessDenied"),
        "User: arn:aws:iam::000000000000:root is not authorized to perform: qsvc:Forbidden on resource: arn:aws:qsvc:us-east-1:000000000000:thing/x"
    );
    assert!(r.body.starts_with(&format!("<ErrorResponse xmlns=\"{QUERY_NS}\">")), "{}", r.body);
    let r = f.send(Req::json("Forbidden", "{}").signed_by(temp()));
    assert_eq!(
        r.json_error(400, "AccessDeniedException"),
        format!("User: {TEMP_ARN} is not authorized to perform: jsvc:Forbidden on resource: arn:aws:jsvc:us-east-1:000000000000:thing/x")
    );
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn unknown_operations_are_refused() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Nope&Version=2020-01-01"));
    assert_eq!(r.query_error(400, "InvalidAction"), "Could not find operation Nope");
    let r = f.send(Req::query("Version=2020-01-01"));
    assert_eq!(r.query_error(400, "MissingAction"), "Action parameter is required");
    // Operation names are case-sensitive.
    f.send(Req::query("Action=echo")).query_error(400, "InvalidAction");

    let r = f.send(Req::json("Nope", "{}"));
    assert_eq!(r.json_error(400, "UnknownOperationException"), format!("Could not find operation {JSON_TARGET}.Nope"));
    let r = f.send(Req::json("Echo", "{}").header("x-amz-target", "OtherService_20200101.Echo"));
    r.json_error(400, "UnknownOperationException");
    let r = f.send(Req::json("Echo", "{}").header("x-amz-target", "NoDotAtAll"));
    r.json_error(400, "UnknownOperationException");
    let r = f.send(Req::json("Echo", "{}").without_header("x-amz-target"));
    assert_eq!(r.json_error(400, "UnknownOperationException"), "X-Amz-Target header is required");

    // A service berth does not have.
    let r = f.send(Req::query("Action=Echo").scoped("us-east-1", "nosuch"));
    assert_eq!(r.query_error(400, "InvalidAction"), "berth does not implement the AWS service 'nosuch'");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn malformed_json_is_a_serialization_exception() {
    let f = Fixture::new();
    for body in [r#"{"Message":"#, "{'a':1}", "\u{0}", r#"{"a":1} trailing"#] {
        let msg = f.send(Req::json("Echo", body)).json_error(400, "SerializationException");
        assert!(msg.starts_with("The request body is not valid JSON"), "{body:?}: {msg}");
    }
    for body in ["[]", r#"[{"Message":"hi"}]"#, "\"text\"", "42", "null", "true"] {
        let msg = f.send(Req::json("Echo", body)).json_error(400, "SerializationException");
        assert_eq!(msg, "The request body must be a JSON object", "{body}");
    }
    // Not UTF-8.
    let mut req = Req::json("Echo", "");
    req.body = vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}'];
    let msg = f.send(req).json_error(400, "SerializationException");
    assert!(msg.starts_with("The request body is not valid JSON"), "{msg}");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn malformed_form_is_a_malformed_query_string() {
    let f = Fixture::new();
    for (form, message) in [
        ("Action=Echo&Message=%zz", "invalid percent-encoding in '%zz'"),
        ("Action=Echo&Message=%4", "invalid percent-encoding in '%4'"),
        ("Action=Echo&Message=%ff", "parameter is not valid UTF-8 after decoding"),
        ("Action=Echo&Action=Echo", "parameter 'Action' is given more than once"),
        ("Action=Echo&=x", "parameter with an empty name"),
    ] {
        let msg = f.send(Req::query(form)).query_error(400, "MalformedQueryString");
        assert_eq!(msg, message, "{form}");
    }
    let mut req = Req::query("");
    req.body = b"Action=Echo&Message=\xff".to_vec();
    let msg = f.send(req).query_error(400, "MalformedQueryString");
    assert_eq!(msg, "The request body is not valid UTF-8");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn wrong_content_type_is_415() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Echo").header("content-type", "application/json"));
    assert_eq!(r.query_error(415, "UnsupportedMediaType"), "Unsupported Content-Type 'application/json'");
    let r = f.send(Req::query("Action=Echo").without_header("content-type"));
    assert_eq!(r.query_error(415, "UnsupportedMediaType"), "Unsupported Content-Type ''");
    let r = f.send(Req::json("Echo", "{}").header("content-type", "text/plain"));
    assert_eq!(r.json_error(415, "UnsupportedMediaTypeException"), "Unsupported Content-Type 'text/plain'");
    let r = f.send(Req::json("Echo", "{}").without_header("content-type"));
    r.json_error(415, "UnsupportedMediaTypeException");
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn body_too_large_is_413_in_the_protocol_of_the_request() {
    let f = Fixture::new();
    let (parts, _) = Req::query("Action=Echo").build();
    let r = Sent::from(f.gateway.body_too_large(&parts));
    assert_eq!(r.query_error(413, "RequestEntityTooLarge"), "Request body is larger than the limit of 16777216 bytes");
    assert_eq!(f.gateway.max_body_bytes(), 16 * 1024 * 1024);

    let f = Fixture::with_limit(Some(1024));
    let (parts, _) = Req::json("Echo", "{}").build();
    let r = Sent::from(f.gateway.body_too_large(&parts));
    assert_eq!(
        r.json_error(413, "RequestEntityTooLargeException"),
        "Request body is larger than the limit of 1024 bytes"
    );
    assert_eq!(f.handler_calls(), 0);
}

#[test]
fn regional_service_refuses_a_signature_for_another_region() {
    let f = Fixture::new();
    let r = f.send(Req::query("Action=Echo").scoped("eu-west-1", "qsvc"));
    assert_eq!(
        r.query_error(400, "IncompleteSignature"),
        "Credential should be scoped to a valid region, not 'eu-west-1'. This berth serves region 'us-east-1'."
    );
    let r = f.send(Req::json("Echo", "{}").scoped("eu-west-1", "jsvc"));
    r.json_error(400, "IncompleteSignatureException");
    assert_eq!(f.handler_calls(), 0);
    // A global service accepts any region.
    let r = f.send(Req::query("Action=Echo").scoped("eu-west-1", "gsvc"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("<EchoResponse xmlns=\"https://gsvc.example.com/doc/2020-01-01/\">"), "{}", r.body);
    assert_eq!(f.handler_calls(), 1);
}

#[test]
fn stale_or_incomplete_signatures_are_refused() {
    let f = Fixture::new();
    let old = Timestamp(t0().0 - 16 * 60);
    let msg = f.send(Req::query("Action=Echo").at(old)).query_error(403, "SignatureDoesNotMatch");
    assert!(msg.starts_with("Signature expired:"), "{msg}");
    let msg =
        f.send(Req::json("Echo", "{}").at(Timestamp(t0().0 + 16 * 60))).json_error(400, "InvalidSignatureException");
    assert!(msg.starts_with("Signature not yet current"), "{msg}");
    // Within the skew, fine.
    assert_eq!(f.send(Req::query("Action=Echo").at(Timestamp(t0().0 - 14 * 60))).status, 200);

    let garbled = Req::query("Action=Echo").unsigned().header("authorization", "AWS4-HMAC-SHA256 Credential=x");
    let msg = f.send(garbled).query_error(400, "IncompleteSignature");
    assert_eq!(msg, "Authorization header requires 'SignedHeaders' parameter.");
    let garbled = Req::json("Echo", "{}").unsigned().header("authorization", "Bearer abc");
    f.send(garbled).json_error(400, "IncompleteSignatureException");
    assert_eq!(f.handler_calls(), 1);
}

#[test]
fn other_methods_are_refused() {
    let f = Fixture::new();
    let mut req = Req::query("Action=Echo");
    req.method = "PUT";
    f.send(req).query_error(405, "InvalidAction");
    let mut req = Req::json("Echo", "{}");
    req.method = "DELETE";
    f.send(req).json_error(405, "UnknownOperationException");
    // awsJson is POST only.
    let mut req = Req::json("Echo", "");
    req.method = "GET";
    f.send(req).json_error(405, "UnknownOperationException");
    assert_eq!(f.handler_calls(), 0);
}
