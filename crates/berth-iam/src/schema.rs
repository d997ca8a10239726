//! IAM's and STS's tables, as migrations of the `iam` component. Append only: never edit an
//! applied migration.

pub const MIGRATIONS: &[&str] = &[
    // 1: users
    "CREATE TABLE iam_users (
        user_name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        user_id TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        arn TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        permissions_boundary TEXT,
        tags TEXT NOT NULL
    )",
    // 2: access keys, roles, managed and inline policies, attachments, OIDC providers, STS sessions
    "CREATE TABLE iam_access_keys (
        access_key_id TEXT NOT NULL PRIMARY KEY,
        user_name TEXT NOT NULL COLLATE NOCASE,
        secret_access_key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
        created_at INTEGER NOT NULL
    );
    CREATE INDEX iam_access_keys_by_user ON iam_access_keys (user_name);
    CREATE TABLE iam_roles (
        role_name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        role_id TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        arn TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        assume_role_policy TEXT NOT NULL,
        description TEXT,
        max_session_duration INTEGER NOT NULL,
        permissions_boundary TEXT,
        tags TEXT NOT NULL
    );
    CREATE TABLE iam_policies (
        arn TEXT NOT NULL PRIMARY KEY,
        policy_name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        policy_id TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        default_version_id TEXT NOT NULL,
        next_version INTEGER NOT NULL,
        description TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        tags TEXT NOT NULL
    );
    CREATE TABLE iam_policy_versions (
        policy_arn TEXT NOT NULL REFERENCES iam_policies (arn) ON DELETE CASCADE,
        version_id TEXT NOT NULL,
        document TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (policy_arn, version_id)
    );
    CREATE TABLE iam_attached_policies (
        principal_type TEXT NOT NULL CHECK (principal_type IN ('user', 'role')),
        principal_name TEXT NOT NULL COLLATE NOCASE,
        policy_arn TEXT NOT NULL,
        PRIMARY KEY (principal_type, principal_name, policy_arn)
    );
    CREATE TABLE iam_inline_policies (
        principal_type TEXT NOT NULL CHECK (principal_type IN ('user', 'role')),
        principal_name TEXT NOT NULL COLLATE NOCASE,
        policy_name TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (principal_type, principal_name, policy_name)
    );
    CREATE TABLE iam_oidc_providers (
        arn TEXT NOT NULL PRIMARY KEY,
        url TEXT NOT NULL,
        client_ids TEXT NOT NULL,
        thumbprints TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        tags TEXT NOT NULL
    );
    CREATE TABLE sts_sessions (
        access_key_id TEXT NOT NULL PRIMARY KEY,
        secret_access_key TEXT NOT NULL,
        session_token TEXT NOT NULL,
        role_name TEXT NOT NULL COLLATE NOCASE,
        session_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX sts_sessions_by_expiry ON sts_sessions (expires_at);",
];
