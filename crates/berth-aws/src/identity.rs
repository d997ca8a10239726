//! Who is calling: credentials, principals, and the ports through which the IAM crate answers
//! "whose key is this?" and "may they do this?".

use std::fmt;
use std::sync::Arc;

use crate::time::Timestamp;

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for signing or verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The kind of identity behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An unsigned call to an operation that needs no signature.
    Anonymous,
    Root,
    User {
        name: String,
    },
    AssumedRole {
        role_name: String,
        session_name: String,
    },
}

/// The authenticated identity of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub arn: String,
    pub user_id: String,
    pub account_id: String,
    pub access_key_id: String,
    pub kind: PrincipalKind,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            arn: "anonymous".into(),
            user_id: "anonymous".into(),
            account_id: String::new(),
            access_key_id: String::new(),
            kind: PrincipalKind::Anonymous,
        }
    }
}

/// What the credential store knows about an access key.
#[derive(Clone, Debug)]
pub struct Credential {
    pub secret_access_key: Secret,
    /// Temporary credentials carry a session token that the request must present.
    pub session_token: Option<Secret>,
    pub expires_at: Option<Timestamp>,
    pub principal: Arc<Principal>,
}

/// Resolves access key ids to credentials (the IAM crate implements it). Called on every request:
/// implementations answer from memory.
pub trait CredentialStore: Send + Sync + 'static {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<Credential>>;
}

/// One authorization question: may this principal do this action on this resource, now, from there?
#[derive(Clone, Debug)]
pub struct AuthzRequest<'a> {
    pub principal: &'a Principal,
    pub action: &'a str,
    pub resource: &'a str,
    pub source_ip: Option<std::net::IpAddr>,
    pub now: Timestamp,
    pub region: &'a str,
    /// The resource's own policy (an ECR repository policy, a secret's resource policy), as JSON,
    /// when it has one: evaluated together with the caller's identity policies.
    pub resource_policy: Option<&'a str>,
}

/// Decides whether a principal may perform an action on a resource (the IAM crate implements it).
/// Called on every request: implementations answer from memory.
pub trait Authorizer: Send + Sync + 'static {
    fn is_allowed(&self, request: &AuthzRequest<'_>) -> bool;
}
