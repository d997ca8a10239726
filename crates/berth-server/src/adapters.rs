//! Adapters: other crates plugged into the ports ECS declares (`berth_ecs::ports`), so that no
//! service crate depends on another.

use std::sync::Arc;

use berth_aws::time::Timestamp;
use berth_aws::{BoxFuture, CredentialStore, Secret};
use berth_ecs::ports::{ImageError, ImageSource, ResolvedImage, RoleCredentials, RoleSessions};
use berth_iam::StsService;
use berth_registry::token::TOKEN_LIFETIME_SECS;
use berth_registry::{Reference, Registry, RegistryError};
use berth_runtime::{ImageReference, RegistryAuth};

/// ECS task images from berth's registry: tags resolved to digests, credentials minted for the
/// session the pull runs as (the data path then authorizes that identity with IAM, as ECR would).
pub struct RegistryImages {
    pub registry: Registry,
    pub credentials: Arc<dyn CredentialStore>,
}

impl RegistryImages {
    /// The repository within berth's registry that `repository` (from a parsed reference) names:
    /// `<registry host>/<name>`, or ECR's `<account>.dkr.ecr.<region>.amazonaws.com/<name>`.
    fn repository_name<'r>(&self, repository: &'r str) -> Option<&'r str> {
        let (host, name) = repository.split_once('/')?;
        let aws = self.registry.aws();
        let ecr_host = format!("{}.dkr.ecr.{}.amazonaws.com", aws.account_id, aws.region);
        (host == self.registry.host() || host == ecr_host).then_some(name)
    }
}

impl ImageSource for RegistryImages {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull_as: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ResolvedImage, ImageError>> {
        Box::pin(async move {
            let parsed = ImageReference::parse(image).map_err(|e| ImageError(e.to_string()))?;
            let Some(name) = self.repository_name(&parsed.repository) else {
                // Not berth's registry: Docker pulls it as given, without credentials.
                return Ok(ResolvedImage { pull_reference: image.to_string(), digest: None, auth: None });
            };
            let reference = match (&parsed.digest, &parsed.tag) {
                (Some(d), _) => Reference::parse(d),
                (None, Some(t)) => Reference::parse(t),
                (None, None) => Reference::parse("latest"),
            }
            .map_err(|e| ImageError(e.to_string()))?;
            let digest = match self.registry.resolve(name, &reference).await {
                Ok(d) => d,
                Err(e @ (RegistryError::RepositoryNotFound(_) | RegistryError::ImageNotFound(_))) => {
                    return Err(ImageError(format!(
                        "pull image manifest has been retried 1 time(s): {image}: not found: {e}"
                    )))
                }
                Err(e) => return Err(ImageError(format!("the registry could not resolve {image}: {e}"))),
            };
            let host = self.registry.host().to_string();
            let auth = pull_as.map(|key| {
                // A password for the session, valid as long as it is (at most ECR's 12 hours).
                let now = self.registry.now();
                let mut expires = Timestamp(now.0 + TOKEN_LIFETIME_SECS);
                if let Some(exp) = self.credentials.lookup(key).and_then(|c| c.expires_at) {
                    expires = expires.min(exp);
                }
                let password = self.registry.tokens().mint_password(key, expires);
                RegistryAuth { username: "AWS".into(), password: Secret::new(password), server_address: host.clone() }
            });
            Ok(ResolvedImage {
                pull_reference: format!("{host}/{name}@{digest}"),
                digest: Some(digest.to_string()),
                auth,
            })
        })
    }
}

/// Task and execution role sessions from STS, acting for `ecs-tasks.amazonaws.com`.
pub struct StsRoleSessions {
    pub sts: Arc<StsService>,
    /// How long each session lasts (ECS refreshes task credentials well before they expire).
    pub duration_secs: i64,
}

impl RoleSessions for StsRoleSessions {
    fn assume<'a>(
        &'a self,
        role_arn: &'a str,
        task_arn: &'a str,
        session_name: &'a str,
    ) -> BoxFuture<'a, Result<RoleCredentials, String>> {
        Box::pin(async move {
            let s = self
                .sts
                .assume_role_for_service(
                    role_arn,
                    "ecs-tasks.amazonaws.com",
                    Some(task_arn),
                    session_name,
                    self.duration_secs,
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(RoleCredentials {
                access_key_id: s.access_key_id,
                secret_access_key: Secret::new(s.secret_access_key),
                session_token: Secret::new(s.session_token),
                expiration: s.expires_at,
                role_arn: role_arn.to_string(),
            })
        })
    }
}
