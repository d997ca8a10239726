//! The ECR API (awsJson 1.1, `AmazonEC2ContainerRegistry_V20150921`), on top of [`Registry`].
//!
//! Shapes, names and error codes follow botocore's `ecr/2015-09-21/service-2.json`.

use std::sync::Arc;

use berth_aws::{
    AwsError, BoxFuture, CredentialStore, Input, Operation, Output, Protocol, RequestContext, ResourceRule, Service,
    ServiceSpec,
};
use serde_json::{json, Map, Value};

use crate::error::RegistryError;
use crate::registry::{NewRepository, Registry, Repository, TagMutability};
use crate::token::{TokenKey, TOKEN_LIFETIME_SECS};

/// `arn:aws:ecr:<region>:<account>:repository/<repositoryName>` from the request.
fn repository_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let name = input
        .as_json()
        .and_then(|m| m.get("repositoryName"))
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::missing_parameter(Protocol::AwsJson1_1, "repositoryName"))?;
    Ok(ctx.aws.arn("ecr", &format!("repository/{name}")))
}

const REPO: ResourceRule = ResourceRule::Arn(repository_arn);

pub static ECR_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "ecr",
    action_prefix: "ecr",
    protocol: Protocol::AwsJson1_1,
    target_prefix: "AmazonEC2ContainerRegistry_V20150921",
    xml_namespace: "",
    global: false,
    operations: &[
        Operation::action("GetAuthorizationToken", "ecr:GetAuthorizationToken", ResourceRule::Any),
        Operation::action("CreateRepository", "ecr:CreateRepository", REPO),
        Operation::action("DescribeRepositories", "ecr:DescribeRepositories", ResourceRule::Any),
    ],
};

/// The ECR API service.
pub struct EcrService {
    registry: Registry,
    credentials: Arc<dyn CredentialStore>,
}

impl EcrService {
    pub fn new(registry: Registry, credentials: Arc<dyn CredentialStore>) -> EcrService {
        EcrService { registry, credentials }
    }

    /// `authorizationData[0]`: a password for the caller's key, valid 12 hours or until the
    /// caller's own credentials expire, whichever is first.
    fn get_authorization_token(&self, ctx: &RequestContext) -> Result<Value, AwsError> {
        let now = self.registry.now();
        let mut expires_at = berth_aws::time::Timestamp(now.0 + TOKEN_LIFETIME_SECS);
        if let Some(exp) = self.credentials.lookup(&ctx.principal.access_key_id).and_then(|c| c.expires_at) {
            expires_at = expires_at.min(exp);
        }
        let password = self.registry.tokens().mint_password(&ctx.principal.access_key_id, expires_at);
        Ok(json!({
            "authorizationData": [{
                "authorizationToken": TokenKey::authorization_token(&password),
                "expiresAt": expires_at.0,
                "proxyEndpoint": format!("http://{}", self.registry.host()),
            }]
        }))
    }

    async fn create_repository(&self, input: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = str_member(input, "repositoryName")?.ok_or_else(|| missing("repositoryName"))?;
        let tag_mutability = match str_member(input, "imageTagMutability")? {
            None => TagMutability::Mutable,
            Some(m) => TagMutability::parse(m).ok_or_else(|| {
                RegistryError::InvalidParameter(format!(
                    "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [MUTABLE, IMMUTABLE]' (value '{m}')"
                ))
            })?,
        };
        let repo = self
            .registry
            .create_repository(NewRepository {
                name: name.to_string(),
                tag_mutability,
                scan_on_push: false,
                encryption_type: "AES256".into(),
                kms_key: None,
                tags: Vec::new(),
            })
            .await?;
        Ok(json!({ "repository": repository_json(&repo) }))
    }

    async fn describe_repositories(&self, _input: &Map<String, Value>) -> Result<Value, AwsError> {
        let repos = self.registry.repositories().await?;
        Ok(json!({ "repositories": repos.iter().map(repository_json).collect::<Vec<_>>() }))
    }
}

/// A `Repository` shape.
pub fn repository_json(r: &Repository) -> Value {
    let mut encryption = json!({ "encryptionType": r.encryption_type });
    if let Some(k) = &r.kms_key {
        encryption["kmsKey"] = json!(k);
    }
    json!({
        "repositoryArn": r.arn,
        "registryId": r.registry_id,
        "repositoryName": r.name,
        "repositoryUri": r.uri,
        "createdAt": r.created_at.0,
        "imageTagMutability": r.tag_mutability.as_str(),
        "imageScanningConfiguration": { "scanOnPush": r.scan_on_push },
        "encryptionConfiguration": encryption,
    })
}

fn missing(member: &str) -> AwsError {
    AwsError::missing_parameter(Protocol::AwsJson1_1, member)
}

/// A string member, or `InvalidParameterException` if it is there but not a string.
fn str_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, AwsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => {
            Err(RegistryError::InvalidParameter(format!("Invalid parameter at '{member}': expected a string")).into())
        }
    }
}

impl Service for EcrService {
    fn spec(&self) -> &'static ServiceSpec {
        &ECR_SPEC
    }

    fn resource_policy(&self, resource: &str) -> Option<Arc<str>> {
        let name = resource.split_once(":repository/")?.1;
        self.registry.repository_policy(name)
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let empty = Map::new();
            let m = input.as_json().unwrap_or(&empty);
            let out = match ctx.operation {
                "GetAuthorizationToken" => self.get_authorization_token(ctx)?,
                "CreateRepository" => self.create_repository(m).await?,
                "DescribeRepositories" => self.describe_repositories(m).await?,
                op => return Err(AwsError::client("UnknownOperationException", format!("Unknown operation {op}"))),
            };
            Ok(Output::Json(out))
        })
    }
}
