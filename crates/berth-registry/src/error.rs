//! ECR's errors and their AWS codes, in one place. Each variant carries the message ECR gives,
//! built where the error is found. The data path maps the same variants to the OCI spec's codes
//! (see `distribution`).

use berth_aws::AwsError;
use berth_store::StoreError;

use crate::blob_store::BlobError;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    RepositoryNotFound(String),
    #[error("{0}")]
    RepositoryAlreadyExists(String),
    #[error("{0}")]
    RepositoryNotEmpty(String),
    #[error("{0}")]
    ImageNotFound(String),
    #[error("{0}")]
    ImageAlreadyExists(String),
    #[error("{0}")]
    ImageTagAlreadyExists(String),
    #[error("{0}")]
    ImageDigestDoesNotMatch(String),
    #[error("{0}")]
    LayersNotFound(String),
    #[error("{0}")]
    ReferencedImagesNotFound(String),
    #[error("{0}")]
    LayerAlreadyExists(String),
    #[error("{0}")]
    InvalidLayer(String),
    #[error("{0}")]
    InvalidLayerPart(String),
    #[error("{0}")]
    UploadNotFound(String),
    #[error("{0}")]
    EmptyUpload(String),
    #[error("{0}")]
    LifecyclePolicyNotFound(String),
    #[error("{0}")]
    RepositoryPolicyNotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// `InvalidParameterException` about a manifest (the data path's `MANIFEST_INVALID`).
    #[error("{0}")]
    InvalidManifest(String),
    /// `InvalidParameterException` about a repository name (`NAME_INVALID`).
    #[error("{0}")]
    InvalidName(String),
    /// `InvalidParameterException` about a tag (`TAG_INVALID`).
    #[error("{0}")]
    InvalidTag(String),
    /// `InvalidParameterException` about a digest (`DIGEST_INVALID`).
    #[error("{0}")]
    InvalidDigest(String),
    #[error("{0}")]
    InvalidTagParameter(String),
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("berth could not read or write its state")]
    Store(#[from] StoreError),
    #[error("berth could not read or write image data")]
    Blob(#[source] BlobError),
}

impl From<berth_store::rusqlite::Error> for RegistryError {
    fn from(e: berth_store::rusqlite::Error) -> RegistryError {
        RegistryError::Store(StoreError::from(e))
    }
}

impl RegistryError {
    /// The ECR exception name.
    pub fn code(&self) -> &'static str {
        use RegistryError::*;
        match self {
            RepositoryNotFound(_) => "RepositoryNotFoundException",
            RepositoryAlreadyExists(_) => "RepositoryAlreadyExistsException",
            RepositoryNotEmpty(_) => "RepositoryNotEmptyException",
            ImageNotFound(_) => "ImageNotFoundException",
            ImageAlreadyExists(_) => "ImageAlreadyExistsException",
            ImageTagAlreadyExists(_) => "ImageTagAlreadyExistsException",
            ImageDigestDoesNotMatch(_) => "ImageDigestDoesNotMatchException",
            LayersNotFound(_) => "LayersNotFoundException",
            ReferencedImagesNotFound(_) => "ReferencedImagesNotFoundException",
            LayerAlreadyExists(_) => "LayerAlreadyExistsException",
            InvalidLayer(_) => "InvalidLayerException",
            InvalidLayerPart(_) => "InvalidLayerPartException",
            UploadNotFound(_) => "UploadNotFoundException",
            EmptyUpload(_) => "EmptyUploadException",
            LifecyclePolicyNotFound(_) => "LifecyclePolicyNotFoundException",
            RepositoryPolicyNotFound(_) => "RepositoryPolicyNotFoundException",
            InvalidParameter(_) | InvalidManifest(_) | InvalidName(_) | InvalidTag(_) | InvalidDigest(_) => {
                "InvalidParameterException"
            }
            InvalidTagParameter(_) => "InvalidTagParameterException",
            TooManyTags(_) => "TooManyTagsException",
            Validation(_) => "ValidationException",
            LimitExceeded(_) => "LimitExceededException",
            Store(_) | Blob(_) => "ServerException",
        }
    }

    pub fn is_server_fault(&self) -> bool {
        matches!(self, RegistryError::Store(_) | RegistryError::Blob(_))
    }

    /// Blob store failures that are the client's doing become ECR's client errors; I/O is ours.
    pub fn from_blob(e: BlobError) -> RegistryError {
        match e {
            BlobError::UnknownUpload { upload_id } => {
                RegistryError::UploadNotFound(format!("The upload with id '{upload_id}' does not exist"))
            }
            BlobError::BlobUnknown { digest } => {
                RegistryError::LayersNotFound(format!("The layer with digest '{digest}' does not exist"))
            }
            BlobError::OffsetMismatch { expected, actual } => RegistryError::InvalidLayerPart(format!(
                "The part starts at byte {expected} but the upload has {actual} bytes"
            )),
            BlobError::DigestMismatch { expected, actual } => RegistryError::InvalidLayer(format!(
                "The uploaded layer has digest '{actual}', not the expected '{expected}'"
            )),
            BlobError::InvalidDigest(reason) => RegistryError::InvalidDigest(format!("Invalid layer digest: {reason}")),
            e @ BlobError::RangeNotSatisfiable { .. } => RegistryError::InvalidParameter(e.to_string()),
            e @ BlobError::Io { .. } => RegistryError::Blob(e),
        }
    }
}

impl From<RegistryError> for AwsError {
    fn from(e: RegistryError) -> AwsError {
        if e.is_server_fault() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "registry failure");
            return AwsError::internal("ServerException", e.to_string());
        }
        AwsError::client(e.code(), e.to_string())
    }
}
