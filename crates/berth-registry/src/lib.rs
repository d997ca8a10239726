//! ECR for berth: the ECR API, the OCI distribution data path (`/v2/`) and the content-addressed
//! blob store they share.
//!
//! - [`blob_store`]: [`BlobStore`], blobs on disk under `<data dir>/registry`, addressed by their
//!   [`Digest`], written through uploads that are verified before they become visible.
//! - [`registry`]: [`Registry`], repositories, images, tags and blob links in the SQLite store: the
//!   one core both front ends call.
//! - [`manifest`]: what a pushed manifest or index is and what it refers to.
//! - [`token`]: the registry password (`get-login-password`) and signed layer download URLs.
//! - [`lifecycle`]: lifecycle policies: the document, which images it expires, applying it.
//! - [`gc`]: the blob garbage collector (and idle uploads); [`maintenance`]: the background task
//!   that applies every lifecycle policy and then collects, once per interval.
#![forbid(unsafe_code)]

pub mod blob_store;
pub mod distribution;
pub mod ecr;
pub mod error;
pub mod gc;
pub mod lifecycle;
pub mod maintenance;
pub mod manifest;
pub mod registry;
pub mod schema;
pub mod token;

pub use blob_store::{BlobError, BlobRead, BlobStore, Digest, UploadId};
pub use distribution::DataPath;
pub use ecr::EcrService;
pub use error::RegistryError;
pub use registry::{Image, ImagesInUse, NewRepository, Reference, Registry, Repository, TagMutability};
