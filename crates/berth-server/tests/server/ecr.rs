//! The ECR API through the whole server: real signed awsJson requests, a real SQLite file and real
//! blobs on disk. Images are pushed through the API itself (InitiateLayerUpload, UploadLayerPart,
//! CompleteLayerUpload, PutImage), so nothing here needs docker.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_aws::sigv4::SigningCredentials;
use berth_registry::Digest;
use berth_server::client::{ApiClient, ApiResponse};
use berth_server::testing::TestServer;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921";
const ACCOUNT: &str = "000000000000";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"description":"expire untagged images","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

async fn ecr(c: &ApiClient, op: &str, body: Value) -> ApiResponse {
    c.json("ecr", &format!("{TARGET}.{op}"), &body).await.expect("request")
}

fn ok(r: ApiResponse) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("a JSON body")
}

/// Asserts an error answer with `code`; returns its body.
fn err(r: ApiResponse, code: &str) -> Value {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.text()));
    assert_eq!(body["__type"], code, "{body}");
    assert_eq!(r.status, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

async fn create(c: &ApiClient, name: &str) -> Value {
    ok(ecr(c, "CreateRepository", json!({ "repositoryName": name })).await)
}

/// Pushes `bytes` as a layer in parts of `part` bytes; returns its digest.
async fn push_layer(c: &ApiClient, repo: &str, bytes: &[u8], part: usize) -> String {
    let up = ok(ecr(c, "InitiateLayerUpload", json!({ "repositoryName": repo })).await);
    let id = up["uploadId"].as_str().unwrap().to_string();
    assert_eq!(up["partSize"], 10 * 1024 * 1024);
    let mut first = 0;
    for chunk in bytes.chunks(part) {
        let last = first + chunk.len() - 1;
        let r = ok(ecr(
            c,
            "UploadLayerPart",
            json!({ "repositoryName": repo, "uploadId": id, "partFirstByte": first, "partLastByte": last,
                    "layerPartBlob": STANDARD.encode(chunk) }),
        )
        .await);
        assert_eq!(r["lastByteReceived"], last);
        assert_eq!(r["uploadId"], id.as_str());
        first = last + 1;
    }
    let digest = Digest::of(bytes).to_string();
    let done =
        ok(ecr(c, "CompleteLayerUpload", json!({ "repositoryName": repo, "uploadId": id, "layerDigests": [digest] }))
            .await);
    assert_eq!(done["layerDigest"], digest.as_str());
    assert_eq!(done["repositoryName"], repo);
    assert_eq!(done["registryId"], ACCOUNT);
    digest
}

/// A Docker schema 2 manifest for a config and layers already pushed.
fn docker_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> String {
    let layers: Vec<Value> =
        layers.iter().map(|(d, s)| json!({ "mediaType": DOCKER_LAYER, "size": s, "digest": d })).collect();
    json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": { "mediaType": DOCKER_CONFIG, "size": config.1, "digest": config.0 },
        "layers": layers,
    })
    .to_string()
}

/// Pushes a one-layer image whose layer is `layer` and puts its manifest with `tag`; returns the
/// manifest and its digest.
async fn push_image(c: &ApiClient, repo: &str, layer: &[u8], tag: Option<&str>) -> (String, String) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(layer)
    );
    let config_digest = push_layer(c, repo, config.as_bytes(), 1 << 20).await;
    let layer_digest = push_layer(c, repo, layer, 1 << 20).await;
    let manifest = docker_manifest((&config_digest, config.len()), &[(&layer_digest, layer.len())]);
    let mut body =
        json!({ "repositoryName": repo, "imageManifest": manifest, "imageManifestMediaType": DOCKER_MANIFEST });
    if let Some(t) = tag {
        body["imageTag"] = json!(t);
    }
    let put = ok(ecr(c, "PutImage", body).await);
    let digest = Digest::of(manifest.as_bytes()).to_string();
    assert_eq!(put["image"]["imageId"]["imageDigest"], digest.as_str());
    assert_eq!(put["image"]["imageManifest"], manifest.as_str());
    assert_eq!(put["image"]["imageManifestMediaType"], DOCKER_MANIFEST);
    (manifest, digest)
}

/// An IAM user with `policy` inline (or none), and its key.
async fn user(t: &TestServer, name: &str, policy: Option<&str>) -> SigningCredentials {
    t.create_user(name, policy).await
}

/// A plain GET (no credentials), as a client handed a download URL makes it.
async fn get(url: &str) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let resp = client.request(req).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn ecr_repositories_are_created_described_changed_and_deleted() {
    let t = TestServer::start().await;
    let c = &t.client;
    let created = ok(ecr(
        c,
        "CreateRepository",
        json!({
            "repositoryName": "team/app",
            "imageTagMutability": "IMMUTABLE",
            "imageScanningConfiguration": { "scanOnPush": true },
            "encryptionConfiguration": { "encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:000000000000:key/k1" },
            "tags": [{ "Key": "team", "Value": "platform" }],
        }),
    )
    .await);
    let r = &created["repository"];
    let port = t.server.local_addr.port();
    assert_eq!(r["repositoryName"], "team/app");
    assert_eq!(r["repositoryArn"], "arn:aws:ecr:us-east-1:000000000000:repository/team/app");
    assert_eq!(r["registryId"], ACCOUNT);
    assert_eq!(r["repositoryUri"], format!("localhost:{port}/team/app"));
    assert_eq!(r["imageTagMutability"], "IMMUTABLE");
    assert_eq!(r["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(
        r["encryptionConfiguration"],
        json!({ "encryptionType": "KMS", "kmsKey": "arn:aws:kms:us-east-1:000000000000:key/k1" })
    );
    assert!(r["createdAt"].as_i64().unwrap() > 1_600_000_000);

    // What CreateRepository refuses.
    err(ecr(c, "CreateRepository", json!({ "repositoryName": "team/app" })).await, "RepositoryAlreadyExistsException");
    err(ecr(c, "CreateRepository", json!({ "repositoryName": "Bad_Name" })).await, "InvalidParameterException");
    // The *_WITH_EXCLUSION settings need filters; the others take none.
    for (m, filters) in [
        ("IMMUTABLE_WITH_EXCLUSION", None),
        ("MUTABLE_WITH_EXCLUSION", Some(json!([]))),
        ("IMMUTABLE", Some(json!([{ "filterType": "WILDCARD", "filter": "latest" }]))),
        ("IMMUTABLE_WITH_EXCLUSION", Some(json!([{ "filterType": "REGEX", "filter": "latest" }]))),
        ("IMMUTABLE_WITH_EXCLUSION", Some(json!([{ "filterType": "WILDCARD", "filter": "a/b" }]))),
        ("SOMETIMES", None),
    ] {
        let mut input = json!({ "repositoryName": "mm", "imageTagMutability": m });
        if let Some(f) = filters {
            input["imageTagMutabilityExclusionFilters"] = f;
        }
        let e = err(ecr(c, "CreateRepository", input.clone()).await, "InvalidParameterException");
        assert!(e["message"].as_str().unwrap().contains("imageTagMutability"), "{input} → {e}");
    }
    let e = err(
        ecr(
            c,
            "CreateRepository",
            json!({ "repositoryName": "enc", "encryptionConfiguration": { "encryptionType": "AES256", "kmsKey": "k" } }),
        )
        .await,
        "InvalidParameterException",
    );
    assert!(e["message"].as_str().unwrap().contains("kmsKey"), "{e}");
    let many: Vec<Value> = (0..51).map(|i| json!({ "Key": format!("k{i}"), "Value": "v" })).collect();
    err(ecr(c, "CreateRepository", json!({ "repositoryName": "tags", "tags": many })).await, "TooManyTagsException");
    err(
        ecr(
            c,
            "CreateRepository",
            json!({ "repositoryName": "tags", "tags": [{ "Key": "k".repeat(129), "Value": "v" }] }),
        )
        .await,
        "InvalidTagParameterException",
    );
    err(
        ecr(
            c,
            "CreateRepository",
            json!({ "repositoryName": "tags", "tags": [{ "Key": "k", "Value": "v".repeat(257) }] }),
        )
        .await,
        "InvalidTagParameterException",
    );
    err(ecr(c, "CreateRepository", json!({})).await, "InvalidParameterException");
    // Nothing refused was created.
    let all = ok(ecr(c, "DescribeRepositories", json!({})).await);
    assert_eq!(all["repositories"].as_array().unwrap().len(), 1, "{all}");

    // Describe by name, all of them, page by page.
    for n in ["a1", "a2", "a3", "a4"] {
        let r = create(c, n).await;
        assert_eq!(r["repository"]["imageTagMutability"], "MUTABLE");
        assert_eq!(r["repository"]["encryptionConfiguration"], json!({ "encryptionType": "AES256" }));
        assert_eq!(r["repository"]["imageScanningConfiguration"]["scanOnPush"], false);
    }
    let named = ok(ecr(c, "DescribeRepositories", json!({ "repositoryNames": ["a3", "team/app"] })).await);
    let names: Vec<&str> =
        named["repositories"].as_array().unwrap().iter().map(|r| r["repositoryName"].as_str().unwrap()).collect();
    assert_eq!(names, ["a3", "team/app"]);
    let e = err(
        ecr(c, "DescribeRepositories", json!({ "repositoryNames": ["a1", "nope"] })).await,
        "RepositoryNotFoundException",
    );
    assert_eq!(e["message"], "The repository with name 'nope' does not exist in the registry with id '000000000000'");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({ "maxResults": 2 });
        if let Some(tk) = &token {
            req["nextToken"] = json!(tk);
        }
        let page = ok(ecr(c, "DescribeRepositories", req).await);
        let repos = page["repositories"].as_array().unwrap();
        assert!(repos.len() <= 2);
        seen.extend(repos.iter().map(|r| r["repositoryName"].as_str().unwrap().to_string()));
        match page.get("nextToken").and_then(Value::as_str) {
            Some(n) => token = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["a1", "a2", "a3", "a4", "team/app"]);
    err(ecr(c, "DescribeRepositories", json!({ "nextToken": "garbage" })).await, "InvalidParameterException");
    err(ecr(c, "DescribeRepositories", json!({ "maxResults": 1001 })).await, "InvalidParameterException");
    err(ecr(c, "DescribeRepositories", json!({ "maxResults": 0 })).await, "InvalidParameterException");

    // Settings change.
    let m =
        ok(ecr(c, "PutImageTagMutability", json!({ "repositoryName": "a1", "imageTagMutability": "IMMUTABLE" })).await);
    assert_eq!(m, json!({ "registryId": ACCOUNT, "repositoryName": "a1", "imageTagMutability": "IMMUTABLE" }));
    err(
        ecr(
            c,
            "PutImageTagMutability",
            json!({ "repositoryName": "a1", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION" }),
        )
        .await,
        "InvalidParameterException",
    );
    let filters =
        json!([{ "filterType": "WILDCARD", "filter": "latest" }, { "filterType": "WILDCARD", "filter": "dev-*" }]);
    let m = ok(ecr(
        c,
        "PutImageTagMutability",
        json!({ "repositoryName": "a1", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": filters }),
    )
    .await);
    assert_eq!(m["imageTagMutabilityExclusionFilters"], filters);
    let d = ok(ecr(c, "DescribeRepositories", json!({ "repositoryNames": ["a1"] })).await);
    assert_eq!(d["repositories"][0]["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(d["repositories"][0]["imageTagMutabilityExclusionFilters"], filters);
    ok(ecr(c, "PutImageTagMutability", json!({ "repositoryName": "a1", "imageTagMutability": "IMMUTABLE" })).await);
    err(
        ecr(c, "PutImageTagMutability", json!({ "repositoryName": "zz", "imageTagMutability": "MUTABLE" })).await,
        "RepositoryNotFoundException",
    );
    let s = ok(ecr(
        c,
        "PutImageScanningConfiguration",
        json!({ "repositoryName": "a1", "imageScanningConfiguration": { "scanOnPush": true } }),
    )
    .await);
    assert_eq!(s["imageScanningConfiguration"], json!({ "scanOnPush": true }));
    let a1 = ok(ecr(c, "DescribeRepositories", json!({ "repositoryNames": ["a1"] })).await);
    assert_eq!(a1["repositories"][0]["imageTagMutability"], "IMMUTABLE");
    assert_eq!(a1["repositories"][0]["imageScanningConfiguration"]["scanOnPush"], true);

    // A repository with images goes only with `force`.
    push_image(c, "a2", b"layer of a2", Some("v1")).await;
    let e = err(ecr(c, "DeleteRepository", json!({ "repositoryName": "a2" })).await, "RepositoryNotEmptyException");
    assert!(e["message"].as_str().unwrap().contains("a2"), "{e}");
    let gone = ok(ecr(c, "DeleteRepository", json!({ "repositoryName": "a2", "force": true })).await);
    assert_eq!(gone["repository"]["repositoryName"], "a2");
    let gone = ok(ecr(c, "DeleteRepository", json!({ "repositoryName": "a3" })).await);
    assert_eq!(gone["repository"]["repositoryName"], "a3");
    err(ecr(c, "DeleteRepository", json!({ "repositoryName": "a3" })).await, "RepositoryNotFoundException");
    err(
        ecr(c, "DeleteRepository", json!({ "repositoryName": "a1", "registryId": "123456789012" })).await,
        "RepositoryNotFoundException",
    );

    // All of it survives a restart.
    let t = t.restart().await;
    let all = ok(ecr(&t.client, "DescribeRepositories", json!({})).await);
    let names: Vec<&str> =
        all["repositories"].as_array().unwrap().iter().map(|r| r["repositoryName"].as_str().unwrap()).collect();
    assert_eq!(names, ["a1", "a4", "team/app"]);
    t.shutdown().await;
}

#[tokio::test]
async fn ecr_layers_are_uploaded_in_parts_checked_and_verified() {
    let t = TestServer::start().await;
    let c = &t.client;
    create(c, "layers").await;
    create(c, "other").await;
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let up = ok(ecr(c, "InitiateLayerUpload", json!({ "repositoryName": "layers" })).await);
    let id = up["uploadId"].as_str().unwrap().to_string();
    let part = |first: usize, last: usize, bytes: &[u8]| {
        json!({ "repositoryName": "layers", "uploadId": id, "partFirstByte": first, "partLastByte": last,
                "layerPartBlob": STANDARD.encode(bytes) })
    };

    // Nothing received yet: a part that does not start at 0 is refused, without a last valid byte.
    let e = err(ecr(c, "UploadLayerPart", part(5, 1004, &data[5..1005])).await, "InvalidLayerPartException");
    assert_eq!(e["uploadId"], id.as_str());
    assert_eq!(e["repositoryName"], "layers");
    assert_eq!(e["registryId"], ACCOUNT);
    assert!(e.get("lastValidByteReceived").is_none(), "{e}");
    // Empty upload: CompleteLayerUpload refuses it and the upload stays open.
    let digest = Digest::of(&data).to_string();
    err(
        ecr(c, "CompleteLayerUpload", json!({ "repositoryName": "layers", "uploadId": id, "layerDigests": [digest] }))
            .await,
        "EmptyUploadException",
    );

    let r = ok(ecr(c, "UploadLayerPart", part(0, 999, &data[..1000])).await);
    assert_eq!(r["lastByteReceived"], 999);
    // A part that overlaps, skips ahead or misstates its last byte.
    for (first, last, bytes) in
        [(500, 1499, &data[500..1500]), (1001, 1999, &data[1001..2000]), (1000, 2000, &data[1000..2000])]
    {
        let e = err(ecr(c, "UploadLayerPart", part(first, last, bytes)).await, "InvalidLayerPartException");
        assert_eq!(e["lastValidByteReceived"], 999, "{e}");
    }
    // The upload belongs to its repository.
    let mut foreign = part(1000, 1999, &data[1000..2000]);
    foreign["repositoryName"] = json!("other");
    err(ecr(c, "UploadLayerPart", foreign).await, "UploadNotFoundException");
    let r = ok(ecr(c, "UploadLayerPart", part(1000, 2999, &data[1000..])).await);
    assert_eq!(r["lastByteReceived"], 2999);

    // Until the upload completes, the layer is not there.
    let check = ok(ecr(
        c,
        "BatchCheckLayerAvailability",
        json!({ "repositoryName": "layers", "layerDigests": [digest, "sha256:nothex", ""] }),
    )
    .await);
    assert_eq!(check["layers"], json!([]));
    let codes: Vec<&str> =
        check["failures"].as_array().unwrap().iter().map(|f| f["failureCode"].as_str().unwrap()).collect();
    assert_eq!(codes, ["MissingLayerDigest", "InvalidLayerDigest", "MissingLayerDigest"]);
    assert_eq!(check["failures"][0]["layerDigest"], digest.as_str());

    // Only one digest, and the right one: a wrong digest discards the upload.
    err(
        ecr(
            c,
            "CompleteLayerUpload",
            json!({ "repositoryName": "layers", "uploadId": id, "layerDigests": [digest, digest] }),
        )
        .await,
        "InvalidParameterException",
    );
    let wrong = Digest::of(b"something else").to_string();
    err(
        ecr(c, "CompleteLayerUpload", json!({ "repositoryName": "layers", "uploadId": id, "layerDigests": [wrong] }))
            .await,
        "InvalidLayerException",
    );
    err(
        ecr(c, "CompleteLayerUpload", json!({ "repositoryName": "layers", "uploadId": id, "layerDigests": [digest] }))
            .await,
        "UploadNotFoundException",
    );
    err(
        ecr(c, "GetDownloadUrlForLayer", json!({ "repositoryName": "layers", "layerDigest": digest })).await,
        "LayersNotFoundException",
    );

    // Again, whole, in three parts.
    assert_eq!(push_layer(c, "layers", &data, 1024).await, digest);
    let check =
        ok(ecr(c, "BatchCheckLayerAvailability", json!({ "repositoryName": "layers", "layerDigests": [digest] }))
            .await);
    assert_eq!(
        check["layers"],
        json!([{ "layerDigest": digest, "layerAvailability": "AVAILABLE", "layerSize": 3000 }])
    );
    assert_eq!(check["failures"], json!([]));
    // The same layer again: verified, then LayerAlreadyExistsException.
    let up = ok(ecr(c, "InitiateLayerUpload", json!({ "repositoryName": "layers" })).await);
    let id2 = up["uploadId"].as_str().unwrap();
    ok(ecr(
        c,
        "UploadLayerPart",
        json!({ "repositoryName": "layers", "uploadId": id2, "partFirstByte": 0, "partLastByte": 2999,
                "layerPartBlob": STANDARD.encode(&data) }),
    )
    .await);
    err(
        ecr(c, "CompleteLayerUpload", json!({ "repositoryName": "layers", "uploadId": id2, "layerDigests": [digest] }))
            .await,
        "LayerAlreadyExistsException",
    );
    // Another repository does not have it.
    let other =
        ok(ecr(c, "BatchCheckLayerAvailability", json!({ "repositoryName": "other", "layerDigests": [digest] })).await);
    assert_eq!(other["layers"], json!([]));
    assert_eq!(other["failures"][0]["failureCode"], "MissingLayerDigest");
    err(
        ecr(c, "GetDownloadUrlForLayer", json!({ "repositoryName": "other", "layerDigest": digest })).await,
        "LayersNotFoundException",
    );
    err(
        ecr(c, "GetDownloadUrlForLayer", json!({ "repositoryName": "layers", "layerDigest": "sha256:x" })).await,
        "InvalidParameterException",
    );
    err(
        ecr(c, "GetDownloadUrlForLayer", json!({ "repositoryName": "nope", "layerDigest": digest })).await,
        "RepositoryNotFoundException",
    );
    err(ecr(c, "InitiateLayerUpload", json!({ "repositoryName": "nope" })).await, "RepositoryNotFoundException");
    err(
        ecr(
            c,
            "UploadLayerPart",
            json!({ "repositoryName": "layers", "uploadId": "00000000-0000-4000-8000-000000000000", "partFirstByte": 0,
                    "partLastByte": 0, "layerPartBlob": "AA==" }),
        )
        .await,
        "UploadNotFoundException",
    );

    // The download URL reads the blob without credentials, and only that blob.
    let url = ok(ecr(c, "GetDownloadUrlForLayer", json!({ "repositoryName": "layers", "layerDigest": digest })).await);
    assert_eq!(url["layerDigest"], digest.as_str());
    let url = url["downloadUrl"].as_str().unwrap().to_string();
    let port = t.server.local_addr.port();
    assert!(url.starts_with(&format!("http://localhost:{port}/v2/layers/blobs/{digest}?")), "{url}");
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], &data[..]);
    let (status, _) = get(&url.replace("/v2/layers/", "/v2/other/")).await;
    assert!(status == 401 || status == 403 || status == 404, "{status}");
    t.shutdown().await;
}

#[tokio::test]
async fn ecr_images_are_put_listed_described_fetched_and_deleted() {
    let t = TestServer::start().await;
    let c = &t.client;
    create(c, "app").await;
    let (m1, d1) = push_image(c, "app", b"first layer", Some("v1")).await;
    // A second tag on the same image.
    let put =
        ok(ecr(c, "PutImage", json!({ "repositoryName": "app", "imageManifest": m1, "imageTag": "latest" })).await);
    assert_eq!(put["image"]["imageId"], json!({ "imageDigest": d1, "imageTag": "latest" }));
    // Nothing changes: ImageAlreadyExistsException, with ECR's message.
    let e = err(
        ecr(c, "PutImage", json!({ "repositoryName": "app", "imageManifest": m1, "imageTag": "v1" })).await,
        "ImageAlreadyExistsException",
    );
    assert_eq!(
        e["message"],
        format!("Image with digest '{d1}' and tag 'v1' already exists in the repository with name 'app' in registry with id '000000000000'")
    );
    let (_, d2) = push_image(c, "app", b"second layer", None).await;
    let (m3, d3) = push_image(c, "app", b"third layer", Some("v3")).await;

    // PutImage's own errors.
    err(
        ecr(c, "PutImage", json!({ "repositoryName": "app", "imageManifest": m3, "imageDigest": d1 })).await,
        "ImageDigestDoesNotMatchException",
    );
    err(
        ecr(c, "PutImage", json!({ "repositoryName": "app", "imageManifest": "{not json" })).await,
        "InvalidParameterException",
    );
    err(
        ecr(
            c,
            "PutImage",
            json!({ "repositoryName": "app", "imageManifest": m3, "imageManifestMediaType": DOCKER_LIST }),
        )
        .await,
        "InvalidParameterException",
    );
    let missing = docker_manifest((&Digest::of(b"cfg").to_string(), 3), &[(&Digest::of(b"nope").to_string(), 4)]);
    let e = err(
        ecr(c, "PutImage", json!({ "repositoryName": "app", "imageManifest": missing })).await,
        "LayersNotFoundException",
    );
    assert!(e["message"].as_str().unwrap().contains(&Digest::of(b"nope").to_string()), "{e}");
    err(
        ecr(c, "PutImage", json!({ "repositoryName": "nope", "imageManifest": m1 })).await,
        "RepositoryNotFoundException",
    );

    // ListImages: one id per tag, untagged images by digest; filters; pages.
    let all = ok(ecr(c, "ListImages", json!({ "repositoryName": "app" })).await);
    let mut ids: Vec<Value> = all["imageIds"].as_array().unwrap().clone();
    ids.sort_by_key(|v| v.to_string());
    let mut expected = vec![
        json!({ "imageDigest": d1, "imageTag": "v1" }),
        json!({ "imageDigest": d1, "imageTag": "latest" }),
        json!({ "imageDigest": d2 }),
        json!({ "imageDigest": d3, "imageTag": "v3" }),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(ids, expected);
    let untagged =
        ok(ecr(c, "ListImages", json!({ "repositoryName": "app", "filter": { "tagStatus": "UNTAGGED" } })).await);
    assert_eq!(untagged["imageIds"], json!([{ "imageDigest": d2 }]));
    let tagged =
        ok(ecr(c, "ListImages", json!({ "repositoryName": "app", "filter": { "tagStatus": "TAGGED" } })).await);
    assert_eq!(tagged["imageIds"].as_array().unwrap().len(), 3);
    let archived =
        ok(ecr(c, "ListImages", json!({ "repositoryName": "app", "filter": { "imageStatus": "ARCHIVED" } })).await);
    assert_eq!(archived["imageIds"], json!([]));
    err(
        ecr(c, "ListImages", json!({ "repositoryName": "app", "filter": { "tagStatus": "SOME" } })).await,
        "InvalidParameterException",
    );
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({ "repositoryName": "app", "maxResults": 1 });
        if let Some(tk) = &token {
            req["nextToken"] = json!(tk);
        }
        let page = ok(ecr(c, "ListImages", req).await);
        paged.extend(page["imageIds"].as_array().unwrap().iter().cloned());
        match page.get("nextToken").and_then(Value::as_str) {
            Some(n) => token = Some(n.to_string()),
            None => break,
        }
    }
    paged.sort_by_key(|v| v.to_string());
    assert_eq!(paged, expected);
    err(ecr(c, "ListImages", json!({ "repositoryName": "nope" })).await, "RepositoryNotFoundException");

    // DescribeImages: every field ECR reports.
    let described = ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app" })).await);
    let details = described["imageDetails"].as_array().unwrap();
    assert_eq!(details.len(), 3);
    let one = details.iter().find(|d| d["imageDigest"] == d1.as_str()).unwrap();
    assert_eq!(one["imageTags"], json!(["latest", "v1"]));
    assert_eq!(one["registryId"], ACCOUNT);
    assert_eq!(one["repositoryName"], "app");
    let config_len = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(b"first layer")
    )
    .len();
    assert_eq!(one["imageSizeInBytes"], (config_len + b"first layer".len()) as u64);
    assert!(one["imagePushedAt"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(one["imageManifestMediaType"], DOCKER_MANIFEST);
    assert_eq!(one["artifactMediaType"], DOCKER_CONFIG);
    assert!(one.get("lastRecordedPullTime").is_none());
    let two = details.iter().find(|d| d["imageDigest"] == d2.as_str()).unwrap();
    assert!(two.get("imageTags").is_none(), "{two}");
    let by_tag =
        ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app", "imageIds": [{ "imageTag": "v3" }] })).await);
    assert_eq!(by_tag["imageDetails"].as_array().unwrap().len(), 1);
    assert_eq!(by_tag["imageDetails"][0]["imageDigest"], d3.as_str());
    let e = err(
        ecr(
            c,
            "DescribeImages",
            json!({ "repositoryName": "app", "imageIds": [{ "imageTag": "v1" }, { "imageTag": "v9" }] }),
        )
        .await,
        "ImageNotFoundException",
    );
    assert!(e["message"].as_str().unwrap().contains("imageTag=v9"), "{e}");
    let filtered =
        ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app", "filter": { "tagStatus": "UNTAGGED" } })).await);
    assert_eq!(filtered["imageDetails"].as_array().unwrap().len(), 1);
    let page1 = ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app", "maxResults": 2 })).await);
    assert_eq!(page1["imageDetails"].as_array().unwrap().len(), 2);
    let page2 = ok(ecr(
        c,
        "DescribeImages",
        json!({ "repositoryName": "app", "maxResults": 2, "nextToken": page1["nextToken"] }),
    )
    .await);
    assert_eq!(page2["imageDetails"].as_array().unwrap().len(), 1);
    assert!(page2.get("nextToken").is_none());
    err(
        ecr(
            c,
            "DescribeImages",
            json!({ "repositoryName": "app", "nextToken": page1["nextToken"].as_str().unwrap().to_owned() + "x" }),
        )
        .await,
        "InvalidParameterException",
    );

    // BatchGetImage: by tag, by digest, with failures as ECR reports them; each found is a pull.
    let got = ok(ecr(
        c,
        "BatchGetImage",
        json!({ "repositoryName": "app", "imageIds": [
            { "imageTag": "v1" }, { "imageDigest": d3 }, { "imageTag": "v9" }, {}, { "imageTag": "-x" },
            { "imageTag": "v1", "imageDigest": d3 }, { "imageDigest": "nonsense" },
        ] }),
    )
    .await);
    let images = got["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["imageId"], json!({ "imageDigest": d1, "imageTag": "v1" }));
    assert_eq!(images[0]["imageManifest"], m1.as_str());
    assert_eq!(images[0]["imageManifestMediaType"], DOCKER_MANIFEST);
    assert_eq!(images[0]["registryId"], ACCOUNT);
    assert_eq!(images[1]["imageId"], json!({ "imageDigest": d3 }));
    assert_eq!(images[1]["imageManifest"], m3.as_str());
    let codes: Vec<&str> =
        got["failures"].as_array().unwrap().iter().map(|f| f["failureCode"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["ImageNotFound", "MissingDigestAndTag", "InvalidImageTag", "ImageTagDoesNotMatchDigest", "InvalidImageDigest"]
    );
    assert_eq!(got["failures"][0]["imageId"], json!({ "imageTag": "v9" }));
    assert_eq!(got["failures"][0]["failureReason"], "Requested image not found");
    // A media type the client does not accept is a failure, not an image.
    let oci_only = ok(ecr(
        c,
        "BatchGetImage",
        json!({ "repositoryName": "app", "imageIds": [{ "imageTag": "v1" }],
                "acceptedMediaTypes": ["application/vnd.oci.image.manifest.v1+json"] }),
    )
    .await);
    assert_eq!(oci_only["images"], json!([]));
    assert_eq!(oci_only["failures"][0]["failureCode"], "UnsupportedImageType");
    let accepted = ok(ecr(
        c,
        "BatchGetImage",
        json!({ "repositoryName": "app", "imageIds": [{ "imageTag": "v1" }], "acceptedMediaTypes": [DOCKER_MANIFEST] }),
    )
    .await);
    assert_eq!(accepted["images"].as_array().unwrap().len(), 1);
    let pulled =
        ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app", "imageIds": [{ "imageDigest": d1 }] })).await);
    assert!(pulled["imageDetails"][0]["lastRecordedPullTime"].as_i64().unwrap() > 1_600_000_000, "{pulled}");

    // An index pins its children: BatchDeleteImage reports ImageReferencedByManifestList.
    let index = json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "size": m3.len(), "digest": d3,
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    })
    .to_string();
    let put = ok(ecr(
        c,
        "PutImage",
        json!({ "repositoryName": "app", "imageManifest": index, "imageManifestMediaType": DOCKER_LIST, "imageTag": "multi" }),
    )
    .await);
    let d_index = put["image"]["imageId"]["imageDigest"].as_str().unwrap().to_string();
    let index_detail =
        ok(ecr(c, "DescribeImages", json!({ "repositoryName": "app", "imageIds": [{ "imageTag": "multi" }] })).await);
    assert_eq!(index_detail["imageDetails"][0]["imageManifestMediaType"], DOCKER_LIST);
    assert!(index_detail["imageDetails"][0].get("artifactMediaType").is_none());

    // BatchDeleteImage: a tag, then an image by digest with its last tags; failures listed.
    let del = ok(ecr(
        c,
        "BatchDeleteImage",
        json!({ "repositoryName": "app", "imageIds": [
            { "imageTag": "latest" }, { "imageDigest": d3 }, { "imageTag": "v9" }, {}, { "imageTag": "v1", "imageDigest": d2 },
        ] }),
    )
    .await);
    assert_eq!(del["imageIds"], json!([{ "imageDigest": d1, "imageTag": "latest" }]));
    let failures = del["failures"].as_array().unwrap();
    let codes: Vec<&str> = failures.iter().map(|f| f["failureCode"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["ImageReferencedByManifestList", "ImageNotFound", "MissingDigestAndTag", "ImageTagDoesNotMatchDigest"]
    );
    assert!(failures[0]["failureReason"].as_str().unwrap().contains(&d_index), "{}", failures[0]);
    let del = ok(ecr(
        c,
        "BatchDeleteImage",
        json!({ "repositoryName": "app", "imageIds": [{ "imageDigest": d_index }, { "imageDigest": d3 }, { "imageDigest": d2 }] }),
    )
    .await);
    assert_eq!(
        del["imageIds"],
        json!([{ "imageDigest": d_index, "imageTag": "multi" }, { "imageDigest": d3, "imageTag": "v3" }, { "imageDigest": d2 }])
    );
    assert_eq!(del["failures"], json!([]));
    let left = ok(ecr(c, "ListImages", json!({ "repositoryName": "app" })).await);
    assert_eq!(left["imageIds"], json!([{ "imageDigest": d1, "imageTag": "v1" }]));
    err(
        ecr(c, "BatchDeleteImage", json!({ "repositoryName": "app", "imageIds": [] })).await,
        "InvalidParameterException",
    );
    err(
        ecr(c, "BatchGetImage", json!({ "repositoryName": "nope", "imageIds": [{ "imageTag": "v1" }] })).await,
        "RepositoryNotFoundException",
    );
    t.shutdown().await;
}

#[tokio::test]
async fn ecr_immutable_tags_cannot_move() {
    let t = TestServer::start().await;
    let c = &t.client;
    ok(ecr(c, "CreateRepository", json!({ "repositoryName": "fixed", "imageTagMutability": "IMMUTABLE" })).await);
    push_image(c, "fixed", b"one", Some("v1")).await;
    let config_digest = push_layer(c, "fixed", b"{}", 1024).await;
    let layer = push_layer(c, "fixed", b"two", 1024).await;
    let other = docker_manifest((&config_digest, 2), &[(&layer, 3)]);
    let e = err(
        ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "v1" })).await,
        "ImageTagAlreadyExistsException",
    );
    assert!(e["message"].as_str().unwrap().contains("'v1'"), "{e}");
    // Under a new tag it goes in; once the repository is MUTABLE, the tag moves.
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "v2" })).await);
    ok(ecr(c, "PutImageTagMutability", json!({ "repositoryName": "fixed", "imageTagMutability": "MUTABLE" })).await);
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "v1" })).await);
    let got =
        ok(ecr(c, "BatchGetImage", json!({ "repositoryName": "fixed", "imageIds": [{ "imageTag": "v1" }] })).await);
    assert_eq!(got["images"][0]["imageManifest"], other.as_str());

    // Immutable except `latest` (and `dev-*`): the pipeline's `:<sha>` is fixed, `:latest` moves.
    let filters =
        json!([{ "filterType": "WILDCARD", "filter": "latest" }, { "filterType": "WILDCARD", "filter": "dev-*" }]);
    ok(ecr(
        c,
        "PutImageTagMutability",
        json!({ "repositoryName": "fixed", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": filters }),
    )
    .await);
    let (first, _) = push_image(c, "fixed", b"three", Some("latest")).await;
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": first, "imageTag": "dev-1" })).await);
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "latest" })).await);
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "dev-1" })).await);
    err(
        ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": first, "imageTag": "v1" })).await,
        "ImageTagAlreadyExistsException",
    );
    // MUTABLE_WITH_EXCLUSION: everything moves except the excluded tags.
    let filters = json!([{ "filterType": "WILDCARD", "filter": "release-*" }]);
    ok(ecr(
        c,
        "PutImageTagMutability",
        json!({ "repositoryName": "fixed", "imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": filters }),
    )
    .await);
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": first, "imageTag": "v1" })).await);
    ok(ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": first, "imageTag": "release-1" })).await);
    err(
        ecr(c, "PutImage", json!({ "repositoryName": "fixed", "imageManifest": other, "imageTag": "release-1" })).await,
        "ImageTagAlreadyExistsException",
    );
    t.shutdown().await;
}

#[tokio::test]
async fn ecr_authorization_token_lifecycle_policies_and_tags() {
    let t = TestServer::start().await;
    let c = &t.client;
    // GetAuthorizationToken: base64("AWS:<password>"), 12 hours, berth's registry.
    let tok = ok(ecr(c, "GetAuthorizationToken", json!({})).await);
    let data = &tok["authorizationData"][0];
    let decoded = String::from_utf8(STANDARD.decode(data["authorizationToken"].as_str().unwrap()).unwrap()).unwrap();
    assert!(decoded.starts_with("AWS:") && decoded.len() > 20, "{decoded}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let expires = data["expiresAt"].as_i64().unwrap();
    assert!((expires - now - 12 * 3600).abs() < 60, "{expires} vs {now}");
    assert_eq!(data["proxyEndpoint"], format!("http://localhost:{}", t.server.local_addr.port()));
    let ours = ok(ecr(c, "GetAuthorizationToken", json!({ "registryIds": [ACCOUNT] })).await);
    assert_eq!(ours["authorizationData"].as_array().unwrap().len(), 1);
    err(ecr(c, "GetAuthorizationToken", json!({ "registryIds": ["123456789012"] })).await, "InvalidParameterException");
    err(ecr(c, "GetAuthorizationToken", json!({ "registryIds": ["12"] })).await, "InvalidParameterException");

    create(c, "life").await;
    // Lifecycle policies.
    let e = err(
        ecr(c, "GetLifecyclePolicy", json!({ "repositoryName": "life" })).await,
        "LifecyclePolicyNotFoundException",
    );
    assert_eq!(
        e["message"],
        "Lifecycle policy does not exist for the repository with name 'life' in the registry with id '000000000000'"
    );
    let put =
        ok(ecr(c, "PutLifecyclePolicy", json!({ "repositoryName": "life", "lifecyclePolicyText": LIFECYCLE })).await);
    assert_eq!(put, json!({ "registryId": ACCOUNT, "repositoryName": "life", "lifecyclePolicyText": LIFECYCLE }));
    let got = ok(ecr(c, "GetLifecyclePolicy", json!({ "repositoryName": "life" })).await);
    assert_eq!(got["lifecyclePolicyText"], LIFECYCLE);
    let bad = LIFECYCLE.replace("\"expire\"", "\"archive\"");
    err(
        ecr(c, "PutLifecyclePolicy", json!({ "repositoryName": "life", "lifecyclePolicyText": bad })).await,
        "InvalidParameterException",
    );
    err(
        ecr(c, "PutLifecyclePolicy", json!({ "repositoryName": "life", "lifecyclePolicyText": "{\"rules\":[]}" }))
            .await,
        "InvalidParameterException",
    );
    err(
        ecr(c, "PutLifecyclePolicy", json!({ "repositoryName": "nope", "lifecyclePolicyText": LIFECYCLE })).await,
        "RepositoryNotFoundException",
    );
    let deleted = ok(ecr(c, "DeleteLifecyclePolicy", json!({ "repositoryName": "life" })).await);
    assert_eq!(deleted["lifecyclePolicyText"], LIFECYCLE);
    err(ecr(c, "DeleteLifecyclePolicy", json!({ "repositoryName": "life" })).await, "LifecyclePolicyNotFoundException");

    // Repository policies.
    err(ecr(c, "GetRepositoryPolicy", json!({ "repositoryName": "life" })).await, "RepositoryPolicyNotFoundException");
    for bad in [
        "nope",
        r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
        r#"{"Statement":[{"Effect":"Perhaps","Principal":"*","Action":"ecr:*"}]}"#,
    ] {
        let e = err(
            ecr(c, "SetRepositoryPolicy", json!({ "repositoryName": "life", "policyText": bad })).await,
            "InvalidParameterException",
        );
        assert_eq!(
            e["message"],
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'"
        );
    }
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage"]}]}"#;
    let set = ok(ecr(c, "SetRepositoryPolicy", json!({ "repositoryName": "life", "policyText": policy })).await);
    assert_eq!(set, json!({ "registryId": ACCOUNT, "repositoryName": "life", "policyText": policy }));
    assert_eq!(ok(ecr(c, "GetRepositoryPolicy", json!({ "repositoryName": "life" })).await)["policyText"], policy);
    assert_eq!(ok(ecr(c, "DeleteRepositoryPolicy", json!({ "repositoryName": "life" })).await)["policyText"], policy);
    err(
        ecr(c, "DeleteRepositoryPolicy", json!({ "repositoryName": "life" })).await,
        "RepositoryPolicyNotFoundException",
    );

    // Tags, by ARN.
    let arn = "arn:aws:ecr:us-east-1:000000000000:repository/life";
    ok(ecr(
        c,
        "TagResource",
        json!({ "resourceArn": arn, "tags": [{ "Key": "b", "Value": "2" }, { "Key": "a", "Value": "1" }] }),
    )
    .await);
    ok(ecr(c, "TagResource", json!({ "resourceArn": arn, "tags": [{ "Key": "b", "Value": "3" }] })).await);
    let tags = ok(ecr(c, "ListTagsForResource", json!({ "resourceArn": arn })).await);
    assert_eq!(tags["tags"], json!([{ "Key": "a", "Value": "1" }, { "Key": "b", "Value": "3" }]));
    ok(ecr(c, "UntagResource", json!({ "resourceArn": arn, "tagKeys": ["a", "zz"] })).await);
    let tags = ok(ecr(c, "ListTagsForResource", json!({ "resourceArn": arn })).await);
    assert_eq!(tags["tags"], json!([{ "Key": "b", "Value": "3" }]));
    let many: Vec<Value> = (0..50).map(|i| json!({ "Key": format!("k{i}"), "Value": "v" })).collect();
    err(ecr(c, "TagResource", json!({ "resourceArn": arn, "tags": many })).await, "TooManyTagsException");
    err(
        ecr(c, "TagResource", json!({ "resourceArn": arn, "tags": [{ "Key": "aws:x", "Value": "v" }] })).await,
        "InvalidTagParameterException",
    );
    err(
        ecr(c, "ListTagsForResource", json!({ "resourceArn": "arn:aws:ecr:us-east-1:000000000000:repository/none" }))
            .await,
        "RepositoryNotFoundException",
    );
    for bad in ["not-an-arn", "arn:aws:s3:::bucket", "arn:aws:ecr:us-east-1:000000000000:cluster/x"] {
        err(ecr(c, "ListTagsForResource", json!({ "resourceArn": bad })).await, "InvalidParameterException");
    }
    // The repository's tags are those of CreateRepository too.
    let described = ok(ecr(c, "ListTagsForResource", json!({ "resourceArn": arn })).await);
    assert_eq!(described["tags"].as_array().unwrap().len(), 1);
    t.shutdown().await;
}

#[tokio::test]
async fn ecr_repository_policies_grant_and_deny_with_iam() {
    let t = TestServer::start().await;
    let c = &t.client;
    create(c, "shared").await;
    create(c, "private").await;
    push_image(c, "shared", b"shared layer", Some("v1")).await;
    let puller_key = user(&t, "puller", None).await;
    let puller = t.client_with(puller_key.clone());
    let body = json!({ "repositoryName": "shared", "imageIds": [{ "imageTag": "v1" }] });

    // No policy of its own: denied, with the principal, action and resource named.
    let e = err(ecr(&puller, "BatchGetImage", body.clone()).await, "AccessDeniedException");
    assert_eq!(
        e["message"],
        "User: arn:aws:iam::000000000000:user/puller is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:000000000000:repository/shared"
    );
    // The repository policy grants it, for that repository only.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/puller"},"Action":["ecr:BatchGetImage","ecr:DescribeImages"]}]}"#;
    ok(ecr(c, "SetRepositoryPolicy", json!({ "repositoryName": "shared", "policyText": policy })).await);
    let got = ok(ecr(&puller, "BatchGetImage", body.clone()).await);
    assert_eq!(got["images"].as_array().unwrap().len(), 1);
    ok(ecr(&puller, "DescribeImages", json!({ "repositoryName": "shared" })).await);
    err(ecr(&puller, "BatchDeleteImage", body.clone()).await, "AccessDeniedException");
    err(ecr(&puller, "DescribeImages", json!({ "repositoryName": "private" })).await, "AccessDeniedException");
    // Removing the policy removes the grant at once.
    ok(ecr(c, "DeleteRepositoryPolicy", json!({ "repositoryName": "shared" })).await);
    err(ecr(&puller, "BatchGetImage", body.clone()).await, "AccessDeniedException");
    ok(ecr(c, "SetRepositoryPolicy", json!({ "repositoryName": "shared", "policyText": policy })).await);

    // A user allowed everything by its identity policy is stopped by the repository policy's deny.
    let admin = t.client_with(
        user(
            &t,
            "admin",
            Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#),
        )
        .await,
    );
    ok(ecr(&admin, "DescribeImages", json!({ "repositoryName": "private" })).await);
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::000000000000:user/admin"},"Action":"ecr:BatchDeleteImage"}]}"#;
    ok(ecr(c, "SetRepositoryPolicy", json!({ "repositoryName": "private", "policyText": deny })).await);
    err(
        ecr(&admin, "BatchDeleteImage", json!({ "repositoryName": "private", "imageIds": [{ "imageTag": "v1" }] }))
            .await,
        "AccessDeniedException",
    );
    ok(ecr(&admin, "DescribeImages", json!({ "repositoryName": "private" })).await);
    // Tagging is authorized on the resourceArn.
    let arn = "arn:aws:ecr:us-east-1:000000000000:repository/shared";
    err(ecr(&puller, "ListTagsForResource", json!({ "resourceArn": arn })).await, "AccessDeniedException");
    ok(ecr(&admin, "ListTagsForResource", json!({ "resourceArn": arn })).await);

    // The grant survives a restart: repository policies are read back from the store.
    let t = t.restart().await;
    let puller = t.client_with(puller_key);
    ok(ecr(&puller, "BatchGetImage", body.clone()).await);
    err(ecr(&puller, "BatchDeleteImage", body).await, "AccessDeniedException");
    t.shutdown().await;
}
