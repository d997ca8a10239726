//! What can go wrong talking to the engine, sorted by what the caller does about it: the engine
//! is away (retry later), the thing is not there, a conflict, a pull that failed (the task fails
//! with `CannotPullContainerError`), or a refusal with the engine's own message.

/// An error from a [`crate::Runtime`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Nothing answers at the engine's address (no daemon, socket missing, connection refused
    /// or timed out). Retry later; nothing was done.
    #[error("no Docker daemon answers at {host}: start dockerd (or set DOCKER_HOST to where one listens)")]
    Unavailable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: &'static str },
    /// The spec is refused before it reaches the engine.
    #[error("invalid container spec for {name:?}: {reason}")]
    InvalidSpec { name: String, reason: String },
    /// A pull failed; `reason` is the engine's own message (no such repository, manifest
    /// unknown, denied, connection refused …).
    #[error("pulling {reference} failed: {reason}")]
    Pull { reference: String, reason: String },
    #[error("no such image: {reference}")]
    ImageNotFound { reference: String },
    #[error("no such container: {id}")]
    ContainerNotFound { id: String },
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("the container name {name:?} is already in use")]
    NameInUse { name: String },
    #[error("no such network: {name}")]
    NetworkNotFound { name: String },
    #[error("network {name} still has containers attached: {message}")]
    NetworkInUse { name: String, message: String },
    /// A network of that name exists but is not what was asked for.
    #[error("network {name} exists with {have}, not {want}")]
    NetworkConflict { name: String, want: String, have: String },
    /// The engine refused the request; `message` is its reason.
    #[error("Docker refused to {operation}: {message} (HTTP {status})")]
    Refused { operation: &'static str, status: u16, message: String },
    /// The engine ended a stream before it said what was asked (it is stopping, or has
    /// nothing to say): for events, re-list the containers and subscribe again.
    #[error("the Docker engine ended the stream while trying to {operation}")]
    StreamEnded { operation: &'static str },
    /// Anything else between the driver and the engine (an answer it could not read …).
    #[error("Docker failed to {operation}")]
    Docker {
        operation: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}

impl RuntimeError {
    /// Whether the engine was unreachable: the operation may succeed if tried again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RuntimeError::Unavailable { .. })
    }
}
