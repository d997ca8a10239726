//! Task definitions: `RegisterTaskDefinition`'s input checked as ECS checks it and normalized as
//! ECS returns it ([`TaskDefinitionSpec`]: defaults filled in, task `cpu`/`memory` in units and MiB),
//! and their rows in `ecs_task_definitions`.
//!
//! The typed structures are what the task controller starts containers from: read a revision with
//! [`get`] (or [`resolve`] for a `family[:revision]`/ARN reference) and use
//! [`TaskDefinition::spec`].
//!
//! What berth refuses rather than ignores (each with a `ClientException` naming the member):
//! `environmentFiles` (S3), `repositoryCredentials`, `restartPolicy`, `linuxParameters`,
//! `privileged`/`disableNetworking`/`interactive`/`pseudoTerminal` set to true,
//! `dockerSecurityOptions`, `systemControls`, `resourceRequirements`, `firelensConfiguration`,
//! `credentialSpecs`, `containerPortRange`, log drivers other than `awslogs`, `json-file` and
//! `none`, EFS/FSx/S3 Files volumes, `configuredAtLaunch`, Docker volume drivers other than
//! `local`, and at task level `placementConstraints`, `pidMode`, `ipcMode`, `proxyConfiguration`,
//! `inferenceAccelerators`, `ephemeralStorage`, `enableFaultInjection` and Windows runtime
//! platforms. Empty lists and `false` for these are accepted, so a definition copied from
//! `DescribeTaskDefinition` registers again.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_aws::context::{Arn, AwsContext};
use berth_store::rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::EcsError;
use crate::tags::Tag;

pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";
pub const DELETE_IN_PROGRESS: &str = "DELETE_IN_PROGRESS";

/// ECS's quota of containers in one task definition.
pub const MAX_CONTAINERS: usize = 10;
/// The Docker Engine (20.10 and later) refuses a container memory limit under 6 MiB.
pub const MIN_CONTAINER_MEMORY_MIB: u32 = 6;
/// ECS's range for task-level CPU units outside Fargate.
const TASK_CPU_RANGE: std::ops::RangeInclusive<u32> = 128..=196_608;
/// Fargate's longest `stopTimeout`.
const FARGATE_MAX_STOP_TIMEOUT: u32 = 120;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge,
    Host,
    Awsvpc,
    None,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
            NetworkMode::Awsvpc => "awsvpc",
            NetworkMode::None => "none",
        }
    }

    fn parse(s: &str) -> Option<NetworkMode> {
        Some(match s {
            "bridge" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            "awsvpc" => NetworkMode::Awsvpc,
            "none" => NetworkMode::None,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compatibility {
    #[serde(rename = "EC2")]
    Ec2,
    #[serde(rename = "FARGATE")]
    Fargate,
    #[serde(rename = "EXTERNAL")]
    External,
    #[serde(rename = "MANAGED_INSTANCES")]
    ManagedInstances,
}

impl Compatibility {
    fn parse(s: &str) -> Option<Compatibility> {
        Some(match s {
            "EC2" => Compatibility::Ec2,
            "FARGATE" => Compatibility::Fargate,
            "EXTERNAL" => Compatibility::External,
            "MANAGED_INSTANCES" => Compatibility::ManagedInstances,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProtocol {
    Http,
    Http2,
    Grpc,
}

/// When a container may start relative to another (`dependsOn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerCondition {
    /// The other container has started.
    Start,
    /// The other container has exited (any exit code).
    Complete,
    /// The other container has exited with code 0.
    Success,
    /// The other container's health check passes.
    Healthy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    /// `0` in `bridge` mode when the host port is chosen at start (dynamic mapping); equal to
    /// `container_port` in `awsvpc` and `host` mode.
    pub host_port: u16,
    pub protocol: TransportProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<AppProtocol>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValuePair {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeFrom {
    pub source_container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// A secret injected as an environment variable: `value_from` names a Secrets Manager secret or
/// an SSM parameter; it is resolved when the task starts, not here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: ContainerCondition,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    /// `awslogs`, `json-file` or `none`.
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_options: Option<Vec<Secret>>,
}

/// A container health check, with ECS's defaults filled in (interval 30 s, timeout 5 s, 3 retries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `["CMD", exe, args…]` or `["CMD-SHELL", "command line"]`.
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    /// CPU units (1024 = one vCPU); 0 when not given, as ECS reports it.
    pub cpu: u32,
    /// Hard limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Soft limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    pub port_mappings: Vec<PortMapping>,
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub environment: Vec<KeyValuePair>,
    pub mount_points: Vec<MountPoint>,
    pub volumes_from: Vec<VolumeFrom>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<Secret>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<ContainerDependency>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    /// `enabled` (tags are resolved to digests at start, the default) or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<HostEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostVolumeProperties {
    /// A host path bind-mounted into the containers; without it Docker makes an anonymous volume
    /// that lives as long as the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerVolumeConfiguration {
    /// `task` (removed with the task) or `shared` (kept).
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoprovision: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolumeProperties>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_volume_configuration: Option<DockerVolumeConfiguration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
}

/// The normalized definition, as stored (`ecs_task_definitions.definition`) and as ECS returns
/// it (the members of `TaskDefinition` that do not depend on the revision's state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionSpec {
    pub container_definitions: Vec<ContainerDefinition>,
    pub network_mode: NetworkMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    pub volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_compatibilities: Option<Vec<Compatibility>>,
    /// The launch types the definition is valid for, computed at registration.
    pub compatibilities: Vec<Compatibility>,
    /// Task CPU units, normalized (`"0.25 vCPU"` → `"256"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Task memory in MiB, normalized (`"1 GB"` → `"1024"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
}

impl TaskDefinitionSpec {
    /// Task CPU units, if set at task level.
    pub fn cpu_units(&self) -> Option<u32> {
        self.cpu.as_deref().and_then(|c| c.parse().ok())
    }

    /// Task memory in MiB, if set at task level.
    pub fn memory_mib(&self) -> Option<u32> {
        self.memory.as_deref().and_then(|m| m.parse().ok())
    }

    pub fn container(&self, name: &str) -> Option<&ContainerDefinition> {
        self.container_definitions.iter().find(|c| c.name == name)
    }
}

/// One revision of a family, with its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDefinition {
    pub arn: String,
    pub family: String,
    pub revision: u32,
    /// `ACTIVE`, `INACTIVE` or `DELETE_IN_PROGRESS`.
    pub status: String,
    /// Milliseconds since the epoch.
    pub registered_at: i64,
    /// The ARN of the principal that registered it.
    pub registered_by: String,
    pub deregistered_at: Option<i64>,
    pub delete_requested_at: Option<i64>,
    pub spec: TaskDefinitionSpec,
}

/// ECS times: seconds since the epoch, with milliseconds.
pub fn epoch_seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

impl TaskDefinition {
    /// The `TaskDefinition` shape.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::to_value(&self.spec).unwrap_or_else(|_| json!({}));
        out["taskDefinitionArn"] = json!(self.arn);
        out["family"] = json!(self.family);
        out["revision"] = json!(self.revision);
        out["status"] = json!(self.status);
        out["placementConstraints"] = json!([]);
        out["registeredAt"] = epoch_seconds(self.registered_at);
        out["registeredBy"] = json!(self.registered_by);
        if let Some(t) = self.deregistered_at {
            out["deregisteredAt"] = epoch_seconds(t);
        }
        if let Some(t) = self.delete_requested_at {
            out["deleteRequestedAt"] = epoch_seconds(t);
        }
        out
    }
}

/// `arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>`.
pub fn arn(aws: &AwsContext, family: &str, revision: u32) -> String {
    aws.arn("ecs", &format!("task-definition/{family}:{revision}"))
}

/// A family (and container or volume) name: 1–255 letters, numbers, underscores and hyphens.
pub fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

// ---- references ----

/// What a `taskDefinition` member names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A family: its latest ACTIVE revision.
    Family(String),
    Revision {
        family: String,
        revision: u32,
    },
}

/// Why a reference names nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceError {
    /// Not a task definition of this account and region (or not a valid family).
    NotFound,
    /// The part after the last `:` is not a revision number.
    BadRevision(String),
}

/// Parses `family`, `family:revision` or a task definition ARN of this account and region.
pub fn parse_reference(aws: &AwsContext, s: &str) -> Result<Reference, ReferenceError> {
    let short = if s.starts_with("arn:") {
        let a = Arn::parse(s).ok_or(ReferenceError::NotFound)?;
        if a.partition != aws.partition
            || a.service != "ecs"
            || a.region != aws.region
            || a.account_id != aws.account_id
        {
            return Err(ReferenceError::NotFound);
        }
        a.resource.strip_prefix("task-definition/").ok_or(ReferenceError::NotFound)?
    } else {
        s
    };
    match short.rsplit_once(':') {
        None if valid_name(short) => Ok(Reference::Family(short.to_string())),
        None => Err(ReferenceError::NotFound),
        Some((family, rev)) => {
            let revision = rev
                .parse::<u32>()
                .ok()
                .filter(|r| *r > 0 && rev.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ReferenceError::BadRevision(rev.to_string()))?;
            if !valid_name(family) {
                return Err(ReferenceError::NotFound);
            }
            Ok(Reference::Revision { family: family.to_string(), revision })
        }
    }
}

/// The ARN a `taskDefinition` member stands for in authorization and failures.
pub fn arn_of_reference(aws: &AwsContext, s: &str) -> String {
    if s.starts_with("arn:") {
        s.to_string()
    } else {
        aws.arn("ecs", &format!("task-definition/{s}"))
    }
}

// ---- RegisterTaskDefinition input ----

/// `RegisterTaskDefinition`'s request, as botocore models it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterInput {
    family: Option<String>,
    task_role_arn: Option<String>,
    execution_role_arn: Option<String>,
    network_mode: Option<String>,
    container_definitions: Option<Vec<ContainerInput>>,
    volumes: Option<Vec<VolumeInput>>,
    placement_constraints: Option<Value>,
    requires_compatibilities: Option<Vec<String>>,
    cpu: Option<Value>,
    memory: Option<Value>,
    pub tags: Option<Value>,
    pid_mode: Option<Value>,
    ipc_mode: Option<Value>,
    proxy_configuration: Option<Value>,
    inference_accelerators: Option<Value>,
    ephemeral_storage: Option<Value>,
    runtime_platform: Option<RuntimePlatform>,
    enable_fault_injection: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerInput {
    name: Option<String>,
    image: Option<String>,
    repository_credentials: Option<Value>,
    cpu: Option<i64>,
    memory: Option<i64>,
    memory_reservation: Option<i64>,
    links: Option<Vec<String>>,
    port_mappings: Option<Vec<PortMappingInput>>,
    essential: Option<bool>,
    restart_policy: Option<Value>,
    entry_point: Option<Vec<String>>,
    command: Option<Vec<String>>,
    environment: Option<Vec<KeyValuePair>>,
    environment_files: Option<Value>,
    mount_points: Option<Vec<MountPointInput>>,
    volumes_from: Option<Vec<VolumeFromInput>>,
    linux_parameters: Option<Value>,
    secrets: Option<Vec<SecretInput>>,
    depends_on: Option<Vec<DependencyInput>>,
    start_timeout: Option<i64>,
    stop_timeout: Option<i64>,
    version_consistency: Option<String>,
    hostname: Option<String>,
    user: Option<String>,
    working_directory: Option<String>,
    disable_networking: Option<Value>,
    privileged: Option<Value>,
    readonly_root_filesystem: Option<bool>,
    dns_servers: Option<Vec<String>>,
    dns_search_domains: Option<Vec<String>>,
    extra_hosts: Option<Vec<HostEntryInput>>,
    docker_security_options: Option<Value>,
    interactive: Option<Value>,
    pseudo_terminal: Option<Value>,
    docker_labels: Option<BTreeMap<String, String>>,
    ulimits: Option<Vec<UlimitInput>>,
    log_configuration: Option<LogConfigurationInput>,
    health_check: Option<HealthCheckInput>,
    system_controls: Option<Value>,
    resource_requirements: Option<Value>,
    firelens_configuration: Option<Value>,
    credential_specs: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortMappingInput {
    container_port: Option<i64>,
    host_port: Option<i64>,
    protocol: Option<String>,
    name: Option<String>,
    app_protocol: Option<String>,
    container_port_range: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountPointInput {
    source_volume: Option<String>,
    container_path: Option<String>,
    read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeFromInput {
    source_container: Option<String>,
    read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretInput {
    name: Option<String>,
    value_from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DependencyInput {
    container_name: Option<String>,
    condition: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostEntryInput {
    hostname: Option<String>,
    ip_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UlimitInput {
    name: Option<String>,
    soft_limit: Option<i64>,
    hard_limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogConfigurationInput {
    log_driver: Option<String>,
    options: Option<BTreeMap<String, String>>,
    secret_options: Option<Vec<SecretInput>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthCheckInput {
    command: Option<Vec<String>>,
    interval: Option<i64>,
    timeout: Option<i64>,
    retries: Option<i64>,
    start_period: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeInput {
    name: Option<String>,
    host: Option<HostVolumeProperties>,
    docker_volume_configuration: Option<DockerVolumeInput>,
    efs_volume_configuration: Option<Value>,
    s3files_volume_configuration: Option<Value>,
    fsx_windows_file_server_volume_configuration: Option<Value>,
    configured_at_launch: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerVolumeInput {
    scope: Option<String>,
    autoprovision: Option<bool>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// Whether a member berth refuses was given with an effect: not null, not an empty list or
/// structure, not `false`.
fn meaningful(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

fn client(message: impl Into<String>) -> EcsError {
    EcsError::client(message)
}

fn unsupported(member: &str, why: &str) -> EcsError {
    client(format!("'{member}' is not supported by berth: {why}."))
}

fn container_setting(name: &str, message: impl std::fmt::Display) -> EcsError {
    client(format!("Invalid setting for container '{name}'. {message}"))
}

// ---- task cpu and memory ----

/// Task CPU as ECS accepts it: units (`"1024"`) or vCPUs (`"1 vCPU"`, `"0.25 vcpu"`); `None` if
/// it is neither or not a whole number of units.
pub fn parse_task_cpu(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    match t.strip_suffix("vcpu") {
        Some(n) => scaled(n.trim(), 1024),
        None => t.parse::<u32>().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// Task memory as ECS accepts it: MiB (`"512"`) or GB (`"1GB"`, `"1 GB"`, `"0.5 gb"`).
pub fn parse_task_memory(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    match t.strip_suffix("gb") {
        Some(n) => scaled(n.trim(), 1024),
        None => t.parse::<u32>().ok().filter(|_| t.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// A decimal number times `factor`, if that is a whole number.
fn scaled(n: &str, factor: u64) -> Option<u32> {
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit() || b == b'.') || n.matches('.').count() > 1 {
        return None;
    }
    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
    let digits = format!("{int}{frac}");
    let value: u64 = if digits.is_empty() { return None } else { digits.parse().ok()? };
    let denom = 10u64.checked_pow(frac.len() as u32)?;
    let total = value.checked_mul(factor)?;
    (total % denom == 0).then(|| u32::try_from(total / denom).ok()).flatten()
}

/// Fargate's valid task sizes: CPU units → the memory (MiB) allowed with it.
pub fn fargate_size_ok(cpu: u32, memory: u32) -> bool {
    let gb = |n: u32| n * 1024;
    match cpu {
        256 => [512, gb(1), gb(2)].contains(&memory),
        512 => (gb(1)..=gb(4)).contains(&memory) && memory.is_multiple_of(1024),
        1024 => (gb(2)..=gb(8)).contains(&memory) && memory.is_multiple_of(1024),
        2048 => (gb(4)..=gb(16)).contains(&memory) && memory.is_multiple_of(1024),
        4096 => (gb(8)..=gb(30)).contains(&memory) && memory.is_multiple_of(1024),
        8192 => (gb(16)..=gb(60)).contains(&memory) && memory.is_multiple_of(gb(4)),
        16384 => (gb(32)..=gb(120)).contains(&memory) && memory.is_multiple_of(gb(8)),
        _ => false,
    }
}

fn cpu_or_memory_string(v: &Value, member: &str) -> Result<String, EcsError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        _ => Err(EcsError::Serialization(format!("Invalid value for '{member}': expected a string"))),
    }
}

/// A role given by ARN or by name (as ECS allows for `taskRoleArn`), as its ARN.
fn role_arn(aws: &AwsContext, given: &str) -> Result<String, EcsError> {
    let invalid = || client(format!("Role is not valid: '{given}' is neither an IAM role ARN nor a role name."));
    if given.starts_with("arn:") {
        let a = Arn::parse(given).ok_or_else(invalid)?;
        let ok = a.service == "iam"
            && a.region.is_empty()
            && a.account_id.len() == 12
            && a.account_id.bytes().all(|b| b.is_ascii_digit())
            && a.resource.strip_prefix("role/").is_some_and(|r| !r.is_empty() && !r.ends_with('/'));
        return if ok { Ok(given.to_string()) } else { Err(invalid()) };
    }
    let name_ok =
        (1..=64).contains(&given.len()) && given.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !name_ok {
        return Err(invalid());
    }
    Ok(aws.global_arn("iam", &format!("role/{given}")))
}

const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Checks `RegisterTaskDefinition`'s request as ECS does and returns the family, the normalized
/// definition and the tags. No state is read: what depends on it (the revision) is the caller's.
pub fn validate(input: RegisterInput, aws: &AwsContext) -> Result<(String, TaskDefinitionSpec, Vec<Tag>), EcsError> {
    // The family.
    let family = input.family.ok_or_else(|| crate::input::missing("family"))?;
    if family.is_empty() {
        return Err(client("Family can not be blank."));
    }
    if family.len() > 255 {
        return Err(client("Family should be 255 characters or less."));
    }
    if !valid_name(&family) {
        return Err(client("Family contains invalid characters."));
    }

    // Task-level members berth does not run.
    for (member, value, why) in [
        ("placementConstraints", &input.placement_constraints, "every task runs on berth's one Docker Engine"),
        ("pidMode", &input.pid_mode, "tasks get their own PID namespaces"),
        ("ipcMode", &input.ipc_mode, "tasks get their own IPC namespaces"),
        ("proxyConfiguration", &input.proxy_configuration, "there is no App Mesh"),
        ("inferenceAccelerators", &input.inference_accelerators, "there are no accelerators"),
        ("ephemeralStorage", &input.ephemeral_storage, "task storage is the Docker Engine's"),
        ("enableFaultInjection", &input.enable_fault_injection, "there is no fault injection"),
    ] {
        if meaningful(value) {
            return Err(unsupported(member, why));
        }
    }
    if let Some(rp) = &input.runtime_platform {
        if let Some(os) = rp.operating_system_family.as_deref().filter(|os| *os != "LINUX") {
            return Err(client(format!(
                "Invalid runtimePlatform.operatingSystemFamily '{os}': berth runs Linux containers only (LINUX)."
            )));
        }
        if let Some(arch) = rp.cpu_architecture.as_deref().filter(|a| !["X86_64", "ARM64"].contains(a)) {
            return Err(client(format!(
                "Invalid runtimePlatform.cpuArchitecture '{arch}'. Valid values are X86_64 and ARM64."
            )));
        }
    }

    let network_mode = match input.network_mode.as_deref() {
        None => NetworkMode::Bridge,
        Some(m) => NetworkMode::parse(m).ok_or_else(|| {
            client(format!("Invalid networkMode '{m}'. Valid values are bridge, host, awsvpc and none."))
        })?,
    };

    let mut requires = Vec::new();
    for c in input.requires_compatibilities.iter().flatten() {
        let compat = Compatibility::parse(c).ok_or_else(|| {
            client(format!(
                "Invalid requiresCompatibilities value '{c}'. Valid values are EC2, FARGATE, EXTERNAL and MANAGED_INSTANCES."
            ))
        })?;
        if !requires.contains(&compat) {
            requires.push(compat);
        }
    }

    // Task size.
    let cpu = match &input.cpu {
        None | Some(Value::Null) => None,
        Some(v) => {
            let s = cpu_or_memory_string(v, "cpu")?;
            let units = parse_task_cpu(&s).ok_or_else(|| client("Invalid 'cpu' setting for task."))?;
            if !TASK_CPU_RANGE.contains(&units) {
                return Err(client("Invalid 'cpu' setting for task."));
            }
            Some(units)
        }
    };
    let memory = match &input.memory {
        None | Some(Value::Null) => None,
        Some(v) => {
            let s = cpu_or_memory_string(v, "memory")?;
            let mib = parse_task_memory(&s).ok_or_else(|| client("Invalid 'memory' setting for task."))?;
            if mib < MIN_CONTAINER_MEMORY_MIB {
                return Err(client("Invalid 'memory' setting for task."));
            }
            Some(mib)
        }
    };

    let task_role_arn =
        input.task_role_arn.as_deref().filter(|s| !s.is_empty()).map(|r| role_arn(aws, r)).transpose()?;
    let execution_role_arn =
        input.execution_role_arn.as_deref().filter(|s| !s.is_empty()).map(|r| role_arn(aws, r)).transpose()?;

    // Volumes.
    let mut volumes = Vec::new();
    for v in input.volumes.unwrap_or_default() {
        let name = v.name.ok_or_else(|| client("Volume name must not be empty."))?;
        if !valid_name(&name) {
            return Err(client(format!(
                "Invalid volume name '{name}'. Up to 255 letters, numbers, underscores and hyphens are allowed."
            )));
        }
        if volumes.iter().any(|o: &Volume| o.name == name) {
            return Err(client(format!("Duplicate volume name '{name}'.")));
        }
        for (member, value) in [
            ("efsVolumeConfiguration", &v.efs_volume_configuration),
            ("s3filesVolumeConfiguration", &v.s3files_volume_configuration),
            ("fsxWindowsFileServerVolumeConfiguration", &v.fsx_windows_file_server_volume_configuration),
            ("configuredAtLaunch", &v.configured_at_launch),
        ] {
            if meaningful(value) {
                return Err(unsupported(member, "volumes are host paths or local Docker volumes"));
            }
        }
        if let Some(path) = v.host.as_ref().and_then(|h| h.source_path.as_deref()) {
            if !path.starts_with('/') {
                return Err(client(format!(
                    "Invalid host.sourcePath '{path}' for volume '{name}': it must be an absolute path."
                )));
            }
        }
        let docker = match v.docker_volume_configuration {
            None => None,
            Some(d) => {
                if v.host.as_ref().is_some_and(|h| h.source_path.is_some()) {
                    return Err(client(format!(
                        "Volume '{name}' cannot have both host.sourcePath and dockerVolumeConfiguration."
                    )));
                }
                let scope = d.scope.unwrap_or_else(|| "task".into());
                if !["task", "shared"].contains(&scope.as_str()) {
                    return Err(client(format!(
                        "Invalid dockerVolumeConfiguration.scope '{scope}'. Valid values are task and shared."
                    )));
                }
                if d.autoprovision == Some(true) && scope != "shared" {
                    return Err(client("autoprovision can only be set to true when the scope is shared."));
                }
                if let Some(driver) = d.driver.as_deref().filter(|d| *d != "local") {
                    return Err(unsupported(
                        "dockerVolumeConfiguration.driver",
                        &format!("only the Docker Engine's 'local' driver is available, not '{driver}'"),
                    ));
                }
                Some(DockerVolumeConfiguration {
                    scope,
                    autoprovision: d.autoprovision,
                    driver: d.driver,
                    driver_opts: d.driver_opts,
                    labels: d.labels,
                })
            }
        };
        volumes.push(Volume { name, host: v.host, docker_volume_configuration: docker });
    }

    // Containers.
    let inputs = input.container_definitions.unwrap_or_default();
    if inputs.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if inputs.len() > MAX_CONTAINERS {
        return Err(client(format!("Too many containers: a task definition has at most {MAX_CONTAINERS} containers.")));
    }
    let mut containers: Vec<ContainerDefinition> = Vec::with_capacity(inputs.len());
    for c in inputs {
        let def = container(c, network_mode, memory)?;
        if containers.iter().any(|o| o.name == def.name) {
            return Err(client(format!("Duplicate container name '{}': container names must be unique.", def.name)));
        }
        containers.push(def);
    }
    check_across_containers(&containers, &volumes, network_mode)?;

    // Containers within the task's size.
    if let Some(task_cpu) = cpu {
        let sum: u64 = containers.iter().map(|c| u64::from(c.cpu)).sum();
        if sum > u64::from(task_cpu) {
            return Err(client(
                "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.",
            ));
        }
    }
    if let Some(task_memory) = memory {
        for c in &containers {
            if c.memory.is_some_and(|m| m > task_memory) {
                return Err(container_setting(
                    &c.name,
                    "The container 'memory' value cannot be greater than the value of the task 'memory'.",
                ));
            }
        }
        let reserved: u64 = containers.iter().map(|c| u64::from(c.memory_reservation.or(c.memory).unwrap_or(0))).sum();
        if reserved > u64::from(task_memory) {
            let what =
                if containers.iter().any(|c| c.memory_reservation.is_some()) { "memoryReservation" } else { "memory" };
            return Err(client(format!(
                "The sum of all container '{what}' values cannot be greater than the value of the task 'memory'."
            )));
        }
    }

    let mut spec = TaskDefinitionSpec {
        container_definitions: containers,
        network_mode,
        task_role_arn,
        execution_role_arn,
        volumes,
        requires_compatibilities: input.requires_compatibilities.is_some().then_some(requires.clone()),
        compatibilities: Vec::new(),
        cpu: cpu.map(|c| c.to_string()),
        memory: memory.map(|m| m.to_string()),
        runtime_platform: input.runtime_platform,
    };

    // Launch types: EC2 always; EXTERNAL outside awsvpc; FARGATE when the definition fits it.
    if requires.contains(&Compatibility::External) && network_mode == NetworkMode::Awsvpc {
        return Err(client("The EXTERNAL launch type does not support the awsvpc network mode."));
    }
    let fargate = fargate_problem(&spec);
    if requires.contains(&Compatibility::Fargate) {
        if let Some(problem) = fargate.clone() {
            return Err(client(problem));
        }
    }
    let mut compatibilities = vec![Compatibility::Ec2];
    if network_mode != NetworkMode::Awsvpc {
        compatibilities.push(Compatibility::External);
    }
    if fargate.is_none() {
        compatibilities.push(Compatibility::Fargate);
    }
    if requires.contains(&Compatibility::ManagedInstances) {
        compatibilities.push(Compatibility::ManagedInstances);
    }
    spec.compatibilities = compatibilities;

    let tags = crate::tags::parse(input.tags.as_ref(), "tags")?;
    Ok((family, spec, tags))
}

/// Why the definition cannot run on Fargate, in ECS's words, or `None` if it can.
fn fargate_problem(spec: &TaskDefinitionSpec) -> Option<String> {
    if spec.network_mode != NetworkMode::Awsvpc {
        return Some("Fargate only supports network mode 'awsvpc'.".into());
    }
    let Some(cpu) = spec.cpu_units() else {
        return Some("Fargate requires that 'cpu' be defined at the task level.".into());
    };
    let Some(memory) = spec.memory_mib() else {
        return Some("Fargate requires that 'memory' be defined at the task level.".into());
    };
    if !fargate_size_ok(cpu, memory) {
        return Some(format!(
            "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS \
             documentation for the valid combinations."
        ));
    }
    for v in &spec.volumes {
        if v.host.as_ref().is_some_and(|h| h.source_path.is_some()) {
            return Some(format!("Fargate does not support host.sourcePath on volume '{}'.", v.name));
        }
        if v.docker_volume_configuration.is_some() {
            return Some(format!("Fargate does not support dockerVolumeConfiguration on volume '{}'.", v.name));
        }
    }
    for c in &spec.container_definitions {
        if let Some(log) = &c.log_configuration {
            if log.log_driver == "awslogs" && spec.execution_role_arn.is_none() {
                return Some(
                    "Fargate requires task definition to have execution role ARN to support log driver awslogs.".into(),
                );
            }
            if log.log_driver != "awslogs" {
                return Some(format!("Fargate does not support the log driver '{}'.", log.log_driver));
            }
        }
        if c.stop_timeout.is_some_and(|t| t > FARGATE_MAX_STOP_TIMEOUT) {
            return Some(format!(
                "Invalid setting for container '{}'. Fargate supports a stopTimeout of at most {FARGATE_MAX_STOP_TIMEOUT} seconds.",
                c.name
            ));
        }
    }
    None
}

fn nonneg_u32(name: &str, member: &str, v: Option<i64>) -> Result<Option<u32>, EcsError> {
    match v {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| container_setting(name, format!("'{member}' must be a non-negative integer."))),
    }
}

/// One container definition, checked on its own (cross-container rules come after).
fn container(c: ContainerInput, mode: NetworkMode, task_memory: Option<u32>) -> Result<ContainerDefinition, EcsError> {
    let name = c.name.filter(|n| !n.is_empty()).ok_or_else(|| client("Container.name should not be null or empty."))?;
    if name.len() > 255 {
        return Err(client("Container.name should be 255 characters or less."));
    }
    if !valid_name(&name) {
        return Err(client("Container.name contains invalid characters."));
    }
    let image =
        c.image.filter(|i| !i.is_empty()).ok_or_else(|| client("Container.image should not be null or empty."))?;
    if image.len() > 255 {
        return Err(client("Container.image should be 255 characters or less."));
    }
    if !image.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:./#@".contains(&b)) {
        return Err(client("Container.image contains invalid characters."));
    }

    for (member, value, why) in [
        (
            "environmentFiles",
            &c.environment_files,
            "environment files live in S3, which berth does not have; use 'environment' or 'secrets'",
        ),
        ("repositoryCredentials", &c.repository_credentials, "images come from berth's own registry"),
        ("restartPolicy", &c.restart_policy, "containers are not restarted in place"),
        ("linuxParameters", &c.linux_parameters, "kernel capabilities, devices and tmpfs are not configurable"),
        ("privileged", &c.privileged, "containers never run privileged"),
        ("disableNetworking", &c.disable_networking, "use networkMode 'none'"),
        ("interactive", &c.interactive, "containers get no stdin"),
        ("pseudoTerminal", &c.pseudo_terminal, "containers get no TTY"),
        ("dockerSecurityOptions", &c.docker_security_options, "security options are the Docker Engine's defaults"),
        ("systemControls", &c.system_controls, "sysctls are not configurable"),
        ("resourceRequirements", &c.resource_requirements, "there are no GPUs or accelerators"),
        ("firelensConfiguration", &c.firelens_configuration, "there is no FireLens; use the awslogs driver"),
        ("credentialSpecs", &c.credential_specs, "there is no Active Directory"),
    ] {
        if meaningful(value) {
            return Err(unsupported(member, why));
        }
    }

    // Memory: a container needs a limit or a reservation unless the task has one.
    let cpu = nonneg_u32(&name, "cpu", c.cpu)?.unwrap_or(0);
    let memory = nonneg_u32(&name, "memory", c.memory)?;
    let memory_reservation = nonneg_u32(&name, "memoryReservation", c.memory_reservation)?;
    if memory.is_none() && memory_reservation.is_none() && task_memory.is_none() {
        return Err(container_setting(&name, "At least one of 'memory' or 'memoryReservation' must be specified."));
    }
    for (member, value) in [("memory", memory), ("memoryReservation", memory_reservation)] {
        if value.is_some_and(|m| m < MIN_CONTAINER_MEMORY_MIB) {
            return Err(container_setting(
                &name,
                format!("'{member}' must be at least {MIN_CONTAINER_MEMORY_MIB} MiB (the Docker Engine's minimum)."),
            ));
        }
    }
    if let (Some(m), Some(r)) = (memory, memory_reservation) {
        if r > m {
            return Err(container_setting(&name, "'memory' must be greater than or equal to 'memoryReservation'."));
        }
    }

    // Networking by mode.
    let bridge = mode == NetworkMode::Bridge;
    if c.links.as_ref().is_some_and(|l| !l.is_empty()) && !bridge {
        return Err(client(format!("Links are not supported when networkMode={}.", mode.as_str())));
    }
    if c.hostname.is_some() && mode == NetworkMode::Awsvpc {
        return Err(client("The hostname parameter is not supported when networkMode=awsvpc."));
    }
    for (member, value) in [
        ("dnsServers", c.dns_servers.as_ref().is_some_and(|d| !d.is_empty())),
        ("dnsSearchDomains", c.dns_search_domains.as_ref().is_some_and(|d| !d.is_empty())),
        ("extraHosts", c.extra_hosts.as_ref().is_some_and(|d| !d.is_empty())),
    ] {
        if value && mode == NetworkMode::Awsvpc {
            return Err(client(format!("The {member} parameter is not supported when networkMode=awsvpc.")));
        }
    }
    for ip in c.dns_servers.iter().flatten() {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(container_setting(&name, format!("'{ip}' in dnsServers is not an IP address.")));
        }
    }
    let mut extra_hosts = None;
    if let Some(hosts) = c.extra_hosts {
        let mut out = Vec::with_capacity(hosts.len());
        for h in hosts {
            let (Some(hostname), Some(ip_address)) = (h.hostname, h.ip_address) else {
                return Err(container_setting(&name, "extraHosts entries need a hostname and an ipAddress."));
            };
            if ip_address.parse::<std::net::IpAddr>().is_err() {
                return Err(container_setting(&name, format!("'{ip_address}' in extraHosts is not an IP address.")));
            }
            out.push(HostEntry { hostname, ip_address });
        }
        extra_hosts = Some(out);
    }

    let mut port_mappings = Vec::new();
    for p in c.port_mappings.unwrap_or_default() {
        if mode == NetworkMode::None {
            return Err(client("Port mappings are not supported when networkMode=none."));
        }
        if meaningful(&p.container_port_range) {
            return Err(unsupported("containerPortRange", "map each port with containerPort"));
        }
        let container_port =
            p.container_port.ok_or_else(|| container_setting(&name, "A port mapping must have a containerPort."))?;
        let container_port = u16::try_from(container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| container_setting(&name, format!("Invalid containerPort {container_port}.")))?;
        let host_port = match p.host_port {
            None => None,
            Some(h) => Some(u16::try_from(h).map_err(|_| container_setting(&name, format!("Invalid hostPort {h}.")))?),
        };
        let host_port = match mode {
            NetworkMode::Bridge => host_port.unwrap_or(0),
            _ => match host_port {
                None => container_port,
                Some(h) if h == container_port => h,
                Some(_) => {
                    return Err(client(format!(
                        "When networkMode={}, the host ports and container ports in port mappings must match.",
                        mode.as_str()
                    )))
                }
            },
        };
        let protocol = match p.protocol.as_deref() {
            None | Some("tcp") => TransportProtocol::Tcp,
            Some("udp") => TransportProtocol::Udp,
            Some(other) => {
                return Err(container_setting(
                    &name,
                    format!("Invalid protocol '{other}'. Valid values are tcp and udp."),
                ))
            }
        };
        if let Some(n) = &p.name {
            let ok = (1..=64).contains(&n.len())
                && !n.starts_with('-')
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !ok {
                return Err(container_setting(
                    &name,
                    format!(
                        "Invalid port mapping name '{n}': up to 64 lowercase letters, numbers, underscores and \
                         hyphens, not starting with a hyphen."
                    ),
                ));
            }
        }
        let app_protocol = match p.app_protocol.as_deref() {
            None => None,
            Some("http") => Some(AppProtocol::Http),
            Some("http2") => Some(AppProtocol::Http2),
            Some("grpc") => Some(AppProtocol::Grpc),
            Some(other) => {
                return Err(container_setting(
                    &name,
                    format!("Invalid appProtocol '{other}'. Valid values are http, http2 and grpc."),
                ))
            }
        };
        port_mappings.push(PortMapping { container_port, host_port, protocol, name: p.name, app_protocol });
    }

    let mut environment = Vec::new();
    for e in c.environment.unwrap_or_default() {
        if e.name.as_deref().is_none_or(str::is_empty) {
            return Err(container_setting(&name, "Environment variables must have a name."));
        }
        environment.push(e);
    }

    let secret_list = |list: Vec<SecretInput>, member: &str| -> Result<Vec<Secret>, EcsError> {
        list.into_iter()
            .map(|s| match (s.name.filter(|n| !n.is_empty()), s.value_from.filter(|v| !v.is_empty())) {
                (Some(name), Some(value_from)) => Ok(Secret { name, value_from }),
                _ => Err(container_setting(&name, format!("Each entry of '{member}' needs a name and a valueFrom."))),
            })
            .collect()
    };
    let secrets = c.secrets.map(|s| secret_list(s, "secrets")).transpose()?;

    let mut depends_on = None;
    if let Some(deps) = c.depends_on {
        let mut out = Vec::with_capacity(deps.len());
        for d in deps {
            let container_name = d
                .container_name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| container_setting(&name, "dependsOn entries need a containerName."))?;
            let condition = match d.condition.as_deref() {
                Some("START") => ContainerCondition::Start,
                Some("COMPLETE") => ContainerCondition::Complete,
                Some("SUCCESS") => ContainerCondition::Success,
                Some("HEALTHY") => ContainerCondition::Healthy,
                other => {
                    return Err(container_setting(
                        &name,
                        format!(
                            "Invalid dependsOn condition '{}'. Valid values are START, COMPLETE, SUCCESS and HEALTHY.",
                            other.unwrap_or("")
                        ),
                    ))
                }
            };
            out.push(ContainerDependency { container_name, condition });
        }
        depends_on = Some(out);
    }

    let start_timeout = nonneg_u32(&name, "startTimeout", c.start_timeout)?;
    let stop_timeout = nonneg_u32(&name, "stopTimeout", c.stop_timeout)?;
    if let Some(v) = c.version_consistency.as_deref() {
        if !["enabled", "disabled"].contains(&v) {
            return Err(container_setting(
                &name,
                format!("Invalid versionConsistency '{v}'. Valid values are enabled and disabled."),
            ));
        }
    }

    let mut ulimits = None;
    if let Some(list) = c.ulimits {
        let mut out: Vec<Ulimit> = Vec::with_capacity(list.len());
        for u in list {
            let (Some(uname), Some(soft), Some(hard)) = (u.name, u.soft_limit, u.hard_limit) else {
                return Err(container_setting(&name, "Each ulimit needs a name, a softLimit and a hardLimit."));
            };
            if !ULIMIT_NAMES.contains(&uname.as_str()) {
                return Err(container_setting(&name, format!("Invalid ulimit name '{uname}'.")));
            }
            if soft < 0 || hard < 0 || soft > hard {
                return Err(container_setting(
                    &name,
                    format!(
                        "Invalid ulimit '{uname}': the limits must be non-negative and softLimit at most hardLimit."
                    ),
                ));
            }
            if out.iter().any(|o| o.name == uname) {
                return Err(container_setting(&name, format!("The ulimit '{uname}' is given more than once.")));
            }
            out.push(Ulimit { name: uname, soft_limit: soft, hard_limit: hard });
        }
        ulimits = Some(out);
    }

    let log_configuration = match c.log_configuration {
        None => None,
        Some(l) => {
            let driver = l.log_driver.ok_or_else(|| crate::input::missing("logConfiguration.logDriver"))?;
            if !["awslogs", "json-file", "none"].contains(&driver.as_str()) {
                return Err(unsupported(
                    "logConfiguration.logDriver",
                    &format!("berth supports the log drivers awslogs, json-file and none, not '{driver}'"),
                ));
            }
            if driver == "awslogs" {
                let opts = l.options.as_ref();
                let missing: Vec<&str> = ["awslogs-region", "awslogs-group"]
                    .into_iter()
                    .filter(|k| opts.is_none_or(|o| !o.contains_key(*k)))
                    .collect();
                if !missing.is_empty() {
                    return Err(client(format!("Log driver awslogs requires options: {}", missing.join(", "))));
                }
            }
            let secret_options =
                l.secret_options.map(|s| secret_list(s, "logConfiguration.secretOptions")).transpose()?;
            Some(LogConfiguration { log_driver: driver, options: l.options, secret_options })
        }
    };

    let health_check = match c.health_check {
        None => None,
        Some(h) => {
            let command = h.command.unwrap_or_default();
            if command.len() < 2 || !["CMD", "CMD-SHELL"].contains(&command[0].as_str()) {
                return Err(container_setting(
                    &name,
                    "The healthCheck command must start with CMD or CMD-SHELL, followed by the command.",
                ));
            }
            let ranged =
                |member: &str, v: Option<i64>, range: std::ops::RangeInclusive<i64>, default: Option<i64>| match v
                    .or(default)
                {
                    None => Ok(None),
                    Some(n) if range.contains(&n) => Ok(Some(n as u32)),
                    Some(n) => Err(container_setting(
                        &name,
                        format!(
                            "Invalid healthCheck {member} {n}: valid values are {} to {}.",
                            range.start(),
                            range.end()
                        ),
                    )),
                };
            Some(HealthCheck {
                command,
                interval: ranged("interval", h.interval, 5..=300, Some(30))?.unwrap_or(30),
                timeout: ranged("timeout", h.timeout, 2..=60, Some(5))?.unwrap_or(5),
                retries: ranged("retries", h.retries, 1..=10, Some(3))?.unwrap_or(3),
                start_period: ranged("startPeriod", h.start_period, 0..=300, None)?,
            })
        }
    };

    let mut mount_points = Vec::new();
    for m in c.mount_points.unwrap_or_default() {
        let (Some(source_volume), Some(container_path)) = (m.source_volume, m.container_path) else {
            return Err(container_setting(&name, "Mount points need a sourceVolume and a containerPath."));
        };
        if !container_path.starts_with('/') {
            return Err(container_setting(
                &name,
                format!("The containerPath '{container_path}' must be an absolute path."),
            ));
        }
        mount_points.push(MountPoint { source_volume, container_path, read_only: m.read_only });
    }
    let mut volumes_from = Vec::new();
    for v in c.volumes_from.unwrap_or_default() {
        let source_container = v
            .source_container
            .ok_or_else(|| container_setting(&name, "volumesFrom entries need a sourceContainer."))?;
        volumes_from.push(VolumeFrom { source_container, read_only: v.read_only });
    }

    Ok(ContainerDefinition {
        name,
        image,
        cpu,
        memory,
        memory_reservation,
        links: c.links,
        port_mappings,
        essential: c.essential.unwrap_or(true),
        entry_point: c.entry_point,
        command: c.command,
        environment,
        mount_points,
        volumes_from,
        secrets,
        depends_on,
        start_timeout,
        stop_timeout,
        version_consistency: c.version_consistency,
        hostname: c.hostname,
        user: c.user,
        working_directory: c.working_directory,
        readonly_root_filesystem: c.readonly_root_filesystem,
        dns_servers: c.dns_servers,
        dns_search_domains: c.dns_search_domains,
        extra_hosts,
        docker_labels: c.docker_labels,
        ulimits,
        log_configuration,
        health_check,
    })
}

/// The rules between containers: an essential container, dependencies and links that name
/// containers of the task without cycles, mounts of declared volumes, ports used once.
fn check_across_containers(
    containers: &[ContainerDefinition],
    volumes: &[Volume],
    mode: NetworkMode,
) -> Result<(), EcsError> {
    if !containers.iter().any(|c| c.essential) {
        return Err(client("Task definition doesn't have any essential container."));
    }
    let by_name: HashMap<&str, &ContainerDefinition> = containers.iter().map(|c| (c.name.as_str(), c)).collect();
    for c in containers {
        for d in c.depends_on.iter().flatten() {
            let Some(target) = by_name.get(d.container_name.as_str()) else {
                return Err(client(format!(
                    "Cannot depend on container '{}' because it does not exist",
                    d.container_name
                )));
            };
            if matches!(d.condition, ContainerCondition::Success | ContainerCondition::Complete) && target.essential {
                return Err(client(
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container",
                ));
            }
            if d.condition == ContainerCondition::Healthy && target.health_check.is_none() {
                return Err(client(format!(
                    "Container '{}' depends on container '{}' being HEALTHY, but '{}' has no healthCheck.",
                    c.name, d.container_name, d.container_name
                )));
            }
        }
        for link in c.links.iter().flatten() {
            let target = link.split_once(':').map_or(link.as_str(), |(n, _)| n);
            if target == c.name || !by_name.contains_key(target) {
                return Err(container_setting(
                    &c.name,
                    format!("The link '{link}' does not name another container of the task."),
                ));
            }
        }
        for m in &c.mount_points {
            if !volumes.iter().any(|v| v.name == m.source_volume) {
                return Err(container_setting(
                    &c.name,
                    format!(
                        "The mount point's sourceVolume '{}' is not a volume of the task definition.",
                        m.source_volume
                    ),
                ));
            }
        }
        for v in &c.volumes_from {
            if v.source_container == c.name || !by_name.contains_key(v.source_container.as_str()) {
                return Err(container_setting(
                    &c.name,
                    format!("volumesFrom names '{}', which is not another container of the task.", v.source_container),
                ));
            }
        }
    }
    if let Some(cycle) = dependency_cycle(containers) {
        return Err(client(format!("Containers have a circular dependency: {}.", cycle.join(" -> "))));
    }

    // Ports: one listener per port and protocol where containers share the network (awsvpc,
    // host) or bind the same host port (bridge with a fixed hostPort); names once per task.
    let mut ports = HashSet::new();
    let mut names = HashSet::new();
    for c in containers {
        for p in &c.port_mappings {
            let port = if mode == NetworkMode::Bridge { p.host_port } else { p.container_port };
            if port != 0 && !ports.insert((port, p.protocol)) {
                return Err(client(format!(
                    "Port {port}/{} is mapped more than once in the task definition.",
                    if p.protocol == TransportProtocol::Tcp { "tcp" } else { "udp" }
                )));
            }
            if let Some(n) = &p.name {
                if !names.insert(n.as_str()) {
                    return Err(client(format!("The port mapping name '{n}' is used more than once.")));
                }
            }
        }
    }
    Ok(())
}

/// A cycle in `dependsOn`, as the names along it (first name repeated at the end).
fn dependency_cycle(containers: &[ContainerDefinition]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let index: HashMap<&str, usize> = containers.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut marks = vec![Mark::New; containers.len()];
    fn visit(
        i: usize,
        containers: &[ContainerDefinition],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Visiting;
        path.push(i);
        for d in containers[i].depends_on.iter().flatten() {
            let Some(&j) = index.get(d.container_name.as_str()) else { continue };
            match marks[j] {
                Mark::Visiting => {
                    let start = path.iter().position(|&p| p == j).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..].iter().map(|&k| containers[k].name.clone()).collect();
                    cycle.push(containers[j].name.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(j, containers, index, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    for i in 0..containers.len() {
        if marks[i] == Mark::New {
            if let Some(c) = visit(i, containers, &index, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

// ---- rows ----

const COLUMNS: &str = "family, revision, arn, status, registered_at, registered_by, deregistered_at, \
     delete_requested_at, definition";

fn from_row(r: &Row<'_>) -> berth_store::rusqlite::Result<TaskDefinition> {
    let definition: String = r.get(8)?;
    let spec = serde_json::from_str(&definition).map_err(|e| {
        berth_store::rusqlite::Error::FromSqlConversionFailure(8, berth_store::rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(TaskDefinition {
        family: r.get(0)?,
        revision: r.get(1)?,
        arn: r.get(2)?,
        status: r.get(3)?,
        registered_at: r.get(4)?,
        registered_by: r.get(5)?,
        deregistered_at: r.get(6)?,
        delete_requested_at: r.get(7)?,
        spec,
    })
}

/// The next revision number of `family` (1 for a new family), recorded as handed out.
pub fn next_revision(conn: &Connection, family: &str) -> Result<u32, EcsError> {
    let revision: u32 = conn.query_row(
        "INSERT INTO ecs_task_definition_families (family, last_revision) VALUES (?1, 1)
         ON CONFLICT (family) DO UPDATE SET last_revision = last_revision + 1
         RETURNING last_revision",
        [family],
        |r| r.get(0),
    )?;
    Ok(revision)
}

pub fn insert(conn: &Connection, td: &TaskDefinition) -> Result<(), EcsError> {
    let definition = serde_json::to_string(&td.spec)
        .map_err(|source| EcsError::Corrupt { what: format!("task definition {}", td.arn), source })?;
    conn.execute(
        &format!(
            "INSERT INTO ecs_task_definitions ({COLUMNS}, network_mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            td.family,
            td.revision,
            td.arn,
            td.status,
            td.registered_at,
            td.registered_by,
            td.deregistered_at,
            td.delete_requested_at,
            definition,
            td.spec.network_mode.as_str()
        ],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, family: &str, revision: u32) -> Result<Option<TaskDefinition>, EcsError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM ecs_task_definitions WHERE family = ?1 AND revision = ?2"))?;
    Ok(stmt.query_row(params![family, revision], from_row).optional()?)
}

/// The latest ACTIVE revision of `family`.
pub fn latest_active(conn: &Connection, family: &str) -> Result<Option<TaskDefinition>, EcsError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM ecs_task_definitions WHERE family = ?1 AND status = 'ACTIVE'
         ORDER BY revision DESC LIMIT 1"
    ))?;
    Ok(stmt.query_row([family], from_row).optional()?)
}

/// The revision a reference names: the latest ACTIVE one for a bare family.
pub fn resolve(conn: &Connection, reference: &Reference) -> Result<Option<TaskDefinition>, EcsError> {
    match reference {
        Reference::Family(f) => latest_active(conn, f),
        Reference::Revision { family, revision } => get(conn, family, *revision),
    }
}

/// Changes a revision's status, with the time of the change in the matching column.
pub fn set_status(conn: &Connection, arn: &str, status: &str, at: i64) -> Result<(), EcsError> {
    let column = match status {
        INACTIVE => "deregistered_at",
        DELETE_IN_PROGRESS => "delete_requested_at",
        _ => "registered_at",
    };
    conn.execute(
        &format!("UPDATE ecs_task_definitions SET status = ?2, {column} = ?3 WHERE arn = ?1"),
        params![arn, status, at],
    )?;
    Ok(())
}

/// Removes a revision and its tags (its family keeps its revision counter).
pub fn delete(conn: &Connection, arn: &str) -> Result<(), EcsError> {
    conn.execute("DELETE FROM ecs_task_definitions WHERE arn = ?1", [arn])?;
    conn.execute("DELETE FROM ecs_tags WHERE resource_arn = ?1", [arn])?;
    Ok(())
}

/// Removes the `DELETE_IN_PROGRESS` revisions no unstopped task uses any more; returns how many.
/// The task controller calls it when tasks stop (ECS keeps such a revision until then).
pub fn purge_deleted(conn: &Connection) -> Result<usize, EcsError> {
    let arns: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT arn FROM ecs_task_definitions d WHERE status = 'DELETE_IN_PROGRESS' AND NOT EXISTS
             (SELECT 1 FROM ecs_tasks t WHERE t.task_definition_arn = d.arn AND t.last_status != 'STOPPED')",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for arn in &arns {
        delete(conn, arn)?;
    }
    Ok(arns.len())
}

/// `ListTaskDefinitions`: ARNs with `status`, whose family starts with `prefix`, in (family,
/// revision) order (`desc` reverses both), after the `after` key; at most `limit` + 1.
pub fn list(
    conn: &Connection,
    prefix: Option<&str>,
    status: &str,
    desc: bool,
    after: Option<(&str, u32)>,
    limit: usize,
) -> Result<Vec<(String, u32, String)>, EcsError> {
    let (cmp, order) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let sql = format!(
        "SELECT family, revision, arn FROM ecs_task_definitions
         WHERE status = ?1 AND substr(family, 1, length(?2)) = ?2
           AND (?3 IS NULL OR family {cmp} ?3 OR (family = ?3 AND revision {cmp} ?4))
         ORDER BY family {order}, revision {order} LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let (after_family, after_rev) = match after {
        Some((f, r)) => (Some(f), r),
        None => (None, 0),
    };
    let rows = stmt
        .query_map(params![status, prefix.unwrap_or(""), after_family, after_rev, (limit + 1) as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `ListTaskDefinitionFamilies`: families with a revision, whose name starts with `prefix`:
/// `ACTIVE` those with an ACTIVE revision, `INACTIVE` those without one, `ALL` both; by name.
pub fn families(
    conn: &Connection,
    prefix: Option<&str>,
    status: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, EcsError> {
    let having = match status {
        ACTIVE => "HAVING SUM(status = 'ACTIVE') > 0",
        INACTIVE => "HAVING SUM(status = 'ACTIVE') = 0",
        _ => "",
    };
    let sql = format!(
        "SELECT family FROM ecs_task_definitions
         WHERE substr(family, 1, length(?1)) = ?1 AND family > ?2
         GROUP BY family {having} ORDER BY family LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![prefix.unwrap_or(""), after.unwrap_or(""), (limit + 1) as i64], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(v: Value) -> Result<TaskDefinitionSpec, EcsError> {
        let input: RegisterInput = serde_json::from_value(v).unwrap();
        validate(input, &AwsContext::default()).map(|(_, spec, _)| spec)
    }

    fn message(v: Value) -> String {
        let e = register(v).unwrap_err();
        assert_eq!(e.code(), "ClientException", "{e}");
        e.to_string()
    }

    fn web(extra: Value) -> Value {
        let mut c = json!({ "name": "web", "image": "localhost:4566/web:1", "memory": 128 });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    #[test]
    fn task_cpu_and_memory_are_normalized_as_ecs_does() {
        for (given, units) in
            [("256", Some(256)), ("1 vCPU", Some(1024)), ("0.25 vcpu", Some(256)), (".5 VCPU", Some(512))]
        {
            assert_eq!(parse_task_cpu(given), units, "{given}");
        }
        for bad in ["", "x", "-1", "0.0001 vCPU", "1.2.3 vcpu", "1e3"] {
            assert_eq!(parse_task_cpu(bad), None, "{bad}");
        }
        for (given, mib) in [("512", Some(512)), ("1GB", Some(1024)), ("1 GB", Some(1024)), ("0.5 gb", Some(512))] {
            assert_eq!(parse_task_memory(given), mib, "{given}");
        }
        assert_eq!(parse_task_memory("0.3 GB"), None);
        assert!(fargate_size_ok(256, 512) && fargate_size_ok(512, 4096) && fargate_size_ok(8192, 20480));
        assert!(!fargate_size_ok(256, 4096) && !fargate_size_ok(512, 1536) && !fargate_size_ok(8192, 18432));
    }

    #[test]
    fn defaults_are_filled_in_as_ecs_returns_them() {
        let spec = register(json!({
            "family": "web",
            "networkMode": "awsvpc",
            "cpu": "0.25 vCPU",
            "memory": "0.5GB",
            "requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [{ "name": "web", "image": "web:1", "portMappings": [{ "containerPort": 8080 }],
                                       "healthCheck": { "command": ["CMD-SHELL", "true"] } }],
        }))
        .unwrap();
        assert_eq!(spec.cpu.as_deref(), Some("256"));
        assert_eq!(spec.memory.as_deref(), Some("512"));
        assert_eq!(spec.compatibilities, vec![Compatibility::Ec2, Compatibility::Fargate]);
        let c = &spec.container_definitions[0];
        assert!(c.essential);
        assert_eq!(c.cpu, 0);
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.port_mappings[0].protocol, TransportProtocol::Tcp);
        let hc = c.health_check.as_ref().unwrap();
        assert_eq!((hc.interval, hc.timeout, hc.retries, hc.start_period), (30, 5, 3, None));
        let out = serde_json::to_value(&spec).unwrap();
        assert_eq!(out["containerDefinitions"][0]["environment"], json!([]));
        assert_eq!(out["containerDefinitions"][0]["mountPoints"], json!([]));
        assert!(out["containerDefinitions"][0].get("memory").is_none());

        let mapped = web(json!({ "portMappings": [{ "containerPort": 80 }] }));
        let bridge = register(json!({ "family": "b", "containerDefinitions": [mapped] })).unwrap();
        assert_eq!(bridge.network_mode, NetworkMode::Bridge);
        assert_eq!(bridge.container_definitions[0].port_mappings[0].host_port, 0);
        assert_eq!(bridge.compatibilities, vec![Compatibility::Ec2, Compatibility::External]);
    }

    #[test]
    fn ecs_validation_messages() {
        let one = |c: Value| json!({ "family": "f", "containerDefinitions": [c] });
        assert!(
            message(json!({ "family": "f", "containerDefinitions": [] })).contains("Container list cannot be empty")
        );
        assert_eq!(
            message(json!({ "family": "bad name", "containerDefinitions": [web(json!({}))] })),
            "Family contains invalid characters."
        );
        assert!(message(one(json!({ "name": "web", "image": "x" })))
            .contains("At least one of 'memory' or 'memoryReservation' must be specified"));
        assert!(register(
            json!({ "family": "f", "memory": "512", "containerDefinitions": [{ "name": "w", "image": "x" }] })
        )
        .is_ok());
        assert_eq!(message(one(web(json!({ "name": "a b" })))), "Container.name contains invalid characters.");
        assert!(message(one(web(json!({ "memory": 4 })))).contains("at least 6 MiB"));
        assert!(message(one(web(json!({ "memory": 64, "memoryReservation": 128 })))).contains("memoryReservation"));
        assert!(message(one(web(json!({ "essential": false })))).contains("doesn't have any essential container"));
        assert!(message(one(web(json!({ "environmentFiles": [{ "type": "s3", "value": "arn:aws:s3:::b/k" }] }))))
            .contains("environmentFiles"));
        assert!(
            register(one(web(json!({ "environmentFiles": [], "privileged": false, "systemControls": [] })))).is_ok()
        );
        assert_eq!(
            message(json!({ "family": "f", "networkMode": "awsvpc",
                            "containerDefinitions": [web(json!({ "portMappings": [{ "containerPort": 80, "hostPort": 8080 }] }))] })),
            "When networkMode=awsvpc, the host ports and container ports in port mappings must match."
        );
        assert!(message(
            json!({ "family": "f", "networkMode": "host", "containerDefinitions": [web(json!({ "links": ["x"] }))] })
        )
        .contains("Links are not supported"));
        assert!(message(
            json!({ "family": "f", "networkMode": "awsvpc", "containerDefinitions": [web(json!({ "hostname": "h" }))] })
        )
        .contains("hostname"));
        assert_eq!(
            message(one(web(
                json!({ "logConfiguration": { "logDriver": "awslogs", "options": { "awslogs-group": "g" } } })
            ))),
            "Log driver awslogs requires options: awslogs-region"
        );
        assert!(message(one(web(json!({ "healthCheck": { "command": ["CMD", "true"], "interval": 4 } }))))
            .contains("interval"));
        assert!(message(one(web(json!({ "healthCheck": { "command": ["true"] } })))).contains("CMD or CMD-SHELL"));
        assert!(message(one(web(json!({ "ulimits": [{ "name": "nofile", "softLimit": 10, "hardLimit": 5 }] }))))
            .contains("ulimit"));
        assert!(message(json!({ "family": "f", "cpu": "100", "containerDefinitions": [web(json!({}))] }))
            .contains("Invalid 'cpu' setting for task."));
        assert_eq!(
            message(json!({ "family": "f", "cpu": "256", "containerDefinitions": [web(json!({ "cpu": 512 }))] })),
            "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'."
        );
        let soft = |name: &str| web(json!({ "name": name, "memory": null, "memoryReservation": 64 }));
        let two = json!({ "family": "f", "memory": "100", "containerDefinitions": [soft("a"), soft("b")] });
        assert!(message(two).contains("The sum of all container 'memoryReservation' values"));
    }

    #[test]
    fn fargate_needs_awsvpc_a_valid_size_and_an_execution_role_for_awslogs() {
        let fargate = |extra: Value| {
            let mut v = json!({ "family": "f", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
                                "cpu": "256", "memory": "512", "containerDefinitions": [{ "name": "w", "image": "x" }] });
            for (k, val) in extra.as_object().unwrap() {
                v[k] = val.clone();
            }
            v
        };
        assert!(register(fargate(json!({}))).is_ok());
        assert_eq!(
            message(fargate(json!({ "networkMode": "bridge" }))),
            "Fargate only supports network mode 'awsvpc'."
        );
        assert_eq!(
            message(fargate(json!({ "cpu": null }))),
            "Fargate requires that 'cpu' be defined at the task level."
        );
        assert!(message(fargate(json!({ "memory": "4096" })))
            .starts_with("No Fargate configuration exists for given values"));
        let awslogs = json!([{ "name": "w", "image": "x", "logConfiguration": {
            "logDriver": "awslogs", "options": { "awslogs-group": "g", "awslogs-region": "us-east-1" } } }]);
        assert_eq!(
            message(fargate(json!({ "containerDefinitions": awslogs.clone() }))),
            "Fargate requires task definition to have execution role ARN to support log driver awslogs."
        );
        let ok =
            register(fargate(json!({ "containerDefinitions": awslogs, "executionRoleArn": "ecsTaskExecutionRole" })))
                .unwrap();
        assert_eq!(ok.execution_role_arn.as_deref(), Some("arn:aws:iam::000000000000:role/ecsTaskExecutionRole"));
        assert!(message(fargate(json!({ "taskRoleArn": "arn:aws:s3:::bucket" }))).starts_with("Role is not valid"));
        // Without requiring FARGATE, a definition that fits is still reported compatible.
        let spec = register(fargate(json!({ "requiresCompatibilities": null }))).unwrap();
        assert!(spec.compatibilities.contains(&Compatibility::Fargate));
        assert!(spec.requires_compatibilities.is_none());
    }

    #[test]
    fn dependencies_name_containers_without_cycles() {
        let two = |a: Value, b: Value| {
            json!({ "family": "f", "memory": "512", "containerDefinitions": [
            { "name": "a", "image": "x", "dependsOn": a }, { "name": "b", "image": "x", "essential": false, "dependsOn": b } ] })
        };
        assert!(register(two(json!([{ "containerName": "b", "condition": "SUCCESS" }]), json!(null))).is_ok());
        assert_eq!(
            message(two(json!([{ "containerName": "c", "condition": "START" }]), json!(null))),
            "Cannot depend on container 'c' because it does not exist"
        );
        assert!(message(two(
            json!([{ "containerName": "b", "condition": "START" }]),
            json!([{ "containerName": "a", "condition": "START" }])
        ))
        .contains("circular dependency: a -> b -> a"));
        assert!(message(two(json!(null), json!([{ "containerName": "a", "condition": "COMPLETE" }])))
            .contains("cannot be an essential container"));
        assert!(message(two(json!([{ "containerName": "b", "condition": "HEALTHY" }]), json!(null)))
            .contains("no healthCheck"));
        assert!(
            message(two(json!([{ "containerName": "b", "condition": "LATER" }]), json!(null))).contains("condition")
        );
    }

    #[test]
    fn references_are_families_revisions_or_arns() {
        let aws = AwsContext::default();
        assert_eq!(parse_reference(&aws, "web"), Ok(Reference::Family("web".into())));
        assert_eq!(parse_reference(&aws, "web:3"), Ok(Reference::Revision { family: "web".into(), revision: 3 }));
        assert_eq!(
            parse_reference(&aws, "arn:aws:ecs:us-east-1:000000000000:task-definition/web:12"),
            Ok(Reference::Revision { family: "web".into(), revision: 12 })
        );
        assert_eq!(parse_reference(&aws, "web:x"), Err(ReferenceError::BadRevision("x".into())));
        assert_eq!(parse_reference(&aws, "web:0"), Err(ReferenceError::BadRevision("0".into())));
        assert_eq!(
            parse_reference(&aws, "arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1"),
            Err(ReferenceError::NotFound)
        );
        assert_eq!(parse_reference(&aws, "we b"), Err(ReferenceError::NotFound));
    }
}
