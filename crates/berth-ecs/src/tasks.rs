//! The `ecs_tasks` table: one row per task, the desired and last known state the task controller
//! drives containers from. This first piece only reads it (counts for `DescribeClusters`, the
//! checks of `DeleteCluster` and `DeleteTaskDefinitions`, tags of tasks); `RunTask` inserts rows
//! with [`TaskRow::insert`] and the controller moves them along.

use std::collections::BTreeMap;

use berth_store::rusqlite::{named_params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::error::EcsError;
use crate::tags::Tag;

/// `lastStatus`/`desiredStatus` values (ECS's task lifecycle).
pub const PROVISIONING: &str = "PROVISIONING";
pub const PENDING: &str = "PENDING";
pub const ACTIVATING: &str = "ACTIVATING";
pub const RUNNING: &str = "RUNNING";
pub const DEACTIVATING: &str = "DEACTIVATING";
pub const STOPPING: &str = "STOPPING";
pub const DEPROVISIONING: &str = "DEPROVISIONING";
pub const STOPPED: &str = "STOPPED";

/// One row of `ecs_tasks`. Times are milliseconds since the epoch; JSON columns are kept as
/// [`Value`]s so that their shapes belong to the code that writes them.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    pub task_arn: String,
    pub task_id: String,
    /// The cluster's name.
    pub cluster: String,
    pub task_definition_arn: String,
    pub family: String,
    pub revision: u32,
    pub last_status: String,
    pub desired_status: String,
    pub launch_type: String,
    pub started_by: Option<String>,
    pub group: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub stopping_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub health_status: String,
    pub overrides: Value,
    pub tags: Vec<Tag>,
    pub containers: Value,
    pub attachments: Value,
    /// The runtime driver's data (container ids, network, …).
    pub runtime: Value,
    /// Incremented by every write of the row.
    pub version: i64,
}

const COLUMNS: &str =
    "task_arn, task_id, cluster, task_definition_arn, family, revision, last_status, desired_status, \
     launch_type, started_by, grp, created_at, started_at, stopping_at, stopped_at, stop_code, stopped_reason, \
     health_status, overrides, tags, containers, attachments, runtime, version";

fn json_column(row: &Row<'_>, idx: usize) -> berth_store::rusqlite::Result<Value> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        berth_store::rusqlite::Error::FromSqlConversionFailure(
            idx,
            berth_store::rusqlite::types::Type::Text,
            Box::new(e),
        )
    })
}

impl TaskRow {
    /// Reads a row selected with the columns in table order (`SELECT task_arn, task_id, …`).
    pub fn from_row(row: &Row<'_>) -> berth_store::rusqlite::Result<TaskRow> {
        let tags = json_column(row, 19)?;
        let tags: Vec<Tag> = serde_json::from_value(tags).map_err(|e| {
            berth_store::rusqlite::Error::FromSqlConversionFailure(
                19,
                berth_store::rusqlite::types::Type::Text,
                Box::new(e),
            )
        })?;
        Ok(TaskRow {
            task_arn: row.get(0)?,
            task_id: row.get(1)?,
            cluster: row.get(2)?,
            task_definition_arn: row.get(3)?,
            family: row.get(4)?,
            revision: row.get(5)?,
            last_status: row.get(6)?,
            desired_status: row.get(7)?,
            launch_type: row.get(8)?,
            started_by: row.get(9)?,
            group: row.get(10)?,
            created_at: row.get(11)?,
            started_at: row.get(12)?,
            stopping_at: row.get(13)?,
            stopped_at: row.get(14)?,
            stop_code: row.get(15)?,
            stopped_reason: row.get(16)?,
            health_status: row.get(17)?,
            overrides: json_column(row, 18)?,
            tags,
            containers: json_column(row, 20)?,
            attachments: json_column(row, 21)?,
            runtime: json_column(row, 22)?,
            version: row.get(23)?,
        })
    }

    /// Inserts the row as it is (`version` included).
    pub fn insert(&self, conn: &Connection) -> Result<(), EcsError> {
        conn.execute(
            &format!(
                "INSERT INTO ecs_tasks ({COLUMNS}) VALUES (:task_arn, :task_id, :cluster, :task_definition_arn, :family, \
                 :revision, :last_status, :desired_status, :launch_type, :started_by, :grp, :created_at, :started_at, \
                 :stopping_at, :stopped_at, :stop_code, :stopped_reason, :health_status, :overrides, :tags, :containers, \
                 :attachments, :runtime, :version)"
            ),
            named_params! {
                ":task_arn": self.task_arn,
                ":task_id": self.task_id,
                ":cluster": self.cluster,
                ":task_definition_arn": self.task_definition_arn,
                ":family": self.family,
                ":revision": self.revision,
                ":last_status": self.last_status,
                ":desired_status": self.desired_status,
                ":launch_type": self.launch_type,
                ":started_by": self.started_by,
                ":grp": self.group,
                ":created_at": self.created_at,
                ":started_at": self.started_at,
                ":stopping_at": self.stopping_at,
                ":stopped_at": self.stopped_at,
                ":stop_code": self.stop_code,
                ":stopped_reason": self.stopped_reason,
                ":health_status": self.health_status,
                ":overrides": self.overrides.to_string(),
                ":tags": crate::tags::to_json(&self.tags).to_string(),
                ":containers": self.containers.to_string(),
                ":attachments": self.attachments.to_string(),
                ":runtime": self.runtime.to_string(),
                ":version": self.version,
            },
        )?;
        Ok(())
    }
}

/// The task with this ARN.
pub fn get(conn: &Connection, task_arn: &str) -> Result<Option<TaskRow>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM ecs_tasks WHERE task_arn = ?1"))?;
    Ok(stmt.query_row([task_arn], TaskRow::from_row).optional()?)
}

/// Replaces a task's tags, bumping its version. `false` if there is no such task.
pub fn set_tags(conn: &Connection, task_arn: &str, tags: &[Tag]) -> Result<bool, EcsError> {
    let n = conn.execute(
        "UPDATE ecs_tasks SET tags = ?2, version = version + 1 WHERE task_arn = ?1",
        [task_arn, &crate::tags::to_json(tags).to_string()],
    )?;
    Ok(n > 0)
}

/// How many tasks of a cluster are in each `lastStatus`, by launch type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// `(launch_type, last_status)` → count.
    pub by_launch_type_and_status: BTreeMap<(String, String), u64>,
}

impl TaskCounts {
    fn sum(&self, launch_type: Option<&str>, statuses: &[&str]) -> u64 {
        self.by_launch_type_and_status
            .iter()
            .filter(|((lt, st), _)| launch_type.is_none_or(|l| l == lt) && statuses.contains(&st.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    /// `runningTasksCount`: tasks in the RUNNING state.
    pub fn running(&self) -> u64 {
        self.sum(None, &[RUNNING])
    }

    /// `pendingTasksCount`: tasks on their way to RUNNING (PROVISIONING, PENDING, ACTIVATING).
    pub fn pending(&self) -> u64 {
        self.sum(None, &[PROVISIONING, PENDING, ACTIVATING])
    }

    pub fn running_with(&self, launch_type: &str) -> u64 {
        self.sum(Some(launch_type), &[RUNNING])
    }

    pub fn pending_with(&self, launch_type: &str) -> u64 {
        self.sum(Some(launch_type), &[PROVISIONING, PENDING, ACTIVATING])
    }

    /// Tasks not yet STOPPED, in any state: what keeps a cluster from being deleted.
    pub fn not_stopped(&self) -> u64 {
        self.by_launch_type_and_status.iter().filter(|((_, st), _)| st != STOPPED).map(|(_, n)| n).sum()
    }
}

/// Counts the tasks of `cluster` (a name) by launch type and `lastStatus`.
pub fn count_by_status(conn: &Connection, cluster: &str) -> Result<TaskCounts, EcsError> {
    let mut stmt = conn.prepare_cached(
        "SELECT launch_type, last_status, COUNT(*) FROM ecs_tasks WHERE cluster = ?1 GROUP BY launch_type, last_status",
    )?;
    let rows =
        stmt.query_map([cluster], |r| Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), r.get::<_, i64>(2)?)))?;
    let mut counts = TaskCounts::default();
    for row in rows {
        let (key, n) = row?;
        counts.by_launch_type_and_status.insert(key, n.max(0) as u64);
    }
    Ok(counts)
}

/// Whether a task that is not STOPPED still uses this task definition revision (so that a
/// deleted revision must stay `DELETE_IN_PROGRESS`).
pub fn task_definition_in_use(conn: &Connection, task_definition_arn: &str) -> Result<bool, EcsError> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM ecs_tasks WHERE task_definition_arn = ?1 AND last_status != 'STOPPED')",
    )?;
    Ok(stmt.query_row([task_definition_arn], |r| r.get(0))?)
}

/// The task whose id (the last part of its ARN) is `task_id`.
pub fn get_by_id(conn: &Connection, task_id: &str) -> Result<Option<TaskRow>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM ecs_tasks WHERE task_id = ?1"))?;
    Ok(stmt.query_row([task_id], TaskRow::from_row).optional()?)
}

/// Every task not yet STOPPED: what the task controller drives.
pub fn not_stopped(conn: &Connection) -> Result<Vec<TaskRow>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM ecs_tasks WHERE last_status != 'STOPPED' ORDER BY created_at"
    ))?;
    let rows = stmt.query_map([], TaskRow::from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The ARNs of every task in the table, in any state (to tell adopted containers from orphans).
pub fn all_arns(conn: &Connection) -> Result<Vec<(String, String)>, EcsError> {
    let mut stmt = conn.prepare_cached("SELECT task_arn, last_status FROM ecs_tasks")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// What `ListTasks` filters on.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub cluster: String,
    pub family: Option<String>,
    pub started_by: Option<String>,
    /// `RUNNING` or `STOPPED`: the tasks whose `desiredStatus` is that.
    pub desired_status: String,
}

/// Task ARNs matching `filter`, by ARN, after `after`, at most `limit` + 1.
pub fn list_arns(
    conn: &Connection,
    filter: &ListFilter,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, EcsError> {
    let mut stmt = conn.prepare_cached(
        "SELECT task_arn FROM ecs_tasks WHERE cluster = ?1 AND desired_status = ?2 \
         AND (?3 IS NULL OR family = ?3) AND (?4 IS NULL OR started_by = ?4) AND task_arn > ?5 \
         ORDER BY task_arn LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        berth_store::rusqlite::params![
            filter.cluster,
            filter.desired_status,
            filter.family,
            filter.started_by,
            after.unwrap_or(""),
            (limit + 1) as i64
        ],
        |r| r.get(0),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Writes every column of `row` if its version is still `row.version`, bumping it. `false` when
/// someone else wrote the row in between (or it is gone): re-read and decide again.
pub fn update(conn: &Connection, row: &TaskRow) -> Result<bool, EcsError> {
    let n = conn.execute(
        "UPDATE ecs_tasks SET last_status = :last_status, desired_status = :desired_status, started_at = :started_at, \
         stopping_at = :stopping_at, stopped_at = :stopped_at, stop_code = :stop_code, stopped_reason = :stopped_reason, \
         health_status = :health_status, tags = :tags, containers = :containers, attachments = :attachments, \
         runtime = :runtime, version = version + 1 WHERE task_arn = :task_arn AND version = :version",
        named_params! {
            ":task_arn": row.task_arn,
            ":last_status": row.last_status,
            ":desired_status": row.desired_status,
            ":started_at": row.started_at,
            ":stopping_at": row.stopping_at,
            ":stopped_at": row.stopped_at,
            ":stop_code": row.stop_code,
            ":stopped_reason": row.stopped_reason,
            ":health_status": row.health_status,
            ":tags": crate::tags::to_json(&row.tags).to_string(),
            ":containers": row.containers.to_string(),
            ":attachments": row.attachments.to_string(),
            ":runtime": row.runtime.to_string(),
            ":version": row.version,
        },
    )?;
    Ok(n > 0)
}

/// How many tasks STOPPED before `cutoff` (ms) are still kept.
pub fn count_stopped_before(conn: &Connection, cutoff: i64) -> Result<u64, EcsError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM ecs_tasks WHERE last_status = 'STOPPED' AND stopped_at < ?1",
        [cutoff],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Deletes tasks STOPPED before `cutoff` (ms), with their endpoint ids; returns how many.
pub fn delete_stopped_before(conn: &Connection, cutoff: i64) -> Result<usize, EcsError> {
    conn.execute(
        "DELETE FROM ecs_task_endpoint_ids WHERE task_arn IN \
         (SELECT task_arn FROM ecs_tasks WHERE last_status = 'STOPPED' AND stopped_at < ?1)",
        [cutoff],
    )?;
    Ok(conn.execute("DELETE FROM ecs_tasks WHERE last_status = 'STOPPED' AND stopped_at < ?1", [cutoff])?)
}

/// Records one of a task's ids on the task endpoint (`kind` is `credentials` or `metadata`).
pub fn insert_endpoint_id(
    conn: &Connection,
    id: &str,
    kind: &str,
    task_arn: &str,
    role_arn: Option<&str>,
    container_name: Option<&str>,
) -> Result<(), EcsError> {
    conn.execute(
        "INSERT INTO ecs_task_endpoint_ids (id, kind, task_arn, role_arn, container_name) VALUES (?1, ?2, ?3, ?4, ?5)",
        berth_store::rusqlite::params![id, kind, task_arn, role_arn, container_name],
    )?;
    Ok(())
}

/// A task's endpoint ids: `(id, kind, container_name)`.
pub fn endpoint_ids(conn: &Connection, task_arn: &str) -> Result<Vec<(String, String, Option<String>)>, EcsError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, kind, container_name FROM ecs_task_endpoint_ids WHERE task_arn = ?1")?;
    let rows = stmt.query_map([task_arn], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
