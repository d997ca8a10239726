//! The garbage collector and the maintenance task on a real registry: blobs on disk, links in
//! SQLite, time moved with a `ManualClock`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use berth_registry::gc::{self, GcReport};
use berth_registry::maintenance;
use berth_registry::{Digest, Reference, Registry, RegistryError};
use serde_json::json;

use super::lifecycle::{create_repository, digests, open, push_blob, push_image, InUse, DAY, HOUR};

async fn on_disk(registry: &Registry) -> HashSet<Digest> {
    registry.blobs().digests().await.expect("digests").into_iter().collect()
}

async fn link_count(registry: &Registry) -> i64 {
    registry
        .store()
        .read(|c| -> Result<i64, RegistryError> {
            Ok(c.query_row("SELECT COUNT(*) FROM ecr_repository_blobs", [], |r| r.get::<_, i64>(0))?)
        })
        .await
        .expect("count links")
}

fn upload_files(registry: &Registry) -> usize {
    std::fs::read_dir(registry.blobs().root().join("uploads")).expect("uploads/").count()
}

#[tokio::test]
async fn an_unreferenced_blob_goes_only_after_the_grace_period() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let layer = vec![7u8; 4096];
    let digest = push_blob(reg, "app", &layer).await;

    // A layer whose manifest has not arrived yet.
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report, GcReport::default());
    assert!(on_disk(reg).await.contains(&digest));
    assert_eq!(reg.blob_size("app", &digest).await.expect("size"), Some(4096));

    env.clock.advance(HOUR - Duration::from_secs(60));
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect"), GcReport::default());

    env.clock.advance(Duration::from_secs(120));
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report, GcReport { links_removed: 1, blobs_removed: 1, bytes_freed: 4096, uploads_expired: 0 });
    assert!(!on_disk(reg).await.contains(&digest));
    assert_eq!(reg.blob_size("app", &digest).await.expect("size"), None);
    assert_eq!(link_count(reg).await, 0);

    // Nothing left to do.
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect"), GcReport::default());
}

#[tokio::test]
async fn blobs_an_image_refers_to_stay_and_go_with_the_image() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let shared = vec![1u8; 1000];
    let only_old = vec![2u8; 2000];
    let old = push_image(reg, "app", "old", &[&shared, &only_old], &["old"]).await;
    let new = push_image(reg, "app", "new", &[&shared], &["new"]).await;
    env.clock.advance(DAY);

    assert_eq!(gc::collect(reg, HOUR).await.expect("collect"), GcReport::default(), "everything is referenced");
    let all: HashSet<Digest> = [&old.config, &new.config].into_iter().chain(&old.layers).cloned().collect();
    assert_eq!(on_disk(reg).await, all);

    reg.delete_image("app", &Reference::Digest(old.digest.clone())).await.expect("delete").expect("deleted");
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report.links_removed, 2, "old's config and its own layer");
    assert_eq!(report.blobs_removed, 2);
    let config_len = on_disk_len(&old.config, reg).await;
    assert_eq!(config_len, None);
    let left = on_disk(reg).await;
    assert!(left.contains(&new.config) && left.contains(&old.layers[0]), "the shared layer stays");
    assert!(!left.contains(&old.layers[1]) && !left.contains(&old.config));

    // The image still there is whole: every blob readable through the repository.
    for d in [&new.config, &new.layers[0]] {
        assert!(reg.blob_size("app", d).await.expect("size").is_some());
    }
}

async fn on_disk_len(digest: &Digest, reg: &Registry) -> Option<u64> {
    reg.blobs().stat(digest).await.expect("stat")
}

#[tokio::test]
async fn a_blob_mounted_into_another_repository_stays_while_that_one_uses_it() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "alpha").await;
    create_repository(reg, "beta").await;
    let layer = vec![3u8; 512];
    let a = push_image(reg, "alpha", "in alpha", &[&layer], &["v1"]).await;
    assert_eq!(reg.mount_blob("alpha", "beta", &a.layers[0]).await.expect("mount"), Some(512));
    let b = push_image(reg, "beta", "in beta", &[&layer], &["v1"]).await;
    env.clock.advance(DAY);

    reg.delete_repository("alpha", true).await.expect("delete repository");
    // The deleted repository's links went with it.
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report.blobs_removed, 1, "a's config only: {report:?}");
    let left = on_disk(reg).await;
    assert!(left.contains(&a.layers[0]) && left.contains(&b.config) && !left.contains(&a.config));

    reg.delete_repository("beta", true).await.expect("delete repository");
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report.blobs_removed, 2);
    assert!(on_disk(reg).await.is_empty());
    assert_eq!(link_count(reg).await, 0);
}

#[tokio::test]
async fn links_of_repositories_that_no_longer_exist_are_removed() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "gone").await;
    let digest = push_blob(reg, "gone", b"layer of a repository deleted behind the registry's back").await;
    // A link whose repository row is gone without the cascade (an older database, a manual edit):
    // a connection of its own, with foreign keys off.
    let db = reg.store().data_dir().join("state.db");
    let conn = berth_store::rusqlite::Connection::open(&db).expect("open state.db");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    conn.pragma_update(None, "foreign_keys", "OFF").expect("foreign keys off");
    conn.execute("DELETE FROM ecr_repositories WHERE name = 'gone'", []).expect("delete the row");
    drop(conn);
    let orphan_links = link_count(reg).await;
    assert_eq!(orphan_links, 1);
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report.links_removed as i64, orphan_links, "young or not, a link without a repository goes");
    assert_eq!(link_count(reg).await, 0);
    // The blob itself is young: it waits for the grace period.
    assert!(on_disk(reg).await.contains(&digest));
    env.clock.advance(2 * HOUR);
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect").blobs_removed, 1);
}

#[tokio::test]
async fn a_blob_with_no_link_at_all_waits_for_the_grace_period() {
    let env = open().await;
    let reg = &env.registry;
    // Written to the store but not yet linked (a push between its upload and its link).
    let digest = reg.blobs().put(b"unlinked").await.expect("put");
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect").blobs_removed, 0);
    env.clock.advance(2 * HOUR);
    // Stored again (the same bytes pushed again): the blob is young again.
    reg.blobs().put(b"unlinked").await.expect("put");
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect").blobs_removed, 0);
    assert!(reg.blobs().touch(&digest).await.expect("touch"));
    env.clock.advance(2 * HOUR);
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!((report.blobs_removed, report.bytes_freed), (1, 8));
    assert!(!reg.blobs().touch(&digest).await.expect("touch"), "touching a removed blob says it is gone");
}

#[tokio::test]
async fn a_push_in_progress_keeps_the_layers_it_pushed_so_far() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let first = push_blob(reg, "app", b"first layer, pushed long ago").await;
    let upload = reg.start_upload("app").await.expect("start");
    env.clock.advance(2 * HOUR);
    reg.append("app", &upload, b"the last layer, still arriving", None).await.expect("append");

    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report, GcReport::default());
    assert!(reg.blob_size("app", &first).await.expect("size").is_some());

    // The client goes away: the upload idles past the grace period and is abandoned, and then
    // nothing protects the first layer.
    env.clock.advance(2 * HOUR);
    let report = gc::collect(reg, HOUR).await.expect("collect");
    assert_eq!(report.uploads_expired, 1);
    assert_eq!((report.links_removed, report.blobs_removed), (1, 1));
    assert_eq!(upload_files(reg), 0);
    assert!(matches!(reg.append("app", &upload, b"more", None).await, Err(RegistryError::UploadNotFound(_))));
    assert_eq!(reg.uploads_in_progress(), 0);
}

#[tokio::test]
async fn idle_uploads_expire_and_active_ones_do_not() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let idle = reg.start_upload("app").await.expect("start");
    reg.append("app", &idle, &[0u8; 10_000], Some(0)).await.expect("append");
    let active = reg.start_upload("app").await.expect("start");
    assert_eq!(upload_files(reg), 2);

    env.clock.advance(HOUR - Duration::from_secs(1));
    reg.append("app", &active, b"still here", Some(0)).await.expect("append");
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect").uploads_expired, 0);

    env.clock.advance(Duration::from_secs(2));
    assert_eq!(gc::collect(reg, HOUR).await.expect("collect").uploads_expired, 1);
    assert_eq!(upload_files(reg), 1);
    assert!(matches!(reg.upload_size("app", &idle).await, Err(RegistryError::UploadNotFound(_))));
    assert_eq!(reg.upload_size("app", &active).await.expect("size"), 10);

    // The active upload still completes into a blob.
    let digest = Digest::of(b"still here");
    assert_eq!(reg.complete_upload("app", &active, &digest).await.expect("complete"), 10);
    assert!(reg.blob_size("app", &digest).await.expect("size").is_some());
}

#[tokio::test]
async fn completing_an_upload_of_a_blob_that_exists_makes_it_young_again() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    let bytes = b"the same layer twice";
    let digest = reg.blobs().put(bytes).await.expect("put");
    env.clock.advance(2 * HOUR);
    // Pushed again: the existing file is kept (same bytes) and dated now.
    let id = reg.blobs().start_upload().await.expect("start");
    reg.blobs().append(&id, bytes, Some(0)).await.expect("append");
    reg.blobs().complete(&id, &digest).await.expect("complete");
    let cutoff = reg.clock().now() - HOUR;
    assert_eq!(reg.blobs().remove_if_idle(&digest, cutoff).await.expect("remove"), None);
    env.clock.advance(2 * HOUR);
    let cutoff = reg.clock().now() - HOUR;
    assert_eq!(reg.blobs().remove_if_idle(&digest, cutoff).await.expect("remove"), Some(bytes.len() as u64));
    assert_eq!(reg.blobs().stat(&digest).await.expect("stat"), None);
}

#[tokio::test]
async fn maintenance_applies_policies_then_collects_and_stops_when_told() {
    let env = open().await;
    let reg = &env.registry;
    create_repository(reg, "app").await;
    create_repository(reg, "nopolicy").await;
    let in_use = Arc::new(InUse::default());
    reg.set_images_in_use(in_use.clone());
    let old = push_image(reg, "app", "old", &[b"old layer"], &[]).await;
    let pinned = push_image(reg, "app", "pinned", &[b"pinned layer"], &[]).await;
    let kept = push_image(reg, "nopolicy", "kept", &[b"kept layer"], &[]).await;
    in_use.0.lock().expect("lock").insert(("app".into(), pinned.digest.clone()));
    env.clock.advance(3 * DAY);
    let policy = json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]});
    reg.set_lifecycle_policy("app", Some(policy.to_string())).await.expect("policy");

    // One pass, directly: the policy expires `old`, and its blobs (older than the grace) go at once.
    let report = maintenance::run_once(reg, HOUR, None).await;
    assert_eq!(report.expired, vec![("app".to_string(), 1)]);
    let gc = report.gc.expect("collected");
    assert_eq!(gc.blobs_removed, 2, "old's config and layer: {gc:?}");
    assert_eq!(digests(reg, "app").await, HashSet::from([pinned.digest.clone()]));
    assert_eq!(digests(reg, "nopolicy").await, HashSet::from([kept.digest.clone()]));
    assert!(!on_disk(reg).await.contains(&old.layers[0]));
    assert!(on_disk(reg).await.contains(&pinned.layers[0]));

    // The task: once `pinned` is no longer in use, a pass removes it and its blobs.
    in_use.0.lock().expect("lock").clear();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = maintenance::spawn(reg.clone(), Duration::from_millis(20), HOUR, stop_rx);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while on_disk(reg).await.contains(&pinned.layers[0]) {
        assert!(tokio::time::Instant::now() < deadline, "the task never removed the unpinned image's blobs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(digests(reg, "app").await.is_empty());
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the task stops").expect("no panic");
}

#[tokio::test]
async fn maintenance_stops_when_its_sender_is_dropped() {
    let env = open().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = maintenance::spawn(env.registry.clone(), Duration::from_secs(3600), HOUR, stop_rx);
    drop(stop_tx);
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("the task stops").expect("no panic");
}
