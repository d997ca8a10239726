//! IAM's and STS's errors, and their AWS codes in one place. Each variant carries the message AWS
//! would give, built where the error is found.

use berth_aws::AwsError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// `NoSuchEntity` (404).
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists` (409).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `DeleteConflict` (409): the entity still has attached or dependent entities.
    #[error("{0}")]
    DeleteConflict(String),
    /// `LimitExceeded` (409).
    #[error("{0}")]
    LimitExceeded(String),
    /// `MalformedPolicyDocument` (400).
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `InvalidInput` (400).
    #[error("{0}")]
    InvalidInput(String),
    /// `ValidationError` (400).
    #[error("{0}")]
    Validation(String),
    /// STS `AccessDenied` (403).
    #[error("{0}")]
    AccessDenied(String),
    /// STS `InvalidIdentityToken` (400).
    #[error("{0}")]
    InvalidIdentityToken(String),
    /// STS `ExpiredTokenException` (400).
    #[error("{0}")]
    ExpiredToken(String),
    /// STS `IDPCommunicationError` (400).
    #[error("{0}")]
    IdpCommunication(String),
    #[error("berth could not read or write its state")]
    Store(#[from] StoreError),
}

impl IamError {
    /// AWS's wording for a failed constraint on a member.
    pub fn validation(member: &str, value: &str, constraint: &str) -> IamError {
        IamError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }
}

impl From<berth_store::rusqlite::Error> for IamError {
    fn from(e: berth_store::rusqlite::Error) -> IamError {
        IamError::Store(StoreError::from(e))
    }
}

impl From<IamError> for AwsError {
    fn from(e: IamError) -> AwsError {
        let (status, code) = match &e {
            IamError::NoSuchEntity(_) => (404, "NoSuchEntity"),
            IamError::EntityAlreadyExists(_) => (409, "EntityAlreadyExists"),
            IamError::DeleteConflict(_) => (409, "DeleteConflict"),
            IamError::LimitExceeded(_) => (409, "LimitExceeded"),
            IamError::MalformedPolicyDocument(_) => (400, "MalformedPolicyDocument"),
            IamError::InvalidInput(_) => (400, "InvalidInput"),
            IamError::Validation(_) => (400, "ValidationError"),
            IamError::AccessDenied(_) => (403, "AccessDenied"),
            IamError::InvalidIdentityToken(_) => (400, "InvalidIdentityToken"),
            IamError::ExpiredToken(_) => (400, "ExpiredTokenException"),
            IamError::IdpCommunication(_) => (400, "IDPCommunicationError"),
            IamError::Store(inner) => {
                tracing::error!(error = %inner, "iam state store failure");
                return AwsError::internal("ServiceFailure", e.to_string());
            }
        };
        AwsError::new(status, code, e.to_string())
    }
}
