//! The blob garbage collector: removes the layer and config blobs no image needs any more, and
//! the uploads their clients abandoned.
//!
//! Mark and sweep, safe while pushes and pulls go on:
//!
//! 1. **Uploads.** Uploads with no activity for `grace` are abandoned: their files under
//!    `uploads/` and the memory they hold are freed (the client gets `BLOB_UPLOAD_UNKNOWN` and
//!    starts again).
//! 2. **Mark** (one write transaction). A repository keeps its link to a blob
//!    (`ecr_repository_blobs`) while a manifest of that repository refers to the blob
//!    (`ecr_manifest_refs`), while the link is younger than `grace` (a layer pushed whose manifest
//!    has not arrived yet), or while the repository has an upload in progress (a push still
//!    sending its other layers). Every other link is deleted, and so are links of repositories
//!    that no longer exist. The same transaction reads which digests are still linked anywhere.
//!    Because `PutImage`/a manifest `PUT` checks the links in its own transaction, a manifest
//!    either arrives first (and keeps its links) or finds its layer missing (and the client pushes
//!    it again).
//! 3. **Sweep.** Every file under `blobs/sha256/*/` whose digest is no longer linked, and that was
//!    neither written nor touched in the last `grace`, is removed with
//!    [`BlobStore::remove_if_idle`]. A blob that becomes linked after the mark was written or
//!    touched just before its link (see [`crate::blob_store`]), so it is young and kept. Uploads
//!    in progress live in `uploads/`, out of the sweep's way.
//!
//! Images in use (the [`crate::ImagesInUse`] hook) are protected where images are deleted, by
//! the lifecycle policy ([`crate::lifecycle`]): their manifests stay, so their links and blobs do.
//! Deleting an image by hand (`BatchDeleteImage`) is the user's decision and is not second-guessed.

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use berth_aws::time::Timestamp;
use berth_store::rusqlite::params;

use crate::error::RegistryError;
use crate::registry::Registry;

/// What one collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Repository links to blobs deleted in the mark phase.
    pub links_removed: u64,
    /// Blob files removed in the sweep, and their bytes.
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    /// Uploads abandoned for being idle longer than the grace period.
    pub uploads_expired: u64,
}

/// Collects garbage once (see the module's documentation). `grace` protects what was pushed
/// recently: unreferenced links and blobs younger than it, and uploads active within it.
pub async fn collect(registry: &Registry, grace: Duration) -> Result<GcReport, RegistryError> {
    let now = registry.clock().now();
    let cutoff = now.checked_sub(grace).unwrap_or(UNIX_EPOCH);
    let uploads_expired = registry.expire_idle_uploads(cutoff).await?.len() as u64;
    let mut report = GcReport { uploads_expired, ..GcReport::default() };

    // Mark.
    let pushing = registry.repositories_with_uploads();
    let linked_before = Timestamp::from_system(cutoff).0;
    let (links_removed, linked) = registry
        .store()
        .write(move |tx| -> Result<(u64, HashSet<String>), RegistryError> {
            let doomed: Vec<(String, String)> = {
                let mut stmt = tx.prepare(
                    "SELECT b.repository, b.digest, r.name IS NOT NULL FROM ecr_repository_blobs b
                     LEFT JOIN ecr_repositories r ON r.name = b.repository
                     WHERE r.name IS NULL
                        OR (b.linked_at < ?1
                            AND NOT EXISTS (SELECT 1 FROM ecr_manifest_refs m
                                            WHERE m.repository = b.repository AND m.kind = 'blob' AND m.digest = b.digest))",
                )?;
                let rows = stmt.query_map([linked_before], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
                })?;
                let mut doomed = Vec::new();
                for row in rows {
                    let (repository, digest, repository_exists) = row?;
                    if !(repository_exists && pushing.contains(&repository)) {
                        doomed.push((repository, digest));
                    }
                }
                doomed
            };
            let mut delete = tx.prepare("DELETE FROM ecr_repository_blobs WHERE repository = ?1 AND digest = ?2")?;
            let mut removed = 0u64;
            for (repository, digest) in &doomed {
                removed += delete.execute(params![repository, digest])? as u64;
            }
            let mut stmt = tx.prepare("SELECT DISTINCT digest FROM ecr_repository_blobs")?;
            let linked = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<HashSet<_>, _>>()?;
            Ok((removed, linked))
        })
        .await?;
    report.links_removed = links_removed;

    // Sweep.
    let blobs = registry.blobs();
    let on_disk = blobs.digests().await.map_err(RegistryError::from_blob)?;
    for digest in on_disk {
        if linked.contains(&digest.to_string()) {
            continue;
        }
        if let Some(size) = blobs.remove_if_idle(&digest, cutoff).await.map_err(RegistryError::from_blob)? {
            report.blobs_removed += 1;
            report.bytes_freed += size;
            tracing::debug!(%digest, size, "unreferenced blob removed");
        }
    }

    if report != GcReport::default() {
        tracing::info!(
            links_removed = report.links_removed,
            blobs_removed = report.blobs_removed,
            bytes_freed = report.bytes_freed,
            uploads_expired = report.uploads_expired,
            "registry garbage collected"
        );
    }
    Ok(report)
}
