//! The IAM API (awsQuery): the operation table (each operation with its IAM action and resource
//! ARN) and the dispatch to the resource files (`user.rs`, `access_key.rs`, `role.rs`,
//! `managed_policy.rs`, `inline_policy.rs`, `oidc_provider.rs`).

use std::sync::Arc;

use berth_aws::time::{SharedClock, Timestamp};
use berth_aws::{
    AwsError, BoxFuture, Input, Operation, Output, Protocol, RequestContext, ResourceRule, Service, ServiceSpec,
};
use berth_store::Store;

use crate::error::IamError;
use crate::state::IamState;

const fn op(name: &'static str, action: &'static str, resource: ResourceRule) -> Operation {
    Operation::action(name, action, resource)
}

use ResourceRule::{Any, Arn};

pub static IAM_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "iam",
    action_prefix: "iam",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: "https://iam.amazonaws.com/doc/2010-05-08/",
    global: true,
    operations: &[
        op("CreateUser", "iam:CreateUser", Arn(user_arn)),
        op("GetUser", "iam:GetUser", Arn(user_arn)),
        op("ListUsers", "iam:ListUsers", Arn(listed_arn)),
        op("DeleteUser", "iam:DeleteUser", Arn(user_arn)),
        op("CreateAccessKey", "iam:CreateAccessKey", Arn(user_arn)),
        op("ListAccessKeys", "iam:ListAccessKeys", Arn(user_arn)),
        op("UpdateAccessKey", "iam:UpdateAccessKey", Arn(user_arn)),
        op("DeleteAccessKey", "iam:DeleteAccessKey", Arn(user_arn)),
        op("CreateRole", "iam:CreateRole", Arn(role_arn)),
        op("GetRole", "iam:GetRole", Arn(role_arn)),
        op("ListRoles", "iam:ListRoles", Arn(listed_arn)),
        op("UpdateAssumeRolePolicy", "iam:UpdateAssumeRolePolicy", Arn(role_arn)),
        op("DeleteRole", "iam:DeleteRole", Arn(role_arn)),
        op("CreatePolicy", "iam:CreatePolicy", Arn(policy_arn)),
        op("GetPolicy", "iam:GetPolicy", Arn(policy_arn)),
        op("ListPolicies", "iam:ListPolicies", Arn(listed_arn)),
        op("DeletePolicy", "iam:DeletePolicy", Arn(policy_arn)),
        op("CreatePolicyVersion", "iam:CreatePolicyVersion", Arn(policy_arn)),
        op("GetPolicyVersion", "iam:GetPolicyVersion", Arn(policy_arn)),
        op("ListPolicyVersions", "iam:ListPolicyVersions", Arn(policy_arn)),
        op("DeletePolicyVersion", "iam:DeletePolicyVersion", Arn(policy_arn)),
        op("SetDefaultPolicyVersion", "iam:SetDefaultPolicyVersion", Arn(policy_arn)),
        op("AttachRolePolicy", "iam:AttachRolePolicy", Arn(role_arn)),
        op("DetachRolePolicy", "iam:DetachRolePolicy", Arn(role_arn)),
        op("ListAttachedRolePolicies", "iam:ListAttachedRolePolicies", Arn(role_arn)),
        op("AttachUserPolicy", "iam:AttachUserPolicy", Arn(user_arn)),
        op("DetachUserPolicy", "iam:DetachUserPolicy", Arn(user_arn)),
        op("ListAttachedUserPolicies", "iam:ListAttachedUserPolicies", Arn(user_arn)),
        op("PutRolePolicy", "iam:PutRolePolicy", Arn(role_arn)),
        op("GetRolePolicy", "iam:GetRolePolicy", Arn(role_arn)),
        op("DeleteRolePolicy", "iam:DeleteRolePolicy", Arn(role_arn)),
        op("ListRolePolicies", "iam:ListRolePolicies", Arn(role_arn)),
        op("PutUserPolicy", "iam:PutUserPolicy", Arn(user_arn)),
        op("GetUserPolicy", "iam:GetUserPolicy", Arn(user_arn)),
        op("DeleteUserPolicy", "iam:DeleteUserPolicy", Arn(user_arn)),
        op("ListUserPolicies", "iam:ListUserPolicies", Arn(user_arn)),
        op("CreateOpenIDConnectProvider", "iam:CreateOpenIDConnectProvider", Arn(oidc_provider_arn)),
        op("GetOpenIDConnectProvider", "iam:GetOpenIDConnectProvider", Arn(oidc_provider_arn)),
        op("ListOpenIDConnectProviders", "iam:ListOpenIDConnectProviders", Any),
        op("DeleteOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider", Arn(oidc_provider_arn)),
        op("AddClientIDToOpenIDConnectProvider", "iam:AddClientIDToOpenIDConnectProvider", Arn(oidc_provider_arn)),
        op(
            "RemoveClientIDFromOpenIDConnectProvider",
            "iam:RemoveClientIDFromOpenIDConnectProvider",
            Arn(oidc_provider_arn),
        ),
        op(
            "UpdateOpenIDConnectProviderThumbprint",
            "iam:UpdateOpenIDConnectProviderThumbprint",
            Arn(oidc_provider_arn),
        ),
    ],
};

fn query(input: &Input) -> Result<&berth_aws::QueryInput, AwsError> {
    input.as_query().ok_or_else(|| AwsError::client("InvalidAction", "IAM speaks awsQuery"))
}

/// `arn:aws:iam::<acct>:user/<path><name>` for the user the request names (with the path when the
/// request gives one: CreateUser), or the caller's own ARN when it names none.
fn user_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let q = query(input)?;
    match q.get("UserName") {
        Some(name) => Ok(ctx.aws.global_arn("iam", &format!("user{}{name}", q.get("Path").unwrap_or("/")))),
        None => Ok(ctx.principal.arn.clone()),
    }
}

/// The list operations are authorized on the listed path, as AWS does: ListUsers on
/// `arn:aws:iam::<acct>:user<PathPrefix>` (`user/` by default), ListRoles on `role/…`, ListPolicies on `policy/…`.
fn listed_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let kind = match ctx.operation {
        "ListUsers" => "user",
        "ListRoles" => "role",
        _ => "policy",
    };
    let prefix = query(input)?.get("PathPrefix").unwrap_or("/");
    Ok(ctx.aws.global_arn("iam", &format!("{kind}{prefix}")))
}

/// `arn:aws:iam::<acct>:role/<path><name>`.
fn role_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let q = query(input)?;
    let name = q.required("RoleName")?;
    Ok(ctx.aws.global_arn("iam", &format!("role{}{name}", q.get("Path").unwrap_or("/"))))
}

/// The `PolicyArn` of the request, or for CreatePolicy `arn:aws:iam::<acct>:policy/<path><name>`.
fn policy_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let q = query(input)?;
    if ctx.operation == "CreatePolicy" {
        let name = q.required("PolicyName")?;
        return Ok(ctx.aws.global_arn("iam", &format!("policy{}{name}", q.get("Path").unwrap_or("/"))));
    }
    Ok(q.required("PolicyArn")?.to_string())
}

/// The `OpenIDConnectProviderArn` of the request, or for CreateOpenIDConnectProvider the ARN its URL gives.
fn oidc_provider_arn(ctx: &RequestContext, input: &Input) -> Result<String, AwsError> {
    let q = query(input)?;
    if ctx.operation == "CreateOpenIDConnectProvider" {
        let url = q.required("Url")?;
        let host_path = url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/');
        return Ok(ctx.aws.global_arn("iam", &format!("oidc-provider/{host_path}")));
    }
    Ok(q.required("OpenIDConnectProviderArn")?.to_string())
}

/// The IAM API.
pub struct IamService {
    pub(crate) store: Store,
    pub(crate) clock: SharedClock,
    pub(crate) state: Arc<IamState>,
}

impl IamService {
    pub fn new(store: Store, clock: SharedClock, state: Arc<IamState>) -> IamService {
        IamService { store, clock, state }
    }

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_system(self.clock.now())
    }

    /// After a committed write: rebuild the in-memory view that authenticates and authorizes
    /// requests, so the change applies to the very next request.
    pub(crate) async fn refresh(&self) -> Result<(), IamError> {
        self.state.refresh(&self.store, self.now()).await
    }
}

impl Service for IamService {
    fn spec(&self) -> &'static ServiceSpec {
        &IAM_SPEC
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let q = query(&input)?;
            match ctx.operation {
                "CreateUser" => self.create_user(ctx, q).await,
                "GetUser" => self.get_user(ctx, q).await,
                "ListUsers" => self.list_users(q).await,
                "DeleteUser" => self.delete_user(q).await,
                "CreateAccessKey" | "ListAccessKeys" | "UpdateAccessKey" | "DeleteAccessKey" => {
                    self.access_key_operation(ctx, q).await
                }
                "CreateRole" | "GetRole" | "ListRoles" | "UpdateAssumeRolePolicy" | "DeleteRole" => {
                    self.role_operation(ctx, q).await
                }
                "CreatePolicy"
                | "GetPolicy"
                | "ListPolicies"
                | "DeletePolicy"
                | "CreatePolicyVersion"
                | "GetPolicyVersion"
                | "ListPolicyVersions"
                | "DeletePolicyVersion"
                | "SetDefaultPolicyVersion"
                | "AttachRolePolicy"
                | "DetachRolePolicy"
                | "ListAttachedRolePolicies"
                | "AttachUserPolicy"
                | "DetachUserPolicy"
                | "ListAttachedUserPolicies" => self.managed_policy_operation(ctx, q).await,
                "PutRolePolicy" | "GetRolePolicy" | "DeleteRolePolicy" | "ListRolePolicies" | "PutUserPolicy"
                | "GetUserPolicy" | "DeleteUserPolicy" | "ListUserPolicies" => {
                    self.inline_policy_operation(ctx, q).await
                }
                "CreateOpenIDConnectProvider"
                | "GetOpenIDConnectProvider"
                | "ListOpenIDConnectProviders"
                | "DeleteOpenIDConnectProvider"
                | "AddClientIDToOpenIDConnectProvider"
                | "RemoveClientIDFromOpenIDConnectProvider"
                | "UpdateOpenIDConnectProviderThumbprint" => self.oidc_provider_operation(ctx, q).await,
                op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
            }
        })
    }
}
