//! `berth demo`: an embedded berth, and the seed's deployment flow played against its public API.
//!
//! Today the flow has its first step: "GitHub Actions → OIDC AssumeRole (least-privileged)". The account's
//! admin registers an OIDC issuer and creates a `deploy` role that only acme/shop's main branch may assume,
//! with a least-privilege policy; the workflow trades its ID token for temporary credentials, uses them,
//! and is refused what the policy does not allow; a token for another branch gets nothing. GitHub's token
//! service cannot be reached from here, so a real issuer on 127.0.0.1 stands in for it
//! ([`stand_in_issuer`]). Every call goes through berth's API, signed as the aws CLI signs it
//! (AssumeRoleWithWebIdentity unsigned, as the CLI sends it). Each capability adds its step as it lands
//! (cluster and service, secrets, logs, blue/green).
//!
//! The second step is "push image :<sha> and :latest" to an ECR repository whose tags are immutable
//! except `latest`: the session logs in with `ecr get-login-password`, pushes a one-layer image with
//! the OCI distribution calls docker makes ([`image`]), sees it with `describe-images`, is refused
//! when it pushes other content under the same `:<sha>`, and pulls it back by digest.

mod image;
mod stand_in_issuer;

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use berth_aws::sigv4::{self, SigningCredentials};
use berth_server::client::{ApiClient, ApiResponse};
use berth_server::RunningServer;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{header, Method, Request};

use stand_in_issuer::{StandInIssuer, WorkflowRun, AUDIENCE};

const IAM: &str = "2010-05-08";
const STS: &str = "2011-06-15";
const ROLE: &str = "deploy";
const ROLE_POLICY: &str = "deploy-least-privilege";
/// The ECR repository the workflow pushes to.
const REPOSITORY: &str = "acme/shop";
/// The session name `aws-actions/configure-aws-credentials` uses by default.
const SESSION: &str = "GitHubActions";

/// The push to main whose workflow deploys.
const PUSH_TO_MAIN: WorkflowRun<'static> = WorkflowRun {
    repository: "acme/shop",
    git_ref: "refs/heads/main",
    sha: "2f7c4a3e9d1b6a8c0e5f4d3c2b1a09876543210f",
    workflow: "deploy",
    run_id: "8812345678",
    actor: "octocat",
    event_name: "push",
};

/// The same workflow run from a feature branch.
const PUSH_TO_FEATURE: WorkflowRun<'static> = WorkflowRun {
    git_ref: "refs/heads/feature",
    sha: "9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
    run_id: "8812345702",
    ..PUSH_TO_MAIN
};

struct Steps {
    started: Instant,
    n: usize,
}

impl Steps {
    /// Runs one step of the flow, timing it and saying what berth did.
    async fn step<T>(
        &mut self,
        what: &str,
        work: impl Future<Output = anyhow::Result<(T, String)>>,
    ) -> anyhow::Result<T> {
        self.n += 1;
        let t = Instant::now();
        match work.await {
            Ok((value, detail)) => {
                println!("  [{}] ✓ {what} ({} ms)\n        {detail}", self.n, t.elapsed().as_millis());
                Ok(value)
            }
            Err(e) => {
                println!("  [{}] ✗ {what}", self.n);
                Err(e)
            }
        }
    }
}

pub async fn run(data_dir: Option<PathBuf>, listen: &str) -> anyhow::Result<()> {
    let mut steps = Steps { started: Instant::now(), n: 0 };
    let tmp;
    let dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary data dir")?;
            tmp.path().to_path_buf()
        }
    };
    println!("berth demo: the seed's deployment flow against an embedded berth\n");

    let config = berth_server::Config::new(listen, Some(dir.clone()), None, None)?;
    let server = steps
        .step("start berth", async {
            let server = berth_server::start(config).await?;
            let detail = format!("endpoint {} · data dir {}", server.endpoint(), dir.display());
            Ok((server, detail))
        })
        .await?;
    let issuer = steps
        .step(
            "start a stand-in for GitHub's token service (token.actions.githubusercontent.com cannot be reached from here)",
            async {
                let issuer = StandInIssuer::start().await?;
                let detail = format!(
                    "OIDC issuer {} · /.well-known/openid-configuration and /.well-known/jwks · P-256 key generated now (kid {})",
                    issuer.url(),
                    short(issuer.kid())
                );
                Ok((issuer, detail))
            },
        )
        .await;
    let issuer = match issuer {
        Ok(issuer) => issuer,
        Err(e) => {
            server.shutdown().await;
            return Err(e);
        }
    };

    let outcome = match oidc_deploy_role(&mut steps, &server, &issuer).await {
        Ok(deploy) => push_image(&mut steps, &server, &deploy).await,
        Err(e) => Err(e),
    };

    println!();
    steps
        .step("stop the issuer and berth gracefully", async {
            issuer.stop().await;
            server.shutdown().await;
            Ok(((), "issuer connections closed; in-flight requests finished; state closed".to_string()))
        })
        .await?;
    outcome?;
    println!(
        "\ndone in {:.1} s. Coming as they land: cluster and service, secrets, logs, blue/green.",
        steps.started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The seed's "GitHub Actions → OIDC AssumeRole (least-privileged)". Returns the deploy session's client.
async fn oidc_deploy_role(
    steps: &mut Steps,
    server: &RunningServer,
    issuer: &StandInIssuer,
) -> anyhow::Result<ApiClient> {
    let root = berth_server::testing::root_client(server);
    println!("\nGitHub Actions → OIDC AssumeRole (least-privileged)");
    println!("  the account's admin (root key), once:");
    steps.step("who am I: sts get-caller-identity (SigV4-signed, verified by berth)", caller_identity(&root)).await?;
    let provider_arn = steps
        .step(
            "iam create-open-id-connect-provider for the issuer",
            create_provider(&root, issuer, &server.config.aws.account_id),
        )
        .await?;
    let role_arn = steps
        .step(
            "iam create-role deploy, trusting acme/shop's main branch only",
            create_role(&root, issuer, &provider_arn),
        )
        .await?;
    steps
        .step(
            "ecr create-repository acme/shop: tags immutable, except latest",
            create_repository(&root, &server.registry_host),
        )
        .await?;
    let repo_arn =
        format!("arn:aws:ecr:{}:{}:repository/{REPOSITORY}", server.config.aws.region, server.config.aws.account_id);
    steps.step("iam put-role-policy deploy: least privilege", put_role_policy(&root, &role_arn, &repo_arn)).await?;

    println!("\n  the deploy workflow of a push to main of acme/shop:");
    let token = steps
        .step("GitHub Actions gives the job an ID token (audience sts.amazonaws.com)", async {
            let token = issuer.mint(&PUSH_TO_MAIN);
            Ok((token, describe_token(issuer, &PUSH_TO_MAIN)))
        })
        .await?;
    issuer.take_requests();
    let creds = steps
        .step(
            "sts assume-role-with-web-identity --role-arn …/deploy (unsigned: the token is the credential)",
            assume_role_with_web_identity(&root, issuer, &role_arn, &token),
        )
        .await?;
    let deploy = ApiClient::new(&server.endpoint(), creds, &server.config.aws.region)?;
    let session_arn = steps
        .step("who am I now: sts get-caller-identity with the session's ASIA… key", async {
            let resp = ok(deploy.query("sts", "GetCallerIdentity", STS, &[]).await?, "GetCallerIdentity")?;
            let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
            let expected = format!("arn:aws:sts::{}:assumed-role/{ROLE}/{SESSION}", server.config.aws.account_id);
            ensure!(arn == expected, "the session's identity is {arn}, not {expected}");
            let user_id = resp.xml_value("UserId").unwrap_or_default();
            let detail = format!("{arn} · user id {user_id}");
            Ok((arn, detail))
        })
        .await?;
    steps
        .step("allowed: iam get-role --role-name deploy", async {
            let resp = ok(deploy.query("iam", "GetRole", IAM, &[("RoleName", ROLE)]).await?, "GetRole")?;
            let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
            Ok(((), format!("{arn} · allowed by the inline policy {ROLE_POLICY}")))
        })
        .await?;
    steps
        .step("denied: iam put-role-policy on deploy (the pipeline widening its own rights)", async {
            let policy = policy_document(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
            let params = [("RoleName", ROLE), ("PolicyName", "admin"), ("PolicyDocument", policy.as_str())];
            let resp = deploy.query("iam", "PutRolePolicy", IAM, &params).await?;
            let message = refused(&resp, "AccessDenied", "PutRolePolicy")?;
            ensure!(
                message.contains(&session_arn) && message.contains("iam:PutRolePolicy") && message.contains(&role_arn),
                "the refusal does not name the principal, action and resource: {message}"
            );
            Ok(((), format!("AccessDenied: {message}")))
        })
        .await?;

    println!("\n  the same workflow on a push to another branch:");
    steps
        .step("a token for refs/heads/feature is refused", async {
            let token = issuer.mint(&PUSH_TO_FEATURE);
            let resp = unsigned_assume(&root, &role_arn, &token).await?;
            let message = refused(&resp, "AccessDenied", "AssumeRoleWithWebIdentity")?;
            Ok((
                (),
                format!(
                    "AccessDenied: {message} · the token verified, but the trust policy admits sub {}, not {}",
                    PUSH_TO_MAIN.subject(),
                    PUSH_TO_FEATURE.subject()
                ),
            ))
        })
        .await?;
    Ok(deploy)
}

/// The seed's "push image :<sha> and :latest" to the ECR repository, as the deploy session.
async fn push_image(steps: &mut Steps, server: &RunningServer, deploy: &ApiClient) -> anyhow::Result<()> {
    println!("\nPush image :<sha> and :latest → Amazon ECR Repository");
    println!("  the deploy workflow, with the session's credentials:");
    let basic = steps
        .step("aws ecr get-login-password | docker login -u AWS --password-stdin", async {
            let resp = ok(
                deploy.json("ecr", &ecr_target("GetAuthorizationToken"), &serde_json::json!({})).await?,
                "GetAuthorizationToken",
            )?;
            let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
            let data = &v["authorizationData"][0];
            let token = data["authorizationToken"].as_str().context("no authorizationToken")?.to_string();
            let detail = format!(
                "proxyEndpoint {} · password valid until {} (12 h, or the session's end if sooner)",
                data["proxyEndpoint"].as_str().unwrap_or_default(),
                berth_aws::time::Timestamp(data["expiresAt"].as_f64().unwrap_or_default() as i64).iso8601()
            );
            Ok((token, detail))
        })
        .await?;
    let pusher = image::Pusher { client: deploy, repository: REPOSITORY.to_string(), basic };
    let sha = PUSH_TO_MAIN.sha;
    let site = format!("<h1>acme shop</h1><p>built from {sha}</p>\n");
    let built = image::Image::build("srv/index.html", site.as_bytes(), sha);
    let uri = format!("{}/{REPOSITORY}", server.registry_host);
    steps
        .step(&format!("docker push {uri}:{sha}"), async {
            let (uploaded, resp) = pusher.push(&built, sha).await?;
            if resp.status != 201 {
                bail!("the manifest PUT answered {}: {}", resp.status, resp.text());
            }
            let digest = resp.headers.get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or_default();
            ensure!(digest == built.digest(), "berth names the image {digest}, the bytes hash to {}", built.digest());
            Ok((
                (),
                format!(
                    "{} · manifest {}",
                    if uploaded == 0 {
                        "berth already had both blobs".to_string()
                    } else {
                        format!("{uploaded} blobs uploaded and verified (layer {} B, config)", built.layer.len())
                    },
                    short(digest)
                ),
            ))
        })
        .await?;
    steps
        .step(&format!("docker push {uri}:latest"), async {
            let (uploaded, resp) = pusher.push(&built, "latest").await?;
            if resp.status != 201 {
                bail!("the manifest PUT answered {}: {}", resp.status, resp.text());
            }
            Ok(((), format!("{uploaded} blobs uploaded: berth already had both · latest → {}", short(&built.digest()))))
        })
        .await?;
    steps
        .step(&format!("aws ecr describe-images --repository-name {REPOSITORY}"), async {
            let input = serde_json::json!({ "repositoryName": REPOSITORY });
            let resp = ok(deploy.json("ecr", &ecr_target("DescribeImages"), &input).await?, "DescribeImages")?;
            let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
            let images = v["imageDetails"].as_array().context("no imageDetails")?;
            ensure!(images.len() == 1, "expected one image, found {}", images.len());
            let d = &images[0];
            let mut tags: Vec<&str> =
                d["imageTags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
            tags.sort();
            ensure!(tags == [sha, "latest"], "the image's tags are {tags:?}");
            Ok((
                (),
                format!(
                    "one image {} · tags {}… and latest · {} B · {}",
                    short(d["imageDigest"].as_str().unwrap_or_default()),
                    &sha[..7],
                    d["imageSizeInBytes"],
                    d["imageManifestMediaType"].as_str().unwrap_or_default()
                ),
            ))
        })
        .await?;
    steps
        .step(&format!("refused: pushing other content as :{}… (the tag is immutable)", &sha[..7]), async {
            let other = image::Image::build("srv/index.html", b"<h1>tampered</h1>\n", sha);
            let (_, resp) = pusher.push(&other, sha).await?;
            ensure!(
                resp.status == 400 && resp.text().contains("TAG_INVALID"),
                "expected 400 TAG_INVALID, got {}: {}",
                resp.status,
                resp.text()
            );
            let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
            Ok(((), format!("400 TAG_INVALID: {}", v["errors"][0]["message"].as_str().unwrap_or_default())))
        })
        .await?;
    steps
        .step("a task pulls by digest: docker pull …@sha256:…", async {
            let resp = pusher.pull_manifest(&built.digest()).await?;
            ensure!(resp.status == 200, "the pull answered {}: {}", resp.status, resp.text());
            ensure!(resp.body[..] == built.manifest[..], "the pulled manifest differs from the pushed one");
            Ok((
                (),
                format!("the manifest came back byte for byte ({} B, {})", resp.body.len(), image::MANIFEST_MEDIA_TYPE),
            ))
        })
        .await?;
    Ok(())
}

fn ecr_target(operation: &str) -> String {
    format!("AmazonEC2ContainerRegistry_V20150921.{operation}")
}

async fn create_repository(root: &ApiClient, registry_host: &str) -> anyhow::Result<((), String)> {
    let input = serde_json::json!({
        "repositoryName": REPOSITORY,
        "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
        "imageTagMutabilityExclusionFilters": [{ "filterType": "WILDCARD", "filter": "latest" }],
    });
    let resp = root.json("ecr", &ecr_target("CreateRepository"), &input).await?;
    let kept = resp.status == 400 && resp.text().contains("RepositoryAlreadyExistsException");
    if kept {
        // A data dir kept from an earlier run: the same settings again.
        ok(root.json("ecr", &ecr_target("PutImageTagMutability"), &input).await?, "PutImageTagMutability")?;
    } else {
        ok(resp, "CreateRepository")?;
    }
    let described = serde_json::json!({ "repositoryNames": [REPOSITORY] });
    let resp = ok(root.json("ecr", &ecr_target("DescribeRepositories"), &described).await?, "DescribeRepositories")?;
    let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
    let uri = v["repositories"][0]["repositoryUri"].as_str().context("no repositoryUri")?;
    ensure!(uri == format!("{registry_host}/{REPOSITORY}"), "unexpected repositoryUri {uri}");
    let kept = if kept { " (kept from an earlier run; settings reapplied)" } else { "" };
    Ok(((), format!("{uri}{kept} · IMMUTABLE_WITH_EXCLUSION: a :<sha> never moves, :latest may")))
}

async fn caller_identity(client: &ApiClient) -> anyhow::Result<((), String)> {
    let resp = ok(client.query("sts", "GetCallerIdentity", STS, &[]).await?, "GetCallerIdentity")?;
    let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
    let account = resp.xml_value("Account").context("no Account in the answer")?;
    Ok(((), format!("account {account} · {arn}")))
}

async fn create_provider(
    root: &ApiClient,
    issuer: &StandInIssuer,
    account_id: &str,
) -> anyhow::Result<(String, String)> {
    let params = [("Url", issuer.url()), ("ClientIDList.member.1", AUDIENCE)];
    let resp = root.query("iam", "CreateOpenIDConnectProvider", IAM, &params).await?;
    // A data dir kept from an earlier run whose issuer had the same port has the provider already.
    if resp.status == 409 && resp.xml_value("Code").as_deref() == Some("EntityAlreadyExists") {
        let arn = format!("arn:aws:iam::{account_id}:oidc-provider/{}", issuer.host());
        return Ok((arn.clone(), format!("{arn} (kept from an earlier run) · url {}", issuer.url())));
    }
    let resp = ok(resp, "CreateOpenIDConnectProvider")?;
    let arn = resp.xml_value("OpenIDConnectProviderArn").context("no OpenIDConnectProviderArn in the answer")?;
    let detail = format!("{arn} · url {} · client id {AUDIENCE}", issuer.url());
    Ok((arn, detail))
}

async fn create_role(root: &ApiClient, issuer: &StandInIssuer, provider_arn: &str) -> anyhow::Result<(String, String)> {
    let host = issuer.host();
    let main = PUSH_TO_MAIN.subject();
    let trust = policy_document(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"Federated": "{provider_arn}"}},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {{"StringEquals": {{"{host}:aud": "{AUDIENCE}"}},
                          "StringLike": {{"{host}:sub": "{main}"}}}}}}"#
    ));
    let params = [
        ("RoleName", ROLE),
        ("AssumeRolePolicyDocument", trust.as_str()),
        ("Description", "assumed by acme/shop's deploy workflow on main"),
    ];
    let resp = root.query("iam", "CreateRole", IAM, &params).await?;
    // A demo data dir kept from an earlier run (`--data-dir`) has the role already: trust the new issuer.
    let existed = resp.status == 409 && resp.xml_value("Code").as_deref() == Some("EntityAlreadyExists");
    let resp = if existed {
        let params = [("RoleName", ROLE), ("PolicyDocument", trust.as_str())];
        ok(root.query("iam", "UpdateAssumeRolePolicy", IAM, &params).await?, "UpdateAssumeRolePolicy")?;
        ok(root.query("iam", "GetRole", IAM, &[("RoleName", ROLE)]).await?, "GetRole")?
    } else {
        ok(resp, "CreateRole")?
    };
    let arn = resp.xml_value("Arn").context("no Arn in the answer")?;
    let detail = format!(
        "{arn}{} · trusts that provider for sts:AssumeRoleWithWebIdentity if {host}:aud = {AUDIENCE} and {host}:sub like {main}",
        if existed { " (kept from an earlier run; trust policy replaced)" } else { "" }
    );
    Ok((arn, detail))
}

async fn put_role_policy(root: &ApiClient, role_arn: &str, repo_arn: &str) -> anyhow::Result<((), String)> {
    // What the demo's deploy needs today; ecs: actions join as that service lands.
    let policy = policy_document(&format!(
        r#"{{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "{role_arn}"}},
           {{"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}},
           {{"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
             "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"], "Resource": "{repo_arn}"}}"#
    ));
    let params = [("RoleName", ROLE), ("PolicyName", ROLE_POLICY), ("PolicyDocument", policy.as_str())];
    ok(root.query("iam", "PutRolePolicy", IAM, &params).await?, "PutRolePolicy")?;
    Ok((
        (),
        format!(
            "inline policy {ROLE_POLICY}: iam:GetRole on the role; ecr:GetAuthorizationToken; push, pull and describe on {REPOSITORY} only; everything else is denied"
        ),
    ))
}

fn describe_token(issuer: &StandInIssuer, run: &WorkflowRun<'_>) -> String {
    format!(
        "ES256, signed by {} (kid {}) · sub {} · workflow {} · run {} · {} by {} at {} · expires in 5 min",
        issuer.url(),
        short(issuer.kid()),
        run.subject(),
        run.workflow,
        run.run_id,
        run.event_name,
        run.actor,
        &run.sha[..7]
    )
}

async fn assume_role_with_web_identity(
    client: &ApiClient,
    issuer: &StandInIssuer,
    role_arn: &str,
    token: &str,
) -> anyhow::Result<(SigningCredentials, String)> {
    let resp = ok(unsigned_assume(client, role_arn, token).await?, "AssumeRoleWithWebIdentity")?;
    let value = |tag: &str| resp.xml_value(tag).with_context(|| format!("no {tag} in the answer"));
    let creds = SigningCredentials {
        access_key_id: value("AccessKeyId")?,
        secret_access_key: value("SecretAccessKey")?,
        session_token: Some(value("SessionToken")?),
    };
    ensure!(creds.access_key_id.starts_with("ASIA"), "the session's key {} is not temporary", creds.access_key_id);
    let fetched = issuer.take_requests();
    let keys = if fetched.is_empty() {
        "its keys were cached".to_string()
    } else {
        format!("fetched {}", fetched.join(" + "))
    };
    let detail = format!(
        "verified ES256 token from {} ({keys}), trust policy matched sub {} · session {} until {}",
        issuer.url(),
        value("SubjectFromWebIdentityToken")?,
        creds.access_key_id,
        value("Expiration")?
    );
    Ok((creds, detail))
}

/// AssumeRoleWithWebIdentity as the aws CLI sends it: a form POST with no signature, since the token is the
/// caller's only credential. `client` is used for its connection only.
async fn unsigned_assume(client: &ApiClient, role_arn: &str, token: &str) -> anyhow::Result<ApiResponse> {
    let params = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", STS),
        ("RoleArn", role_arn),
        ("RoleSessionName", SESSION),
        ("WebIdentityToken", token),
    ];
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", sigv4::uri_encode(k.as_bytes()), sigv4::uri_encode(v.as_bytes())))
        .collect();
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/", client.host()))
        .header(header::HOST, client.host())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")
        .body(Full::new(Bytes::from(body.join("&"))))?;
    Ok(client.send(req).await?)
}

fn policy_document(statement: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#)
}

/// The answer if it is a success.
fn ok(resp: ApiResponse, operation: &str) -> anyhow::Result<ApiResponse> {
    if resp.status != 200 {
        bail!("{operation} answered {}: {}", resp.status, resp.text());
    }
    Ok(resp)
}

/// The message of the refusal with `code` the answer must be.
fn refused(resp: &ApiResponse, code: &str, operation: &str) -> anyhow::Result<String> {
    if resp.status == 200 || resp.xml_value("Code").as_deref() != Some(code) {
        bail!("{operation} should have been refused with {code}, but answered {}: {}", resp.status, resp.text());
    }
    resp.xml_value("Message").context("no Message in the refusal")
}

/// The first characters of a long identifier.
fn short(id: &str) -> String {
    format!("{}…", id.get(..10).unwrap_or(id))
}
