//! The registry's core: repositories, images, tags and blob links, shared by the ECR API
//! ([`crate::ecr`]) and the OCI data path ([`crate::distribution`]). Both front ends call these
//! methods, so an image pushed with `docker push` and one put with `PutImage` are the same thing.
//!
//! Metadata is in the SQLite store (one transaction per change, so an acknowledged push survives
//! `kill -9`); blob bytes are in the [`BlobStore`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use berth_aws::time::{SharedClock, Timestamp};
use berth_aws::AwsContext;
use berth_store::rusqlite::{params, Connection, OptionalExtension};
use berth_store::Store;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::blob_store::{BlobStore, Digest, UploadId};
use crate::error::RegistryError;
use crate::manifest::{self, Manifest};
use crate::token::TokenKey;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// `MUTABLE` or `IMMUTABLE`, or either with exceptions: tags matching one of the repository's
/// exclusion filters (`*` wildcards) follow the opposite rule (`IMMUTABLE_WITH_EXCLUSION` with
/// `latest` excluded: every tag is fixed except `latest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagMutability {
    Mutable,
    Immutable,
    ImmutableWithExclusion,
    MutableWithExclusion,
}

impl TagMutability {
    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }
    pub fn parse(s: &str) -> Option<TagMutability> {
        match s {
            "MUTABLE" => Some(TagMutability::Mutable),
            "IMMUTABLE" => Some(TagMutability::Immutable),
            "IMMUTABLE_WITH_EXCLUSION" => Some(TagMutability::ImmutableWithExclusion),
            "MUTABLE_WITH_EXCLUSION" => Some(TagMutability::MutableWithExclusion),
            _ => None,
        }
    }
    /// Whether the setting takes exclusion filters (and needs at least one).
    pub fn has_exclusions(self) -> bool {
        matches!(self, TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion)
    }
    /// Whether `tag`, once set, may not be moved to another image.
    pub fn is_fixed(self, exclusions: &[String], tag: &str) -> bool {
        let excluded = || exclusions.iter().any(|f| crate::lifecycle::matches_pattern(f, tag));
        match self {
            TagMutability::Mutable => false,
            TagMutability::Immutable => true,
            TagMutability::ImmutableWithExclusion => !excluded(),
            TagMutability::MutableWithExclusion => excluded(),
        }
    }
}

/// A resource tag (ECR's `Key`/`Value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// What `CreateRepository` asks for, validated by the API layer.
#[derive(Clone, Debug)]
pub struct NewRepository {
    pub name: String,
    pub tag_mutability: TagMutability,
    /// WILDCARD exclusion filters (only with a `*_WITH_EXCLUSION` mutability).
    pub tag_mutability_exclusions: Vec<String>,
    pub scan_on_push: bool,
    /// `AES256` or `KMS` (accepted and reported; blobs are stored as they are).
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub tags: Vec<Tag>,
}

/// A repository as stored.
#[derive(Clone, Debug)]
pub struct Repository {
    pub name: String,
    pub arn: String,
    pub registry_id: String,
    pub uri: String,
    pub created_at: Timestamp,
    pub tag_mutability: TagMutability,
    pub tag_mutability_exclusions: Vec<String>,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
    pub policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub lifecycle_evaluated_at: Option<Timestamp>,
    pub tags: Vec<Tag>,
}

/// How an image is named in a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A path component of the data path: a digest if it has a `:`, else a tag.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains(':') {
            Digest::parse(s)
                .map(Reference::Digest)
                .map_err(|e| RegistryError::InvalidDigest(format!("Invalid parameter at 'imageDigest': {e}")))
        } else {
            validate_tag(s)?;
            Ok(Reference::Tag(s.to_string()))
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// An image (a manifest) in a repository, with its tags.
#[derive(Clone, Debug)]
pub struct Image {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// `imageSizeInBytes`: config plus layers (the manifest's size for an index).
    pub size: u64,
    pub pushed_at: Timestamp,
    pub last_pulled_at: Option<Timestamp>,
    /// Sorted.
    pub tags: Vec<String>,
}

/// A manifest's exact bytes, for serving.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// What [`Registry::put_manifest`] did.
#[derive(Clone, Debug)]
pub struct PutManifest {
    pub manifest: Manifest,
    pub body: Bytes,
    /// False when the manifest was already there with this tag (or untagged and no tag was asked):
    /// the data path answers 201 again; `PutImage` answers `ImageAlreadyExistsException`.
    pub changed: bool,
}

/// Images that must not be expired by a lifecycle policy or collected: those running tasks and
/// active deployments use. ECS plugs in an implementation; until then nothing is pinned.
pub trait ImagesInUse: Send + Sync + 'static {
    /// `(repository, digest)` pairs in use now.
    fn images_in_use(&self) -> HashSet<(String, Digest)>;
}

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: BlobStore,
    aws: Arc<AwsContext>,
    host: String,
    clock: SharedClock,
    tokens: TokenKey,
    /// Which repository each upload in progress belongs to.
    uploads: Mutex<HashMap<UploadId, String>>,
    /// Repository policies by repository name, for authorizing without a database read.
    policies: RwLock<HashMap<String, Arc<str>>>,
    in_use: RwLock<Option<Arc<dyn ImagesInUse>>>,
}

/// Repository names: 2–256 characters matching ECR's
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_repository_name(name: &str) -> Result<()> {
    // One path component: alphanumeric runs joined by `.`, `_`, `__` or one or more `-`.
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        let mut i = 0;
        loop {
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            if i == b.len() {
                return true;
            }
            let sep = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let ok = match &b[sep..i] {
                b"." | b"_" | b"__" => true,
                s => s.iter().all(|&x| x == b'-'),
            };
            if !ok {
                return false;
            }
        }
    };
    if (2..=256).contains(&name.len()) && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(format!(
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*'' (value '{name}')"
        )))
    }
}

/// Tags: the OCI spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidTag(format!(
            "Invalid parameter at 'imageTag' failed to satisfy constraint: 'must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}' (value '{tag}')"
        )))
    }
}

fn exclusions_json(filters: &[String]) -> String {
    serde_json::to_string(filters).unwrap_or_else(|_| "[]".into())
}

fn not_found(registry_id: &str, name: &str) -> RegistryError {
    RegistryError::RepositoryNotFound(format!(
        "The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
    ))
}

impl Registry {
    /// Opens the registry: migrates its tables, opens the blob store under `root`
    /// (`<data dir>/registry`) and its token key. `host` is how clients reach the registry
    /// (`localhost:4566`): repository URIs and `proxyEndpoint` are built from it.
    pub async fn open(
        store: Store,
        root: &Path,
        host: String,
        aws: AwsContext,
        clock: SharedClock,
    ) -> Result<Registry> {
        store.migrate("ecr", crate::schema::MIGRATIONS)?;
        let blobs = BlobStore::open_with_clock(root, clock.clone()).await.map_err(RegistryError::Blob)?;
        let key_path = root.join("token.key");
        let tokens = TokenKey::load_or_create(&key_path)
            .map_err(|source| RegistryError::Blob(crate::BlobError::Io { path: key_path, source }))?;
        let policies = store
            .read(|c| -> Result<HashMap<String, Arc<str>>> {
                let mut stmt = c.prepare("SELECT name, policy FROM ecr_repositories WHERE policy IS NOT NULL")?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, Arc::<str>::from(r.get::<_, String>(1)?))))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(Registry {
            inner: Arc::new(Inner {
                store,
                blobs,
                aws: Arc::new(aws),
                host,
                clock,
                tokens,
                uploads: Mutex::new(HashMap::new()),
                policies: RwLock::new(policies),
                in_use: RwLock::new(None),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }
    pub fn aws(&self) -> &Arc<AwsContext> {
        &self.inner.aws
    }
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }
    pub fn tokens(&self) -> &TokenKey {
        &self.inner.tokens
    }
    /// `localhost:4566`: the registry's host as clients reach it.
    pub fn host(&self) -> &str {
        &self.inner.host
    }
    pub fn now(&self) -> Timestamp {
        Timestamp::from_system(self.inner.clock.now())
    }
    pub fn registry_id(&self) -> &str {
        &self.inner.aws.account_id
    }
    pub fn repository_arn(&self, name: &str) -> String {
        self.inner.aws.arn("ecr", &format!("repository/{name}"))
    }
    pub fn repository_uri(&self, name: &str) -> String {
        format!("{}/{name}", self.inner.host)
    }

    /// The repository's policy document, if it has one (for authorization; no database read).
    pub fn repository_policy(&self, name: &str) -> Option<Arc<str>> {
        self.inner.policies.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Plugs in what ECS uses (see [`ImagesInUse`]).
    pub fn set_images_in_use(&self, hook: Arc<dyn ImagesInUse>) {
        *self.inner.in_use.write().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// The images in use now, per the hook (empty without one).
    pub fn images_in_use(&self) -> HashSet<(String, Digest)> {
        let hook = self.inner.in_use.read().unwrap_or_else(|e| e.into_inner()).clone();
        hook.map(|h| h.images_in_use()).unwrap_or_default()
    }

    fn not_found(&self, name: &str) -> RegistryError {
        not_found(self.registry_id(), name)
    }

    // ---- repositories ----

    pub async fn create_repository(&self, new: NewRepository) -> Result<Repository> {
        validate_repository_name(&new.name)?;
        let now = self.now();
        let registry_id = self.registry_id().to_string();
        let tags = serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into());
        let name = new.name.clone();
        self.inner
            .store
            .write(move |tx| -> Result<()> {
                let exists: Option<i64> =
                    tx.query_row("SELECT 1 FROM ecr_repositories WHERE name = ?1", [&new.name], |r| r.get(0)).optional()?;
                if exists.is_some() {
                    return Err(RegistryError::RepositoryAlreadyExists(format!(
                        "The repository with name '{}' already exists in the registry with id '{registry_id}'",
                        new.name
                    )));
                }
                tx.execute(
                    "INSERT INTO ecr_repositories (name, created_at, tag_mutability, scan_on_push, encryption_type, kms_key, tags,
                                                   tag_mutability_exclusions)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        new.name,
                        now.0,
                        new.tag_mutability.as_str(),
                        new.scan_on_push,
                        new.encryption_type,
                        new.kms_key,
                        tags,
                        exclusions_json(&new.tag_mutability_exclusions)
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.repository(&name).await
    }

    /// One repository, or `RepositoryNotFoundException`.
    pub async fn repository(&self, name: &str) -> Result<Repository> {
        let name_owned = name.to_string();
        let this = self.clone();
        let found = self.inner.store.read(move |c| this.read_repository(c, &name_owned)).await?;
        found.ok_or_else(|| self.not_found(name))
    }

    fn read_repository(&self, c: &Connection, name: &str) -> Result<Option<Repository>> {
        let row = c
            .query_row(
                "SELECT name, created_at, tag_mutability, scan_on_push, encryption_type, kms_key, policy,
                        lifecycle_policy, lifecycle_evaluated_at, tags, tag_mutability_exclusions
                 FROM ecr_repositories WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, String>(10)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(|(name, created, mutability, scan, enc, kms, policy, lifecycle, evaluated, tags, exclusions)| {
            Repository {
                tag_mutability_exclusions: serde_json::from_str(&exclusions).unwrap_or_default(),
                arn: self.repository_arn(&name),
                uri: self.repository_uri(&name),
                registry_id: self.registry_id().to_string(),
                created_at: Timestamp(created),
                tag_mutability: TagMutability::parse(&mutability).unwrap_or(TagMutability::Mutable),
                scan_on_push: scan,
                encryption_type: enc,
                kms_key: kms,
                policy,
                lifecycle_policy: lifecycle,
                lifecycle_evaluated_at: evaluated.map(Timestamp),
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                name,
            }
        }))
    }

    /// All repositories, sorted by name.
    pub async fn repositories(&self) -> Result<Vec<Repository>> {
        let this = self.clone();
        self.inner
            .store
            .read(move |c| -> Result<Vec<Repository>> {
                let mut stmt = c.prepare("SELECT name FROM ecr_repositories ORDER BY name")?;
                let names: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(names.len());
                for n in names {
                    out.extend(this.read_repository(c, &n)?);
                }
                Ok(out)
            })
            .await
    }

    /// Deletes a repository. Without `force`, one that still has images is refused
    /// (`RepositoryNotEmptyException`). Its blobs become garbage for the collector.
    pub async fn delete_repository(&self, name: &str, force: bool) -> Result<Repository> {
        let repo = self.repository(name).await?;
        let n = name.to_string();
        let registry_id = self.registry_id().to_string();
        self.inner
            .store
            .write(move |tx| -> Result<()> {
                let images: i64 = tx.query_row("SELECT COUNT(*) FROM ecr_manifests WHERE repository = ?1", [&n], |r| r.get(0))?;
                if images > 0 && !force {
                    return Err(RegistryError::RepositoryNotEmpty(format!(
                        "The repository with name '{n}' in registry with id '{registry_id}' cannot be deleted because it still contains images"
                    )));
                }
                tx.execute("DELETE FROM ecr_tags WHERE repository = ?1", [&n])?;
                tx.execute("DELETE FROM ecr_manifest_refs WHERE repository = ?1", [&n])?;
                tx.execute("DELETE FROM ecr_manifests WHERE repository = ?1", [&n])?;
                let deleted = tx.execute("DELETE FROM ecr_repositories WHERE name = ?1", [&n])?;
                if deleted == 0 {
                    return Err(not_found(&registry_id, &n));
                }
                Ok(())
            })
            .await?;
        self.inner.policies.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, r| r != name);
        Ok(repo)
    }

    /// Changes one setting of an existing repository (one column), returning the repository after.
    async fn update_repository(&self, name: &str, column: &'static str, value: Option<String>) -> Result<Repository> {
        let n = name.to_string();
        let registry_id = self.registry_id().to_string();
        let sql = format!("UPDATE ecr_repositories SET {column} = ?2 WHERE name = ?1");
        self.inner
            .store
            .write(move |tx| -> Result<()> {
                if tx.execute(&sql, params![n, value])? == 0 {
                    return Err(not_found(&registry_id, &n));
                }
                Ok(())
            })
            .await?;
        self.repository(name).await
    }

    /// Sets the mutability and its exclusion filters together (one write).
    pub async fn set_tag_mutability(&self, name: &str, m: TagMutability, exclusions: &[String]) -> Result<Repository> {
        let n = name.to_string();
        let registry_id = self.registry_id().to_string();
        let exclusions = exclusions_json(exclusions);
        self.inner
            .store
            .write(move |tx| -> Result<()> {
                let updated = tx.execute(
                    "UPDATE ecr_repositories SET tag_mutability = ?2, tag_mutability_exclusions = ?3 WHERE name = ?1",
                    params![n, m.as_str(), exclusions],
                )?;
                if updated == 0 {
                    return Err(not_found(&registry_id, &n));
                }
                Ok(())
            })
            .await?;
        self.repository(name).await
    }

    pub async fn set_scan_on_push(&self, name: &str, scan: bool) -> Result<Repository> {
        self.update_repository(name, "scan_on_push", Some(if scan { "1" } else { "0" }.into())).await
    }

    pub async fn set_tags(&self, name: &str, tags: &[Tag]) -> Result<Repository> {
        let json = serde_json::to_string(tags).unwrap_or_else(|_| "[]".into());
        self.update_repository(name, "tags", Some(json)).await
    }

    /// Sets (`Some`) or removes (`None`) the repository policy. The API layer validates the document.
    pub async fn set_repository_policy(&self, name: &str, policy: Option<String>) -> Result<Repository> {
        let repo = self.update_repository(name, "policy", policy.clone()).await?;
        let mut map = self.inner.policies.write().unwrap_or_else(|e| e.into_inner());
        match policy {
            Some(p) => map.insert(name.to_string(), Arc::from(p)),
            None => map.remove(name),
        };
        Ok(repo)
    }

    /// Sets (`Some`) or removes (`None`) the lifecycle policy. The API layer validates the document.
    pub async fn set_lifecycle_policy(&self, name: &str, policy: Option<String>) -> Result<Repository> {
        self.update_repository(name, "lifecycle_policy", policy).await
    }

    pub async fn set_lifecycle_evaluated(&self, name: &str, at: Timestamp) -> Result<Repository> {
        self.update_repository(name, "lifecycle_evaluated_at", Some(at.0.to_string())).await
    }

    // ---- images ----

    /// Stores a manifest (and, with `tag`, points the tag at it) after checking that everything it
    /// refers to is in the repository: its blobs (`LayersNotFoundException`) and, for an index, its
    /// child manifests (`ReferencedImagesNotFoundException`). `expected` is the digest the client
    /// named (a PUT by digest, or `imageDigest`): the bytes must hash to it. Moving a tag in an
    /// IMMUTABLE repository is refused (`ImageTagAlreadyExistsException`).
    pub async fn put_manifest(
        &self,
        repository: &str,
        body: Bytes,
        declared_media_type: Option<&str>,
        tag: Option<&str>,
        expected: Option<&Digest>,
    ) -> Result<PutManifest> {
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let manifest = manifest::parse(&body, declared_media_type)
            .map_err(|e| RegistryError::InvalidManifest(format!("Invalid parameter at 'ImageManifest': {e}")))?;
        if let Some(expected) = expected {
            if *expected != manifest.digest {
                return Err(RegistryError::ImageDigestDoesNotMatch(format!(
                    "Invalid parameter at 'imageDigest': the manifest's digest is {}, not {expected}",
                    manifest.digest
                )));
            }
        }
        let now = self.now();
        let registry_id = self.registry_id().to_string();
        let repo = repository.to_string();
        let tag = tag.map(str::to_string);
        let m = manifest.clone();
        let b = body.clone();
        let changed = self
            .inner
            .store
            .write(move |tx| -> Result<bool> {
                let mutability: Option<(String, String)> = tx
                    .query_row(
                        "SELECT tag_mutability, tag_mutability_exclusions FROM ecr_repositories WHERE name = ?1",
                        [&repo],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((mutability, exclusions)) = mutability else {
                    return Err(not_found(&registry_id, &repo));
                };
                let mutability = TagMutability::parse(&mutability).unwrap_or(TagMutability::Mutable);
                let exclusions: Vec<String> = serde_json::from_str(&exclusions).unwrap_or_default();
                // Everything referenced must be here.
                let mut missing = Vec::new();
                for d in &m.blobs {
                    let linked: Option<i64> = tx
                        .query_row(
                            "SELECT 1 FROM ecr_repository_blobs WHERE repository = ?1 AND digest = ?2",
                            params![repo, d.digest.to_string()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if linked.is_none() {
                        missing.push(d.digest.to_string());
                    }
                }
                if !missing.is_empty() {
                    return Err(RegistryError::LayersNotFound(format!(
                        "Layers with digests '[{}]' required for pushing image into repository with name '{repo}' in the registry with id '{registry_id}' do not exist",
                        missing.join(", ")
                    )));
                }
                for d in &m.manifests {
                    let present: Option<i64> = tx
                        .query_row(
                            "SELECT 1 FROM ecr_manifests WHERE repository = ?1 AND digest = ?2",
                            params![repo, d.digest.to_string()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if present.is_none() {
                        return Err(RegistryError::ReferencedImagesNotFound(format!(
                            "The image manifest with digest '{}' referenced by the manifest list does not exist in the repository",
                            d.digest
                        )));
                    }
                }
                let digest = m.digest.to_string();
                let existing_tag: Option<String> = match &tag {
                    Some(t) => tx
                        .query_row("SELECT digest FROM ecr_tags WHERE repository = ?1 AND tag = ?2", params![repo, t], |r| r.get(0))
                        .optional()?,
                    None => None,
                };
                if let (Some(t), Some(current)) = (&tag, &existing_tag) {
                    if *current != digest && mutability.is_fixed(&exclusions, t) {
                        return Err(RegistryError::ImageTagAlreadyExists(format!(
                            "The image tag '{t}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
                        )));
                    }
                }
                let inserted = tx.execute(
                    "INSERT OR IGNORE INTO ecr_manifests (repository, digest, media_type, artifact_type, subject, body, size, pushed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        repo,
                        digest,
                        m.media_type,
                        m.artifact_type,
                        m.subject.as_ref().map(|s| s.digest.to_string()),
                        &b[..],
                        m.size as i64,
                        now.0
                    ],
                )? > 0;
                if inserted {
                    for d in &m.blobs {
                        tx.execute(
                            "INSERT OR IGNORE INTO ecr_manifest_refs (repository, manifest, kind, digest) VALUES (?1, ?2, 'blob', ?3)",
                            params![repo, digest, d.digest.to_string()],
                        )?;
                    }
                    for d in &m.manifests {
                        tx.execute(
                            "INSERT OR IGNORE INTO ecr_manifest_refs (repository, manifest, kind, digest) VALUES (?1, ?2, 'manifest', ?3)",
                            params![repo, digest, d.digest.to_string()],
                        )?;
                    }
                }
                let mut changed = inserted;
                if let Some(t) = &tag {
                    if existing_tag.as_deref() != Some(digest.as_str()) {
                        tx.execute(
                            "INSERT INTO ecr_tags (repository, tag, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                            params![repo, t, digest, now.0],
                        )?;
                        changed = true;
                    }
                }
                Ok(changed)
            })
            .await?;
        Ok(PutManifest { manifest, body, changed })
    }

    /// The digest a reference names in this repository, or `ImageNotFoundException`.
    pub async fn resolve(&self, repository: &str, reference: &Reference) -> Result<Digest> {
        Ok(self.manifest(repository, reference).await?.digest)
    }

    /// A manifest's exact bytes by tag or digest. `RepositoryNotFoundException` /
    /// `ImageNotFoundException` when absent.
    pub async fn manifest(&self, repository: &str, reference: &Reference) -> Result<StoredManifest> {
        let repo = repository.to_string();
        let reference_c = reference.clone();
        let registry_id = self.registry_id().to_string();
        let found = self
            .inner
            .store
            .read(move |c| -> Result<Option<(String, String, Vec<u8>)>> {
                let exists: Option<i64> =
                    c.query_row("SELECT 1 FROM ecr_repositories WHERE name = ?1", [&repo], |r| r.get(0)).optional()?;
                if exists.is_none() {
                    return Err(not_found(&registry_id, &repo));
                }
                let row = match &reference_c {
                    Reference::Digest(d) => c
                        .query_row(
                            "SELECT digest, media_type, body FROM ecr_manifests WHERE repository = ?1 AND digest = ?2",
                            params![repo, d.to_string()],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .optional()?,
                    Reference::Tag(t) => c
                        .query_row(
                            "SELECT m.digest, m.media_type, m.body FROM ecr_tags t
                             JOIN ecr_manifests m ON m.repository = t.repository AND m.digest = t.digest
                             WHERE t.repository = ?1 AND t.tag = ?2",
                            params![repo, t],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .optional()?,
                };
                Ok(row)
            })
            .await?;
        let Some((digest, media_type, body)) = found else {
            return Err(self.image_not_found(repository, reference));
        };
        let digest = Digest::parse(&digest).map_err(RegistryError::Blob)?;
        Ok(StoredManifest { digest, media_type, body: Bytes::from(body) })
    }

    fn image_not_found(&self, repository: &str, reference: &Reference) -> RegistryError {
        let id = match reference {
            Reference::Tag(t) => format!("imageTag={t}"),
            Reference::Digest(d) => format!("imageDigest={d}"),
        };
        RegistryError::ImageNotFound(format!(
            "The image with imageId {{{id}}} does not exist within the repository with name '{repository}' in the registry with id '{}'",
            self.registry_id()
        ))
    }

    /// Records a pull (`lastRecordedPullTime`), at most once an hour per image: pulls stay reads.
    pub async fn record_pull(&self, repository: &str, digest: &Digest) -> Result<()> {
        let now = self.now();
        let repo = repository.to_string();
        let d = digest.to_string();
        let stale: bool = {
            let (repo, d) = (repo.clone(), d.clone());
            self.inner
                .store
                .read(move |c| -> Result<bool> {
                    let last: Option<Option<i64>> = c
                        .query_row(
                            "SELECT last_pulled_at FROM ecr_manifests WHERE repository = ?1 AND digest = ?2",
                            params![repo, d],
                            |r| r.get(0),
                        )
                        .optional()?;
                    Ok(matches!(last, Some(l) if l.is_none_or(|l| now.0 - l >= 3600)))
                })
                .await?
        };
        if stale {
            self.inner
                .store
                .write(move |tx| -> Result<()> {
                    tx.execute(
                        "UPDATE ecr_manifests SET last_pulled_at = ?3 WHERE repository = ?1 AND digest = ?2",
                        params![repo, d, now.0],
                    )?;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// Every image of a repository with its tags, newest push first.
    pub async fn images(&self, repository: &str) -> Result<Vec<Image>> {
        self.repository(repository).await?;
        let repo = repository.to_string();
        self.inner
            .store
            .read(move |c| -> Result<Vec<Image>> {
                let mut tags: HashMap<String, Vec<String>> = HashMap::new();
                let mut stmt = c.prepare("SELECT digest, tag FROM ecr_tags WHERE repository = ?1 ORDER BY tag")?;
                for row in stmt.query_map([&repo], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                    let (d, t) = row?;
                    tags.entry(d).or_default().push(t);
                }
                let mut stmt = c.prepare(
                    "SELECT digest, media_type, artifact_type, subject, size, pushed_at, last_pulled_at
                     FROM ecr_manifests WHERE repository = ?1 ORDER BY pushed_at DESC, digest",
                )?;
                let rows = stmt.query_map([&repo], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                    ))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (digest, media_type, artifact_type, subject, size, pushed, pulled) = row?;
                    let Ok(d) = Digest::parse(&digest) else { continue };
                    out.push(Image {
                        repository: repo.clone(),
                        tags: tags.remove(&digest).unwrap_or_default(),
                        digest: d,
                        media_type,
                        artifact_type,
                        subject: subject.and_then(|s| Digest::parse(&s).ok()),
                        size: size as u64,
                        pushed_at: Timestamp(pushed),
                        last_pulled_at: pulled.map(Timestamp),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// `(index, child)`: the manifests each index in the repository refers to. The lifecycle policy
    /// keeps the children of an index it keeps.
    pub async fn index_children(&self, repository: &str) -> Result<Vec<(Digest, Digest)>> {
        let repo = repository.to_string();
        self.inner
            .store
            .read(move |c| -> Result<Vec<(Digest, Digest)>> {
                let mut stmt = c.prepare(
                    "SELECT manifest, digest FROM ecr_manifest_refs WHERE repository = ?1 AND kind = 'manifest'",
                )?;
                let rows = stmt.query_map([&repo], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                let mut out = Vec::new();
                for row in rows {
                    let (index, child) = row?;
                    if let (Ok(index), Ok(child)) = (Digest::parse(&index), Digest::parse(&child)) {
                        out.push((index, child));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// The tags of a repository, in lexical order.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        self.repository(repository).await?;
        let repo = repository.to_string();
        self.inner
            .store
            .read(move |c| -> Result<Vec<String>> {
                let mut stmt = c.prepare("SELECT tag FROM ecr_tags WHERE repository = ?1 ORDER BY tag")?;
                let tags = stmt.query_map([&repo], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(tags)
            })
            .await
    }

    /// Deletes what `reference` names, as `BatchDeleteImage` does: a tag removes that tag, and the
    /// image with it if that was its last tag; a digest removes the image and all its tags. An image
    /// an index in the repository still refers to is not deleted (`ImageReferencedByManifestList`,
    /// returned as `Ok(Err(reason))`). Returns the digest deleted or untagged.
    pub async fn delete_image(&self, repository: &str, reference: &Reference) -> Result<Result<Digest, String>> {
        let digest = self.resolve(repository, reference).await?;
        let repo = repository.to_string();
        let reference = reference.clone();
        let d = digest.to_string();
        self.inner
            .store
            .write(move |tx| -> Result<Result<Digest, String>> {
                let remaining_tags: i64 = match &reference {
                    Reference::Tag(t) => {
                        let other: i64 = tx.query_row(
                            "SELECT COUNT(*) FROM ecr_tags WHERE repository = ?1 AND digest = ?2 AND tag != ?3",
                            params![repo, d, t],
                            |r| r.get(0),
                        )?;
                        if other > 0 {
                            tx.execute("DELETE FROM ecr_tags WHERE repository = ?1 AND tag = ?2", params![repo, t])?;
                        }
                        other
                    }
                    Reference::Digest(_) => 0,
                };
                if remaining_tags == 0 {
                    let referenced_by: Option<String> = tx
                        .query_row(
                            "SELECT manifest FROM ecr_manifest_refs WHERE repository = ?1 AND kind = 'manifest' AND digest = ?2 LIMIT 1",
                            params![repo, d],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(index) = referenced_by {
                        return Ok(Err(format!("Requested image referenced by manifest list: [{index}]")));
                    }
                    tx.execute("DELETE FROM ecr_tags WHERE repository = ?1 AND digest = ?2", params![repo, d])?;
                    tx.execute("DELETE FROM ecr_manifest_refs WHERE repository = ?1 AND manifest = ?2", params![repo, d])?;
                    tx.execute("DELETE FROM ecr_manifests WHERE repository = ?1 AND digest = ?2", params![repo, d])?;
                }
                Ok(Ok(digest))
            })
            .await
    }

    /// Manifests in the repository whose `subject` is `digest` (the referrers API), with their
    /// exact bytes (for annotations).
    pub async fn referrers(&self, repository: &str, digest: &Digest) -> Result<Vec<StoredManifest>> {
        self.repository(repository).await?;
        let repo = repository.to_string();
        let d = digest.to_string();
        self.inner
            .store
            .read(move |c| -> Result<Vec<StoredManifest>> {
                let mut stmt = c.prepare(
                    "SELECT digest, media_type, body FROM ecr_manifests WHERE repository = ?1 AND subject = ?2 ORDER BY digest",
                )?;
                let rows = stmt.query_map(params![repo, d], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
                })?;
                let mut out = Vec::new();
                for row in rows {
                    let (digest, media_type, body) = row?;
                    if let Ok(digest) = Digest::parse(&digest) {
                        out.push(StoredManifest { digest, media_type, body: Bytes::from(body) });
                    }
                }
                Ok(out)
            })
            .await
    }

    // ---- blobs ----

    /// The size of a blob if this repository has it (pushed or mounted there), else `None`.
    pub async fn blob_size(&self, repository: &str, digest: &Digest) -> Result<Option<u64>> {
        let repo = repository.to_string();
        let d = digest.to_string();
        let linked = self
            .inner
            .store
            .read(move |c| -> Result<Option<i64>> {
                Ok(c.query_row(
                    "SELECT size FROM ecr_repository_blobs WHERE repository = ?1 AND digest = ?2",
                    params![repo, d],
                    |r| r.get(0),
                )
                .optional()?)
            })
            .await?;
        match linked {
            // The link is written after the blob is visible; check the file too in case the
            // collector removed it after the repository lost it.
            Some(size) => {
                Ok(self.inner.blobs.stat(digest).await.map_err(RegistryError::from_blob)?.map(|_| size as u64))
            }
            None => Ok(None),
        }
    }

    /// Makes a visible blob part of a repository.
    async fn link_blob(&self, repository: &str, digest: &Digest, size: u64) -> Result<()> {
        let repo = repository.to_string();
        let d = digest.to_string();
        let now = self.now();
        let registry_id = self.registry_id().to_string();
        self.inner
            .store
            .write(move |tx| -> Result<()> {
                let exists: Option<i64> =
                    tx.query_row("SELECT 1 FROM ecr_repositories WHERE name = ?1", [&repo], |r| r.get(0)).optional()?;
                if exists.is_none() {
                    return Err(not_found(&registry_id, &repo));
                }
                tx.execute(
                    "INSERT INTO ecr_repository_blobs (repository, digest, size, linked_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repository, digest) DO UPDATE SET linked_at = excluded.linked_at",
                    params![repo, d, size as i64, now.0],
                )?;
                Ok(())
            })
            .await
    }

    /// Starts an upload into `repository`.
    pub async fn start_upload(&self, repository: &str) -> Result<UploadId> {
        self.repository(repository).await?;
        let id = self.inner.blobs.start_upload().await.map_err(RegistryError::from_blob)?;
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), repository.to_string());
        Ok(id)
    }

    /// The upload, if it exists and belongs to `repository`.
    fn check_upload(&self, repository: &str, id: &UploadId) -> Result<()> {
        let uploads = self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner());
        match uploads.get(id) {
            Some(r) if r == repository => Ok(()),
            _ => Err(RegistryError::UploadNotFound(format!(
                "The upload with id '{id}' does not exist in the repository with name '{repository}'"
            ))),
        }
    }

    /// Appends bytes to an upload; `expected_offset` (when given) must be its current size.
    /// Returns the new size.
    pub async fn append(
        &self,
        repository: &str,
        id: &UploadId,
        chunk: &[u8],
        expected_offset: Option<u64>,
    ) -> Result<u64> {
        self.check_upload(repository, id)?;
        self.inner.blobs.append(id, chunk, expected_offset).await.map_err(RegistryError::from_blob)
    }

    pub async fn upload_size(&self, repository: &str, id: &UploadId) -> Result<u64> {
        self.check_upload(repository, id)?;
        self.inner.blobs.upload_size(id).await.map_err(RegistryError::from_blob)
    }

    pub async fn cancel_upload(&self, repository: &str, id: &UploadId) -> Result<()> {
        self.check_upload(repository, id)?;
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        self.inner.blobs.cancel(id).await.map_err(RegistryError::from_blob)
    }

    /// Verifies the upload against `digest`, makes the blob visible and links it to the repository.
    /// A wrong digest discards the upload (`InvalidLayerException`); nothing becomes visible.
    pub async fn complete_upload(&self, repository: &str, id: &UploadId, digest: &Digest) -> Result<u64> {
        self.check_upload(repository, id)?;
        let result = self.inner.blobs.complete(id, digest).await;
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        let size = result.map_err(RegistryError::from_blob)?;
        self.link_blob(repository, digest, size).await?;
        Ok(size)
    }

    /// Stores a small blob in one step (the data path's monolithic upload of a body already read).
    pub async fn put_blob(&self, repository: &str, bytes: &[u8], expected: &Digest) -> Result<u64> {
        self.repository(repository).await?;
        let actual = Digest::of(bytes);
        if actual != *expected {
            return Err(RegistryError::from_blob(crate::BlobError::DigestMismatch {
                expected: expected.clone(),
                actual,
            }));
        }
        self.inner.blobs.put(bytes).await.map_err(RegistryError::from_blob)?;
        self.link_blob(repository, expected, bytes.len() as u64).await?;
        Ok(bytes.len() as u64)
    }

    /// Cross-repository mount: links a blob `from` has into `to`. `None` if `from` lacks it
    /// (the client then uploads it).
    pub async fn mount_blob(&self, from: &str, to: &str, digest: &Digest) -> Result<Option<u64>> {
        match self.blob_size(from, digest).await? {
            Some(size) => {
                // Touched before it is linked, so the collector does not remove it in between
                // (see `gc`); gone already, the client uploads it.
                if !self.inner.blobs.touch(digest).await.map_err(RegistryError::from_blob)? {
                    return Ok(None);
                }
                self.link_blob(to, digest, size).await?;
                Ok(Some(size))
            }
            None => Ok(None),
        }
    }

    /// Repositories with an upload in progress: the collector keeps their blob links, since the
    /// manifest that will refer to the layers pushed so far has not arrived yet.
    pub fn repositories_with_uploads(&self) -> HashSet<String> {
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Abandons uploads with no activity since `idle_since` (see [`BlobStore::expire_idle_uploads`]).
    pub async fn expire_idle_uploads(&self, idle_since: std::time::SystemTime) -> Result<Vec<UploadId>> {
        let expired = self.inner.blobs.expire_idle_uploads(idle_since).await.map_err(RegistryError::from_blob)?;
        let mut uploads = self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner());
        for id in &expired {
            uploads.remove(id);
        }
        Ok(expired)
    }

    /// Upload ids in progress (the collector must not race them; they live outside `blobs/`).
    pub fn uploads_in_progress(&self) -> usize {
        self.inner.uploads.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("host", &self.inner.host).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_ecr() {
        for ok in ["ab", "app", "team/app", "a-b_c.d/e0", "x/y/z", "a--b", "a__b", "a---b"] {
            assert!(validate_repository_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "App", "app/", "/app", "a//b", "a___b", "a..b", "a._b", "-a", "a-", "a b", ""] {
            assert!(validate_repository_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_oci() {
        for ok in ["latest", "v1.2.3", "_x", "a-b_c.d", &"a".repeat(128)] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
