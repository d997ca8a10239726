//! IAM, STS and the authorization of every request.
//!
//! - [`IamService`]: the IAM API (users, access keys, roles, managed and inline policies, OIDC providers).
//! - [`StsService`]: `GetCallerIdentity`, `AssumeRole`, `AssumeRoleWithWebIdentity`.
//! - [`IamState`]: the in-memory view every request is authenticated ([`berth_aws::CredentialStore`])
//!   and authorized ([`berth_aws::Authorizer`]) against, rebuilt after each write.
//! - [`policy`]: the policy language and its evaluation; [`oidc`]: web-identity token verification.
#![forbid(unsafe_code)]

pub mod access_key;
pub mod aws_managed;
pub mod common;
pub mod error;
pub mod iam;
pub mod inline_policy;
pub mod managed_policy;
pub mod oidc;
pub mod oidc_provider;
pub mod policy;
pub mod role;
pub mod root_credentials;
pub mod schema;
pub mod state;
pub mod sts;
pub mod user;

pub use error::IamError;
pub use iam::IamService;
pub use root_credentials::{RootCredentialSource, RootCredentials, RootCredentialsError};
pub use state::IamState;
pub use sts::StsService;
