//! Clusters: names, ARNs, settings, capacity providers, and their rows in `ecs_clusters`.
//!
//! A cluster in berth is a name tasks are grouped under (and, for `awsvpc` tasks, a Docker network
//! the runtime makes); there are no container instances: every task runs on berth's Docker Engine.

use berth_aws::context::{Arn, AwsContext};
use berth_store::rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::EcsError;

pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";
/// The cluster ECS uses when a request names none.
pub const DEFAULT_CLUSTER: &str = "default";

/// The capacity providers berth accepts on a cluster: AWS's own two (every task runs on berth's
/// Docker Engine whichever is named; berth has no `CreateCapacityProvider`).
pub const CAPACITY_PROVIDERS: &[&str] = &["FARGATE", "FARGATE_SPOT"];

/// `containerInsights`, the one cluster setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSetting {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityProviderStrategyItem {
    #[serde(rename = "capacityProvider")]
    pub capacity_provider: String,
    pub weight: i64,
    pub base: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    pub settings: Vec<ClusterSetting>,
    pub capacity_providers: Vec<String>,
    pub default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

impl Cluster {
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }
}

/// `arn:aws:ecs:<region>:<account>:cluster/<name>`.
pub fn arn(aws: &AwsContext, name: &str) -> String {
    aws.arn("ecs", &format!("cluster/{name}"))
}

/// A cluster name: 1–255 letters, numbers, underscores and hyphens.
pub fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a `cluster` member names: a cluster name, or a cluster ARN of this account and region.
/// `None` when it cannot name a cluster of berth's (ECS then reports the cluster as missing).
pub fn name_of(aws: &AwsContext, reference: &str) -> Option<String> {
    let name = if reference.starts_with("arn:") {
        let a = Arn::parse(reference)?;
        if a.partition != aws.partition
            || a.service != "ecs"
            || a.region != aws.region
            || a.account_id != aws.account_id
        {
            return None;
        }
        a.resource.strip_prefix("cluster/")?
    } else {
        reference
    };
    valid_name(name).then(|| name.to_string())
}

/// The ARN a `cluster` member stands for, as authorization and failures name it: the ARN itself
/// when one is given, else the ARN of the name.
pub fn arn_of_reference(aws: &AwsContext, reference: &str) -> String {
    if reference.starts_with("arn:") {
        reference.to_string()
    } else {
        arn(aws, reference)
    }
}

/// `settings`: `containerInsights` with `enhanced`, `enabled` or `disabled`.
pub fn parse_settings(value: Option<&Value>) -> Result<Vec<ClusterSetting>, EcsError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let settings: Vec<ClusterSetting> = serde_json::from_value(value.clone())
        .map_err(|e| EcsError::Serialization(format!("Invalid value for 'settings': {e}")))?;
    for s in &settings {
        if s.name != "containerInsights" {
            return Err(EcsError::invalid(format!(
                "Invalid cluster setting name '{}'. The only cluster setting is containerInsights.",
                s.name
            )));
        }
        if !["enhanced", "enabled", "disabled"].contains(&s.value.as_str()) {
            return Err(EcsError::invalid(format!(
                "Invalid value '{}' for cluster setting containerInsights. Valid values are enhanced, enabled and disabled.",
                s.value
            )));
        }
    }
    Ok(settings)
}

/// `settings` merged into `current`: a setting given replaces the one of the same name.
pub fn merge_settings(current: &mut Vec<ClusterSetting>, new: Vec<ClusterSetting>) {
    for s in new {
        match current.iter_mut().find(|c| c.name == s.name) {
            Some(c) => c.value = s.value,
            None => current.push(s),
        }
    }
}

pub fn default_settings() -> Vec<ClusterSetting> {
    vec![ClusterSetting { name: "containerInsights".into(), value: "disabled".into() }]
}

/// `capacityProviders` and `defaultCapacityProviderStrategy`: only AWS's `FARGATE` and
/// `FARGATE_SPOT`; the strategy may only name providers of the cluster, with ECS's ranges for
/// `weight` (0–1000) and `base` (0–100000, on one item at most).
pub fn parse_capacity_providers(
    providers: Option<&Value>,
    strategy: Option<&Value>,
) -> Result<(Vec<String>, Vec<CapacityProviderStrategyItem>), EcsError> {
    let providers: Vec<String> = match providers.filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| EcsError::Serialization(format!("Invalid value for 'capacityProviders': {e}")))?,
    };
    for p in &providers {
        if !CAPACITY_PROVIDERS.contains(&p.as_str()) {
            return Err(EcsError::invalid(format!(
                "The specified capacity provider '{p}' does not exist. berth has no capacity providers of its own: \
                 only FARGATE and FARGATE_SPOT may be named (every task runs on berth's Docker Engine)."
            )));
        }
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(rename = "capacityProvider")]
        capacity_provider: Option<String>,
        weight: Option<i64>,
        base: Option<i64>,
    }
    let items: Vec<Item> = match strategy.filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            EcsError::Serialization(format!("Invalid value for 'defaultCapacityProviderStrategy': {e}"))
        })?,
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = item.capacity_provider.ok_or_else(|| crate::input::missing("capacityProvider"))?;
        if !providers.contains(&name) {
            return Err(EcsError::invalid(format!(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated \
                 with the cluster: '{name}'."
            )));
        }
        let weight = item.weight.unwrap_or(0);
        let base = item.base.unwrap_or(0);
        if !(0..=1000).contains(&weight) {
            return Err(EcsError::invalid("The capacity provider strategy weight must be between 0 and 1000."));
        }
        if !(0..=100_000).contains(&base) {
            return Err(EcsError::invalid("The capacity provider strategy base must be between 0 and 100000."));
        }
        if out.iter().any(|i: &CapacityProviderStrategyItem| i.capacity_provider == name) {
            return Err(EcsError::invalid(format!("The capacity provider '{name}' is named more than once.")));
        }
        out.push(CapacityProviderStrategyItem { capacity_provider: name, weight, base });
    }
    if out.iter().filter(|i| i.base > 0).count() > 1 {
        return Err(EcsError::invalid("Only one capacity provider in a strategy can have a base defined."));
    }
    Ok((providers, out))
}

const COLUMNS: &str =
    "name, arn, status, settings, capacity_providers, default_capacity_provider_strategy, created_at, deleted_at";

fn json_err(idx: usize, e: serde_json::Error) -> berth_store::rusqlite::Error {
    berth_store::rusqlite::Error::FromSqlConversionFailure(idx, berth_store::rusqlite::types::Type::Text, Box::new(e))
}

fn from_row(r: &Row<'_>) -> berth_store::rusqlite::Result<Cluster> {
    let settings: String = r.get(3)?;
    let providers: String = r.get(4)?;
    let strategy: String = r.get(5)?;
    Ok(Cluster {
        name: r.get(0)?,
        arn: r.get(1)?,
        status: r.get(2)?,
        settings: serde_json::from_str(&settings).map_err(|e| json_err(3, e))?,
        capacity_providers: serde_json::from_str(&providers).map_err(|e| json_err(4, e))?,
        default_capacity_provider_strategy: serde_json::from_str(&strategy).map_err(|e| json_err(5, e))?,
        created_at: r.get(6)?,
        deleted_at: r.get(7)?,
    })
}

/// The cluster of this name, ACTIVE or INACTIVE.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Cluster>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM ecs_clusters WHERE name = ?1"))?;
    Ok(stmt.query_row([name], from_row).optional()?)
}

/// The ACTIVE cluster of this name, or `ClusterNotFoundException`.
pub fn get_active(conn: &Connection, name: &str) -> Result<Cluster, EcsError> {
    get(conn, name)?.filter(Cluster::is_active).ok_or_else(EcsError::cluster_not_found)
}

/// ACTIVE clusters' names after `after`, by name, at most `limit` + 1 (to know whether more follow).
pub fn list_active(conn: &Connection, after: Option<&str>, limit: usize) -> Result<Vec<Cluster>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM ecs_clusters WHERE status = 'ACTIVE' AND name > ?1 ORDER BY name LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after.unwrap_or(""), (limit + 1) as i64], from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Writes the whole row (insert, or replace the cluster of the same name).
pub fn put(conn: &Connection, c: &Cluster) -> Result<(), EcsError> {
    conn.execute(
        &format!(
            "INSERT INTO ecs_clusters ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (name) DO UPDATE SET arn = excluded.arn, status = excluded.status,
                 settings = excluded.settings, capacity_providers = excluded.capacity_providers,
                 default_capacity_provider_strategy = excluded.default_capacity_provider_strategy,
                 created_at = excluded.created_at, deleted_at = excluded.deleted_at"
        ),
        params![
            c.name,
            c.arn,
            c.status,
            json(&c.settings),
            json(&c.capacity_providers),
            json(&c.default_capacity_provider_strategy),
            c.created_at,
            c.deleted_at
        ],
    )?;
    Ok(())
}

/// A JSON column's text. These types (strings, numbers, lists of them) always serialize.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// What a `Cluster` answer includes besides its base members.
#[derive(Clone, Copy, Debug, Default)]
pub struct Include {
    pub settings: bool,
    pub statistics: bool,
    pub tags: bool,
}

/// The `Cluster` shape. `counts` are the cluster's tasks; `tags` are written when `include.tags`.
pub fn to_json(c: &Cluster, counts: &crate::tasks::TaskCounts, tags: &[crate::tags::Tag], include: Include) -> Value {
    let mut out = json!({
        "clusterArn": c.arn,
        "clusterName": c.name,
        "status": c.status,
        "registeredContainerInstancesCount": 0,
        "runningTasksCount": counts.running(),
        "pendingTasksCount": counts.pending(),
        "activeServicesCount": 0,
        "statistics": [],
        "tags": [],
        "capacityProviders": c.capacity_providers,
        "defaultCapacityProviderStrategy": c.default_capacity_provider_strategy,
    });
    if include.settings {
        out["settings"] = json!(c.settings);
    }
    if include.tags {
        out["tags"] = crate::tags::to_json(tags);
    }
    if include.statistics {
        let stat = |name: &str, n: u64| json!({ "name": name, "value": n.to_string() });
        out["statistics"] = json!([
            stat("runningEC2TasksCount", counts.running_with("EC2")),
            stat("runningFargateTasksCount", counts.running_with("FARGATE")),
            stat("runningExternalTasksCount", counts.running_with("EXTERNAL")),
            stat("pendingEC2TasksCount", counts.pending_with("EC2")),
            stat("pendingFargateTasksCount", counts.pending_with("FARGATE")),
            stat("pendingExternalTasksCount", counts.pending_with("EXTERNAL")),
            stat("activeEC2ServiceCount", 0),
            stat("activeFargateServiceCount", 0),
            stat("drainingEC2ServiceCount", 0),
            stat("drainingFargateServiceCount", 0),
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_references_are_names_or_arns_of_this_account_and_region() {
        let aws = AwsContext::default();
        assert_eq!(name_of(&aws, "web_1-a").as_deref(), Some("web_1-a"));
        assert_eq!(name_of(&aws, "arn:aws:ecs:us-east-1:000000000000:cluster/prod").as_deref(), Some("prod"));
        for bad in [
            "",
            "has space",
            "arn:aws:ecs:eu-west-1:000000000000:cluster/prod",
            "arn:aws:ecs:us-east-1:111111111111:cluster/prod",
            "arn:aws:ecs:us-east-1:000000000000:service/prod",
            "arn:aws:ecr:us-east-1:000000000000:cluster/prod",
        ] {
            assert_eq!(name_of(&aws, bad), None, "{bad}");
        }
        assert!(valid_name(&"a".repeat(255)) && !valid_name(&"a".repeat(256)));
    }

    #[test]
    fn capacity_providers_are_aws_own_and_strategies_name_them() {
        let (p, s) = parse_capacity_providers(
            Some(&json!(["FARGATE"])),
            Some(&json!([{ "capacityProvider": "FARGATE", "weight": 1 }])),
        )
        .unwrap();
        assert_eq!(p, vec!["FARGATE"]);
        assert_eq!(s[0], CapacityProviderStrategyItem { capacity_provider: "FARGATE".into(), weight: 1, base: 0 });
        assert!(parse_capacity_providers(Some(&json!(["mine"])), None).is_err());
        assert!(parse_capacity_providers(
            Some(&json!(["FARGATE"])),
            Some(&json!([{ "capacityProvider": "FARGATE_SPOT" }]))
        )
        .is_err());
        assert!(parse_capacity_providers(
            Some(&json!(["FARGATE"])),
            Some(&json!([{ "capacityProvider": "FARGATE", "weight": 1001 }]))
        )
        .is_err());
        assert!(parse_settings(Some(&json!([{ "name": "containerInsights", "value": "on" }]))).is_err());
        assert!(parse_settings(Some(&json!([{ "name": "other", "value": "enabled" }]))).is_err());
    }
}
