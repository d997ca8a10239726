//! What a service crate implements to be served by the gateway.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::AwsContext;
use crate::error::AwsError;
use crate::identity::Principal;
use crate::protocol::Protocol;
use crate::query::QueryInput;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The static description of a service: how requests for it are recognised and framed.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The name in the SigV4 credential scope (`sts`, `iam`, `ecs`, `elasticloadbalancing`…).
    pub signing_name: &'static str,
    /// The prefix of IAM actions (`sts:GetCallerIdentity`).
    pub action_prefix: &'static str,
    pub protocol: Protocol,
    /// awsJson: the `X-Amz-Target` prefix, e.g. `AmazonEC2ContainerServiceV20141113`.
    pub target_prefix: &'static str,
    /// awsQuery: the XML namespace of responses, e.g. `https://sts.amazonaws.com/doc/2011-06-15/`.
    pub xml_namespace: &'static str,
    /// Global services (IAM, STS) accept signatures scoped to any region.
    pub global: bool,
    /// The operations the service implements, by their botocore names, each with the authorization
    /// it needs: an operation cannot be routed without saying how it is authorized.
    pub operations: &'static [Operation],
}

impl ServiceSpec {
    pub fn operation(&self, name: &str) -> Option<&'static Operation> {
        self.operations.iter().find(|op| op.name == name)
    }
}

/// One operation of a service and the authorization it needs.
#[derive(Debug)]
pub struct Operation {
    pub name: &'static str,
    pub auth: Auth,
}

/// How an operation is authorized.
#[derive(Debug)]
pub enum Auth {
    /// No signature is needed: the request proves itself otherwise (STS `AssumeRoleWithWebIdentity`
    /// carries a signed token). botocore sends these unsigned.
    Unsigned,
    /// Every authenticated caller may call it (STS `GetCallerIdentity`).
    AnyAuthenticated,
    /// The caller's policies must allow `action` (`iam:CreateUser`) on the resource named by `resource`.
    Action { action: &'static str, resource: ResourceRule },
}

/// Where the resource ARN of an authorization comes from.
pub enum ResourceRule {
    /// The action has no resource type: `*`.
    Any,
    /// The ARN is computed from the request, as AWS names it for the operation.
    Arn(fn(&RequestContext, &Input) -> Result<String, AwsError>),
}

impl std::fmt::Debug for ResourceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceRule::Any => f.write_str("Any"),
            ResourceRule::Arn(_) => f.write_str("Arn(fn)"),
        }
    }
}

impl Operation {
    /// An operation that needs `action` on `resource`.
    pub const fn action(name: &'static str, action: &'static str, resource: ResourceRule) -> Operation {
        Operation { name, auth: Auth::Action { action, resource } }
    }
}

/// The decoded input of an operation.
#[derive(Debug)]
pub enum Input {
    Json(Map<String, Value>),
    Query(QueryInput),
}

impl Input {
    pub fn as_query(&self) -> Option<&QueryInput> {
        match self {
            Input::Query(q) => Some(q),
            Input::Json(_) => None,
        }
    }
    pub fn as_json(&self) -> Option<&Map<String, Value>> {
        match self {
            Input::Json(m) => Some(m),
            Input::Query(_) => None,
        }
    }
}

/// The result of an operation, in the service's protocol.
#[derive(Debug)]
pub enum Output {
    Json(Value),
    /// awsQuery: the inside of `<OperationResult>`, or `None` for operations without a result.
    Xml(Option<String>),
}

/// Everything a handler knows about the request besides its input.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub operation: &'static str,
    /// The signer, or [`Principal::anonymous`] for [`Auth::Unsigned`] operations called without a signature.
    pub principal: Arc<Principal>,
    pub aws: Arc<AwsContext>,
    /// The caller's address, for `aws:SourceIp`.
    pub source_ip: Option<std::net::IpAddr>,
}

/// The permission an operation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Allowed to every authenticated caller (e.g. `sts:GetCallerIdentity`).
    AnyAuthenticated,
    Action {
        action: String,
        resource: String,
    },
}

/// A service served by the gateway. Handlers validate, write desired state, and return: no long work.
pub trait Service: Send + Sync + 'static {
    fn spec(&self) -> &'static ServiceSpec;

    /// The permission the call needs; by default `<prefix>:<Operation>` on `*`.
    fn permission(&self, ctx: &RequestContext, _input: &Input) -> Result<Permission, AwsError> {
        Ok(Permission::Action {
            action: format!("{}:{}", self.spec().action_prefix, ctx.operation),
            resource: "*".into(),
        })
    }

    /// The resource-based policy of `resource` (an ARN), if the service has such policies and this
    /// resource has one: the gateway evaluates it together with the caller's identity policies.
    fn resource_policy(&self, _resource: &str) -> Option<Arc<str>> {
        None
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>>;
}
