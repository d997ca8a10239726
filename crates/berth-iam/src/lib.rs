//! IAM, STS and the authorization of every request.
//!
//! Today: the account's root key ([`RootCredentials`]), IAM users, STS `GetCallerIdentity`, and an
//! authorizer under which only the root principal is allowed (IAM policies come with roles and
//! access keys for users).
#![forbid(unsafe_code)]

pub mod error;
pub mod iam;
pub mod root_credentials;
pub mod sts;
pub mod user;

use berth_aws::{Authorizer, AuthzRequest, AwsContext, Credential, CredentialStore, Principal, PrincipalKind};

pub use error::IamError;
pub use iam::IamService;
pub use root_credentials::{RootCredentialSource, RootCredentials, RootCredentialsError};
pub use sts::StsService;

/// Answers "whose key is this?" from memory.
pub struct IamCredentials {
    root_key_id: String,
    root: Credential,
}

impl IamCredentials {
    pub fn new(aws: &AwsContext, root: &RootCredentials) -> IamCredentials {
        IamCredentials {
            root_key_id: root.access_key_id.clone(),
            root: Credential {
                secret_access_key: root.secret_access_key.clone(),
                session_token: None,
                expires_at: None,
                principal: Principal {
                    arn: aws.root_arn(),
                    user_id: aws.account_id.clone(),
                    account_id: aws.account_id.clone(),
                    access_key_id: root.access_key_id.clone(),
                    kind: PrincipalKind::Root,
                },
            },
        }
    }
}

impl CredentialStore for IamCredentials {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        (access_key_id == self.root_key_id).then(|| self.root.clone())
    }
}

/// The policy decision point. The root user of the account may do everything, as in AWS; every
/// other principal is denied unless a policy allows it (policies arrive with the IAM issue).
#[derive(Debug, Default)]
pub struct IamAuthorizer;

impl Authorizer for IamAuthorizer {
    fn is_allowed(&self, request: &AuthzRequest<'_>) -> bool {
        matches!(request.principal.kind, PrincipalKind::Root)
    }
}
