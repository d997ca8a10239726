//! Pulls: from berth's own registry with the ECR password (the path ECS takes), by tag and by
//! digest; refused without it; and failures carrying Docker's reason.

use std::time::Duration;

use berth_aws::Secret;
use berth_runtime::{ImageReference, RegistryAuth, RuntimeError};
use berth_server::testing::TestServer;
use serde_json::{json, Value};

use crate::support::{docker, docker_ok, Fixture};

const ECR: &str = "AmazonEC2ContainerRegistry_V20150921";

async fn ecr(t: &TestServer, op: &str, body: Value) -> Value {
    let r = t.client.json("ecr", &format!("{ECR}.{op}"), &body).await.expect("ECR request");
    assert_eq!(r.status, 200, "{op}: {}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

/// The ECR password of an IAM user who may only pull (the actions of ECS's task execution role).
async fn puller_password(t: &TestServer) -> String {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage"],"Resource":"*"}]}"#;
    let puller = t.user_client("puller", Some(policy)).await;
    berth_server::testing::ecr_password(&puller).await
}

// Multi-threaded: the docker CLI blocks this test's thread while berth (in-process) answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pushed_to_berths_registry_is_pulled_with_the_ecr_password() {
    let f = Fixture::new("pull").await;
    let t = TestServer::start().await;
    let host = t.server.registry_host.clone();
    let repository = format!("runtime/{}", f.id);
    ecr(&t, "CreateRepository", json!({ "repositoryName": repository })).await;
    let password = berth_server::testing::ecr_password(&t.client).await;
    let password = password.as_str();

    // docker login + push, in a private docker config.
    let config = tempfile::tempdir().expect("a docker config dir");
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    docker_ok(&["login", "-u", "AWS", "--password-stdin", &host], &env, Some(password));
    let tagged = format!("{host}/{repository}:v1");
    f.cleanup.images.lock().unwrap().push(tagged.clone());
    docker_ok(&["tag", &f.image, &tagged], &env, None);
    let pushed = docker_ok(&["push", &tagged], &env, None);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in the push output: {pushed}"))
        .to_string();
    let image_id = docker_ok(&["inspect", "-f", "{{.Id}}", &f.image], &[], None).trim().to_string();
    // Gone locally: the pull must fetch every layer from berth.
    docker_ok(&["rmi", &tagged, &f.image], &[], None);
    let by_digest = format!("{host}/{repository}@{digest}");
    f.cleanup.images.lock().unwrap().push(by_digest.clone());

    // Without the password berth refuses, and the reason is Docker's.
    match f.rt.pull_image(&tagged, None).await {
        Err(RuntimeError::Pull { reference, reason }) => {
            assert_eq!(reference, tagged);
            assert!(!reason.is_empty(), "an empty reason");
        }
        other => panic!("pull without credentials: {other:?}"),
    }

    // Pulled as a user who may only pull, not with the root key's password that pushed.
    let password = puller_password(&t).await;
    let auth =
        RegistryAuth { username: "AWS".to_string(), password: Secret::new(&password), server_address: host.clone() };
    assert!(!format!("{auth:?}").contains(&password), "the password shows in Debug");
    let pulled = f.rt.pull_image(&tagged, Some(&auth)).await.expect("pull by tag");
    assert_eq!(pulled.image_id, image_id);
    assert_eq!(pulled.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(pulled.repo_digest.as_deref(), Some(by_digest.as_str()));

    docker_ok(&["rmi", &tagged], &[], None);
    let pulled = f.rt.pull_image(&by_digest, Some(&auth)).await.expect("pull by digest");
    assert_eq!(pulled.image_id, image_id);
    assert_eq!(pulled.digest.as_deref(), Some(digest.as_str()));

    // And it runs, from the digest reference.
    let mut spec = f.spec("pulled", &["sh", "-c", "cat /www/index.html"]);
    spec.image = by_digest.clone();
    let id = f.run(&spec).await;
    let info = f.wait_exited(&id, Duration::from_secs(15)).await;
    assert_eq!((info.exit_code, info.image_id.as_str()), (Some(0), image_id.as_str()));
    f.rt.remove_container(&id).await.expect("remove");

    // A tag that is not there, and a repository that is not there: Docker's reason.
    for missing in [format!("{host}/{repository}:nope"), format!("{host}/runtime/absent-{}:v1", f.id)] {
        match f.rt.pull_image(&missing, Some(&auth)).await {
            Err(RuntimeError::Pull { reason, .. }) => {
                assert!(reason.contains("not found") || reason.contains("unknown"), "{missing}: {reason}");
            }
            other => panic!("pull of {missing}: {other:?}"),
        }
    }

    f.rt.remove_image(&by_digest).await.expect("remove image");
    assert!(!docker(&["image", "inspect", &by_digest]).status.success(), "the image is still there");
    f.rt.remove_image(&by_digest).await.expect("removing a removed image");
    t.shutdown().await;
}

#[tokio::test]
async fn a_pull_from_nowhere_fails_with_dockers_reason() {
    let f = Fixture::new("nowhere").await;
    // Nothing listens on the discard port of the loopback address.
    let reference = format!("127.0.0.1:9/{}:v1", f.id);
    match f.rt.pull_image(&reference, None).await {
        Err(e @ RuntimeError::Pull { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&reference) && message.contains("connection refused"), "{message}");
        }
        other => panic!("pull from nowhere: {other:?}"),
    }
    assert!(matches!(f.rt.pull_image("Not/Valid", None).await, Err(RuntimeError::InvalidReference { .. })));
    let parsed = ImageReference::parse(&reference).expect("parse");
    assert_eq!(
        (parsed.repository.as_str(), parsed.tag.as_deref()),
        (format!("127.0.0.1:9/{}", f.id).as_str(), Some("v1"))
    );
}
