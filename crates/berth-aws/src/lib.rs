//! The AWS wire, usable by every berth service: SigV4, the awsJson and awsQuery codecs, operation
//! routing, AWS error shapes, ARNs, ids and time.
#![forbid(unsafe_code)]

pub mod context;
pub mod error;
pub mod gateway;
pub mod identity;
pub mod ids;
pub mod protocol;
pub mod query;
pub mod service;
pub mod sigv4;
pub mod time;
pub mod xml;

pub use context::AwsContext;
pub use error::{AwsError, WireError};
pub use gateway::Gateway;
pub use identity::{Authorizer, AuthzRequest, Credential, CredentialStore, Principal, PrincipalKind, Secret};
pub use protocol::Protocol;
pub use query::QueryInput;
pub use service::{Auth, BoxFuture, Input, Operation, Output, RequestContext, ResourceRule, Service, ServiceSpec};
