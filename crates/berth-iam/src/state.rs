//! The in-memory view of IAM that every request is authenticated and authorized against: access
//! keys, live STS sessions, and each user's and role's parsed policies. Rebuilt from the store after
//! every IAM or STS write (so a change applies to the next request), never read from SQLite on the
//! request path.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use berth_aws::time::Timestamp;
use berth_aws::{Authorizer, AuthzRequest, AwsContext, Credential, CredentialStore, Principal, PrincipalKind, Secret};
use berth_store::rusqlite::{self, Connection};
use berth_store::Store;

use crate::aws_managed;
use crate::error::IamError;
use crate::policy::{self, ConditionKeys, Decision, Policy, PolicyKind, PrincipalId};
use crate::root_credentials::RootCredentials;

/// A role as authorization needs it.
#[derive(Debug)]
pub struct RoleEntry {
    pub role_name: String,
    pub arn: String,
    pub role_id: String,
    pub trust_policy: Arc<Policy>,
    pub max_session_duration: i64,
    pub policies: Vec<Arc<Policy>>,
}

#[derive(Debug)]
struct UserEntry {
    policies: Vec<Arc<Policy>>,
}

/// One consistent view of IAM, as of one store revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    revision: u64,
    keys: HashMap<String, Arc<Credential>>,
    users: HashMap<String, UserEntry>,
    roles: HashMap<String, Arc<RoleEntry>>,
}

impl Snapshot {
    pub fn role(&self, name: &str) -> Option<Arc<RoleEntry>> {
        self.roles.get(&name.to_lowercase()).cloned()
    }

    fn policies_of(&self, principal: &Principal) -> Option<&[Arc<Policy>]> {
        match &principal.kind {
            PrincipalKind::User { name } => self.users.get(&name.to_lowercase()).map(|u| u.policies.as_slice()),
            PrincipalKind::AssumedRole { role_name, .. } => {
                self.roles.get(&role_name.to_lowercase()).map(|r| r.policies.as_slice())
            }
            PrincipalKind::Root | PrincipalKind::Anonymous => None,
        }
    }
}

/// Answers "whose key is this?" and "may they do this?" from memory.
pub struct IamState {
    aws: AwsContext,
    root_key_id: String,
    root: Arc<Credential>,
    current: RwLock<Arc<Snapshot>>,
}

impl IamState {
    /// Loads the view from the store.
    pub fn load(
        aws: &AwsContext,
        root: &RootCredentials,
        store: &Store,
        now: Timestamp,
    ) -> Result<Arc<IamState>, IamError> {
        let state = IamState {
            aws: aws.clone(),
            root_key_id: root.access_key_id.clone(),
            root: Arc::new(Credential {
                secret_access_key: root.secret_access_key.clone(),
                session_token: None,
                expires_at: None,
                principal: Principal {
                    arn: aws.root_arn(),
                    user_id: aws.account_id.clone(),
                    account_id: aws.account_id.clone(),
                    access_key_id: root.access_key_id.clone(),
                    kind: PrincipalKind::Root,
                }
                .into(),
            }),
            current: RwLock::new(Arc::new(Snapshot::default())),
        };
        let aws = aws.clone();
        let snapshot = store.read_blocking(move |c| build_snapshot(c, &aws, now))?;
        state.install(snapshot);
        Ok(Arc::new(state))
    }

    /// Rebuilds the view after a write.
    pub async fn refresh(&self, store: &Store, now: Timestamp) -> Result<(), IamError> {
        let aws = self.aws.clone();
        let snapshot = store.read(move |c| build_snapshot(c, &aws, now)).await?;
        self.install(snapshot);
        Ok(())
    }

    /// Installs a snapshot unless a newer one is already there (two refreshes may finish out of order).
    fn install(&self, snapshot: Snapshot) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if snapshot.revision >= current.revision {
            *current = Arc::new(snapshot);
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn aws(&self) -> &AwsContext {
        &self.aws
    }

    /// The condition keys AWS sets for every request of this principal.
    pub fn request_keys(&self, principal: &Principal, request: &AuthzRequest<'_>) -> ConditionKeys {
        request_keys(&self.snapshot(), principal, request)
    }

    /// Evaluates the caller's identity policies (root: always allowed).
    pub fn identity_decision(&self, request: &AuthzRequest<'_>) -> Decision {
        match request.principal.kind {
            PrincipalKind::Root => return Decision::Allow,
            PrincipalKind::Anonymous => return Decision::ImplicitDeny,
            _ => {}
        }
        let snapshot = self.snapshot();
        let Some(policies) = snapshot.policies_of(request.principal) else {
            return Decision::ImplicitDeny;
        };
        let keys = request_keys(&snapshot, request.principal, request);
        let ctx =
            policy::RequestContext { action: request.action, resource: request.resource, principal: None, keys: &keys };
        policy::evaluate(policies.iter().map(|p| p.as_ref()), &ctx)
    }
}

/// The condition keys AWS sets for every request of this principal, from one snapshot.
fn request_keys(snapshot: &Snapshot, principal: &Principal, request: &AuthzRequest<'_>) -> ConditionKeys {
    let mut keys = ConditionKeys::with_capacity(12);
    keys.set_static("aws:principalaccount", principal.account_id.as_str())
        .set_static("aws:userid", principal.user_id.as_str())
        .set_static("aws:currenttime", request.now.iso8601())
        .set_static("aws:epochtime", request.now.0.to_string())
        .set_static("aws:requestedregion", request.region)
        .set_static("aws:securetransport", "false");
    if let Some(ip) = request.source_ip {
        keys.set_static("aws:sourceip", ip.to_string());
    }
    match &principal.kind {
        PrincipalKind::User { name } => {
            keys.set_static("aws:username", name.as_str())
                .set_static("aws:principalarn", principal.arn.as_str())
                .set_static("aws:principaltype", "User");
        }
        PrincipalKind::AssumedRole { role_name, .. } => {
            let role_arn = snapshot.role(role_name).map(|r| r.arn.clone()).unwrap_or_default();
            keys.set_static("aws:principalarn", role_arn).set_static("aws:principaltype", "AssumedRole");
        }
        PrincipalKind::Root => {
            keys.set_static("aws:principalarn", principal.arn.as_str()).set_static("aws:principaltype", "Account");
        }
        PrincipalKind::Anonymous => {
            keys.set_static("aws:principaltype", "Anonymous");
        }
    }
    keys
}

impl CredentialStore for IamState {
    fn lookup(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        if access_key_id == self.root_key_id {
            return Some(self.root.clone());
        }
        self.snapshot().keys.get(access_key_id).cloned()
    }
}

impl IamState {
    /// Evaluates a resource's own policy for the caller (the `Principal` element decides whom it
    /// is about). A document that does not parse grants nothing.
    pub fn resource_decision(&self, document: &str, request: &AuthzRequest<'_>) -> Decision {
        let Ok(policy) = Policy::parse(document, PolicyKind::Resource) else {
            tracing::error!(resource = request.resource, "stored resource policy does not parse; ignoring it");
            return Decision::ImplicitDeny;
        };
        let caller = match request.principal.kind {
            PrincipalKind::Anonymous => return Decision::ImplicitDeny,
            _ => PrincipalId::Aws {
                arn: request.principal.arn.clone(),
                account_id: request.principal.account_id.clone(),
            },
        };
        let keys = self.request_keys(request.principal, request);
        let ctx = policy::RequestContext {
            action: request.action,
            resource: request.resource,
            principal: Some(&caller),
            keys: &keys,
        };
        policy::evaluate([&policy], &ctx)
    }
}

impl Authorizer for IamState {
    /// Same-account evaluation: an explicit deny in either the identity or the resource policy
    /// refuses; otherwise an allow in either grants.
    fn is_allowed(&self, request: &AuthzRequest<'_>) -> bool {
        let identity = self.identity_decision(request);
        let Some(document) = request.resource_policy else {
            return identity == Decision::Allow;
        };
        if identity == Decision::ExplicitDeny {
            return false;
        }
        match self.resource_decision(document, request) {
            Decision::ExplicitDeny => false,
            Decision::Allow => true,
            Decision::ImplicitDeny => identity == Decision::Allow,
        }
    }
}

fn parse_stored(doc: &str, kind: PolicyKind, what: &str) -> Option<Arc<Policy>> {
    match Policy::parse(doc, kind) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            // Documents are validated on write; one that no longer parses grants nothing.
            tracing::error!(policy = what, error = %e, "stored policy does not parse; ignoring it");
            None
        }
    }
}

fn build_snapshot(c: &Connection, aws: &AwsContext, now: Timestamp) -> Result<Snapshot, IamError> {
    let revision: i64 = c.query_row("SELECT revision FROM _berth_revision WHERE id = 1", [], |r| r.get(0))?;
    let mut snapshot = Snapshot { revision: revision as u64, ..Snapshot::default() };

    // Managed policies by ARN: the default version's document.
    let mut managed: HashMap<String, Arc<Policy>> = HashMap::new();
    let mut stmt = c.prepare(
        "SELECT p.arn, v.document FROM iam_policies p
         JOIN iam_policy_versions v ON v.policy_arn = p.arn AND v.version_id = p.default_version_id",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (arn, doc) = row?;
        if let Some(p) = parse_stored(&doc, PolicyKind::Identity, &arn) {
            managed.insert(arn, p);
        }
    }
    let managed_policy =
        |arn: &str| -> Option<Arc<Policy>> { managed.get(arn).cloned().or_else(|| aws_managed::policy(arn)) };

    // Each principal's policies: attached managed ones and inline ones.
    let mut policies: HashMap<(String, String), Vec<Arc<Policy>>> = HashMap::new();
    let mut stmt = c.prepare("SELECT principal_type, principal_name, policy_arn FROM iam_attached_policies")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))? {
        let (kind, name, arn) = row?;
        if let Some(p) = managed_policy(&arn) {
            policies.entry((kind, name.to_lowercase())).or_default().push(p);
        }
    }
    let mut stmt =
        c.prepare("SELECT principal_type, principal_name, policy_name, document FROM iam_inline_policies")?;
    for row in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })? {
        let (kind, name, policy_name, doc) = row?;
        if let Some(p) = parse_stored(&doc, PolicyKind::Identity, &policy_name) {
            policies.entry((kind, name.to_lowercase())).or_default().push(p);
        }
    }

    let mut stmt = c.prepare("SELECT user_name, user_id, arn FROM iam_users")?;
    let users: Vec<(String, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut user_principals: HashMap<String, (String, String, String)> = HashMap::new();
    for (name, id, arn) in users {
        let p = policies.remove(&("user".to_string(), name.to_lowercase())).unwrap_or_default();
        snapshot.users.insert(name.to_lowercase(), UserEntry { policies: p });
        user_principals.insert(name.to_lowercase(), (name, id, arn));
    }

    let mut stmt =
        c.prepare("SELECT role_name, arn, role_id, assume_role_policy, max_session_duration FROM iam_roles")?;
    let roles: Vec<(String, String, String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (role_name, arn, role_id, trust, max_session_duration) in roles {
        let Some(trust_policy) = parse_stored(&trust, PolicyKind::Trust, &role_name) else { continue };
        let p = policies.remove(&("role".to_string(), role_name.to_lowercase())).unwrap_or_default();
        let entry =
            RoleEntry { role_name: role_name.clone(), arn, role_id, trust_policy, max_session_duration, policies: p };
        snapshot.roles.insert(role_name.to_lowercase(), Arc::new(entry));
    }

    let mut stmt =
        c.prepare("SELECT access_key_id, user_name, secret_access_key FROM iam_access_keys WHERE status = 'Active'")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))? {
        let (key_id, user_name, secret) = row?;
        let Some((name, user_id, arn)) = user_principals.get(&user_name.to_lowercase()) else { continue };
        let principal = Principal {
            arn: arn.clone(),
            user_id: user_id.clone(),
            account_id: aws.account_id.clone(),
            access_key_id: key_id.clone(),
            kind: PrincipalKind::User { name: name.clone() },
        };
        let credential = Credential {
            secret_access_key: Secret::new(secret),
            session_token: None,
            expires_at: None,
            principal: principal.into(),
        };
        snapshot.keys.insert(key_id, Arc::new(credential));
    }

    let mut stmt = c.prepare(
        "SELECT access_key_id, secret_access_key, session_token, role_name, session_name, expires_at
         FROM sts_sessions WHERE expires_at > ?1",
    )?;
    for row in stmt.query_map([now.0], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })? {
        let (key_id, secret, token, role_name, session_name, expires_at) = row?;
        // A session outlives nothing: when its role is deleted, its credentials stop working.
        let Some(role) = snapshot.roles.get(&role_name.to_lowercase()) else { continue };
        let principal = Principal {
            arn: aws.global_arn("sts", &format!("assumed-role/{}/{session_name}", role.role_name)),
            user_id: format!("{}:{session_name}", role.role_id),
            account_id: aws.account_id.clone(),
            access_key_id: key_id.clone(),
            kind: PrincipalKind::AssumedRole { role_name: role.role_name.clone(), session_name },
        };
        let credential = Credential {
            secret_access_key: Secret::new(secret),
            session_token: Some(Secret::new(token)),
            expires_at: Some(Timestamp(expires_at)),
            principal: principal.into(),
        };
        snapshot.keys.insert(key_id, Arc::new(credential));
    }
    Ok(snapshot)
}
