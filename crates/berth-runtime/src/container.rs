//! Containers: what to create ([`ContainerSpec`]) and what the engine reports back
//! ([`ContainerInfo`], [`ContainerSummary`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

/// Everything a container is created with. Fields left empty take the image's or the engine's
/// defaults; the names follow ECS's container definition where one exists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name: unique on the engine, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    pub name: String,
    /// An image reference or id; the image must already be local (see [`crate::Runtime::pull_image`]).
    pub image: String,
    /// Replaces the image's `CMD`.
    pub command: Option<Vec<String>>,
    /// Replaces the image's `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// Environment variables, in order (a later duplicate wins, as in Docker).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `user`, `user:group`, `uid` or `uid:gid`.
    pub user: Option<String>,
    /// Not allowed with [`NetworkMode::Host`] or [`NetworkMode::Container`].
    pub hostname: Option<String>,
    /// The caller's identity on the container (cluster, task, container name …): what
    /// [`crate::Runtime::list_containers`] and [`crate::Runtime::events`] filter on.
    pub labels: BTreeMap<String, String>,
    pub network: NetworkMode,
    pub resources: Resources,
    pub healthcheck: Option<HealthCheck>,
    /// The signal that asks the container to stop (`SIGTERM`, `SIGQUIT` …); default the image's
    /// `STOPSIGNAL`, else SIGTERM.
    pub stop_signal: Option<String>,
    /// How long a plain stop waits before SIGKILL (whole seconds); [`crate::Runtime::stop_container`]
    /// takes its own timeout, this is the default for anyone else stopping the container.
    pub stop_timeout: Option<Duration>,
    pub ulimits: Vec<Ulimit>,
    pub readonly_root_filesystem: bool,
    /// `/etc/hosts` entries: (hostname, address).
    pub extra_hosts: Vec<(String, IpAddr)>,
}

/// Where the container's network interface lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Docker's default bridge, these container ports published on the host (ECS `bridge` with
    /// its `portMappings`).
    Bridge { ports: Vec<PortMapping> },
    /// A user-defined network (see [`crate::Runtime::ensure_network`]) with the container's own
    /// address on it (ECS `awsvpc`); a fixed `ipv4` needs a network created with a subnet.
    /// `aliases` are extra DNS names for the container on that network.
    Network { name: String, ipv4: Option<Ipv4Addr>, aliases: Vec<String> },
    /// The host's network namespace (ECS `host`).
    Host,
    /// Another container's network namespace (by id or name): how the containers of one ECS
    /// `awsvpc` task share one address and reach each other on localhost.
    Container(String),
}

impl Default for NetworkMode {
    fn default() -> Self {
        NetworkMode::Bridge { ports: Vec::new() }
    }
}

/// A container port published on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub container_port: u16,
    /// None: an ephemeral port the engine picks (read it back from [`ContainerInfo::ports`]).
    pub host_port: Option<u16>,
    pub protocol: PortProtocol,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
}

impl PortProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}

/// CPU and memory limits (ECS container `cpu` → shares, task `cpu` → nano-CPUs, `memory` → the
/// hard limit, `memoryReservation` → the soft one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// Relative CPU weight (1024 = one CPU's worth when CPUs are contended; Docker's minimum is 2).
    pub cpu_shares: Option<i64>,
    /// A hard CPU cap in billionths of a CPU (1_000_000_000 = one CPU).
    pub nano_cpus: Option<i64>,
    /// The hard memory limit in bytes: the container is OOM-killed above it (Docker's minimum is 6 MiB).
    pub memory_bytes: Option<i64>,
    /// The soft limit in bytes, enforced under memory pressure only.
    pub memory_reservation_bytes: Option<i64>,
}

/// A health check as ECS gives it (and Docker takes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// `["CMD", "/bin/check", "arg"]` (exec) or `["CMD-SHELL", "curl -f http://localhost/"]`
    /// (through `/bin/sh -c`), or `["NONE"]` to turn off the image's.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
    /// Failures during this time after start do not count.
    pub start_period: Duration,
}

/// A resource limit (`nofile`, `nproc` …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Matches containers by label: the key present (any value) or the key with exactly this value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
}

impl LabelFilter {
    /// Containers that carry the label, with any value.
    pub fn has(key: impl Into<String>) -> LabelFilter {
        LabelFilter { key: key.into(), value: None }
    }

    /// Containers whose label `key` is exactly `value`.
    pub fn equals(key: impl Into<String>, value: impl Into<String>) -> LabelFilter {
        LabelFilter { key: key.into(), value: Some(value.into()) }
    }

    /// Docker's filter syntax: `key` or `key=value`.
    pub(crate) fn to_docker(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={}", self.key, v),
            None => self.key.clone(),
        }
    }
}

/// The engine's state of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A state this driver does not know (a newer engine's).
    Unknown,
}

impl ContainerStatus {
    pub(crate) fn from_docker(s: &str) -> ContainerStatus {
        match s {
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "restarting" => ContainerStatus::Restarting,
            "removing" => ContainerStatus::Removing,
            "exited" => ContainerStatus::Exited,
            "dead" => ContainerStatus::Dead,
            _ => ContainerStatus::Unknown,
        }
    }

    /// Whether the main process has ended (and [`ContainerInfo::exit_code`] means something).
    pub fn is_finished(self) -> bool {
        matches!(self, ContainerStatus::Exited | ContainerStatus::Dead)
    }
}

/// A container's health as its health check last judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    /// No health check.
    None,
    /// Checks have not yet passed or failed `retries` times (or are in the start period).
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub(crate) fn from_docker(s: &str) -> HealthStatus {
        match s {
            "starting" => HealthStatus::Starting,
            "healthy" => HealthStatus::Healthy,
            "unhealthy" => HealthStatus::Unhealthy,
            _ => HealthStatus::None,
        }
    }
}

/// A container as [`crate::Runtime::inspect_container`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The image as the container was created with it (reference or id).
    pub image: String,
    /// The id (`sha256:…`) of the image the container runs.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub status: ContainerStatus,
    /// The main process's exit code, once it has ended ([`ContainerStatus::is_finished`]);
    /// 128 + n for a process ended by signal n (137 for SIGKILL).
    pub exit_code: Option<i64>,
    /// The kernel's OOM killer ended it (the memory limit was reached).
    pub oom_killed: bool,
    /// Why the engine could not start or run it (`exec: "x": executable file not found …`).
    pub error: Option<String>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub health: HealthStatus,
    /// By network name: the container's address there (none in host mode).
    pub networks: BTreeMap<String, NetworkAttachment>,
    /// Ports published on the host, one entry per host address they are bound to.
    pub ports: Vec<PublishedPort>,
    /// The limits the engine applies.
    pub resources: Resources,
}

/// The container's endpoint on one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub network_id: String,
    pub ipv4: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
}

/// A container port bound on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: PortProtocol,
    /// `0.0.0.0` (or `::`) when bound on every address.
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// A container in [`crate::Runtime::list_containers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub status: ContainerStatus,
}
