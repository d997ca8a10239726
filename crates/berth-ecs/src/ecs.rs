//! The ECS API (awsJson 1.1, `AmazonEC2ContainerServiceV20141113`, signing name `ecs`): clusters,
//! task definitions and tags. Shapes, member names and error codes follow botocore's
//! `ecs/2014-11-13/service-2.json`.
//!
//! Authorization: each operation is `ecs:<Operation>` on the resource ECS authorizes it on (the
//! cluster's ARN, a task definition's ARN, the `resourceArn` of the tagging operations) or on `*`
//! where ECS has no resource-level permission (`CreateCluster`, `ListClusters`,
//! `RegisterTaskDefinition`, `DescribeTaskDefinition`, `DeregisterTaskDefinition`,
//! `ListTaskDefinitions`, `ListTaskDefinitionFamilies`). `DescribeClusters` and
//! `DeleteTaskDefinitions` name several resources: the gateway authorizes the first, the handler
//! the others, so a caller must be allowed on every cluster or revision it names.
//!
//! Handlers validate, write in one store transaction and answer; nothing waits for containers.

use std::sync::Arc;

use berth_aws::context::{Arn, AwsContext};
use berth_aws::time::{SharedClock, Timestamp};
use berth_aws::{
    Authorizer, AuthzRequest, AwsError, BoxFuture, Input, Operation, Output, Protocol, RequestContext, ResourceRule,
    Service, ServiceSpec, WireError,
};
use berth_store::{Store, StoreError};
use serde_json::{json, Map, Value};

use crate::cluster::{self, Cluster, Include};
use crate::error::EcsError;
use crate::input::{missing, page_params, paginate, required_str, str_member, string_list, typed, Page};
use crate::tags::{self, Tag};
use crate::task_definition::{self as td, Reference, ReferenceError, TaskDefinition};
use crate::tasks;

// ---- authorization rules ----

fn json_input(input: &Input) -> Option<&Map<String, Value>> {
    input.as_json()
}

/// The `cluster` member's ARN (DeleteCluster, UpdateClusterSettings).
fn cluster_member(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let reference = json_input(input)
        .and_then(|m| m.get("cluster"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "cluster"))?;
    Ok(cluster::arn_of_reference(&ctx.aws, reference))
}

/// The first cluster `DescribeClusters` names (`default` when none); the handler checks the rest.
fn first_described_cluster(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let first = json_input(input)
        .and_then(|m| m.get("clusters"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or(cluster::DEFAULT_CLUSTER);
    Ok(cluster::arn_of_reference(&ctx.aws, first))
}

/// The first revision `DeleteTaskDefinitions` names; the handler checks the rest.
fn first_deleted_task_definition(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let first = json_input(input)
        .and_then(|m| m.get("taskDefinitions"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "taskDefinitions"))?;
    Ok(td::arn_of_reference(&ctx.aws, first))
}

/// The tagging operations' `resourceArn`, as given.
fn resource_arn_member(_ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    json_input(input)
        .and_then(|m| m.get("resourceArn"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "resourceArn"))
}

/// `RunTask`'s task definition (`family`, `family:revision` or ARN) as an ARN.
fn run_task_definition(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let reference = json_input(input)
        .and_then(|m| m.get("taskDefinition"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "taskDefinition"))?;
    Ok(td::arn_of_reference(&ctx.aws, reference))
}

/// The `cluster` member's ARN, `default` when absent (RunTask, ListTasks).
fn cluster_or_default(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let reference =
        json_input(input).and_then(|m| m.get("cluster")).and_then(Value::as_str).unwrap_or(cluster::DEFAULT_CLUSTER);
    Ok(cluster::arn_of_reference(&ctx.aws, reference))
}

fn task_member_cluster(input: &Input) -> String {
    let reference =
        json_input(input).and_then(|m| m.get("cluster")).and_then(Value::as_str).unwrap_or(cluster::DEFAULT_CLUSTER);
    reference.rsplit('/').next().unwrap_or(reference).to_string()
}

/// `StopTask`'s task as `arn:…:task/<cluster>/<id>`.
fn stopped_task(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let reference = json_input(input)
        .and_then(|m| m.get("task"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "task"))?;
    Ok(crate::run_task::task_arn_of_reference(&ctx.aws, &task_member_cluster(input), reference))
}

/// The first task `DescribeTasks` names; the handler checks the rest.
fn first_described_task(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let first = json_input(input)
        .and_then(|m| m.get("tasks"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "tasks"))?;
    Ok(crate::run_task::task_arn_of_reference(&ctx.aws, &task_member_cluster(input), first))
}

const CLUSTER: ResourceRule = ResourceRule::Arn(cluster_member);
const RESOURCE_ARN: ResourceRule = ResourceRule::Arn(resource_arn_member);

pub static ECS_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "ecs",
    action_prefix: "ecs",
    protocol: Protocol::AwsJson1_1,
    target_prefix: "AmazonEC2ContainerServiceV20141113",
    xml_namespace: "",
    global: false,
    operations: &[
        Operation::action("CreateCluster", "ecs:CreateCluster", ResourceRule::Any),
        Operation::action("DescribeClusters", "ecs:DescribeClusters", ResourceRule::Arn(first_described_cluster)),
        Operation::action("ListClusters", "ecs:ListClusters", ResourceRule::Any),
        Operation::action("DeleteCluster", "ecs:DeleteCluster", CLUSTER),
        Operation::action("UpdateClusterSettings", "ecs:UpdateClusterSettings", CLUSTER),
        Operation::action("RegisterTaskDefinition", "ecs:RegisterTaskDefinition", ResourceRule::Any),
        Operation::action("DescribeTaskDefinition", "ecs:DescribeTaskDefinition", ResourceRule::Any),
        Operation::action("ListTaskDefinitions", "ecs:ListTaskDefinitions", ResourceRule::Any),
        Operation::action("ListTaskDefinitionFamilies", "ecs:ListTaskDefinitionFamilies", ResourceRule::Any),
        Operation::action("DeregisterTaskDefinition", "ecs:DeregisterTaskDefinition", ResourceRule::Any),
        Operation::action(
            "DeleteTaskDefinitions",
            "ecs:DeleteTaskDefinitions",
            ResourceRule::Arn(first_deleted_task_definition),
        ),
        Operation::action("TagResource", "ecs:TagResource", RESOURCE_ARN),
        Operation::action("UntagResource", "ecs:UntagResource", RESOURCE_ARN),
        Operation::action("ListTagsForResource", "ecs:ListTagsForResource", RESOURCE_ARN),
        Operation::action("RunTask", "ecs:RunTask", ResourceRule::Arn(run_task_definition)),
        Operation::action("StopTask", "ecs:StopTask", ResourceRule::Arn(stopped_task)),
        Operation::action("DescribeTasks", "ecs:DescribeTasks", ResourceRule::Arn(first_described_task)),
        Operation::action("ListTasks", "ecs:ListTasks", ResourceRule::Arn(cluster_or_default)),
    ],
};

/// The most clusters one `DescribeClusters` may name, and revisions one `DeleteTaskDefinitions`.
const MAX_DESCRIBED_CLUSTERS: usize = 100;
const MAX_DELETED_TASK_DEFINITIONS: usize = 10;

/// The ECS API service.
pub struct EcsService {
    pub(crate) store: Store,
    clock: SharedClock,
    pub(crate) aws: Arc<AwsContext>,
    /// For the resources after the first of `DescribeClusters`, `DeleteTaskDefinitions` and `DescribeTasks`.
    authorizer: Arc<dyn Authorizer>,
}

/// What a tagging operation's `resourceArn` names.
enum Tagged {
    Cluster(String),
    TaskDefinition { family: String, revision: u32 },
    Task(String),
}

impl EcsService {
    /// Applies ECS's migrations and makes the service.
    pub fn open(
        store: Store,
        clock: SharedClock,
        aws: AwsContext,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<EcsService, StoreError> {
        store.migrate("ecs", crate::schema::MIGRATIONS)?;
        Ok(EcsService { store, clock, aws: Arc::new(aws), authorizer })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Now, in milliseconds since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        match self.clock.now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }

    /// Authorizes `action` on each of `resources` as the gateway does for the first one.
    pub(crate) fn authorize_each(
        &self,
        ctx: &RequestContext,
        action: &str,
        resources: impl IntoIterator<Item = String>,
    ) -> Result<(), AwsError> {
        let now = Timestamp::from_system(self.clock.now());
        for resource in resources {
            let request = AuthzRequest {
                principal: &ctx.principal,
                action,
                resource: &resource,
                source_ip: ctx.source_ip,
                now,
                region: &self.aws.region,
                resource_policy: None,
            };
            if !self.authorizer.is_allowed(&request) {
                let principal_arn = ctx.principal.arn.clone();
                return Err(WireError::AccessDenied { principal_arn, action: action.to_string(), resource }
                    .to_aws(Protocol::AwsJson1_1));
            }
        }
        Ok(())
    }

    // ---- clusters ----

    async fn create_cluster(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let name = str_member(m, "clusterName")?.unwrap_or(cluster::DEFAULT_CLUSTER).to_string();
        if !cluster::valid_name(&name) {
            return Err(EcsError::invalid(format!(
                "Invalid cluster name '{name}'. Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
            )));
        }
        let tags = tags::parse(m.get("tags"), "tags")?;
        let settings = cluster::parse_settings(m.get("settings"))?;
        let (providers, strategy) =
            cluster::parse_capacity_providers(m.get("capacityProviders"), m.get("defaultCapacityProviderStrategy"))?;
        if m.get("configuration").is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty())) {
            return Err(EcsError::invalid(
                "'configuration' is not supported by berth: there is no ECS Exec and no managed storage encryption.",
            ));
        }
        if m.get("serviceConnectDefaults").is_some_and(|v| !v.is_null()) {
            return Err(EcsError::invalid(
                "'serviceConnectDefaults' is not supported by berth: there is no Service Connect (Cloud Map).",
            ));
        }
        let aws = self.aws.clone();
        let now = self.now_ms();
        self.store
            .write(move |tx| {
                if let Some(existing) = cluster::get(tx, &name)?.filter(Cluster::is_active) {
                    // ECS answers a create of an existing ACTIVE cluster with that cluster, unchanged.
                    let counts = tasks::count_by_status(tx, &existing.name)?;
                    let current_tags = tags::get(tx, &existing.arn)?;
                    let include = Include { settings: true, tags: true, statistics: false };
                    return Ok(json!({ "cluster": cluster::to_json(&existing, &counts, &current_tags, include) }));
                }
                let mut all_settings = cluster::default_settings();
                cluster::merge_settings(&mut all_settings, settings);
                let c = Cluster {
                    arn: cluster::arn(&aws, &name),
                    name,
                    status: cluster::ACTIVE.into(),
                    settings: all_settings,
                    capacity_providers: providers,
                    default_capacity_provider_strategy: strategy,
                    created_at: now,
                    deleted_at: None,
                };
                cluster::put(tx, &c)?;
                tags::replace(tx, &c.arn, &tags)?;
                let counts = tasks::count_by_status(tx, &c.name)?;
                tracing::debug!(cluster = %c.name, "created cluster");
                let include = Include { settings: true, tags: true, statistics: false };
                Ok(json!({ "cluster": cluster::to_json(&c, &counts, &tags, include) }))
            })
            .await
    }

    async fn describe_clusters(&self, ctx: &RequestContext, m: &Map<String, Value>) -> Result<Value, AwsError> {
        let references: Vec<String> = match string_list(m, "clusters")? {
            None => vec![cluster::DEFAULT_CLUSTER.to_string()],
            Some(list) if list.is_empty() => vec![cluster::DEFAULT_CLUSTER.to_string()],
            Some(list) => list.into_iter().map(str::to_string).collect(),
        };
        if references.len() > MAX_DESCRIBED_CLUSTERS {
            return Err(EcsError::invalid(format!(
                "At most {MAX_DESCRIBED_CLUSTERS} clusters can be described at once."
            ))
            .into());
        }
        let mut include = Include::default();
        for field in string_list(m, "include")?.unwrap_or_default() {
            match field {
                "SETTINGS" => include.settings = true,
                "STATISTICS" => include.statistics = true,
                "TAGS" => include.tags = true,
                // Clusters in berth have no attachments or configuration: asking for them adds nothing.
                "ATTACHMENTS" | "CONFIGURATIONS" => {}
                other => {
                    return Err(EcsError::invalid(format!(
                        "Invalid include value '{other}'. Valid values are ATTACHMENTS, CONFIGURATIONS, SETTINGS, STATISTICS and TAGS."
                    ))
                    .into())
                }
            }
        }
        self.authorize_each(
            ctx,
            "ecs:DescribeClusters",
            references.iter().skip(1).map(|r| cluster::arn_of_reference(&self.aws, r)),
        )?;
        let aws = self.aws.clone();
        let out = self
            .store
            .read(move |conn| {
                let mut clusters = Vec::new();
                let mut failures = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for reference in &references {
                    let found = match cluster::name_of(&aws, reference) {
                        Some(name) => cluster::get(conn, &name)?,
                        None => None,
                    };
                    match found {
                        Some(c) => {
                            if seen.insert(c.name.clone()) {
                                let counts = tasks::count_by_status(conn, &c.name)?;
                                let tag_list = if include.tags { tags::get(conn, &c.arn)? } else { Vec::new() };
                                clusters.push(cluster::to_json(&c, &counts, &tag_list, include));
                            }
                        }
                        None => failures.push(json!({
                            "arn": cluster::arn_of_reference(&aws, reference),
                            "reason": "MISSING",
                        })),
                    }
                }
                Ok::<_, EcsError>(json!({ "clusters": clusters, "failures": failures }))
            })
            .await?;
        Ok(out)
    }

    async fn list_clusters(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        const SCOPE: &str = "ListClusters";
        let page = page_params(m, SCOPE)?;
        let Page { max, after } = &page;
        let (max, after) = (*max, after.clone());
        let rows = self.store.read(move |conn| cluster::list_active(conn, after.as_deref(), max)).await?;
        let items = rows.into_iter().map(|c| (c.name, c.arn)).collect();
        let (arns, next) = paginate(items, &page, SCOPE);
        let mut out = json!({ "clusterArns": arns });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    /// The cluster a `cluster` member names; `ClusterNotFoundException` when it cannot name one.
    fn cluster_name(&self, m: &Map<String, Value>) -> Result<String, EcsError> {
        let reference = required_str(m, "cluster")?;
        cluster::name_of(&self.aws, reference).ok_or_else(EcsError::cluster_not_found)
    }

    async fn delete_cluster(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let name = self.cluster_name(m)?;
        let now = self.now_ms();
        self.store
            .write(move |tx| {
                let mut c = cluster::get(tx, &name)?.ok_or_else(EcsError::cluster_not_found)?;
                let counts = tasks::count_by_status(tx, &c.name)?;
                if c.is_active() {
                    if counts.not_stopped() > 0 {
                        return Err(EcsError::ClusterContainsTasks(
                            "The Cluster cannot be deleted while Tasks are active.".into(),
                        ));
                    }
                    c.status = cluster::INACTIVE.into();
                    c.deleted_at = Some(now);
                    cluster::put(tx, &c)?;
                    tracing::debug!(cluster = %c.name, "deleted cluster");
                }
                let include = Include { settings: true, ..Include::default() };
                Ok(json!({ "cluster": cluster::to_json(&c, &counts, &[], include) }))
            })
            .await
    }

    async fn update_cluster_settings(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let name = self.cluster_name(m)?;
        let settings = cluster::parse_settings(m.get("settings"))?;
        if settings.is_empty() {
            return Err(missing("settings"));
        }
        self.store
            .write(move |tx| {
                let mut c = cluster::get_active(tx, &name)?;
                cluster::merge_settings(&mut c.settings, settings);
                cluster::put(tx, &c)?;
                let counts = tasks::count_by_status(tx, &c.name)?;
                let include = Include { settings: true, ..Include::default() };
                Ok(json!({ "cluster": cluster::to_json(&c, &counts, &[], include) }))
            })
            .await
    }

    // ---- task definitions ----

    async fn register_task_definition(&self, ctx: &RequestContext, m: &Map<String, Value>) -> Result<Value, EcsError> {
        const MAX_SIZE: usize = 64 * 1024;
        let body = Value::Object(m.clone());
        if body.to_string().len() > MAX_SIZE {
            return Err(EcsError::client("The task definition is larger than the limit of 64 KiB."));
        }
        let input: td::RegisterInput = typed(body)?;
        let (family, spec, tag_list) = td::validate(input, &self.aws)?;
        let aws = self.aws.clone();
        let now = self.now_ms();
        let registered_by = ctx.principal.arn.clone();
        self.store
            .write(move |tx| {
                let revision = td::next_revision(tx, &family)?;
                let def = TaskDefinition {
                    arn: td::arn(&aws, &family, revision),
                    family,
                    revision,
                    status: td::ACTIVE.into(),
                    registered_at: now,
                    registered_by,
                    deregistered_at: None,
                    delete_requested_at: None,
                    spec,
                };
                td::insert(tx, &def)?;
                tags::add(tx, &def.arn, &tag_list)?;
                tracing::debug!(task_definition = %def.arn, "registered task definition");
                let mut out = json!({ "taskDefinition": def.to_json() });
                if !tag_list.is_empty() {
                    out["tags"] = tags::to_json(&tag_list);
                }
                Ok(out)
            })
            .await
    }

    async fn describe_task_definition(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let reference = required_str(m, "taskDefinition")?;
        let mut with_tags = false;
        for field in string_list(m, "include")?.unwrap_or_default() {
            match field {
                "TAGS" => with_tags = true,
                other => {
                    return Err(EcsError::invalid(format!("Invalid include value '{other}'. The valid value is TAGS.")))
                }
            }
        }
        let unable = || EcsError::client("Unable to describe task definition.");
        let reference = match td::parse_reference(&self.aws, reference) {
            Ok(r) => r,
            Err(ReferenceError::NotFound) => return Err(unable()),
            Err(ReferenceError::BadRevision(n)) => {
                return Err(EcsError::client(format!("Invalid revision number. Number: {n}")))
            }
        };
        self.store
            .read(move |conn| {
                let def = td::resolve(conn, &reference)?.ok_or_else(unable)?;
                let mut out = json!({ "taskDefinition": def.to_json() });
                if with_tags {
                    out["tags"] = tags::to_json(&tags::get(conn, &def.arn)?);
                }
                Ok(out)
            })
            .await
    }

    async fn list_task_definitions(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let prefix = str_member(m, "familyPrefix")?.map(str::to_string);
        let status = match str_member(m, "status")? {
            None => td::ACTIVE,
            Some(s @ (td::ACTIVE | td::INACTIVE | td::DELETE_IN_PROGRESS)) => s,
            Some(other) => {
                return Err(EcsError::invalid(format!(
                    "Invalid status '{other}'. Valid values are ACTIVE, INACTIVE and DELETE_IN_PROGRESS."
                )))
            }
        }
        .to_string();
        let desc = match str_member(m, "sort")? {
            None | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(EcsError::invalid(format!("Invalid sort '{other}'. Valid values are ASC and DESC.")))
            }
        };
        let scope = if desc { "ListTaskDefinitions/DESC" } else { "ListTaskDefinitions/ASC" };
        let page = page_params(m, scope)?;
        let after = match &page.after {
            None => None,
            Some(key) => {
                let parsed = key.rsplit_once(':').and_then(|(f, r)| Some((f.to_string(), r.parse::<u32>().ok()?)));
                Some(parsed.ok_or_else(|| EcsError::invalid("Invalid nextToken."))?)
            }
        };
        let max = page.max;
        let rows = self
            .store
            .read(move |conn| {
                td::list(conn, prefix.as_deref(), &status, desc, after.as_ref().map(|(f, r)| (f.as_str(), *r)), max)
            })
            .await?;
        let items = rows.into_iter().map(|(family, revision, arn)| (format!("{family}:{revision}"), arn)).collect();
        let (arns, next) = paginate(items, &page, scope);
        let mut out = json!({ "taskDefinitionArns": arns });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    async fn list_task_definition_families(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        const SCOPE: &str = "ListTaskDefinitionFamilies";
        let prefix = str_member(m, "familyPrefix")?.map(str::to_string);
        let status = match str_member(m, "status")? {
            None | Some("ALL") => "ALL",
            Some(s @ (td::ACTIVE | td::INACTIVE)) => s,
            Some(other) => {
                return Err(EcsError::invalid(format!(
                    "Invalid status '{other}'. Valid values are ACTIVE, INACTIVE and ALL."
                )))
            }
        }
        .to_string();
        let page = page_params(m, SCOPE)?;
        let (max, after) = (page.max, page.after.clone());
        let rows =
            self.store.read(move |conn| td::families(conn, prefix.as_deref(), &status, after.as_deref(), max)).await?;
        let items = rows.into_iter().map(|f| (f.clone(), f)).collect();
        let (families, next) = paginate(items, &page, SCOPE);
        let mut out = json!({ "families": families });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }

    async fn deregister_task_definition(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let reference = required_str(m, "taskDefinition")?;
        let not_found = || EcsError::client("The specified task definition does not exist.");
        let (family, revision) = match td::parse_reference(&self.aws, reference) {
            Ok(Reference::Revision { family, revision }) => (family, revision),
            Ok(Reference::Family(_)) => return Err(EcsError::client("Revision is missing.")),
            Err(ReferenceError::NotFound) => return Err(not_found()),
            Err(ReferenceError::BadRevision(n)) => {
                return Err(EcsError::client(format!("Invalid revision number. Number: {n}")))
            }
        };
        let now = self.now_ms();
        self.store
            .write(move |tx| {
                let mut def = td::get(tx, &family, revision)?.ok_or_else(not_found)?;
                // Deregistering again answers with the revision as it is.
                if def.status == td::ACTIVE {
                    td::set_status(tx, &def.arn, td::INACTIVE, now)?;
                    def.status = td::INACTIVE.into();
                    def.deregistered_at = Some(now);
                    tracing::debug!(task_definition = %def.arn, "deregistered task definition");
                }
                Ok(json!({ "taskDefinition": def.to_json() }))
            })
            .await
    }

    async fn delete_task_definitions(&self, ctx: &RequestContext, m: &Map<String, Value>) -> Result<Value, AwsError> {
        let references: Vec<String> = string_list(m, "taskDefinitions")?
            .ok_or_else(|| missing("taskDefinitions"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        if references.is_empty() || references.len() > MAX_DELETED_TASK_DEFINITIONS {
            return Err(EcsError::invalid(format!(
                "taskDefinitions must name between 1 and {MAX_DELETED_TASK_DEFINITIONS} task definitions."
            ))
            .into());
        }
        self.authorize_each(
            ctx,
            "ecs:DeleteTaskDefinitions",
            references.iter().skip(1).map(|r| td::arn_of_reference(&self.aws, r)),
        )?;
        let aws = self.aws.clone();
        let now = self.now_ms();
        let out = self
            .store
            .write(move |tx| {
                let mut deleted = Vec::new();
                let mut failures = Vec::new();
                for reference in &references {
                    match delete_one(tx, &aws, reference, now)? {
                        Ok(def) => deleted.push(def),
                        Err(failure) => failures.push(failure),
                    }
                }
                Ok::<_, EcsError>(json!({ "taskDefinitions": deleted, "failures": failures }))
            })
            .await?;
        Ok(out)
    }

    // ---- tags ----

    /// What `resourceArn` names, if it is an ECS resource of this account and region that tags apply to.
    fn tagged(&self, m: &Map<String, Value>) -> Result<Tagged, EcsError> {
        let arn = required_str(m, "resourceArn")?;
        let invalid = || {
            EcsError::invalid(format!(
                "Invalid resourceArn '{arn}': berth tags clusters, task definitions and tasks of ECS."
            ))
        };
        let parsed = Arn::parse(arn).ok_or_else(invalid)?;
        if parsed.service != "ecs" {
            return Err(invalid());
        }
        let here = parsed.partition == self.aws.partition
            && parsed.region == self.aws.region
            && parsed.account_id == self.aws.account_id;
        let (kind, rest) = parsed.resource.split_once('/').ok_or_else(invalid)?;
        match kind {
            "cluster" => {
                if !here || !cluster::valid_name(rest) {
                    return Err(EcsError::cluster_not_found());
                }
                Ok(Tagged::Cluster(rest.to_string()))
            }
            "task-definition" => {
                let not_found = || EcsError::ResourceNotFound("The specified task definition does not exist.".into());
                if !here {
                    return Err(not_found());
                }
                match td::parse_reference(&self.aws, arn) {
                    Ok(Reference::Revision { family, revision }) => Ok(Tagged::TaskDefinition { family, revision }),
                    _ => Err(not_found()),
                }
            }
            "task" => {
                if !here {
                    return Err(EcsError::ResourceNotFound("The specified task does not exist.".into()));
                }
                Ok(Tagged::Task(arn.to_string()))
            }
            _ => Err(invalid()),
        }
    }

    /// The ARN of a tagged resource that exists, with its current tags.
    fn tagged_now(conn: &berth_store::rusqlite::Connection, what: &Tagged) -> Result<(String, Vec<Tag>), EcsError> {
        match what {
            Tagged::Cluster(name) => {
                let c = cluster::get(conn, name)?.ok_or_else(EcsError::cluster_not_found)?;
                let current = tags::get(conn, &c.arn)?;
                Ok((c.arn, current))
            }
            Tagged::TaskDefinition { family, revision } => {
                let def = td::get(conn, family, *revision)?.ok_or_else(|| {
                    EcsError::ResourceNotFound("The specified task definition does not exist.".into())
                })?;
                let current = tags::get(conn, &def.arn)?;
                Ok((def.arn, current))
            }
            Tagged::Task(arn) => {
                let task = tasks::get(conn, arn)?
                    .ok_or_else(|| EcsError::ResourceNotFound("The specified task does not exist.".into()))?;
                Ok((task.task_arn, task.tags))
            }
        }
    }

    async fn tag_resource(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        if m.get("tags").is_none_or(Value::is_null) {
            return Err(missing("tags"));
        }
        let new = tags::parse(m.get("tags"), "tags")?;
        let what = self.tagged(m)?;
        self.store
            .write(move |tx| {
                let (arn, mut current) = Self::tagged_now(tx, &what)?;
                match what {
                    Tagged::Task(_) => {
                        for t in new {
                            match current.iter_mut().find(|c| c.key == t.key) {
                                Some(c) => c.value = t.value,
                                None => current.push(t),
                            }
                        }
                        if current.len() > tags::MAX_TAGS {
                            return Err(tags::too_many());
                        }
                        tasks::set_tags(tx, &arn, &current)?;
                    }
                    _ => tags::add(tx, &arn, &new)?,
                }
                Ok(json!({}))
            })
            .await
    }

    async fn untag_resource(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let keys: Vec<String> =
            string_list(m, "tagKeys")?.ok_or_else(|| missing("tagKeys"))?.into_iter().map(str::to_string).collect();
        for k in &keys {
            if !(1..=128).contains(&k.chars().count()) {
                return Err(EcsError::invalid(format!("Tag key '{k}' is invalid: tag keys have 1 to 128 characters.")));
            }
        }
        let what = self.tagged(m)?;
        self.store
            .write(move |tx| {
                let (arn, current) = Self::tagged_now(tx, &what)?;
                match what {
                    Tagged::Task(_) => {
                        let kept: Vec<Tag> = current.into_iter().filter(|t| !keys.contains(&t.key)).collect();
                        tasks::set_tags(tx, &arn, &kept)?;
                    }
                    _ => {
                        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                        tags::remove(tx, &arn, &keys)?;
                    }
                }
                Ok(json!({}))
            })
            .await
    }

    async fn list_tags_for_resource(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let what = self.tagged(m)?;
        self.store
            .read(move |conn| {
                let (_, current) = Self::tagged_now(conn, &what)?;
                Ok(json!({ "tags": tags::to_json(&current) }))
            })
            .await
    }
}

/// One revision of `DeleteTaskDefinitions`: `Ok(Ok(definition))` when it is (being) deleted,
/// `Ok(Err(failure))` when it cannot be. An INACTIVE revision becomes DELETE_IN_PROGRESS and is gone
/// at once unless a task still uses it; the task controller finishes the deletion when that task
/// stops ([`td::purge_deleted`]).
fn delete_one(
    tx: &berth_store::rusqlite::Connection,
    aws: &AwsContext,
    reference: &str,
    now: i64,
) -> Result<Result<Value, Value>, EcsError> {
    let failure = |arn: String, reason: &str, detail: &str| json!({ "arn": arn, "reason": reason, "detail": detail });
    let missing = |detail: &str| Ok(Err(failure(td::arn_of_reference(aws, reference), "MISSING", detail)));
    let (family, revision) = match td::parse_reference(aws, reference) {
        Ok(Reference::Revision { family, revision }) => (family, revision),
        Ok(Reference::Family(_)) => return missing("A revision must be specified (family:revision)."),
        Err(ReferenceError::BadRevision(n)) => return missing(&format!("Invalid revision number. Number: {n}")),
        Err(ReferenceError::NotFound) => return missing("The specified task definition does not exist."),
    };
    let Some(mut def) = td::get(tx, &family, revision)? else {
        return missing("The specified task definition does not exist.");
    };
    match def.status.as_str() {
        td::ACTIVE => {
            let detail = "The task definition is ACTIVE: deregister it (DeregisterTaskDefinition) before deleting it.";
            return Ok(Err(failure(def.arn, "ACTIVE", detail)));
        }
        td::INACTIVE => {
            td::set_status(tx, &def.arn, td::DELETE_IN_PROGRESS, now)?;
            def.status = td::DELETE_IN_PROGRESS.into();
            def.delete_requested_at = Some(now);
            if !tasks::task_definition_in_use(tx, &def.arn)? {
                td::delete(tx, &def.arn)?;
            }
            tracing::debug!(task_definition = %def.arn, "deleted task definition");
        }
        // Already DELETE_IN_PROGRESS: answered as it is.
        _ => {}
    }
    Ok(Ok(def.to_json()))
}

impl Service for EcsService {
    fn spec(&self) -> &'static ServiceSpec {
        &ECS_SPEC
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let empty = Map::new();
            let m = input.as_json().unwrap_or(&empty);
            let out = match ctx.operation {
                "CreateCluster" => self.create_cluster(m).await?,
                "DescribeClusters" => self.describe_clusters(ctx, m).await?,
                "ListClusters" => self.list_clusters(m).await?,
                "DeleteCluster" => self.delete_cluster(m).await?,
                "UpdateClusterSettings" => self.update_cluster_settings(m).await?,
                "RegisterTaskDefinition" => self.register_task_definition(ctx, m).await?,
                "DescribeTaskDefinition" => self.describe_task_definition(m).await?,
                "ListTaskDefinitions" => self.list_task_definitions(m).await?,
                "ListTaskDefinitionFamilies" => self.list_task_definition_families(m).await?,
                "DeregisterTaskDefinition" => self.deregister_task_definition(m).await?,
                "DeleteTaskDefinitions" => self.delete_task_definitions(ctx, m).await?,
                "TagResource" => self.tag_resource(m).await?,
                "UntagResource" => self.untag_resource(m).await?,
                "ListTagsForResource" => self.list_tags_for_resource(m).await?,
                "RunTask" => self.run_task(m).await?,
                "StopTask" => self.stop_task(m).await?,
                "DescribeTasks" => self.describe_tasks(ctx, m).await?,
                "ListTasks" => self.list_tasks(m).await?,
                op => return Err(AwsError::client("UnknownOperationException", format!("Unknown operation {op}"))),
            };
            Ok(Output::Json(out))
        })
    }
}
