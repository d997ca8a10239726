//! ECS's errors and their AWS codes, in one place. Each variant carries the message ECS gives,
//! built where the error is found (ECS words most of its validation failures as `ClientException`
//! with a sentence naming the setting, e.g. "Invalid setting for container 'web'. At least one of
//! 'memory' or 'memoryReservation' must be specified.").

use berth_aws::AwsError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// `ClientException`: the request is wrong in a way ECS explains in words.
    #[error("{0}")]
    Client(String),
    /// `InvalidParameterException`: a member is malformed or out of range.
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    ClusterNotFound(String),
    #[error("{0}")]
    ClusterContainsTasks(String),
    #[error("{0}")]
    ResourceNotFound(String),
    /// The body has a member of the wrong JSON type.
    #[error("{0}")]
    Serialization(String),
    #[error("berth could not read or write its state")]
    Store(#[from] StoreError),
    /// A row holds JSON berth cannot read back: a bug or a damaged database, never the caller's.
    #[error("stored ECS state is unreadable ({what})")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<berth_store::rusqlite::Error> for EcsError {
    fn from(e: berth_store::rusqlite::Error) -> EcsError {
        EcsError::Store(StoreError::from(e))
    }
}

impl EcsError {
    pub fn client(message: impl Into<String>) -> EcsError {
        EcsError::Client(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> EcsError {
        EcsError::InvalidParameter(message.into())
    }

    /// ECS's answer for a cluster that does not exist (or is no longer ACTIVE where it must be).
    pub fn cluster_not_found() -> EcsError {
        EcsError::ClusterNotFound("Cluster not found.".into())
    }

    /// The ECS exception name.
    pub fn code(&self) -> &'static str {
        match self {
            EcsError::Client(_) => "ClientException",
            EcsError::InvalidParameter(_) => "InvalidParameterException",
            EcsError::ClusterNotFound(_) => "ClusterNotFoundException",
            EcsError::ClusterContainsTasks(_) => "ClusterContainsTasksException",
            EcsError::ResourceNotFound(_) => "ResourceNotFoundException",
            EcsError::Serialization(_) => "SerializationException",
            EcsError::Store(_) | EcsError::Corrupt { .. } => "ServerException",
        }
    }

    pub fn is_server_fault(&self) -> bool {
        matches!(self, EcsError::Store(_) | EcsError::Corrupt { .. })
    }
}

impl From<EcsError> for AwsError {
    fn from(e: EcsError) -> AwsError {
        if e.is_server_fault() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "ECS failure");
            return AwsError::internal("ServerException", e.to_string());
        }
        AwsError::client(e.code(), e.to_string())
    }
}
