//! What comes out of running containers: lifecycle events, output lines and resource samples.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::container::{HealthStatus, LabelFilter};

/// Which events to receive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Containers that match all of these (none: every container).
    pub labels: Vec<LabelFilter>,
    /// Replay the engine's recent events from this moment (the engine keeps a short buffer);
    /// none: from the moment of the call, so that nothing between the call and the
    /// subscription reaching the engine is lost.
    pub since: Option<SystemTime>,
}

/// One lifecycle event of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    pub id: String,
    pub kind: ContainerEventKind,
    pub time: SystemTime,
    /// The event's attributes: the container's labels, with the engine's `name` and `image`
    /// (and `exitCode` on `die`, `signal` on `kill`).
    pub attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerEventKind {
    Start,
    /// The main process ended.
    Die {
        exit_code: Option<i64>,
    },
    /// The kernel's OOM killer ended a process in the container.
    Oom,
    HealthStatus(HealthStatus),
    /// The container was removed.
    Destroy,
}

/// Which output to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading until the container stops.
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Only lines written at or after this moment (whole seconds).
    pub since: Option<SystemTime>,
    /// Only the last n lines (of what exists when the call is made).
    pub tail: Option<u64>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { follow: false, stdout: true, stderr: true, since: None, tail: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One line of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub stream: OutputStream,
    /// When the engine received it.
    pub timestamp: Option<SystemTime>,
    /// The line without its newline (invalid UTF-8 replaced).
    pub message: String,
}

/// One sample of a container's resource use, with the previous CPU sample.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerStats {
    pub read: Option<SystemTime>,
    /// CPU time the container has used, in nanoseconds, now and at the previous sample.
    pub cpu_total_ns: u64,
    pub precpu_total_ns: u64,
    /// CPU time the whole host has used, in nanoseconds, now and at the previous sample.
    pub system_cpu_ns: u64,
    pub presystem_cpu_ns: u64,
    pub online_cpus: u32,
    /// Memory charged to the container (including page cache), in bytes.
    pub memory_usage_bytes: u64,
    /// Page cache the kernel may reclaim first (`inactive_file`), in bytes.
    pub memory_inactive_file_bytes: u64,
    /// The memory limit in force (the host's memory when there is none), in bytes.
    pub memory_limit_bytes: u64,
    /// The engine's answer as JSON (the shape the ECS task metadata `/stats` endpoint serves).
    pub raw: serde_json::Value,
}

impl ContainerStats {
    /// CPU use between the two samples, in percent of one CPU (200.0 = two CPUs busy), as
    /// `docker stats` computes it.
    pub fn cpu_percent(&self) -> f64 {
        let cpu = self.cpu_total_ns.saturating_sub(self.precpu_total_ns) as f64;
        let system = self.system_cpu_ns.saturating_sub(self.presystem_cpu_ns) as f64;
        if cpu <= 0.0 || system <= 0.0 {
            return 0.0;
        }
        cpu / system * f64::from(self.online_cpus.max(1)) * 100.0
    }

    /// Memory in use without reclaimable page cache, as `docker stats` shows it.
    pub fn memory_working_set_bytes(&self) -> u64 {
        self.memory_usage_bytes.saturating_sub(self.memory_inactive_file_bytes)
    }
}
