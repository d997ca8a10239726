//! `RunTask`, `StopTask`, `DescribeTasks` and `ListTasks`: the task API. The handlers only write
//! rows (one transaction each) and answer; the task controller ([`crate::task_controller`]) sees
//! the change and does the Docker work.
//!
//! A task's row holds its ECS `Task` members: `containers` is the array of ECS `Container` shapes
//! (with `runtimeId` once created), `runtime` the controller's own data (`pullStartedAt`,
//! `pullStoppedAt`, `executionStoppedAt` in ms, the effective `taskRoleArn`/`executionRoleArn`, the
//! `connectivity`).

use berth_aws::context::{Arn, AwsContext};
use berth_aws::ids;
use berth_aws::RequestContext;
use serde_json::{json, Map, Value};

use crate::cluster;
use crate::ecs::EcsService;
use crate::error::EcsError;
use crate::input::{array_member, i64_member, page_params, paginate, str_member, string_list, Page};
use crate::tags::{self, Tag};
use crate::task_definition::{self as td, epoch_seconds, Reference, ReferenceError};
use crate::tasks::{self, TaskRow};

/// ECS's most tasks one `RunTask` starts.
pub const MAX_COUNT: i64 = 10;
/// The most tasks one `DescribeTasks` names.
pub const MAX_DESCRIBED: usize = 100;

/// `arn:aws:ecs:<region>:<account>:task/<cluster>/<id>`.
pub fn task_arn(aws: &AwsContext, cluster: &str, task_id: &str) -> String {
    aws.arn("ecs", &format!("task/{cluster}/{task_id}"))
}

/// A task reference (`id` or ARN) as a task ARN, for authorization and failures.
pub fn task_arn_of_reference(aws: &AwsContext, cluster: &str, reference: &str) -> String {
    if reference.starts_with("arn:") {
        reference.to_string()
    } else {
        task_arn(aws, cluster, reference)
    }
}

/// The task id a reference names: the last part of an ARN of this account and region, or the id.
fn task_id_of(aws: &AwsContext, reference: &str) -> Option<String> {
    if reference.starts_with("arn:") {
        let a = Arn::parse(reference)?;
        if a.service != "ecs" || a.region != aws.region || a.account_id != aws.account_id {
            return None;
        }
        let rest = a.resource.strip_prefix("task/")?;
        return rest.rsplit('/').next().map(str::to_string);
    }
    Some(reference.to_string())
}

/// 32 lowercase hex digits, as ECS's task ids.
fn new_task_id() -> String {
    let mut b = [0u8; 16];
    ids::random_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A long random id for the task endpoint (the secret part of the credentials URI).
fn new_endpoint_id() -> String {
    format!("{}{}", ids::uuid_v4(), ids::uuid_v4().replace('-', ""))
}

/// One `containerOverrides` entry, checked.
#[derive(Clone, Debug, Default)]
struct ContainerOverride {
    name: String,
    command: Option<Vec<String>>,
    environment: Vec<(String, String)>,
    cpu: Option<i64>,
    memory: Option<i64>,
    memory_reservation: Option<i64>,
}

fn parse_overrides(
    overrides: &Map<String, Value>,
    spec: &td::TaskDefinitionSpec,
) -> Result<Vec<ContainerOverride>, EcsError> {
    let mut out = Vec::new();
    for item in array_member(overrides, "containerOverrides")?.into_iter().flatten() {
        let m =
            item.as_object().ok_or_else(|| EcsError::Serialization("containerOverrides: expected objects".into()))?;
        let name = str_member(m, "name")?.ok_or_else(|| EcsError::invalid("Container override name is required."))?;
        if spec.container(name).is_none() {
            return Err(EcsError::invalid(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
        let command = string_list(m, "command")?.map(|c| c.into_iter().map(str::to_string).collect());
        let mut environment = Vec::new();
        for kv in array_member(m, "environment")?.into_iter().flatten() {
            let (Some(k), v) = (kv["name"].as_str(), kv["value"].as_str()) else {
                return Err(EcsError::invalid("Environment overrides need a name."));
            };
            environment.push((k.to_string(), v.unwrap_or_default().to_string()));
        }
        if array_member(m, "environmentFiles")?.is_some_and(|f| !f.is_empty()) {
            return Err(EcsError::client("'environmentFiles' is not supported by berth (no S3)."));
        }
        let cpu = i64_member(m, "cpu")?;
        let memory = i64_member(m, "memory")?;
        let memory_reservation = i64_member(m, "memoryReservation")?;
        for (what, v) in [("cpu", cpu), ("memory", memory), ("memoryReservation", memory_reservation)] {
            if v.is_some_and(|v| v < 0) {
                return Err(EcsError::invalid(format!("Container override {what} must not be negative.")));
            }
        }
        if memory.is_some_and(|m| m < i64::from(td::MIN_CONTAINER_MEMORY_MIB)) {
            return Err(EcsError::client(format!(
                "Invalid 'memory' setting for container '{name}'. The memory limit must be at least {} MiB.",
                td::MIN_CONTAINER_MEMORY_MIB
            )));
        }
        out.push(ContainerOverride { name: name.to_string(), command, environment, cpu, memory, memory_reservation });
    }
    Ok(out)
}

fn role_member(m: &Map<String, Value>, member: &str) -> Result<Option<String>, EcsError> {
    let Some(arn) = str_member(m, member)? else { return Ok(None) };
    match Arn::parse(arn) {
        Some(a) if a.service == "iam" && a.resource.starts_with("role/") => Ok(Some(arn.to_string())),
        _ => Err(EcsError::client(format!("Role is not valid: {member} '{arn}' is not an IAM role ARN."))),
    }
}

impl EcsService {
    pub(crate) async fn run_task(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let cluster_ref = str_member(m, "cluster")?.unwrap_or(cluster::DEFAULT_CLUSTER);
        let cluster_name = cluster::name_of(&self.aws, cluster_ref).ok_or_else(EcsError::cluster_not_found)?;
        let td_ref = str_member(m, "taskDefinition")?.ok_or_else(|| crate::input::missing("taskDefinition"))?;
        let reference = match td::parse_reference(&self.aws, td_ref) {
            Ok(r) => r,
            Err(ReferenceError::BadRevision(n)) => {
                return Err(EcsError::client(format!("Invalid revision number. Number: {n}")))
            }
            Err(ReferenceError::NotFound) => return Err(EcsError::client("TaskDefinition not found.")),
        };
        let count = i64_member(m, "count")?.unwrap_or(1);
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(EcsError::invalid(format!("count must be between 1 and {MAX_COUNT}.")));
        }
        let started_by = str_member(m, "startedBy")?.map(str::to_string);
        if started_by.as_ref().is_some_and(|s| s.chars().count() > 128) {
            return Err(EcsError::invalid("startedBy can be at most 128 characters."));
        }
        let group = str_member(m, "group")?.map(str::to_string);
        let launch_type = str_member(m, "launchType")?.unwrap_or("EC2").to_string();
        if !["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"].contains(&launch_type.as_str()) {
            return Err(EcsError::invalid(format!("Invalid launchType '{launch_type}'.")));
        }
        let tags: Vec<Tag> = tags::parse(m.get("tags"), "tags")?;
        let overrides_in = match m.get("overrides") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(_) => return Err(EcsError::Serialization("Invalid value for 'overrides': expected an object".into())),
        };
        let task_role_override = role_member(&overrides_in, "taskRoleArn")?;
        let execution_role_override = role_member(&overrides_in, "executionRoleArn")?;
        let network_configuration = m.get("networkConfiguration").cloned().filter(|v| !v.is_null());

        let aws = self.aws.clone();
        let now = self.now_ms();
        self.store
            .write(move |tx| {
                let c = cluster::get_active(tx, &cluster_name)?;
                let def = match &reference {
                    // A family alone: its latest ACTIVE revision; a revision: ACTIVE or INACTIVE, as ECS allows.
                    Reference::Family(f) => td::latest_active(tx, f)?,
                    r => td::resolve(tx, r)?.filter(|d| d.status != td::DELETE_IN_PROGRESS),
                }
                .ok_or_else(|| EcsError::client("TaskDefinition not found."))?;
                let spec = &def.spec;
                if spec.network_mode == td::NetworkMode::Awsvpc && launch_type == "FARGATE" && network_configuration.is_none() {
                    return Err(EcsError::invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified."));
                }
                let container_overrides = parse_overrides(&overrides_in, spec)?;
                let task_role = task_role_override.clone().or_else(|| spec.task_role_arn.clone());
                let execution_role = execution_role_override.clone().or_else(|| spec.execution_role_arn.clone());
                let group = group.clone().unwrap_or_else(|| format!("family:{}", def.family));
                let mut overrides_out = json!({
                    "containerOverrides": overrides_in.get("containerOverrides").cloned().unwrap_or(json!([])),
                    "inferenceAcceleratorOverrides": [],
                });
                if let Some(r) = &task_role_override {
                    overrides_out["taskRoleArn"] = json!(r);
                }
                if let Some(r) = &execution_role_override {
                    overrides_out["executionRoleArn"] = json!(r);
                }
                let mut out = Vec::new();
                for _ in 0..count {
                    let task_id = new_task_id();
                    let arn = task_arn(&aws, &c.name, &task_id);
                    let containers: Vec<Value> = spec
                        .container_definitions
                        .iter()
                        .map(|cd| {
                            let o = container_overrides.iter().find(|o| o.name == cd.name);
                            let mut v = json!({
                                "containerArn": aws.arn("ecs", &format!("container/{}/{task_id}/{}", c.name, ids::uuid_v4())),
                                "taskArn": arn,
                                "name": cd.name,
                                "image": cd.image,
                                "lastStatus": tasks::PENDING,
                                "networkBindings": [],
                                "networkInterfaces": [],
                                "healthStatus": "UNKNOWN",
                                "cpu": o.and_then(|o| o.cpu).unwrap_or(i64::from(cd.cpu)).to_string(),
                            });
                            if let Some(mem) = o.and_then(|o| o.memory).or(cd.memory.map(i64::from)) {
                                v["memory"] = json!(mem.to_string());
                            }
                            if let Some(mem) =
                                o.and_then(|o| o.memory_reservation).or(cd.memory_reservation.map(i64::from))
                            {
                                v["memoryReservation"] = json!(mem.to_string());
                            }
                            v
                        })
                        .collect();
                    let row = TaskRow {
                        task_arn: arn.clone(),
                        task_id: task_id.clone(),
                        cluster: c.name.clone(),
                        task_definition_arn: def.arn.clone(),
                        family: def.family.clone(),
                        revision: def.revision,
                        last_status: tasks::PROVISIONING.into(),
                        desired_status: tasks::RUNNING.into(),
                        launch_type: launch_type.clone(),
                        started_by: started_by.clone(),
                        group: Some(group.clone()),
                        created_at: now,
                        started_at: None,
                        stopping_at: None,
                        stopped_at: None,
                        stop_code: None,
                        stopped_reason: None,
                        health_status: "UNKNOWN".into(),
                        overrides: overrides_out.clone(),
                        tags: tags.clone(),
                        containers: Value::Array(containers),
                        attachments: json!([]),
                        runtime: json!({
                            "taskRoleArn": task_role,
                            "executionRoleArn": execution_role,
                            "containerOverrides": container_overrides.iter().map(|o| json!({
                                "name": o.name,
                                "command": o.command,
                                "environment": o.environment.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                                "cpu": o.cpu,
                                "memory": o.memory,
                                "memoryReservation": o.memory_reservation,
                            })).collect::<Vec<_>>(),
                        }),
                        version: 1,
                    };
                    row.insert(tx)?;
                    if let Some(role) = &task_role {
                        tasks::insert_endpoint_id(tx, &new_endpoint_id(), "credentials", &arn, Some(role), None)?;
                    }
                    for cd in &spec.container_definitions {
                        tasks::insert_endpoint_id(tx, &new_endpoint_id(), "metadata", &arn, None, Some(&cd.name))?;
                    }
                    tracing::debug!(task = %arn, task_definition = %def.arn, "task requested");
                    out.push(task_json(&row, &aws, spec, true));
                }
                Ok(json!({ "tasks": out, "failures": [] }))
            })
            .await
    }

    pub(crate) async fn stop_task(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        let cluster_ref = str_member(m, "cluster")?.unwrap_or(cluster::DEFAULT_CLUSTER);
        let cluster_name = cluster::name_of(&self.aws, cluster_ref).ok_or_else(EcsError::cluster_not_found)?;
        let task_ref = str_member(m, "task")?.ok_or_else(|| crate::input::missing("task"))?;
        let reason = str_member(m, "reason")?.unwrap_or("Task stopped by user").to_string();
        if reason.chars().count() > 255 {
            return Err(EcsError::invalid("reason can be at most 255 characters."));
        }
        let task_id = task_id_of(&self.aws, task_ref);
        let aws = self.aws.clone();
        let now = self.now_ms();
        self.store
            .write(move |tx| {
                cluster::get(tx, &cluster_name)?.ok_or_else(EcsError::cluster_not_found)?;
                let not_found = || EcsError::invalid("The referenced task was not found.");
                let id = task_id.ok_or_else(not_found)?;
                let mut row = tasks::get_by_id(tx, &id)?.filter(|r| r.cluster == cluster_name).ok_or_else(not_found)?;
                if row.desired_status != tasks::STOPPED {
                    row.desired_status = tasks::STOPPED.into();
                    row.stop_code = Some("UserInitiated".into());
                    row.stopped_reason = Some(reason);
                    row.stopping_at = Some(now);
                    if !tasks::update(tx, &row)? {
                        return Err(EcsError::client("The task changed while it was being stopped; try again."));
                    }
                    row.version += 1;
                    tracing::debug!(task = %row.task_arn, "task stop requested");
                }
                let spec = td_spec(tx, &row)?;
                Ok(json!({ "task": task_json(&row, &aws, &spec, false) }))
            })
            .await
    }

    pub(crate) async fn describe_tasks(
        &self,
        ctx: &RequestContext,
        m: &Map<String, Value>,
    ) -> Result<Value, berth_aws::AwsError> {
        let cluster_ref = str_member(m, "cluster")?.unwrap_or(cluster::DEFAULT_CLUSTER);
        let cluster_name = cluster::name_of(&self.aws, cluster_ref).ok_or_else(EcsError::cluster_not_found)?;
        let refs: Vec<String> = string_list(m, "tasks")?
            .ok_or_else(|| crate::input::missing("tasks"))?
            .into_iter()
            .map(str::to_string)
            .collect();
        if refs.is_empty() || refs.len() > MAX_DESCRIBED {
            return Err(EcsError::invalid(format!(
                "Tasks cannot be empty and at most {MAX_DESCRIBED} can be described."
            ))
            .into());
        }
        let include_tags = string_list(m, "include")?.unwrap_or_default().contains(&"TAGS");
        self.authorize_each(
            ctx,
            "ecs:DescribeTasks",
            refs.iter().skip(1).map(|r| task_arn_of_reference(&self.aws, &cluster_name, r)),
        )?;
        let aws = self.aws.clone();
        let out = self
            .store
            .read(move |conn| {
                cluster::get(conn, &cluster_name)?.ok_or_else(EcsError::cluster_not_found)?;
                let mut found = Vec::new();
                let mut failures = Vec::new();
                for r in &refs {
                    let row = match task_id_of(&aws, r) {
                        Some(id) => tasks::get_by_id(conn, &id)?.filter(|t| t.cluster == cluster_name),
                        None => None,
                    };
                    match row {
                        Some(row) => {
                            let spec = td_spec(conn, &row)?;
                            found.push(task_json(&row, &aws, &spec, include_tags));
                        }
                        None => failures
                            .push(json!({ "arn": task_arn_of_reference(&aws, &cluster_name, r), "reason": "MISSING" })),
                    }
                }
                Ok::<_, EcsError>(json!({ "tasks": found, "failures": failures }))
            })
            .await?;
        Ok(out)
    }

    pub(crate) async fn list_tasks(&self, m: &Map<String, Value>) -> Result<Value, EcsError> {
        const SCOPE: &str = "ListTasks";
        let cluster_ref = str_member(m, "cluster")?.unwrap_or(cluster::DEFAULT_CLUSTER);
        let cluster_name = cluster::name_of(&self.aws, cluster_ref).ok_or_else(EcsError::cluster_not_found)?;
        let desired = str_member(m, "desiredStatus")?.unwrap_or(tasks::RUNNING).to_string();
        if desired != tasks::RUNNING && desired != tasks::STOPPED && desired != tasks::PENDING {
            return Err(EcsError::invalid(format!("Invalid desiredStatus '{desired}'.")));
        }
        let family = str_member(m, "family")?.map(str::to_string);
        let started_by = str_member(m, "startedBy")?.map(str::to_string);
        if str_member(m, "serviceName")?.is_some() {
            // berth has no services: no task was started by one.
            return Ok(json!({ "taskArns": [] }));
        }
        let page = page_params(m, SCOPE)?;
        let Page { max, after } = &page;
        let (max, after) = (*max, after.clone());
        // ECS has no tasks with desiredStatus PENDING: asking for them lists nothing.
        let filter = tasks::ListFilter { cluster: cluster_name.clone(), family, started_by, desired_status: desired };
        let arns = self
            .store
            .read(move |conn| {
                cluster::get(conn, &cluster_name)?.ok_or_else(EcsError::cluster_not_found)?;
                tasks::list_arns(conn, &filter, after.as_deref(), max)
            })
            .await?;
        let items = arns.into_iter().map(|a| (a.clone(), a)).collect();
        let (arns, next) = paginate(items, &page, SCOPE);
        let mut out = json!({ "taskArns": arns });
        if let Some(n) = next {
            out["nextToken"] = json!(n);
        }
        Ok(out)
    }
}

/// The definition a task runs (kept while the task uses it, also when deleted).
pub(crate) fn td_spec(
    conn: &berth_store::rusqlite::Connection,
    row: &TaskRow,
) -> Result<td::TaskDefinitionSpec, EcsError> {
    Ok(td::get(conn, &row.family, row.revision)?.map(|d| d.spec).unwrap_or_else(|| td::TaskDefinitionSpec {
        container_definitions: Vec::new(),
        network_mode: td::NetworkMode::Bridge,
        task_role_arn: None,
        execution_role_arn: None,
        volumes: Vec::new(),
        requires_compatibilities: None,
        compatibilities: Vec::new(),
        cpu: None,
        memory: None,
        runtime_platform: None,
    }))
}

/// The ECS `Task` shape of a row.
pub fn task_json(row: &TaskRow, aws: &AwsContext, spec: &td::TaskDefinitionSpec, include_tags: bool) -> Value {
    let mut t = json!({
        "taskArn": row.task_arn,
        "clusterArn": cluster::arn(aws, &row.cluster),
        "taskDefinitionArn": row.task_definition_arn,
        "lastStatus": row.last_status,
        "desiredStatus": row.desired_status,
        "launchType": row.launch_type,
        "createdAt": epoch_seconds(row.created_at),
        "group": row.group,
        "healthStatus": row.health_status,
        "overrides": row.overrides,
        "containers": row.containers,
        "attachments": row.attachments,
        "availabilityZone": format!("{}a", aws.region),
        "enableExecuteCommand": false,
        "version": row.version,
        "attributes": [{ "name": "ecs.cpu-architecture", "value": "x86_64" }],
    });
    if let Some(cpu) = &spec.cpu {
        t["cpu"] = json!(cpu);
    }
    if let Some(mem) = &spec.memory {
        t["memory"] = json!(mem);
    }
    if let Some(s) = &row.started_by {
        t["startedBy"] = json!(s);
    }
    for (member, v) in [
        ("startedAt", row.started_at),
        ("stoppingAt", row.stopping_at),
        ("stoppedAt", row.stopped_at),
        ("pullStartedAt", row.runtime["pullStartedAt"].as_i64()),
        ("pullStoppedAt", row.runtime["pullStoppedAt"].as_i64()),
        ("executionStoppedAt", row.runtime["executionStoppedAt"].as_i64()),
        ("connectivityAt", row.runtime["connectivityAt"].as_i64()),
    ] {
        if let Some(ms) = v {
            t[member] = epoch_seconds(ms);
        }
    }
    if row.runtime["connectivityAt"].is_i64() {
        t["connectivity"] = json!("CONNECTED");
    }
    if let Some(c) = &row.stop_code {
        t["stopCode"] = json!(c);
    }
    if let Some(r) = &row.stopped_reason {
        t["stoppedReason"] = json!(r);
    }
    if include_tags {
        t["tags"] = tags::to_json(&row.tags);
    }
    t
}
