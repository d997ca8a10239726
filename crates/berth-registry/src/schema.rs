//! ECR's tables, as migrations of the `ecr` component. Append only: never edit an applied migration.
//!
//! Manifests are kept in SQLite (they are small, and one transaction then makes an image and its
//! tag visible together); layer and config blobs live in the [`crate::BlobStore`]. A repository
//! "has" a blob when `ecr_repository_blobs` links them: a blob pushed to one repository is not
//! readable through another until it is mounted or pushed there too, as in ECR.

pub const MIGRATIONS: &[&str] = &[
    // 1: repositories, images, tags, blob links
    "CREATE TABLE ecr_repositories (
        name TEXT NOT NULL PRIMARY KEY,
        created_at INTEGER NOT NULL,
        tag_mutability TEXT NOT NULL,
        scan_on_push INTEGER NOT NULL,
        encryption_type TEXT NOT NULL,
        kms_key TEXT,
        policy TEXT,
        lifecycle_policy TEXT,
        lifecycle_evaluated_at INTEGER,
        tags TEXT NOT NULL
    );
    CREATE TABLE ecr_manifests (
        repository TEXT NOT NULL REFERENCES ecr_repositories (name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        artifact_type TEXT,
        subject TEXT,
        body BLOB NOT NULL,
        size INTEGER NOT NULL,
        pushed_at INTEGER NOT NULL,
        last_pulled_at INTEGER,
        PRIMARY KEY (repository, digest)
    );
    CREATE INDEX ecr_manifests_by_subject ON ecr_manifests (repository, subject) WHERE subject IS NOT NULL;
    CREATE TABLE ecr_tags (
        repository TEXT NOT NULL,
        tag TEXT NOT NULL,
        digest TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repository, tag),
        FOREIGN KEY (repository, digest) REFERENCES ecr_manifests (repository, digest) ON DELETE CASCADE
    );
    CREATE INDEX ecr_tags_by_digest ON ecr_tags (repository, digest);
    CREATE TABLE ecr_manifest_refs (
        repository TEXT NOT NULL,
        manifest TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
        digest TEXT NOT NULL,
        PRIMARY KEY (repository, manifest, kind, digest),
        FOREIGN KEY (repository, manifest) REFERENCES ecr_manifests (repository, digest) ON DELETE CASCADE
    );
    CREATE INDEX ecr_manifest_refs_by_target ON ecr_manifest_refs (repository, kind, digest);
    CREATE TABLE ecr_repository_blobs (
        repository TEXT NOT NULL REFERENCES ecr_repositories (name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        linked_at INTEGER NOT NULL,
        PRIMARY KEY (repository, digest)
    );
    CREATE INDEX ecr_repository_blobs_by_digest ON ecr_repository_blobs (digest);",
    // 2: tag mutability exclusion filters (IMMUTABLE_WITH_EXCLUSION / MUTABLE_WITH_EXCLUSION)
    "ALTER TABLE ecr_repositories ADD COLUMN tag_mutability_exclusions TEXT NOT NULL DEFAULT '[]'",
];
