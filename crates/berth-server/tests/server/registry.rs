//! The OCI distribution data path (`/v2/`) through a real server and a real HTTP client: auth and
//! IAM, uploads (monolithic, chunked, resumable, cancelled, refused), blobs by range, manifests
//! and indexes byte for byte, immutable tags, tag pages, referrers, cross-repository mounts and
//! signed download URLs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use berth_aws::time::ManualClock;
use berth_registry::Digest;
use berth_server::client::ApiClient;
use berth_server::testing::TestServer;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ECR: &str = "AmazonEC2ContainerRegistry_V20150921";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An answer from the data path.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The first spec error code, after checking the status.
    fn error(&self, status: u16) -> (String, String) {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        let e = &v["errors"][0];
        (e["code"].as_str().unwrap_or_default().to_string(), e["message"].as_str().unwrap_or_default().to_string())
    }
    fn code(&self, status: u16) -> String {
        self.error(status).0
    }
}

/// A registry client: plain HTTP with Basic credentials, as docker sends them.
struct Registry {
    base: String,
    auth: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Registry {
    fn new(t: &TestServer, auth: Option<String>) -> Registry {
        Registry { base: t.endpoint(), auth, http: Client::builder(TokioExecutor::new()).build_http() }
    }

    /// A client with the password `GetAuthorizationToken` hands `api`'s identity.
    async fn login(t: &TestServer, api: &ApiClient) -> Registry {
        let token = authorization_token(api).await;
        Registry::new(t, Some(format!("Basic {token}")))
    }

    fn anonymous(&self) -> Registry {
        Registry { base: self.base.clone(), auth: None, http: self.http.clone() }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.http.request(req.body(Full::new(body.into())).unwrap()).await.expect("request");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        let resp = Resp { status: parts.status.as_u16(), headers: parts.headers, body };
        assert_eq!(resp.header("docker-distribution-api-version"), Some("registry/2.0"), "{method} {path}");
        resp
    }

    async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Bytes::new()).await
    }
    async fn head(&self, path: &str) -> Resp {
        let r = self.send("HEAD", path, &[], Bytes::new()).await;
        assert!(r.body.is_empty(), "HEAD {path} has a body");
        r
    }

    /// Pushes a blob monolithically (`POST ?digest=`); returns its digest.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let r = self
            .send(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("content-type", "application/octet-stream")],
                Bytes::copy_from_slice(data),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("location"), Some(format!("/v2/{repo}/blobs/{d}").as_str()));
        assert_eq!(r.header("docker-content-digest"), Some(d.to_string().as_str()));
        d
    }

    /// Starts an upload; returns its `Location`.
    async fn start_upload(&self, repo: &str) -> String {
        let r = self.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Bytes::new()).await;
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("range"), Some("0-0"));
        let location = r.header("location").unwrap().to_string();
        let uuid = r.header("docker-upload-uuid").unwrap();
        assert_eq!(location, format!("/v2/{repo}/blobs/uploads/{uuid}"));
        location
    }

    async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            Bytes::copy_from_slice(body),
        )
        .await
    }
}

/// `authorizationData[0].authorizationToken` for the client's identity: `base64("AWS:<password>")`.
async fn authorization_token(api: &ApiClient) -> String {
    let r = api.json("ecr", &format!("{ECR}.GetAuthorizationToken"), &json!({})).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["authorizationData"][0]["authorizationToken"].as_str().unwrap().to_string()
}

fn password_of(token: &str) -> String {
    let decoded = base64::engine::general_purpose::STANDARD.decode(token).unwrap();
    String::from_utf8(decoded).unwrap().strip_prefix("AWS:").expect("AWS:<password>").to_string()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn create_repository(t: &TestServer, name: &str, mutability: &str) {
    let r = t
        .client
        .json(
            "ecr",
            &format!("{ECR}.CreateRepository"),
            &json!({"repositoryName": name, "imageTagMutability": mutability}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Pseudo-random bytes (xorshift), so that a wrong offset cannot go unnoticed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": Digest::of(data).to_string(), "size": data.len()})
}

/// Pushes a config and a layer and returns an OCI image manifest for them, with unusual spacing so
/// that any re-serialisation would change its digest.
async fn push_image(reg: &Registry, repo: &str, seed: u64) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = random_bytes(3000, seed);
    reg.push_blob(repo, &config).await;
    reg.push_blob(repo, &layer).await;
    format!(
        "{{\n  \"schemaVersion\" : 2,\n  \"mediaType\": \"{OCI_MANIFEST}\",\n  \"config\": {},\n  \"layers\": [ {} ]\n}}\n",
        descriptor(OCI_CONFIG, &config),
        descriptor(OCI_LAYER, &layer)
    )
    .into_bytes()
}

/// Creates a user with an access key and the given inline policy; returns a client signed with it.
async fn user_with_policy(t: &TestServer, name: &str, policy: &Value) -> ApiClient {
    t.user_client(name, Some(&policy.to_string())).await
}

#[tokio::test]
async fn registry_base_check_challenges_strangers_and_admits_the_ecr_password() {
    let t = TestServer::start().await;
    let reg = Registry::login(&t, &t.client).await;
    let anon = reg.anonymous();

    let r = anon.get("/v2/").await;
    assert_eq!(r.code(401), "UNAUTHORIZED");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    // Unknown paths do not tell strangers anything either.
    assert_eq!(anon.get("/v2/app/tags/list").await.code(401), "UNAUTHORIZED");
    assert_eq!(anon.get("/v2/_catalog").await.code(401), "UNAUTHORIZED");

    let r = reg.get("/v2/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(reg.get("/v2").await.status, 200);

    let password = password_of(reg.auth.as_deref().unwrap().strip_prefix("Basic ").unwrap());
    for (what, auth) in [
        ("a forged signature", basic("AWS", &format!("{}x", &password[..password.len() - 1]))),
        ("another user name", basic("admin", &password)),
        ("a made-up password", basic("AWS", "berth1.AKIAEXAMPLE.99999999999.c2lnbmF0dXJl")),
        ("garbage", "Basic !!!not-base64".to_string()),
        ("a bearer token", format!("Bearer {password}")),
    ] {
        let r = Registry::new(&t, Some(auth)).get("/v2/").await;
        assert_eq!(r.code(401), "UNAUTHORIZED", "{what}");
        assert!(r.header("www-authenticate").is_some(), "{what}");
    }

    // Authenticated but unknown: 404 with a spec error; a wrong method: 405.
    assert_eq!(reg.get("/v2/_catalog").await.status, 404);
    assert!(!reg.get("/v2/_catalog").await.code(404).is_empty());
    create_repository(&t, "app", "MUTABLE").await;
    let d = Digest::of(b"x");
    assert_eq!(reg.send("POST", &format!("/v2/app/blobs/{d}"), &[], Bytes::new()).await.code(405), "UNSUPPORTED");
    let r = reg.send("PATCH", "/v2/app/manifests/latest", &[], Bytes::new()).await;
    assert_eq!(r.code(405), "UNSUPPORTED");
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    t.shutdown().await;
}

#[tokio::test]
async fn an_expired_password_or_a_deleted_key_is_refused() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let t = TestServer::start_with_clock(clock.clone()).await;
    let reg = Registry::login(&t, &t.client).await;
    assert_eq!(reg.get("/v2/").await.status, 200);
    clock.advance(Duration::from_secs(12 * 3600 + 1));
    let (code, message) = reg.get("/v2/").await.error(401);
    assert_eq!(code, "UNAUTHORIZED");
    assert!(message.contains("expired"), "{message}");

    // A user's password ends with its access key.
    let user = user_with_policy(
        &t,
        "puller",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}),
    )
    .await;
    let reg = Registry::login(&t, &user).await;
    assert_eq!(reg.get("/v2/").await.status, 200);
    let keys = t.client.query("iam", "ListAccessKeys", "2010-05-08", &[("UserName", "puller")]).await.unwrap();
    let key = keys.xml_value("AccessKeyId").unwrap();
    let r = t
        .client
        .query("iam", "DeleteAccessKey", "2010-05-08", &[("UserName", "puller"), ("AccessKeyId", &key)])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(reg.get("/v2/").await.code(401), "UNAUTHORIZED");
    t.shutdown().await;
}

#[tokio::test]
async fn uploads_monolithic_chunked_resumed_cancelled_and_refused() {
    let t = TestServer::start().await;
    create_repository(&t, "team/app", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;

    // Monolithic.
    let d = reg.push_blob("team/app", b"hello, registry").await;
    let r = reg.head(&format!("/v2/team/app/blobs/{d}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.header("docker-content-digest"), Some(d.to_string().as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = reg.get(&format!("/v2/team/app/blobs/{d}")).await;
    assert_eq!((r.status, &r.body[..]), (200, &b"hello, registry"[..]));

    // Chunked, with a status check (a resumed upload asks where it is) and a final chunk on PUT.
    let data = b"0123456789abcdefghij";
    let loc = reg.start_upload("team/app").await;
    let r = reg
        .send("PATCH", &loc, &[("content-range", "0-4"), ("content-type", "application/octet-stream")], &data[..5])
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-4"));
    assert_eq!(r.header("location"), Some(loc.as_str()));
    let r = reg.get(&loc).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("range"), Some("0-4"));
    // A chunk that does not follow on: 416 with where the upload is.
    for wrong in ["0-4", "6-10", "5-3", "x-y", "99999999999999999999999-99999999999999999999999"] {
        let r = reg.send("PATCH", &loc, &[("content-range", wrong)], &data[5..10]).await;
        assert_eq!(r.status, 416, "{wrong}: {}", r.text());
        assert_eq!(r.header("range"), Some("0-4"), "{wrong}");
    }
    // Content-Length must agree with Content-Range.
    let r = reg.send("PATCH", &loc, &[("content-range", "5-20")], &data[5..10]).await;
    assert_eq!(r.status, 416, "{}", r.text());
    let r = reg.send("PATCH", &loc, &[("content-range", "5-9")], &data[5..10]).await;
    assert_eq!(r.header("range"), Some("0-9"), "{}", r.text());
    // Without Content-Range a chunk is appended.
    let r = reg.send("PATCH", &loc, &[], &data[10..15]).await;
    assert_eq!((r.status, r.header("range")), (202, Some("0-14")));
    let d = Digest::of(data);
    let r = reg.send("PUT", &format!("{loc}?digest={d}"), &[], &data[15..]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/v2/team/app/blobs/{d}").as_str()));
    assert_eq!(r.header("docker-content-digest"), Some(d.to_string().as_str()));
    assert_eq!(&reg.get(&format!("/v2/team/app/blobs/{d}")).await.body[..], &data[..]);
    // A completed upload is gone.
    assert_eq!(reg.get(&loc).await.code(404), "BLOB_UPLOAD_UNKNOWN");

    // Cancel.
    let loc = reg.start_upload("team/app").await;
    assert_eq!(reg.send("PATCH", &loc, &[], &b"abandoned"[..]).await.status, 202);
    assert_eq!(reg.send("DELETE", &loc, &[], Bytes::new()).await.status, 204);
    assert_eq!(reg.get(&loc).await.code(404), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(reg.send("PATCH", &loc, &[], &b"more"[..]).await.code(404), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(reg.head(&format!("/v2/team/app/blobs/{}", Digest::of(b"abandoned"))).await.status, 404);

    // A wrong digest: refused, and nothing becomes visible under either digest.
    let claimed = Digest::of(b"what the client claims");
    let loc = reg.start_upload("team/app").await;
    assert_eq!(reg.send("PATCH", &loc, &[], &b"what was sent"[..]).await.status, 202);
    let r = reg.send("PUT", &format!("{loc}?digest={claimed}"), &[], Bytes::new()).await;
    assert_eq!(r.code(400), "DIGEST_INVALID");
    assert_eq!(reg.head(&format!("/v2/team/app/blobs/{claimed}")).await.status, 404);
    assert_eq!(reg.head(&format!("/v2/team/app/blobs/{}", Digest::of(b"what was sent"))).await.status, 404);
    assert_eq!(reg.get(&loc).await.code(404), "BLOB_UPLOAD_UNKNOWN");
    let r = reg.send("POST", &format!("/v2/team/app/blobs/uploads/?digest={claimed}"), &[], &b"other bytes"[..]).await;
    assert_eq!(r.code(400), "DIGEST_INVALID");
    let r = reg.get(&format!("/v2/team/app/blobs/{claimed}")).await;
    assert_eq!(r.code(404), "BLOB_UNKNOWN");

    // Malformed digests and ids, missing repositories, blob deletion.
    let loc = reg.start_upload("team/app").await;
    assert_eq!(reg.send("PUT", &loc, &[], Bytes::new()).await.code(400), "DIGEST_INVALID");
    assert_eq!(
        reg.send("PUT", &format!("{loc}?digest=sha256:abc"), &[], Bytes::new()).await.code(400),
        "DIGEST_INVALID"
    );
    assert_eq!(reg.get("/v2/team/app/blobs/sha256:nothex").await.code(400), "DIGEST_INVALID");
    assert_eq!(reg.get("/v2/team/app/blobs/md5:abc").await.code(400), "DIGEST_INVALID");
    assert_eq!(reg.get("/v2/team/app/blobs/uploads/not-an-id").await.code(404), "BLOB_UPLOAD_UNKNOWN");
    let foreign_id = "00000000-0000-4000-8000-000000000000";
    assert_eq!(reg.get(&format!("/v2/team/app/blobs/uploads/{foreign_id}")).await.code(404), "BLOB_UPLOAD_UNKNOWN");
    // An upload belongs to its repository.
    create_repository(&t, "other", "MUTABLE").await;
    let id = loc.rsplit('/').next().unwrap();
    assert_eq!(reg.get(&format!("/v2/other/blobs/uploads/{id}")).await.code(404), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(reg.get(&format!("/v2/other/blobs/{d}")).await.code(404), "BLOB_UNKNOWN");
    assert_eq!(reg.send("POST", "/v2/missing/blobs/uploads/", &[], Bytes::new()).await.code(404), "NAME_UNKNOWN");
    assert_eq!(reg.get(&format!("/v2/missing/blobs/{d}")).await.code(404), "NAME_UNKNOWN");
    assert_eq!(reg.get("/v2/Bad..Name/tags/list").await.code(400), "NAME_INVALID");
    assert_eq!(reg.get("/v2/app%zz/tags/list").await.status, 400);
    assert_eq!(
        reg.send("DELETE", &format!("/v2/team/app/blobs/{d}"), &[], Bytes::new()).await.code(405),
        "UNSUPPORTED"
    );
    assert_eq!(reg.head(&format!("/v2/team/app/blobs/{d}")).await.status, 200);
    t.shutdown().await;
}

#[tokio::test]
async fn a_multi_mib_blob_streams_in_and_reads_back_whole_and_by_range() {
    let t = TestServer::start().await;
    create_repository(&t, "big", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let data = random_bytes(6 * 1024 * 1024 + 12345, 42);
    let d = Digest::of(&data);
    let loc = reg.start_upload("big").await;
    let cuts = [0, 1, 2 * 1024 * 1024 + 7, 5 * 1024 * 1024, data.len()];
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let range = format!("{a}-{}", b - 1);
        let r = reg.send("PATCH", &loc, &[("content-range", &range)], Bytes::copy_from_slice(&data[a..b])).await;
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("range"), Some(format!("0-{}", b - 1).as_str()));
    }
    let r = reg.send("PUT", &format!("{loc}?digest={d}"), &[], Bytes::new()).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let path = format!("/v2/big/blobs/{d}");
    let r = reg.get(&path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(data.len().to_string().as_str()));
    assert!(r.body == data, "the blob read back differs");

    let n = data.len();
    for (range, first, last) in [
        ("bytes=0-0", 0, 0),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=1048570-3145740", 1048570, 3145740),
        (&format!("bytes={}-", n - 100), n - 100, n - 1),
        ("bytes=-10", n - 10, n - 1),
        (&format!("bytes=5-{}", n + 1000), 5, n - 1),
    ] {
        let r = reg.send("GET", &path, &[("range", range)], Bytes::new()).await;
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.header("content-range"), Some(format!("bytes {first}-{last}/{n}").as_str()), "{range}");
        assert_eq!(r.header("content-length"), Some((last - first + 1).to_string().as_str()), "{range}");
        assert!(r.body[..] == data[first..=last], "{range}: wrong bytes");
    }
    for range in [format!("bytes={n}-"), "bytes=99999999999999999999999-".to_string(), "bytes=-0".to_string()] {
        let r = reg.send("GET", &path, &[("range", &range)], Bytes::new()).await;
        assert_eq!(r.status, 416, "{range}: {}", r.text());
        assert_eq!(r.header("content-range"), Some(format!("bytes */{n}").as_str()), "{range}");
    }
    // A range the server does not understand is ignored: the whole blob.
    let r = reg.send("GET", &path, &[("range", "bytes=0-1,5-6")], Bytes::new()).await;
    assert_eq!((r.status, r.body.len()), (200, n));
    t.shutdown().await;
}

/// A chunk sent with `Transfer-Encoding: chunked` (no length up front) in many small pieces is
/// appended whole.
#[tokio::test]
async fn a_chunk_of_unknown_length_streams_in() {
    let t = TestServer::start().await;
    create_repository(&t, "stream", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let loc = reg.start_upload("stream").await;
    let data = random_bytes(3 * 1024 * 1024 + 5, 7);
    let mut s = TcpStream::connect(t.server.local_addr).await.unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reg.auth.as_deref().unwrap()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in data.chunks(100_000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await.unwrap();
        s.write_all(piece).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
    assert!(out.to_ascii_lowercase().contains(&format!("range: 0-{}\r\n", data.len() - 1)), "{out}");
    let d = Digest::of(&data);
    assert_eq!(reg.send("PUT", &format!("{loc}?digest={d}"), &[], Bytes::new()).await.status, 201);
    assert!(reg.get(&format!("/v2/stream/blobs/{d}")).await.body == data);
    t.shutdown().await;
}

#[tokio::test]
async fn manifests_and_indexes_by_tag_and_digest_keep_their_bytes() {
    let t = TestServer::start().await;
    create_repository(&t, "app", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let manifest = push_image(&reg, "app", 1).await;
    let md = Digest::of(&manifest);

    // By tag: 201, and the exact bytes come back with their media type.
    let r = reg.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/v2/app/manifests/{md}").as_str()));
    assert_eq!(r.header("docker-content-digest"), Some(md.to_string().as_str()));
    assert!(r.header("oci-subject").is_none());
    for reference in ["v1".to_string(), md.to_string()] {
        let r = reg.get(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.body[..] == manifest[..], "bytes changed");
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(md.to_string().as_str()));
        assert_eq!(r.header("content-length"), Some(manifest.len().to_string().as_str()));
        let r = reg.head(&format!("/v2/app/manifests/{reference}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(manifest.len().to_string().as_str()));
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    }

    // A Docker schema 2 manifest by digest keeps its media type.
    let config = br#"{"architecture":"arm64","os":"linux"}"#;
    let layer = random_bytes(500, 2);
    reg.push_blob("app", config).await;
    reg.push_blob("app", &layer).await;
    let docker = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer)],
    })
    .to_string()
    .into_bytes();
    let dd = Digest::of(&docker);
    let r = reg.put_manifest("app", &dd.to_string(), DOCKER_MANIFEST, &docker).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.get(&format!("/v2/app/manifests/{dd}")).await;
    assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST));
    assert!(r.body[..] == docker[..]);
    // By digest, the bytes must hash to it.
    let r = reg.put_manifest("app", &md.to_string(), DOCKER_MANIFEST, &docker).await;
    assert_eq!(r.code(400), "DIGEST_INVALID");

    // An index of both.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": manifest.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": dd.to_string(), "size": docker.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    })
    .to_string()
    .into_bytes();
    let r = reg.put_manifest("app", "multi", OCI_INDEX, &index).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = reg.get("/v2/app/manifests/multi").await;
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert!(r.body[..] == index[..]);

    // What a manifest refers to must be there.
    let missing_layer = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, b"never pushed")],
    })
    .to_string();
    assert_eq!(
        reg.put_manifest("app", "bad", OCI_MANIFEST, missing_layer.as_bytes()).await.code(400),
        "MANIFEST_BLOB_UNKNOWN"
    );
    let missing_child = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, b"no such manifest")]}).to_string();
    assert_eq!(
        reg.put_manifest("app", "bad", OCI_INDEX, missing_child.as_bytes()).await.code(400),
        "MANIFEST_BLOB_UNKNOWN"
    );
    assert_eq!(reg.put_manifest("app", "bad", OCI_MANIFEST, b"{not json").await.code(400), "MANIFEST_INVALID");
    assert_eq!(reg.put_manifest("app", "bad", OCI_INDEX, &manifest).await.code(400), "MANIFEST_INVALID");
    // Too large: refused on the declared length, before the body is read.
    let mut s = TcpStream::connect(t.server.local_addr).await.unwrap();
    let head = format!(
        "PUT /v2/app/manifests/huge HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\n\r\n",
        reg.auth.as_deref().unwrap(),
        4 * 1024 * 1024 + 1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("MANIFEST_INVALID"), "{out}");
    assert_eq!(reg.put_manifest("app", "bad:tag", OCI_MANIFEST, &manifest).await.code(400), "DIGEST_INVALID");
    assert_eq!(reg.put_manifest("app", "-bad", OCI_MANIFEST, &manifest).await.code(400), "TAG_INVALID");
    assert_eq!(reg.put_manifest("nope", "v1", OCI_MANIFEST, &manifest).await.code(404), "NAME_UNKNOWN");
    assert_eq!(reg.get("/v2/app/manifests/bad").await.code(404), "MANIFEST_UNKNOWN");
    assert_eq!(reg.head("/v2/app/manifests/bad").await.status, 404);

    // Delete: a tag, then an image by digest; an image an index needs stays.
    assert_eq!(reg.put_manifest("app", "v1-alias", OCI_MANIFEST, &manifest).await.status, 201);
    assert_eq!(reg.send("DELETE", "/v2/app/manifests/v1-alias", &[], Bytes::new()).await.status, 202);
    assert_eq!(reg.get("/v2/app/manifests/v1-alias").await.code(404), "MANIFEST_UNKNOWN");
    assert_eq!(reg.get("/v2/app/manifests/v1").await.status, 200);
    let r = reg.send("DELETE", &format!("/v2/app/manifests/{md}"), &[], Bytes::new()).await;
    assert!(r.status >= 400, "an image an index refers to was deleted");
    assert_eq!(reg.get(&format!("/v2/app/manifests/{md}")).await.status, 200);
    assert_eq!(reg.send("DELETE", "/v2/app/manifests/multi", &[], Bytes::new()).await.status, 202);
    assert_eq!(reg.send("DELETE", &format!("/v2/app/manifests/{md}"), &[], Bytes::new()).await.status, 202);
    assert_eq!(reg.get("/v2/app/manifests/v1").await.code(404), "MANIFEST_UNKNOWN");
    assert_eq!(reg.get(&format!("/v2/app/manifests/{md}")).await.code(404), "MANIFEST_UNKNOWN");
    assert_eq!(
        reg.send("DELETE", &format!("/v2/app/manifests/{md}"), &[], Bytes::new()).await.code(404),
        "MANIFEST_UNKNOWN"
    );

    // The API sees what the data path pushed.
    let r = t
        .client
        .json(
            "ecr",
            &format!("{ECR}.BatchGetImage"),
            &json!({"repositoryName": "app", "imageIds": [{"imageDigest": dd.to_string()}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["images"][0]["imageManifest"].as_str().map(str::as_bytes), Some(&docker[..]), "{v}");
    t.shutdown().await;
}

#[tokio::test]
async fn an_immutable_tag_cannot_be_moved() {
    let t = TestServer::start().await;
    create_repository(&t, "frozen", "IMMUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let first = push_image(&reg, "frozen", 10).await;
    let second = push_image(&reg, "frozen", 11).await;
    assert_eq!(reg.put_manifest("frozen", "v1", OCI_MANIFEST, &first).await.status, 201);
    // The same manifest again is fine.
    assert_eq!(reg.put_manifest("frozen", "v1", OCI_MANIFEST, &first).await.status, 201);
    let (code, message) = reg.put_manifest("frozen", "v1", OCI_MANIFEST, &second).await.error(400);
    assert_eq!(code, "TAG_INVALID");
    assert!(message.contains("cannot be overwritten because the repository is immutable"), "{message}");
    let r = reg.get("/v2/frozen/manifests/v1").await;
    assert!(r.body[..] == first[..]);
    assert_eq!(reg.put_manifest("frozen", "v2", OCI_MANIFEST, &second).await.status, 201);
    t.shutdown().await;
}

#[tokio::test]
async fn tags_are_listed_in_pages() {
    let t = TestServer::start().await;
    create_repository(&t, "paged", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let manifest = push_image(&reg, "paged", 3).await;
    for tag in ["b", "a", "e", "c", "d"] {
        assert_eq!(reg.put_manifest("paged", tag, OCI_MANIFEST, &manifest).await.status, 201);
    }
    let r = reg.get("/v2/paged/tags/list").await;
    assert_eq!(r.json(), json!({"name": "paged", "tags": ["a", "b", "c", "d", "e"]}));
    assert!(r.header("link").is_none());

    let mut url = "/v2/paged/tags/list?n=2".to_string();
    let mut pages = Vec::new();
    loop {
        let r = reg.get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        pages.push(r.json()["tags"].clone());
        let Some(link) = r.header("link") else { break };
        assert!(link.ends_with(">; rel=\"next\""), "{link}");
        url = link.trim_start_matches('<').split('>').next().unwrap().to_string();
    }
    assert_eq!(pages, vec![json!(["a", "b"]), json!(["c", "d"]), json!(["e"])]);
    assert_eq!(
        reg.get("/v2/paged/tags/list?n=2&last=b").await.header("link"),
        Some("</v2/paged/tags/list?n=2&last=d>; rel=\"next\"")
    );
    assert_eq!(reg.get("/v2/paged/tags/list?last=c").await.json()["tags"], json!(["d", "e"]));
    assert_eq!(reg.get("/v2/paged/tags/list?n=0").await.json()["tags"], json!([]));
    assert_eq!(reg.get("/v2/paged/tags/list?n=5").await.header("link"), None);
    assert_eq!(reg.get("/v2/paged/tags/list?n=lots").await.status, 400);
    assert_eq!(reg.get("/v2/nope/tags/list").await.code(404), "NAME_UNKNOWN");
    t.shutdown().await;
}

#[tokio::test]
async fn referrers_list_the_manifests_whose_subject_is_a_digest() {
    let t = TestServer::start().await;
    create_repository(&t, "signed", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let image = push_image(&reg, "signed", 5).await;
    let image_digest = Digest::of(&image);
    assert_eq!(reg.put_manifest("signed", "v1", OCI_MANIFEST, &image).await.status, 201);

    let empty_config = b"{}";
    let sbom = b"sbom contents";
    reg.push_blob("signed", empty_config).await;
    reg.push_blob("signed", sbom).await;
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": descriptor("application/vnd.oci.empty.v1+json", empty_config),
        "layers": [descriptor("application/spdx+json", sbom)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image_digest.to_string(), "size": image.len()},
        "annotations": {"org.example.kind": "sbom"},
    })
    .to_string()
    .into_bytes();
    let ad = Digest::of(&artifact);
    let r = reg.put_manifest("signed", &ad.to_string(), OCI_MANIFEST, &artifact).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(image_digest.to_string().as_str()));

    let r = reg.get(&format!("/v2/signed/referrers/{image_digest}")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert!(r.header("oci-filters-applied").is_none());
    assert_eq!(
        r.json(),
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST,
                "digest": ad.to_string(),
                "size": artifact.len(),
                "artifactType": "application/vnd.example.sbom",
                "annotations": {"org.example.kind": "sbom"},
            }],
        })
    );
    let r = reg.get(&format!("/v2/signed/referrers/{image_digest}?artifactType=application/vnd.example.sbom")).await;
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    let r = reg.get(&format!("/v2/signed/referrers/{image_digest}?artifactType=application/vnd.example.sig")).await;
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(r.json()["manifests"], json!([]));
    // Nothing refers to the artifact itself.
    assert_eq!(reg.get(&format!("/v2/signed/referrers/{ad}")).await.json()["manifests"], json!([]));
    assert_eq!(reg.get("/v2/signed/referrers/sha256:zz").await.code(400), "DIGEST_INVALID");
    t.shutdown().await;
}

#[tokio::test]
async fn blobs_mount_across_repositories_when_the_caller_may_read_the_source() {
    let t = TestServer::start().await;
    for name in ["base", "derived", "secret"] {
        create_repository(&t, name, "MUTABLE").await;
    }
    let reg = Registry::login(&t, &t.client).await;
    let d = reg.push_blob("base", b"a shared layer").await;
    let hidden = reg.push_blob("secret", b"a secret layer").await;

    let r = reg.send("POST", &format!("/v2/derived/blobs/uploads/?mount={d}&from=base"), &[], Bytes::new()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some(format!("/v2/derived/blobs/{d}").as_str()));
    assert_eq!(r.header("docker-content-digest"), Some(d.to_string().as_str()));
    assert_eq!(reg.head(&format!("/v2/derived/blobs/{d}")).await.status, 200);

    // A source without the blob: an ordinary upload session instead.
    let r = reg.send("POST", &format!("/v2/derived/blobs/uploads/?mount={hidden}&from=base"), &[], Bytes::new()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.header("location").unwrap().starts_with("/v2/derived/blobs/uploads/"));

    // A user who may push to `derived` and read `base`, but not read `secret`.
    let user = user_with_policy(
        &t,
        "builder",
        &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:BatchCheckLayerAvailability"],
             "Resource": "arn:aws:ecr:*:*:repository/derived"},
            {"Effect": "Allow", "Action": "ecr:GetDownloadUrlForLayer", "Resource": "arn:aws:ecr:*:*:repository/base"},
        ]}),
    )
    .await;
    let ureg = Registry::login(&t, &user).await;
    let r =
        ureg.send("POST", &format!("/v2/derived/blobs/uploads/?mount={hidden}&from=secret"), &[], Bytes::new()).await;
    assert_eq!(r.status, 202, "a mount from an unreadable repository must fall back: {}", r.text());
    assert_eq!(ureg.head(&format!("/v2/derived/blobs/{hidden}")).await.status, 404);
    let d2 = reg.push_blob("base", b"another shared layer").await;
    let r = ureg.send("POST", &format!("/v2/derived/blobs/uploads/?mount={d2}&from=base"), &[], Bytes::new()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Mounting into a repository the user may not push to is denied outright.
    let r = ureg.send("POST", &format!("/v2/base/blobs/uploads/?mount={d2}&from=derived"), &[], Bytes::new()).await;
    assert_eq!(r.code(403), "DENIED");
    t.shutdown().await;
}

#[tokio::test]
async fn iam_decides_what_a_registry_password_may_do() {
    let t = TestServer::start().await;
    create_repository(&t, "app", "MUTABLE").await;
    let admin = Registry::login(&t, &t.client).await;
    let manifest = push_image(&admin, "app", 20).await;
    let md = Digest::of(&manifest);
    assert_eq!(admin.put_manifest("app", "v1", OCI_MANIFEST, &manifest).await.status, 201);

    // Only allowed to log in: authenticated, but every repository action is denied.
    let nobody = user_with_policy(
        &t,
        "nobody",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}),
    )
    .await;
    let reg = Registry::login(&t, &nobody).await;
    assert_eq!(reg.get("/v2/").await.status, 200);
    let (code, message) = reg.get("/v2/app/manifests/v1").await.error(403);
    assert_eq!(code, "DENIED");
    assert!(message.contains("user/nobody") && message.contains("ecr:BatchGetImage"), "{message}");
    assert_eq!(reg.head(&format!("/v2/app/blobs/{md}")).await.status, 403);
    assert_eq!(reg.get(&format!("/v2/app/blobs/{md}")).await.code(403), "DENIED");
    assert_eq!(reg.send("POST", "/v2/app/blobs/uploads/", &[], Bytes::new()).await.code(403), "DENIED");
    assert_eq!(reg.put_manifest("app", "v2", OCI_MANIFEST, &manifest).await.code(403), "DENIED");
    assert_eq!(reg.send("DELETE", "/v2/app/manifests/v1", &[], Bytes::new()).await.code(403), "DENIED");
    assert_eq!(reg.get("/v2/app/tags/list").await.code(403), "DENIED");
    assert_eq!(reg.get(&format!("/v2/app/referrers/{md}")).await.code(403), "DENIED");
    // Denied before the repository is looked at: a missing one is not revealed.
    assert_eq!(reg.get("/v2/missing/manifests/v1").await.code(403), "DENIED");

    // A puller: reads work, pushes do not, and an upload another identity started stays its own.
    let puller = user_with_policy(
        &t,
        "puller",
        &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:ListImages"
        ], "Resource": "*"}]}),
    )
    .await;
    let reg = Registry::login(&t, &puller).await;
    let r = reg.get("/v2/app/manifests/v1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let layer =
        serde_json::from_slice::<Value>(&manifest).unwrap()["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(reg.get(&format!("/v2/app/blobs/{layer}")).await.status, 200);
    assert_eq!(reg.get("/v2/app/tags/list").await.json()["tags"], json!(["v1"]));
    assert_eq!(reg.send("POST", "/v2/app/blobs/uploads/", &[], Bytes::new()).await.code(403), "DENIED");
    assert_eq!(reg.put_manifest("app", "v2", OCI_MANIFEST, &manifest).await.code(403), "DENIED");
    let loc = admin.start_upload("app").await;
    assert_eq!(reg.send("PATCH", &loc, &[], &b"x"[..]).await.code(403), "DENIED");

    // A repository policy can grant what identity policies do not.
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "nobody-pulls", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:user/nobody"}, "Action": "ecr:BatchGetImage"}]});
    let r = t
        .client
        .json(
            "ecr",
            &format!("{ECR}.SetRepositoryPolicy"),
            &json!({"repositoryName": "app", "policyText": policy.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let reg = Registry::login(&t, &nobody).await;
    assert_eq!(reg.get("/v2/app/manifests/v1").await.status, 200);
    assert_eq!(reg.get("/v2/app/tags/list").await.code(403), "DENIED");
    t.shutdown().await;
}

#[tokio::test]
async fn a_signed_download_url_reads_one_blob_without_credentials() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let t = TestServer::start_with_clock(clock.clone()).await;
    create_repository(&t, "app", "MUTABLE").await;
    create_repository(&t, "other", "MUTABLE").await;
    let reg = Registry::login(&t, &t.client).await;
    let data = random_bytes(200_000, 9);
    let d = reg.push_blob("app", &data).await;
    let d_other = reg.push_blob("app", b"a different blob").await;
    reg.send("POST", &format!("/v2/other/blobs/uploads/?mount={d}&from=app"), &[], Bytes::new()).await;

    let r = t
        .client
        .json(
            "ecr",
            &format!("{ECR}.GetDownloadUrlForLayer"),
            &json!({"repositoryName": "app", "layerDigest": d.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let url = v["downloadUrl"].as_str().unwrap();
    let path = url.split_once("://").unwrap().1.split_once('/').map(|(_, p)| format!("/{p}")).unwrap();
    assert!(path.starts_with(&format!("/v2/app/blobs/{d}?")), "{path}");

    let anon = reg.anonymous();
    let r = anon.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == data);
    let r = anon.send("GET", &path, &[("range", "bytes=10-19")], Bytes::new()).await;
    assert_eq!((r.status, &r.body[..]), (206, &data[10..20]));

    // Tampered: another blob, another repository, a later expiry, another signature.
    let (_, query) = path.split_once('?').unwrap();
    let expires: i64 = query.split('&').find_map(|p| p.strip_prefix("X-Berth-Expires=")).unwrap().parse().unwrap();
    let signature = query.split('&').find_map(|p| p.strip_prefix("X-Berth-Signature=")).unwrap();
    let flipped =
        if signature.starts_with('A') { signature.replacen('A', "B", 1) } else { format!("A{}", &signature[1..]) };
    for tampered in [
        format!("/v2/app/blobs/{d_other}?{query}"),
        format!("/v2/other/blobs/{d}?{query}"),
        format!("/v2/app/blobs/{d}?X-Berth-Expires={}&X-Berth-Signature={signature}", expires + 3600),
        format!("/v2/app/blobs/{d}?X-Berth-Expires={expires}&X-Berth-Signature={flipped}"),
        format!("/v2/app/blobs/{d}?X-Berth-Expires={expires}&X-Berth-Signature=%zz"),
    ] {
        let r = anon.get(&tampered).await;
        assert!(r.status == 401 || r.status == 403, "{tampered}: {} {}", r.status, r.text());
        assert!(r.body.len() < 1000, "{tampered} served the blob");
    }
    // A signature is for GET only; and the URL expires.
    assert_eq!(anon.send("HEAD", &path, &[], Bytes::new()).await.status, 401);
    clock.advance(Duration::from_secs(3601));
    assert_eq!(anon.get(&path).await.code(403), "DENIED");
    t.shutdown().await;
}
