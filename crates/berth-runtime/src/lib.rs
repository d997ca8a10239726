//! The container runtime ECS drives: a port ([`Runtime`]) that says what a task controller needs
//! from a container engine, and its Docker Engine driver ([`DockerRuntime`], on `bollard`).
//!
//! The port speaks in containers, images, networks and labels; it knows nothing of tasks or
//! clusters. The caller puts its own identity on what it creates (labels such as the cluster, the
//! task ARN and the container name) and finds it again through [`Runtime::list_containers`] after a
//! restart: Docker is the record of what runs, this crate keeps no state of its own.
//!
//! ```text
//! task controller ──Arc<dyn Runtime>──▶ DockerRuntime ──bollard, API 1.41──▶ dockerd (unix socket / DOCKER_HOST)
//! ```
#![forbid(unsafe_code)]

mod container;
mod docker;
mod error;
mod event;
mod image;
mod network;
mod runtime;
mod time;

pub use container::{
    ContainerInfo, ContainerSpec, ContainerStatus, ContainerSummary, HealthCheck, HealthStatus, LabelFilter,
    NetworkAttachment, NetworkMode, PortMapping, PortProtocol, PublishedPort, Resources, Ulimit,
};
pub use docker::DockerRuntime;
pub use error::RuntimeError;
pub use event::{ContainerEvent, ContainerEventKind, ContainerStats, EventFilter, LogLine, LogOptions, OutputStream};
pub use image::{ImageReference, PulledImage, RegistryAuth};
pub use network::{NetworkInfo, NetworkSpec};
pub use runtime::{BoxFuture, Runtime};
