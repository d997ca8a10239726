//! IAM's errors, and their AWS codes in one place.

use berth_aws::AwsError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("The user with name {name} cannot be found.")]
    NoSuchUser { name: String },
    #[error("User with name {name} already exists.")]
    UserExists { name: String },
    #[error("{0}")]
    Validation(String),
    #[error("berth could not read or write its state")]
    Store(#[from] StoreError),
}

impl From<berth_store::rusqlite::Error> for IamError {
    fn from(e: berth_store::rusqlite::Error) -> IamError {
        IamError::Store(StoreError::from(e))
    }
}

impl From<IamError> for AwsError {
    fn from(e: IamError) -> AwsError {
        match &e {
            IamError::NoSuchUser { .. } => AwsError::new(404, "NoSuchEntity", e.to_string()),
            IamError::UserExists { .. } => AwsError::new(409, "EntityAlreadyExists", e.to_string()),
            IamError::Validation(_) => AwsError::client("ValidationError", e.to_string()),
            IamError::Store(inner) => {
                tracing::error!(error = %inner, "iam state store failure");
                AwsError::internal("ServiceFailure", e.to_string())
            }
        }
    }
}
