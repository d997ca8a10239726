//! ECS's tables, as migrations of the `ecs` component. Append only: never edit an applied migration.
//!
//! Times are milliseconds since the Unix epoch (ECS answers with fractional seconds). JSON columns
//! hold the shapes of [`crate::task_definition`] and [`crate::tasks`] as serde writes them.
//!
//! - `ecs_clusters`: one row per cluster name, ever; a deleted cluster stays as `INACTIVE` (ECS
//!   keeps describing it) and `CreateCluster` of the same name makes it `ACTIVE` again.
//! - `ecs_task_definition_families`: the last revision number handed out per family. It outlives
//!   the revisions themselves: ECS never reuses a revision number, even after deleting it.
//! - `ecs_task_definitions`: one row per revision; `definition` is the normalized definition
//!   ([`crate::task_definition::TaskDefinitionSpec`]), the other columns what lists filter on.
//! - `ecs_tags`: tags of clusters and task definitions, by ARN, in the order they were first set.
//! - `ecs_tasks`: tasks. The API handlers of this first piece only read it (cluster counts,
//!   `DeleteCluster`, `DeleteTaskDefinitions`, tags of tasks); `RunTask` and the task controller
//!   write it. `cluster` is the cluster's name. `version` counts writes of the row, so a controller
//!   can update it only if nobody else did in between. `runtime` is the driver's own data (container
//!   ids, network). A task's tags live in its `tags` column, not in `ecs_tags`, so that a task and
//!   its tags are written together.

pub const MIGRATIONS: &[&str] = &[
    // 1: clusters, task definitions, tags, tasks
    "CREATE TABLE ecs_clusters (
        name TEXT NOT NULL PRIMARY KEY,
        arn TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE')),
        settings TEXT NOT NULL,
        capacity_providers TEXT NOT NULL DEFAULT '[]',
        default_capacity_provider_strategy TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL,
        deleted_at INTEGER
    );
    CREATE INDEX ecs_clusters_by_status ON ecs_clusters (status, name);
    CREATE TABLE ecs_task_definition_families (
        family TEXT NOT NULL PRIMARY KEY,
        last_revision INTEGER NOT NULL
    );
    CREATE TABLE ecs_task_definitions (
        family TEXT NOT NULL REFERENCES ecs_task_definition_families (family),
        revision INTEGER NOT NULL,
        arn TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE', 'DELETE_IN_PROGRESS')),
        network_mode TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        registered_by TEXT NOT NULL,
        deregistered_at INTEGER,
        delete_requested_at INTEGER,
        definition TEXT NOT NULL,
        PRIMARY KEY (family, revision)
    );
    CREATE INDEX ecs_task_definitions_by_status ON ecs_task_definitions (status, family, revision);
    CREATE TABLE ecs_tags (
        resource_arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (resource_arn, key)
    );
    CREATE TABLE ecs_tasks (
        task_arn TEXT NOT NULL PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        cluster TEXT NOT NULL,
        task_definition_arn TEXT NOT NULL,
        family TEXT NOT NULL,
        revision INTEGER NOT NULL,
        last_status TEXT NOT NULL,
        desired_status TEXT NOT NULL,
        launch_type TEXT NOT NULL,
        started_by TEXT,
        grp TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        stopping_at INTEGER,
        stopped_at INTEGER,
        stop_code TEXT,
        stopped_reason TEXT,
        health_status TEXT NOT NULL DEFAULT 'UNKNOWN',
        overrides TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '[]',
        containers TEXT NOT NULL DEFAULT '[]',
        attachments TEXT NOT NULL DEFAULT '[]',
        runtime TEXT NOT NULL DEFAULT '{}',
        version INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX ecs_tasks_by_cluster ON ecs_tasks (cluster, last_status);
    CREATE INDEX ecs_tasks_by_task_definition ON ecs_tasks (task_definition_arn, last_status);",
    // 2: what the task endpoint (169.254.170.2) answers for: a task's credentials id (the secret
    // in AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) and each container's metadata id (in
    // ECS_CONTAINER_METADATA_URI_V4), written with the task by RunTask.
    "CREATE TABLE ecs_task_endpoint_ids (
        id TEXT NOT NULL PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('credentials', 'metadata')),
        task_arn TEXT NOT NULL REFERENCES ecs_tasks (task_arn) ON DELETE CASCADE,
        role_arn TEXT,
        container_name TEXT
    );
    CREATE INDEX ecs_task_endpoint_ids_by_task ON ecs_task_endpoint_ids (task_arn);",
];
