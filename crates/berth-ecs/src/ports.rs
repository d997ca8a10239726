//! What ECS needs from other parts of berth, as small traits (ports). `berth-server` plugs the
//! registry and STS in (adapters in `berth_server::adapters`); tests may plug in their own.

use berth_aws::time::Timestamp;
use berth_aws::{BoxFuture, Secret};
use berth_runtime::RegistryAuth;

/// Where a container's image is pulled from, and with which credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// What the runtime pulls: `localhost:4566/web@sha256:…` for an image in berth's registry
    /// (a tag resolved to its digest at task start), else the reference as the definition gives it.
    pub pull_reference: String,
    /// The manifest digest, when the registry resolved it: recorded on the task's container.
    pub digest: Option<String>,
    /// Registry credentials minted for the identity the pull runs as (the execution role's session);
    /// none for an image from another registry, which Docker pulls as it would anonymously.
    pub auth: Option<RegistryAuth>,
}

/// Why an image could not be resolved: ECS stops the task with
/// `CannotPullContainerError: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

/// Berth's registry, as task start needs it.
pub trait ImageSource: Send + Sync + 'static {
    /// Resolves a container definition's `image`. `pull_as` is the access key id of the session
    /// the pull runs as (the task's execution role); without one, an image in berth's registry gets
    /// no credentials, and the pull is refused as ECR refuses it.
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull_as: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ResolvedImage, ImageError>>;
}

/// Short-lived credentials of a role session (task role or execution role).
#[derive(Clone, Debug)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: Timestamp,
    pub role_arn: String,
}

/// Role sessions for tasks: STS acting for `ecs-tasks.amazonaws.com`.
pub trait RoleSessions: Send + Sync + 'static {
    /// A session of `role_arn` for the task `task_arn` (the session is named after the task id).
    /// The role's trust policy must allow `ecs-tasks.amazonaws.com`; the error is AWS's refusal.
    fn assume<'a>(
        &'a self,
        role_arn: &'a str,
        task_arn: &'a str,
        session_name: &'a str,
    ) -> BoxFuture<'a, Result<RoleCredentials, String>>;
}
