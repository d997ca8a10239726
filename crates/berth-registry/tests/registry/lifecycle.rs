//! Lifecycle policies: evaluation by ECR's rules on images built in memory, then applied to a real
//! registry (SQLite store and blob store in a temporary directory, a `ManualClock` for time).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_aws::time::{ManualClock, SharedClock, Timestamp};
use berth_aws::AwsContext;
use berth_registry::lifecycle::{self, LifecyclePolicy};
use berth_registry::registry::Tag;
use berth_registry::{Digest, Image, ImagesInUse, NewRepository, Reference, Registry, TagMutability};
use bytes::Bytes;
use serde_json::json;

pub const DAY: Duration = Duration::from_secs(86_400);
pub const HOUR: Duration = Duration::from_secs(3_600);

// ---- a real registry ----

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub registry: Registry,
    pub clock: Arc<ManualClock>,
}

pub async fn open() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = berth_store::Store::open(&data).expect("store");
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let shared: SharedClock = clock.clone();
    let registry = Registry::open(
        store,
        &data.join("registry"),
        "localhost:4566".into(),
        AwsContext::new("123456789012", "us-east-1").expect("context"),
        shared,
    )
    .await
    .expect("registry");
    Env { _dir: dir, registry, clock }
}

pub async fn create_repository(registry: &Registry, name: &str) {
    registry
        .create_repository(NewRepository {
            name: name.into(),
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: Vec::new(),
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
            tags: Vec::<Tag>::new(),
        })
        .await
        .expect("create repository");
}

/// Pushes a blob through an upload, as `docker push` does.
pub async fn push_blob(registry: &Registry, repository: &str, data: &[u8]) -> Digest {
    let digest = Digest::of(data);
    let id = registry.start_upload(repository).await.expect("start upload");
    registry.append(repository, &id, data, Some(0)).await.expect("append");
    registry.complete_upload(repository, &id, &digest).await.expect("complete");
    digest
}

/// A Docker schema 2 manifest for `config` and `layers` (already pushed).
pub fn docker_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Bytes {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.1, "digest": config.0.to_string()},
        "layers": layers.iter().map(|(d, size)| json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": size, "digest": d.to_string()
        })).collect::<Vec<_>>(),
    });
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

/// An image's blobs, as pushed: its config (unique per `seed`) and the layers.
pub struct Pushed {
    pub digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    pub body: Bytes,
}

/// Pushes an image with a config unique to `seed` and the given layers (pushed first), tagged
/// with `tags` (none: untagged).
pub async fn push_image(registry: &Registry, repository: &str, seed: &str, layers: &[&[u8]], tags: &[&str]) -> Pushed {
    let config_bytes =
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "seed": seed})).expect("json");
    let config = push_blob(registry, repository, &config_bytes).await;
    let mut layer_digests = Vec::new();
    for layer in layers {
        layer_digests.push(push_blob(registry, repository, layer).await);
    }
    let body = docker_manifest(
        (&config, config_bytes.len()),
        &layer_digests.iter().zip(layers).map(|(d, l)| (d, l.len())).collect::<Vec<_>>(),
    );
    let media = "application/vnd.docker.distribution.manifest.v2+json";
    let put = registry.put_manifest(repository, body.clone(), Some(media), None, None).await.expect("put manifest");
    for tag in tags {
        registry.put_manifest(repository, body.clone(), Some(media), Some(tag), None).await.expect("tag");
    }
    Pushed { digest: put.manifest.digest, config, layers: layer_digests, body }
}

/// Pushes a Docker manifest list of `children` (already pushed), tagged with `tag`.
pub async fn push_index(registry: &Registry, repository: &str, children: &[&Pushed], tag: Option<&str>) -> Digest {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": children.iter().enumerate().map(|(i, c)| json!({
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "size": c.body.len(),
            "digest": c.digest.to_string(),
            "platform": {"architecture": if i == 0 { "amd64" } else { "arm64" }, "os": "linux"},
        })).collect::<Vec<_>>(),
    });
    let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
    registry
        .put_manifest(repository, body, Some("application/vnd.docker.distribution.manifest.list.v2+json"), tag, None)
        .await
        .expect("put index")
        .manifest
        .digest
}

/// `ImagesInUse` for the tests: a set they change.
#[derive(Default)]
pub struct InUse(pub Mutex<HashSet<(String, Digest)>>);

impl ImagesInUse for InUse {
    fn images_in_use(&self) -> HashSet<(String, Digest)> {
        self.0.lock().expect("lock").clone()
    }
}

pub async fn digests(registry: &Registry, repository: &str) -> HashSet<Digest> {
    registry.images(repository).await.expect("images").into_iter().map(|i| i.digest).collect()
}

// ---- evaluation on images built in memory ----

const NOW: Timestamp = Timestamp(1_700_000_000);

fn image(name: &str, tags: &[&str], pushed_days_ago: f64) -> Image {
    image_at(name, tags, (pushed_days_ago * 86_400.0) as i64)
}

fn image_at(name: &str, tags: &[&str], pushed_seconds_ago: i64) -> Image {
    Image {
        repository: "app".into(),
        digest: Digest::of(name.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject: None,
        size: 1,
        pushed_at: Timestamp(NOW.0 - pushed_seconds_ago),
        last_pulled_at: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn policy(rules: serde_json::Value) -> LifecyclePolicy {
    let rules: Vec<serde_json::Value> = rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| json!({"rulePriority": r[0], "selection": r[1], "action": {"type": "expire"}}))
        .collect();
    lifecycle::parse(&json!({ "rules": rules }).to_string()).expect("valid policy")
}

/// `(name, rule priority)` of what the policy expires, in deletion order.
fn expired(
    p: &LifecyclePolicy,
    images: &[Image],
    in_use: &[&str],
    index_children: &[(&str, &str)],
) -> Vec<(String, u32)> {
    let names: HashMap<Digest, String> =
        images.iter().enumerate().map(|(i, img)| (img.digest.clone(), format!("{i}"))).collect();
    let by_name = |n: &str| Digest::of(n.as_bytes());
    let in_use: HashSet<(String, Digest)> = in_use.iter().map(|n| ("app".to_string(), by_name(n))).collect();
    let children: Vec<(Digest, Digest)> = index_children.iter().map(|(i, c)| (by_name(i), by_name(c))).collect();
    lifecycle::evaluate(p, images, NOW, &in_use, &children)
        .into_iter()
        .map(|e| (names[&e.digest].clone(), e.rule_priority))
        .collect()
}

/// Names are indexes into `images`: `expired(...)` answers in those.
fn names(pairs: &[(usize, u32)]) -> Vec<(String, u32)> {
    pairs.iter().map(|(i, p)| (i.to_string(), *p)).collect()
}

#[test]
fn image_count_more_than_keeps_the_youngest() {
    let images = [
        image("a", &[], 5.0),
        image("b", &[], 4.0),
        image("c", &[], 3.0),
        image("d", &["v1"], 10.0),
        image("e", &[], 1.0),
    ];
    let p = policy(json!([[1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 2}]]));
    // Untagged, youngest first: e, c, b, a. The two youngest stay; the tagged image is not selected.
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 1), (1, 1)]));

    let p = policy(json!([[1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 4}]]));
    assert_eq!(expired(&p, &images, &[], &[]), vec![]);
}

#[test]
fn since_image_pushed_expires_what_is_older_than_the_days() {
    let images = [
        image("a", &["prod-1"], 20.0),
        image("b", &["prod-2"], 14.0), // exactly 14 days: not older
        image_at("c", &["prod-3"], 14 * 86_400 + 1),
        image("d", &["dev-1"], 30.0),
        image("e", &[], 30.0),
    ];
    let p = policy(
        json!([[3, {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}]]),
    );
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 3), (2, 3)]));

    let p = policy(
        json!([[1, {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 25}]]),
    );
    let mut got = expired(&p, &images, &[], &[]);
    got.sort();
    assert_eq!(got, names(&[(3, 1), (4, 1)]));
}

#[test]
fn every_prefix_must_match_one_of_the_tags() {
    // ECR's "Filtering on multiple tags in a single rule", example A: C and F have both; C is old.
    let images = [
        image("a", &["alpha-1"], 12.0),
        image("b", &["beta-1"], 11.0),
        image("c", &["alpha-2", "beta-2"], 10.0),
        image("d", &["alpha-3"], 4.0),
        image("e", &["beta-3"], 3.0),
        image("f", &["alpha-4", "beta-4"], 2.0),
    ];
    let p = policy(
        json!([[1, {"tagStatus": "tagged", "tagPrefixList": ["alpha", "beta"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 5}]]),
    );
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(2, 1)]));

    // Example B: tags are not exclusive; all three have alpha and beta, the youngest stays.
    let images = [
        image("a", &["alpha-1", "beta-1", "gamma-1"], 10.0),
        image("b", &["alpha-2", "beta-2"], 9.0),
        image("c", &["alpha-3", "beta-3", "gamma-2"], 8.0),
    ];
    let p = policy(
        json!([[1, {"tagStatus": "tagged", "tagPrefixList": ["alpha", "beta"], "countType": "imageCountMoreThan", "countNumber": 1}]]),
    );
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 1), (1, 1)]));
}

#[test]
fn tag_patterns_use_wildcards_over_the_whole_tag() {
    let images = [
        image("a", &["prod"], 9.0),
        image("b", &["prod-1"], 8.0),
        image("c", &["v1.0-rc1"], 7.0),
        image("d", &["v1.0"], 6.0),
        image("e", &["preprod"], 5.0),
        image("f", &["latest"], 4.0),
    ];
    let run = |patterns: serde_json::Value| {
        let p = policy(
            json!([[1, {"tagStatus": "tagged", "tagPatternList": patterns, "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}]]),
        );
        let mut got: Vec<usize> =
            expired(&p, &images, &[], &[]).into_iter().map(|(n, _)| n.parse().expect("index")).collect();
        got.sort();
        got
    };
    assert_eq!(run(json!(["prod*"])), vec![0, 1]);
    assert_eq!(run(json!(["*prod"])), vec![0, 4]);
    assert_eq!(run(json!(["*-rc*"])), vec![2]);
    assert_eq!(run(json!(["v*.*"])), vec![2, 3]);
    assert_eq!(run(json!(["latest"])), vec![5], "no wildcard: the exact tag");
    assert_eq!(run(json!(["late"])), Vec::<usize>::new());
    assert_eq!(run(json!(["*"])), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(run(json!(["p*o*d"])), vec![0, 4]);
}

#[test]
fn a_higher_priority_rule_owns_the_images_it_selects() {
    // ECR's "Filtering on multiple rules", example A.
    let images =
        [image("a", &["beta-1", "prod-1"], 10.0), image("b", &["beta-2", "prod-2"], 9.0), image("c", &["beta-3"], 8.0)];
    let p = policy(json!([
        [1, {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}],
        [2, {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}]
    ]));
    // Rule 2 marks A and B, but A is rule 1's (and expired by it) and B is rule 1's too.
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 1)]));

    // Example B: the priorities swapped.
    let p = policy(json!([
        [1, {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}],
        [2, {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}]
    ]));
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 1), (1, 1)]));
}

#[test]
fn a_lower_priority_rule_still_counts_the_images_of_higher_ones() {
    // Keep every release; keep two images in all. Releases count toward the two but are never
    // expired by the `any` rule.
    let images = [
        image("p1", &["release-1"], 1.0),
        image("x1", &["dev-1"], 2.0),
        image("p2", &["release-2"], 3.0),
        image("x2", &["dev-2"], 4.0),
        image("u", &[], 5.0),
    ];
    let p = policy(json!([
        [1, {"tagStatus": "tagged", "tagPrefixList": ["release"], "countType": "imageCountMoreThan", "countNumber": 100}],
        [5, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2}]
    ]));
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(4, 5), (3, 5)]));

    // An untagged rule first: it owns the untagged image even though it keeps it.
    let p = policy(json!([
        [1, {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}],
        [2, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}]
    ]));
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(3, 2), (2, 2), (1, 2)]));
}

#[test]
fn images_in_use_are_never_expired() {
    let images = [image("a", &[], 5.0), image("b", &[], 4.0), image("c", &[], 3.0)];
    let p = policy(json!([[1, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}]]));
    assert_eq!(expired(&p, &images, &[], &[]), names(&[(0, 1), (1, 1)]));
    assert_eq!(expired(&p, &images, &["a"], &[]), names(&[(1, 1)]));
}

#[test]
fn the_children_of_a_kept_index_are_kept() {
    // An index (tagged) and its two platform images (untagged, as docker buildx pushes them).
    let images = [
        image("child-amd64", &[], 10.0),
        image("child-arm64", &[], 10.0),
        image("index", &["multi"], 10.0),
        image("orphan", &[], 10.0),
    ];
    let children = [("index", "child-amd64"), ("index", "child-arm64")];
    let p = policy(
        json!([[1, {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}]]),
    );
    assert_eq!(expired(&p, &images, &[], &children), names(&[(3, 1)]));

    // The index expires too: then its children go, after it.
    let p = policy(
        json!([[1, {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}]]),
    );
    let got = expired(&p, &images, &[], &children);
    assert_eq!(got.len(), 4);
    let position = |n: usize| got.iter().position(|(name, _)| *name == n.to_string()).expect("expired");
    assert!(position(2) < position(0) && position(2) < position(1), "the index first: {got:?}");

    // An index in use keeps its children, which are not in use themselves.
    assert_eq!(expired(&p, &images, &["index"], &children), names(&[(3, 1)]));
}

// ---- applied to a real registry ----

fn untagged_older_than_a_day_and_two_builds() -> String {
    json!({"rules": [
        {"rulePriority": 1, "description": "untagged", "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["build-"], "countType": "imageCountMoreThan", "countNumber": 2}, "action": {"type": "expire"}}
    ]})
    .to_string()
}

#[tokio::test]
async fn apply_deletes_what_the_policy_expires_and_keeps_images_in_use() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let in_use = Arc::new(InUse::default());
    reg.set_images_in_use(in_use.clone());

    let shared_layer = b"a layer every build shares".to_vec();
    let release = push_image(reg, "app", "release", &[&shared_layer], &["v1"]).await;
    env.clock.advance(DAY);
    let mut builds = Vec::new();
    for i in 1..=4 {
        let own = format!("layer of build {i}").into_bytes();
        builds.push(
            push_image(reg, "app", &format!("build {i}"), &[&shared_layer, &own], &[&format!("build-{i}")]).await,
        );
        env.clock.advance(DAY);
    }
    // An untagged image: pushed by digest two days ago.
    let untagged = push_image(reg, "app", "untagged", &[], &[]).await;
    env.clock.advance(2 * DAY);
    let young_untagged = push_image(reg, "app", "young", &[], &[]).await;

    // Without a policy nothing happens, and no evaluation is recorded.
    assert_eq!(lifecycle::apply(reg, "app").await.expect("apply"), vec![]);
    assert_eq!(reg.repository("app").await.expect("repo").lifecycle_evaluated_at, None);

    reg.set_lifecycle_policy("app", Some(untagged_older_than_a_day_and_two_builds())).await.expect("set policy");
    // build-1 runs somewhere.
    in_use.0.lock().expect("lock").insert(("app".into(), builds[0].digest.clone()));

    // The preview says what apply then does, and deletes nothing.
    let policy = lifecycle::parse(&untagged_older_than_a_day_and_two_builds()).expect("policy");
    let preview = lifecycle::preview(reg, "app", &policy).await.expect("preview");
    let mut previewed: Vec<(Digest, u32)> = preview.iter().map(|p| (p.image.digest.clone(), p.rule_priority)).collect();
    previewed.sort();
    let mut expected = vec![(untagged.digest.clone(), 1), (builds[1].digest.clone(), 2)];
    expected.sort();
    assert_eq!(previewed, expected);
    assert_eq!(
        preview.iter().find(|p| p.image.digest == builds[1].digest).expect("build-2").image.tags,
        vec!["build-2"]
    );
    assert_eq!(digests(reg, "app").await.len(), 7, "a preview deletes nothing");

    let mut deleted = lifecycle::apply(reg, "app").await.expect("apply");
    deleted.sort();
    let mut expected: Vec<Digest> = expected.into_iter().map(|(d, _)| d).collect();
    expected.sort();
    assert_eq!(deleted, expected);
    let left = digests(reg, "app").await;
    let want: HashSet<Digest> =
        [&release, &builds[0], &builds[2], &builds[3], &young_untagged].iter().map(|p| p.digest.clone()).collect();
    assert_eq!(left, want);
    assert_eq!(reg.repository("app").await.expect("repo").lifecycle_evaluated_at, Some(reg.now()));
    assert!(matches!(
        reg.manifest("app", &Reference::Tag("build-2".into())).await,
        Err(berth_registry::RegistryError::ImageNotFound(_))
    ));

    // Once build-1 is no longer in use, the next pass expires it.
    in_use.0.lock().expect("lock").clear();
    env.clock.advance(HOUR);
    assert_eq!(lifecycle::apply(reg, "app").await.expect("apply"), vec![builds[0].digest.clone()]);
    // And then nothing more.
    assert_eq!(lifecycle::apply(reg, "app").await.expect("apply"), vec![]);
}

#[tokio::test]
async fn apply_keeps_the_children_of_a_kept_index_and_expires_them_once_it_is_gone() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "multi").await;
    let amd64 = push_image(reg, "multi", "amd64", &[b"amd64 layer"], &[]).await;
    let arm64 = push_image(reg, "multi", "arm64", &[b"arm64 layer"], &[]).await;
    let index = push_index(reg, "multi", &[&amd64, &arm64], Some("latest")).await;
    env.clock.advance(3 * DAY);
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]});
    reg.set_lifecycle_policy("multi", Some(policy.to_string())).await.expect("policy");

    assert_eq!(lifecycle::apply(reg, "multi").await.expect("apply"), vec![]);
    assert_eq!(digests(reg, "multi").await.len(), 3);

    // Untagging the index deletes it (its last tag); its children are then plain untagged images.
    reg.delete_image("multi", &Reference::Tag("latest".into())).await.expect("delete").expect("deleted");
    let mut deleted = lifecycle::apply(reg, "multi").await.expect("apply");
    deleted.sort();
    let mut want = vec![amd64.digest.clone(), arm64.digest.clone()];
    want.sort();
    assert_eq!(deleted, want);
    assert!(digests(reg, "multi").await.is_empty());
    let _ = index;
}

#[tokio::test]
async fn apply_expires_an_index_before_its_children() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "multi").await;
    let amd64 = push_image(reg, "multi", "amd64", &[b"amd64 layer"], &[]).await;
    let arm64 = push_image(reg, "multi", "arm64", &[b"arm64 layer"], &[]).await;
    let index = push_index(reg, "multi", &[&amd64, &arm64], Some("old")).await;
    env.clock.advance(3 * DAY);
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]});
    reg.set_lifecycle_policy("multi", Some(policy.to_string())).await.expect("policy");
    let deleted = lifecycle::apply(reg, "multi").await.expect("apply");
    assert_eq!(deleted.len(), 3, "{deleted:?}");
    assert_eq!(deleted[0], index);
    assert!(digests(reg, "multi").await.is_empty());
}
