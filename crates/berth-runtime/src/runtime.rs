//! The port: what ECS needs from a container runtime, as a trait that can be held as
//! `Arc<dyn Runtime>` (boxed futures rather than `async fn`, so it stays object safe).

use std::time::Duration;

use tokio::sync::mpsc;

use crate::container::{ContainerInfo, ContainerSpec, ContainerSummary, LabelFilter};
use crate::error::RuntimeError;
use crate::event::{ContainerEvent, ContainerStats, EventFilter, LogLine, LogOptions};
use crate::image::{PulledImage, RegistryAuth};
use crate::network::{NetworkInfo, NetworkSpec};

/// The boxed future every asynchronous method returns: the same type as `berth_aws::BoxFuture`.
pub type BoxFuture<'a, T> = berth_aws::BoxFuture<'a, T>;

/// A container runtime. Every method is one round of work against the engine and reports what
/// the engine said; none retries or waits for a state on its own (that is the controller's job).
///
/// Containers are named by the id [`Runtime::create_container`] returns (Docker also accepts the
/// container's name wherever an id is taken).
pub trait Runtime: Send + Sync + 'static {
    /// Pulls `reference` (`host/repo:tag`, `host/repo@sha256:…`; no tag means `:latest`) with the
    /// registry credentials, if any. A failure is [`RuntimeError::Pull`] carrying the engine's
    /// reason, which ECS reports as `CannotPullContainerError: <reason>`.
    fn pull_image<'a>(
        &'a self,
        reference: &'a str,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<PulledImage, RuntimeError>>;

    /// Removes a local image (by reference or id), forcing past stopped containers' references.
    /// An image that is not there is not an error.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Creates (does not start) a container; returns its id.
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, Result<String, RuntimeError>>;

    /// Starts a created or stopped container. Starting a running container is not an error.
    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Stops a container: its stop signal (the spec's, else the image's `STOPSIGNAL`, else
    /// SIGTERM), then SIGKILL after `timeout` (whole seconds, rounded up). Returns once it has
    /// stopped; stopping a stopped container is not an error.
    fn stop_container<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Sends `signal` (`SIGKILL`, `SIGUSR1`, `9` …) to the container's main process.
    fn kill_container<'a>(&'a self, id: &'a str, signal: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Removes a container, killing it first if it runs, with its anonymous volumes. A container
    /// that is already gone (or going) is not an error, so a controller can repeat it.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// The container's state as the engine sees it now.
    fn inspect_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerInfo, RuntimeError>>;

    /// Every container, running or not, that matches all of `labels` (none: every container).
    fn list_containers<'a>(
        &'a self,
        labels: &'a [LabelFilter],
    ) -> BoxFuture<'a, Result<Vec<ContainerSummary>, RuntimeError>>;

    /// One sample of the container's CPU and memory use (with the previous CPU sample, so that a
    /// CPU share can be computed; this takes the engine about a second).
    fn container_stats<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStats, RuntimeError>>;

    /// The container's output, line by line. The channel closes at the end of the output (with
    /// `follow`: when the container stops) or after the one error it then carries. Must be
    /// called within a tokio runtime: a task reads the engine's stream into the channel, and ends
    /// when the receiver is dropped.
    fn container_logs(&self, id: &str, options: &LogOptions) -> mpsc::Receiver<Result<LogLine, RuntimeError>>;

    /// Container lifecycle events (start, die, OOM, health status, destroy) of the containers that
    /// match the filter's labels, from `filter.since` (default: the moment of the call) on. The
    /// channel closes after an error (the engine went away): re-list the containers, then
    /// subscribe again. Must be called within a tokio runtime, like [`Runtime::container_logs`].
    fn events(&self, filter: &EventFilter) -> mpsc::Receiver<Result<ContainerEvent, RuntimeError>>;

    /// Makes sure a user-defined bridge network of this name exists and returns it: created with
    /// the spec's labels and subnet if missing, returned as it is if present (an existing network
    /// with another subnet than the one asked for is [`RuntimeError::NetworkConflict`]).
    fn ensure_network<'a>(&'a self, spec: &'a NetworkSpec) -> BoxFuture<'a, Result<NetworkInfo, RuntimeError>>;

    /// Removes a network by name or id. A network that is not there is not an error; one that
    /// still has containers attached is [`RuntimeError::NetworkInUse`].
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;
}
