//! The content-addressed blob store: every layer, config and manifest blob, once, shared by all
//! repositories.
//!
//! Layout under the root directory (the server passes `<data dir>/registry`):
//!
//! ```text
//! blobs/sha256/<first 2 hex>/<64 hex>   a visible blob; its name is the sha256 of its bytes
//! uploads/<uuid>                         the bytes of an upload in progress
//! ```
//!
//! A blob becomes visible only through [`BlobStore::complete`]: the digest of the appended bytes
//! (computed while appending, never by re-reading) must equal the one the client names, then the
//! upload file is fsynced, renamed into `blobs/` (atomic) and the directory fsynced. A reader
//! therefore sees a blob whole or not at all, and a crash at any point leaves no partial blob.
//!
//! The state of an upload in progress (its open file, running sha256 and size) lives in memory
//! only: uploads do not survive a restart. [`BlobStore::open`] removes whatever an earlier process
//! left in `uploads/`, and clients start their upload again (the OCI spec allows that answer).
//!
//! Only `sha256` digests are accepted. The OCI spec's `sha512` is refused for now.
//!
//! Removing blobs is the garbage collector's job ([`BlobStore::remove_if_idle`], see
//! [`crate::gc`]); deciding which blobs are unreferenced is up to it. Not racing a push: every
//! blob that is about to be linked to a repository has its mtime set to "now" first (by
//! [`BlobStore::complete`], [`BlobStore::put`] or [`BlobStore::touch`]), under a lock the
//! collector takes exclusively to check the mtime and remove the file. A blob removed just before
//! is therefore written again (complete), uploaded again (put) or reported missing (touch).
//! Times come from the store's clock (the registry's), so the collector's "older than the grace
//! period" and the links' `linked_at` agree.

use std::collections::HashMap;
use std::fmt;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use berth_aws::sigv4::hex;
use berth_aws::time::{SharedClock, SystemClock};
use sha2::{Digest as _, Sha256};
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// Errors of the blob store. The registry data path maps them to the OCI spec's error codes
/// (`BLOB_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`, `DIGEST_INVALID`, 416) in one place.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("upload {upload_id} is unknown (never started, completed, cancelled or lost in a restart)")]
    UnknownUpload { upload_id: UploadId },
    #[error("blob {digest} is unknown")]
    BlobUnknown { digest: Digest },
    #[error("chunk starts at offset {expected} but the upload has {actual} bytes")]
    OffsetMismatch { expected: u64, actual: u64 },
    #[error("the uploaded bytes have digest {actual}, not the expected {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("invalid digest: {0}")]
    InvalidDigest(String),
    #[error("the requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io { path: path.to_path_buf(), source }
}

/// A content digest, `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// The 64 lowercase hex characters of the sha256.
    hex: String,
}

impl Digest {
    pub const SHA256_PREFIX: &'static str = "sha256:";

    /// Parses `sha256:<64 lowercase hex>`. The reason in the error names what is wrong without
    /// repeating the (possibly long) input.
    pub fn parse(s: &str) -> Result<Digest, BlobError> {
        let Some((algorithm, encoded)) = s.split_once(':') else {
            return Err(BlobError::InvalidDigest("a digest is `<algorithm>:<encoded>`, and there is no `:`".into()));
        };
        match algorithm {
            "sha256" => {}
            "sha512" => return Err(BlobError::InvalidDigest("sha512 digests are not supported yet".into())),
            _ => {
                let well_formed = !algorithm.is_empty()
                    && algorithm.len() <= 32
                    && algorithm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
                return Err(BlobError::InvalidDigest(if well_formed {
                    format!("unsupported digest algorithm `{algorithm}` (only sha256 is supported)")
                } else {
                    "malformed digest algorithm (only sha256 is supported)".into()
                }));
            }
        }
        if encoded.len() != 64 {
            return Err(BlobError::InvalidDigest(format!(
                "a sha256 digest has 64 hex characters, not {}",
                encoded.chars().count()
            )));
        }
        if !encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(BlobError::InvalidDigest("a sha256 digest is lowercase hex (0-9, a-f)".into()));
        }
        Ok(Digest { hex: encoded.to_owned() })
    }

    /// The digest of a finished sha256.
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest { hex: hex(&bytes) }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(data).into())
    }

    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The encoded part: 64 lowercase hex characters.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Digest::SHA256_PREFIX, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = BlobError;
    fn from_str(s: &str) -> Result<Digest, BlobError> {
        Digest::parse(s)
    }
}

/// The id of an upload in progress: a v4 UUID, also the upload's file name under `uploads/`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    fn new() -> UploadId {
        UploadId(berth_aws::ids::uuid_v4())
    }

    /// Accepts only the lowercase UUID shape this store hands out, so an id taken from a URL can
    /// never name a path outside `uploads/`. `None` is the spec's `BLOB_UPLOAD_UNKNOWN`.
    pub fn parse(s: &str) -> Option<UploadId> {
        let well_formed = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        well_formed.then(|| UploadId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// A blob opened for reading: `file` is positioned at `start`; read `len` bytes from it.
#[derive(Debug)]
pub struct BlobRead {
    pub file: File,
    /// The first byte served.
    pub start: u64,
    /// How many bytes to read from `start`.
    pub len: u64,
    /// The whole blob's size (for `Content-Range: bytes <start>-<end>/<size>`).
    pub size: u64,
}

/// An upload in progress. `None` once completed or cancelled, so an append that was waiting for
/// the lock when the upload finished cannot write into a file that is now a visible blob.
struct Upload {
    file: File,
    sha256: Sha256,
    size: u64,
    /// When it was started or last appended to (the store's clock): uploads idle for too long
    /// are abandoned ([`BlobStore::expire_idle_uploads`]).
    last_activity: SystemTime,
}

type UploadSlot = Arc<tokio::sync::Mutex<Option<Upload>>>;

struct Inner {
    root: PathBuf,
    blobs: PathBuf,
    uploads_dir: PathBuf,
    /// Held only to look up, insert or remove; never across an await.
    uploads: Mutex<HashMap<UploadId, UploadSlot>>,
    clock: SharedClock,
    /// Shared while a blob is published or touched, exclusive while the collector checks and
    /// removes one (see the module's documentation).
    sweep: tokio::sync::RwLock<()>,
}

/// The content-addressed blob store. Cheap to clone; clones share the same uploads.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore").field("root", &self.inner.root).finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store under `root` and removes uploads an earlier process
    /// left behind: they were never visible and nobody can resume them.
    pub async fn open(root: impl AsRef<Path>) -> Result<BlobStore, BlobError> {
        BlobStore::open_with_clock(root, Arc::new(SystemClock)).await
    }

    /// [`BlobStore::open`] with the clock that dates uploads' activity and blobs' mtimes (the
    /// registry's, so that the collector compares them with the same "now").
    pub async fn open_with_clock(root: impl AsRef<Path>, clock: SharedClock) -> Result<BlobStore, BlobError> {
        let root = root.as_ref().to_path_buf();
        let blobs = root.join("blobs").join("sha256");
        let uploads_dir = root.join("uploads");
        fs::create_dir_all(&blobs).await.map_err(io_err(&blobs))?;
        fs::create_dir_all(&uploads_dir).await.map_err(io_err(&uploads_dir))?;

        let mut entries = fs::read_dir(&uploads_dir).await.map_err(io_err(&uploads_dir))?;
        let mut removed = 0usize;
        while let Some(entry) = entries.next_entry().await.map_err(io_err(&uploads_dir))? {
            let path = entry.path();
            let is_dir = entry.file_type().await.map_err(io_err(&path))?.is_dir();
            let result = if is_dir { fs::remove_dir_all(&path).await } else { fs::remove_file(&path).await };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        if removed > 0 {
            tracing::info!(root = %root.display(), removed, "removed uploads left by an earlier run");
        }
        Ok(BlobStore {
            inner: Arc::new(Inner {
                root,
                blobs,
                uploads_dir,
                uploads: Mutex::new(HashMap::new()),
                clock,
                sweep: tokio::sync::RwLock::new(()),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn shard_dir(&self, digest: &Digest) -> PathBuf {
        self.inner.blobs.join(&digest.hex()[..2])
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.shard_dir(digest).join(digest.hex())
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.inner.uploads_dir.join(id.as_str())
    }

    /// The size of a visible blob, or `None` if there is none with this digest.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Opens a blob for reading, positioned at the first byte to serve.
    ///
    /// `range` is an HTTP byte range `(first, last)`, both inclusive (`Range: bytes=first-last`);
    /// a `last` past the end is clamped to the last byte (RFC 9110 §14.1.2). It is not satisfiable
    /// when `first > last` or `first >= size` (an empty blob satisfies no range).
    pub async fn open_read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobRead, BlobError> {
        let path = self.blob_path(digest);
        let mut file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::BlobUnknown { digest: digest.clone() })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        // The size of the file we hold open, not of whatever the path names by now.
        let size = file.metadata().await.map_err(io_err(&path))?.len();
        let (start, len) = match range {
            None => (0, size),
            Some((first, last)) => {
                if first > last || first >= size {
                    return Err(BlobError::RangeNotSatisfiable { size });
                }
                let last = last.min(size - 1);
                (first, last - first + 1)
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await.map_err(io_err(&path))?;
        }
        Ok(BlobRead { file, start, len, size })
    }

    /// Starts an upload: an empty file under `uploads/`.
    pub async fn start_upload(&self) -> Result<UploadId, BlobError> {
        let id = UploadId::new();
        let path = self.upload_path(&id);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).await.map_err(io_err(&path))?;
        let last_activity = self.inner.clock.now();
        let slot =
            Arc::new(tokio::sync::Mutex::new(Some(Upload { file, sha256: Sha256::new(), size: 0, last_activity })));
        self.uploads().insert(id.clone(), slot);
        tracing::debug!(upload_id = %id, "upload started");
        Ok(id)
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, UploadSlot>> {
        // The map is only ever inserted into or removed from; a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still usable.
        self.inner.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, id: &UploadId) -> Result<UploadSlot, BlobError> {
        self.uploads().get(id).cloned().ok_or_else(|| BlobError::UnknownUpload { upload_id: id.clone() })
    }

    /// Takes an upload out of the store for good (complete, cancel): later appends see it unknown.
    async fn take(&self, id: &UploadId) -> Result<Upload, BlobError> {
        let slot = self.uploads().remove(id).ok_or_else(|| BlobError::UnknownUpload { upload_id: id.clone() })?;
        let upload = slot.lock().await.take();
        upload.ok_or_else(|| BlobError::UnknownUpload { upload_id: id.clone() })
    }

    /// Appends `chunk` to an upload and returns its new size. With `expected_offset`, the chunk is
    /// refused unless it starts exactly where the upload ends (the spec's 416 for a `PATCH` whose
    /// `Content-Range` does not follow on). Chunks of one upload are appended one at a time.
    ///
    /// If writing fails, the upload is rolled back to its size before the chunk; if even that
    /// fails, the upload is dropped (it is then unknown, and the client starts over).
    pub async fn append(&self, id: &UploadId, chunk: &[u8], expected_offset: Option<u64>) -> Result<u64, BlobError> {
        let slot = self.slot(id)?;
        let mut guard = slot.lock().await;
        let upload = guard.as_mut().ok_or_else(|| BlobError::UnknownUpload { upload_id: id.clone() })?;
        upload.last_activity = self.inner.clock.now();
        if let Some(expected) = expected_offset {
            if expected != upload.size {
                return Err(BlobError::OffsetMismatch { expected, actual: upload.size });
            }
        }
        let path = self.upload_path(id);
        // tokio hands the write to a blocking thread; hash the chunk while it runs, and keep the
        // new hash state only once the write is known to have landed.
        let mut sha256 = upload.sha256.clone();
        let written = match upload.file.write_all(chunk).await {
            Ok(()) => {
                sha256.update(chunk);
                upload.file.flush().await
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                upload.sha256 = sha256;
                upload.size += chunk.len() as u64;
                Ok(upload.size)
            }
            Err(source) => {
                let size = upload.size;
                let rolled_back = match upload.file.set_len(size).await {
                    Ok(()) => upload.file.seek(SeekFrom::Start(size)).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if rolled_back.is_err() {
                    tracing::warn!(upload_id = %id, "dropping an upload that could not be rolled back after a failed write");
                    *guard = None;
                    drop(guard);
                    self.uploads().remove(id);
                    remove_file_if_exists(&path).await;
                }
                Err(BlobError::Io { path, source })
            }
        }
    }

    /// The number of bytes appended to an upload so far.
    pub async fn upload_size(&self, id: &UploadId) -> Result<u64, BlobError> {
        let slot = self.slot(id)?;
        let guard = slot.lock().await;
        guard.as_ref().map(|upload| upload.size).ok_or_else(|| BlobError::UnknownUpload { upload_id: id.clone() })
    }

    /// Abandons an upload and removes its bytes.
    pub async fn cancel(&self, id: &UploadId) -> Result<(), BlobError> {
        let upload = self.take(id).await?;
        drop(upload.file);
        let path = self.upload_path(id);
        match fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        tracing::debug!(upload_id = %id, "upload cancelled");
        Ok(())
    }

    /// Finishes an upload: its bytes must have digest `expected`. On a mismatch the upload is
    /// removed and nothing becomes visible. Otherwise the file is fsynced and renamed into
    /// `blobs/` (if that blob exists already, the upload is dropped: same digest, same bytes) and
    /// the directory fsynced, so the blob is durable once this returns. Returns the blob's size.
    pub async fn complete(&self, id: &UploadId, expected: &Digest) -> Result<u64, BlobError> {
        let upload = self.take(id).await?;
        let upload_path = self.upload_path(id);
        let Upload { file, sha256, size, .. } = upload;
        let actual = Digest::from_sha256(sha256.finalize().into());
        if actual != *expected {
            drop(file);
            remove_file_if_exists(&upload_path).await;
            tracing::debug!(upload_id = %id, %expected, %actual, "upload refused: digest mismatch");
            return Err(BlobError::DigestMismatch { expected: expected.clone(), actual });
        }
        let result = self.publish(file, &upload_path, &actual).await;
        if result.is_err() {
            remove_file_if_exists(&upload_path).await;
        }
        result?;
        tracing::debug!(upload_id = %id, digest = %actual, size, "blob stored");
        Ok(size)
    }

    async fn publish(&self, file: File, upload_path: &Path, digest: &Digest) -> Result<(), BlobError> {
        // sync_all first waits for any write still in flight.
        file.sync_all().await.map_err(io_err(upload_path))?;
        // Dated now, not by its last append: the collector must not take it for an old blob
        // before its link is written.
        set_mtime(file.into_std().await, upload_path, self.inner.clock.now()).await?;

        let _publishing = self.inner.sweep.read().await;
        let blob_path = self.blob_path(digest);
        if self.touch_locked(digest).await? {
            fs::remove_file(upload_path).await.map_err(io_err(upload_path))?;
            return Ok(());
        }
        let shard = self.shard_dir(digest);
        let shard_created = match fs::create_dir(&shard).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_err(&shard)(e)),
        };
        if shard_created {
            sync_dir(&self.inner.blobs).await?;
        }
        fs::rename(upload_path, &blob_path).await.map_err(io_err(&blob_path))?;
        sync_dir(&shard).await
    }

    /// Stores a small blob held in memory (configs, manifests, tests) and returns its digest.
    pub async fn put(&self, bytes: &[u8]) -> Result<Digest, BlobError> {
        let digest = Digest::of(bytes);
        if self.touch(&digest).await? {
            return Ok(digest);
        }
        let id = self.start_upload().await?;
        if let Err(e) = self.append(&id, bytes, Some(0)).await {
            // The append failed; the upload may already be gone, and its own error is the one to report.
            let _ = self.cancel(&id).await;
            return Err(e);
        }
        self.complete(&id, &digest).await?;
        Ok(digest)
    }

    /// Dates a visible blob "now" so that the collector keeps it for its grace period (a mount
    /// about to link it). Returns whether the blob exists.
    pub async fn touch(&self, digest: &Digest) -> Result<bool, BlobError> {
        let _touching = self.inner.sweep.read().await;
        self.touch_locked(digest).await
    }

    async fn touch_locked(&self, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        };
        set_mtime(file.into_std().await, &path, self.inner.clock.now()).await?;
        Ok(true)
    }

    /// Every visible blob's digest (files under `blobs/sha256/` whose names are not digests are
    /// left alone and not listed).
    pub async fn digests(&self) -> Result<Vec<Digest>, BlobError> {
        let mut out = Vec::new();
        let mut shards = fs::read_dir(&self.inner.blobs).await.map_err(io_err(&self.inner.blobs))?;
        while let Some(shard) = shards.next_entry().await.map_err(io_err(&self.inner.blobs))? {
            let shard_path = shard.path();
            if !shard.file_type().await.map_err(io_err(&shard_path))?.is_dir() {
                continue;
            }
            let mut files = fs::read_dir(&shard_path).await.map_err(io_err(&shard_path))?;
            while let Some(file) = files.next_entry().await.map_err(io_err(&shard_path))? {
                let name = file.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Ok(digest) = Digest::parse(&format!("sha256:{name}")) {
                    if name.starts_with(&*shard.file_name().to_string_lossy()) {
                        out.push(digest);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes a blob unless it was written or touched at or after `before` (the collector's
    /// sweep; see the module's documentation). Returns the size removed, or `None` if the blob
    /// was kept or is gone already.
    pub async fn remove_if_idle(&self, digest: &Digest, before: SystemTime) -> Result<Option<u64>, BlobError> {
        let _sweeping = self.inner.sweep.write().await;
        let path = self.blob_path(digest);
        let meta = match fs::metadata(&path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let modified = meta.modified().map_err(io_err(&path))?;
        if modified >= before {
            return Ok(None);
        }
        Ok(self.delete(digest).await?.then_some(meta.len()))
    }

    /// Abandons the uploads with no activity since `idle_since` (a client that went away holds
    /// an open file and memory until then) and removes their bytes. An upload busy right now (an
    /// append under way) is active by definition and kept. Returns the uploads abandoned.
    pub async fn expire_idle_uploads(&self, idle_since: SystemTime) -> Result<Vec<UploadId>, BlobError> {
        let slots: Vec<(UploadId, UploadSlot)> =
            self.uploads().iter().map(|(id, slot)| (id.clone(), slot.clone())).collect();
        let mut expired = Vec::new();
        for (id, slot) in slots {
            let Ok(mut guard) = slot.try_lock() else { continue };
            if guard.as_ref().is_none_or(|u| u.last_activity >= idle_since) {
                continue;
            }
            // An append waiting for this lock now finds the upload gone (`UnknownUpload`).
            *guard = None;
            drop(guard);
            {
                let mut uploads = self.uploads();
                if uploads.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    uploads.remove(&id);
                }
            }
            let path = self.upload_path(&id);
            match fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            tracing::debug!(upload_id = %id, "idle upload abandoned");
            expired.push(id);
        }
        Ok(expired)
    }

    /// Removes a blob (the garbage collector's job). Returns whether it existed.
    pub async fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path).await {
            Ok(()) => {
                tracing::debug!(%digest, "blob deleted");
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

/// Sets a file's modification time (on a blocking thread: std has no async form).
async fn set_mtime(file: std::fs::File, path: &Path, at: SystemTime) -> Result<(), BlobError> {
    let result = tokio::task::spawn_blocking(move || file.set_modified(at)).await;
    match result {
        Ok(r) => r.map_err(io_err(path)),
        Err(join) => Err(io_err(path)(std::io::Error::other(join))),
    }
}

async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    let handle = File::open(dir).await.map_err(io_err(dir))?;
    handle.sync_all().await.map_err(io_err(dir))
}

/// Best-effort removal of an upload's file on a path that already reports another error.
async fn remove_file_if_exists(path: &Path) {
    if let Err(e) = fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an upload's file");
        }
    }
}
