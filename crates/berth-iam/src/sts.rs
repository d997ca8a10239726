//! STS: who am I, and short-lived credentials for roles (`AssumeRole`, `AssumeRoleWithWebIdentity`).

use std::sync::Arc;

use base64::Engine;
use berth_aws::time::{SharedClock, Timestamp};
use berth_aws::xml::XmlWriter;
use berth_aws::{
    ids, Auth, AuthzRequest, AwsContext, AwsError, BoxFuture, Input, Operation, Output, Protocol, QueryInput,
    RequestContext, Service, ServiceSpec,
};
use berth_store::rusqlite::params;
use berth_store::Store;

use crate::error::IamError;
use crate::oidc::OidcVerifier;
use crate::oidc_provider;
use crate::policy::{self, Decision, PrincipalId};
use crate::state::{IamState, RoleEntry};

pub static STS_SPEC: ServiceSpec = ServiceSpec {
    signing_name: "sts",
    action_prefix: "sts",
    protocol: Protocol::AwsQuery,
    target_prefix: "",
    xml_namespace: "https://sts.amazonaws.com/doc/2011-06-15/",
    global: true,
    operations: &[
        // AWS answers GetCallerIdentity for every valid credential, even under an explicit deny.
        Operation { name: "GetCallerIdentity", auth: Auth::AnyAuthenticated },
        // Authorized in the handler: the role's trust policy together with the caller's identity
        // policies for `sts:AssumeRole` on the role (`assume_role_decision`).
        Operation { name: "AssumeRole", auth: Auth::AnyAuthenticated },
        // Unsigned: the web identity token is the proof, checked with the role's trust policy.
        Operation { name: "AssumeRoleWithWebIdentity", auth: Auth::Unsigned },
    ],
};

pub const MIN_DURATION_SECONDS: i64 = 900;
pub const DEFAULT_DURATION_SECONDS: i64 = 3600;

/// The STS API.
pub struct StsService {
    store: Store,
    clock: SharedClock,
    state: Arc<IamState>,
    verifier: OidcVerifier,
}

/// Temporary credentials handed out by STS.
#[derive(Clone)]
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: Timestamp,
    pub assumed_role_id: String,
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub arn: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl StsService {
    pub fn new(store: Store, clock: SharedClock, state: Arc<IamState>, verifier: OidcVerifier) -> StsService {
        StsService { store, clock, state, verifier }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_system(self.clock.now())
    }

    fn get_caller_identity(&self, ctx: &RequestContext) -> Result<Output, AwsError> {
        let p = &ctx.principal;
        let mut w = XmlWriter::new();
        w.elem("UserId", &p.user_id).elem("Account", &p.account_id).elem("Arn", &p.arn);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn assume_role(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let role_arn = q.required("RoleArn")?;
        let session_name = session_name(q)?;
        refuse_session_policies(q)?;
        let now = self.now();
        let denied = || {
            IamError::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                ctx.principal.arn
            ))
        };
        let role = self.role_for(ctx, role_arn).ok_or_else(denied)?;
        let duration = duration_seconds(q, &role)?;
        let request = AuthzRequest {
            principal: &ctx.principal,
            action: "sts:AssumeRole",
            resource: &role.arn,
            source_ip: ctx.source_ip,
            now,
            region: &ctx.aws.region,
            resource_policy: None,
        };
        if !self.assume_role_allowed(&request, &role) {
            return Err(denied().into());
        }
        let session = self.create_session(&ctx.aws, &role, &session_name, now, duration).await?;
        let mut w = XmlWriter::new();
        write_credentials(&mut w, &session);
        w.elem("PackedPolicySize", "0");
        Ok(Output::Xml(Some(w.into_string())))
    }

    /// AssumeRole's decision: the trust policy must allow the caller; unless it names the caller
    /// itself (not just its account), the caller's identity policies must allow `sts:AssumeRole` on
    /// the role too. An explicit deny in either refuses.
    fn assume_role_allowed(&self, request: &AuthzRequest<'_>, role: &RoleEntry) -> bool {
        let principal = request.principal;
        let keys = self.state.request_keys(principal, request);
        let trust = |caller: &PrincipalId| {
            let ctx = policy::RequestContext {
                action: request.action,
                resource: request.resource,
                principal: Some(caller),
                keys: &keys,
            };
            policy::evaluate([role.trust_policy.as_ref()], &ctx)
        };
        let caller = PrincipalId::Aws { arn: principal.arn.clone(), account_id: principal.account_id.clone() };
        if trust(&caller) != Decision::Allow {
            return false;
        }
        match self.state.identity_decision(request) {
            Decision::Allow => true,
            Decision::ExplicitDeny => false,
            Decision::ImplicitDeny => {
                // Granted by the trust policy to this very principal, not to its account as a whole.
                let named = PrincipalId::Aws { arn: principal.arn.clone(), account_id: String::new() };
                trust(&named) == Decision::Allow
            }
        }
    }

    async fn assume_role_with_web_identity(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let role_arn = q.required("RoleArn")?.to_string();
        let session_name = session_name(q)?;
        let token = q.required("WebIdentityToken")?;
        if !(4..=20_000).contains(&token.len()) {
            return Err(
                IamError::validation("webIdentityToken", "***", "Member must have length between 4 and 20000").into()
            );
        }
        if q.get("ProviderId").is_some() {
            return Err(IamError::Validation(
                "ProviderId is for OAuth 2.0 access tokens; berth verifies OpenID Connect ID tokens only".into(),
            )
            .into());
        }
        refuse_session_policies(q)?;
        let now = self.now();

        // Which provider: the token's issuer must be registered with CreateOpenIDConnectProvider.
        let issuer = OidcVerifier::peek_issuer(token)?;
        let iss = issuer.clone();
        let provider =
            self.store.read(move |c| oidc_provider::find_provider_by_issuer(c, &iss)).await?.ok_or_else(|| {
                IamError::InvalidIdentityToken(format!("No OpenIDConnect provider found in your account for {issuer}"))
            })?;
        let verified = self.verifier.verify(token, &provider.url, &provider.client_ids).await?;

        let denied = || IamError::AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity".into());
        let role = self.role_for(ctx, &role_arn).ok_or_else(denied)?;
        let duration = duration_seconds(q, &role)?;
        let host = provider.url.split_once("://").map_or(provider.url.as_str(), |(_, rest)| rest).trim_end_matches('/');
        let mut keys = policy::ConditionKeys::new();
        keys.set(&format!("{host}:sub"), verified.subject.clone())
            .set(&format!("{host}:aud"), verified.audience.clone())
            .set("aws:FederatedProvider", provider.arn.clone())
            .set("aws:CurrentTime", now.iso8601())
            .set("aws:EpochTime", now.0.to_string())
            .set("aws:RequestedRegion", ctx.aws.region.clone())
            .set("aws:SecureTransport", "false");
        if let Some(amr) = verified.claims.get("amr") {
            let values: Vec<String> = match amr {
                serde_json::Value::Array(items) => {
                    items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            keys.set_multi(&format!("{host}:amr"), values);
        }
        if let Some(ip) = ctx.source_ip {
            keys.set("aws:SourceIp", ip.to_string());
        }
        let caller = PrincipalId::Federated(provider.arn.clone());
        let trust_ctx = policy::RequestContext {
            action: "sts:AssumeRoleWithWebIdentity",
            resource: &role.arn,
            principal: Some(&caller),
            keys: &keys,
        };
        if policy::evaluate([role.trust_policy.as_ref()], &trust_ctx) != Decision::Allow {
            tracing::info!(role = %role.arn, provider = %provider.arn, sub = %verified.subject, "web identity refused by the trust policy");
            return Err(denied().into());
        }
        let session = self.create_session(&ctx.aws, &role, &session_name, now, duration).await?;
        let mut w = XmlWriter::new();
        write_credentials(&mut w, &session);
        w.elem("SubjectFromWebIdentityToken", &verified.subject)
            .elem("PackedPolicySize", "0")
            .elem("Provider", &provider.arn)
            .elem("Audience", &verified.audience);
        Ok(Output::Xml(Some(w.into_string())))
    }

    /// The role an ARN names, if it is one of this account's roles.
    fn role_for(&self, ctx: &RequestContext, role_arn: &str) -> Option<Arc<RoleEntry>> {
        self.role_in(&ctx.aws, role_arn)
    }

    fn role_in(&self, aws: &AwsContext, role_arn: &str) -> Option<Arc<RoleEntry>> {
        let arn = berth_aws::context::Arn::parse(role_arn)?;
        if arn.service != "iam" || arn.account_id != aws.account_id || !arn.resource.starts_with("role/") {
            return None;
        }
        let name = arn.resource.rsplit('/').next()?;
        let role = self.state.snapshot().role(name)?;
        (role.arn == role_arn).then_some(role)
    }

    /// A session for an AWS service that acts with a role, as ECS does for a task's role and
    /// execution role (`service` = `ecs-tasks.amazonaws.com`): the role's trust policy must allow
    /// `sts:AssumeRole` for that service principal, else `AccessDenied` in AWS's words. The trust
    /// policy sees `aws:SourceAccount` (this account) and `aws:SourceArn` (`source_arn`, e.g. the
    /// task's ARN), the keys AWS's confused-deputy guidance has trust policies check.
    pub async fn assume_role_for_service(
        &self,
        role_arn: &str,
        service: &str,
        source_arn: Option<&str>,
        session_name: &str,
        duration: i64,
    ) -> Result<Session, IamError> {
        let aws = self.state.aws().clone();
        let denied = || {
            IamError::AccessDenied(format!(
                "{service} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ))
        };
        let role = self.role_in(&aws, role_arn).ok_or_else(denied)?;
        let now = self.now();
        let principal = berth_aws::Principal {
            arn: service.to_string(),
            user_id: service.to_string(),
            account_id: String::new(),
            access_key_id: String::new(),
            kind: berth_aws::PrincipalKind::Anonymous,
        };
        let request = AuthzRequest {
            principal: &principal,
            action: "sts:AssumeRole",
            resource: &role.arn,
            source_ip: None,
            now,
            region: &aws.region,
            resource_policy: None,
        };
        let mut keys = self.state.request_keys(&principal, &request);
        keys.set("aws:SourceAccount", aws.account_id.as_str());
        if let Some(arn) = source_arn {
            keys.set("aws:SourceArn", arn);
        }
        let caller = PrincipalId::Service(service.to_string());
        let ctx = policy::RequestContext {
            action: "sts:AssumeRole",
            resource: &role.arn,
            principal: Some(&caller),
            keys: &keys,
        };
        if policy::evaluate([role.trust_policy.as_ref()], &ctx) != Decision::Allow {
            return Err(denied());
        }
        let duration = duration.clamp(MIN_DURATION_SECONDS, role.max_session_duration.max(MIN_DURATION_SECONDS));
        self.create_session(&aws, &role, session_name, now, duration).await
    }

    /// session_create: the credentials are durable before they are handed out.
    async fn create_session(
        &self,
        aws: &AwsContext,
        role: &RoleEntry,
        session_name: &str,
        now: Timestamp,
        duration: i64,
    ) -> Result<Session, IamError> {
        let mut token = [0u8; 96];
        ids::random_bytes(&mut token);
        let session = Session {
            access_key_id: ids::access_key_id("ASIA"),
            secret_access_key: ids::secret_access_key(),
            session_token: base64::engine::general_purpose::STANDARD.encode(token),
            expires_at: Timestamp(now.0 + duration),
            assumed_role_id: format!("{}:{session_name}", role.role_id),
            arn: aws.global_arn("sts", &format!("assumed-role/{}/{session_name}", role.role_name)),
        };
        let row = (
            session.access_key_id.clone(),
            session.secret_access_key.clone(),
            session.session_token.clone(),
            role.role_name.clone(),
            session_name.to_string(),
            session.expires_at.0,
        );
        self.store
            .write(move |tx| -> Result<(), IamError> {
                // Expired sessions are kept no longer than the next new one.
                tx.execute("DELETE FROM sts_sessions WHERE expires_at <= ?1", [now.0])?;
                tx.execute(
                    "INSERT INTO sts_sessions (access_key_id, secret_access_key, session_token, role_name, session_name, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![row.0, row.1, row.2, row.3, row.4, now.0, row.5],
                )?;
                Ok(())
            })
            .await?;
        self.state.refresh(&self.store, now).await?;
        tracing::info!(role = %role.arn, session = session_name, expires = %session.expires_at.iso8601(), "role session created");
        Ok(session)
    }
}

fn write_credentials(w: &mut XmlWriter, s: &Session) {
    w.node("Credentials", |w| {
        w.elem("AccessKeyId", &s.access_key_id)
            .elem("SecretAccessKey", &s.secret_access_key)
            .elem("SessionToken", &s.session_token)
            .elem("Expiration", s.expires_at.iso8601());
    });
    w.node("AssumedRoleUser", |w| {
        w.elem("AssumedRoleId", &s.assumed_role_id).elem("Arn", &s.arn);
    });
}

fn session_name(q: &QueryInput) -> Result<String, AwsError> {
    let name = q.required("RoleSessionName")?;
    let ok =
        (2..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !ok {
        return Err(IamError::validation(
            "roleSessionName",
            name,
            "Member must have length between 2 and 64 and satisfy regular expression pattern: [\\w+=,.@-]*",
        )
        .into());
    }
    Ok(name.to_string())
}

fn duration_seconds(q: &QueryInput, role: &RoleEntry) -> Result<i64, AwsError> {
    let duration = q.int("DurationSeconds")?.unwrap_or(DEFAULT_DURATION_SECONDS.min(role.max_session_duration));
    if !(MIN_DURATION_SECONDS..=43_200).contains(&duration) {
        return Err(IamError::validation(
            "durationSeconds",
            &duration.to_string(),
            "Member must have value greater than or equal to 900 and less than or equal to 43200",
        )
        .into());
    }
    if duration > role.max_session_duration {
        return Err(IamError::Validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.".into(),
        )
        .into());
    }
    Ok(duration)
}

/// Session policies narrow a session's permissions. berth does not apply them yet, and ignoring
/// them would grant more than asked: refused.
fn refuse_session_policies(q: &QueryInput) -> Result<(), AwsError> {
    if q.get("Policy").is_some() || !q.struct_list("PolicyArns").is_empty() {
        return Err(IamError::Validation(
            "berth does not apply session policies (Policy, PolicyArns) yet; assume the role without them".into(),
        )
        .into());
    }
    Ok(())
}

impl Service for StsService {
    fn spec(&self) -> &'static ServiceSpec {
        &STS_SPEC
    }

    fn call<'a>(&'a self, ctx: &'a RequestContext, input: Input) -> BoxFuture<'a, Result<Output, AwsError>> {
        Box::pin(async move {
            let q = input.as_query().ok_or_else(|| AwsError::client("InvalidAction", "STS speaks awsQuery"))?;
            match ctx.operation {
                "GetCallerIdentity" => self.get_caller_identity(ctx),
                "AssumeRole" => self.assume_role(ctx, q).await,
                "AssumeRoleWithWebIdentity" => self.assume_role_with_web_identity(ctx, q).await,
                op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
            }
        })
    }
}
