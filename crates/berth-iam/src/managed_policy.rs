//! Managed policies: CreatePolicy, GetPolicy, ListPolicies, DeletePolicy; their versions
//! (CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions, DeletePolicyVersion,
//! SetDefaultPolicyVersion); and attaching them to roles and users (Attach/Detach/ListAttached
//! RolePolicy/UserPolicy).
//!
//! Customer managed policies live in `iam_policies` / `iam_policy_versions`; AWS managed ones are
//! built in ([`aws_managed`]): they can be read and attached, and changing them is refused with
//! `AccessDenied`, as AWS refuses any change to a policy in the `aws` account.

use berth_aws::context::Arn;
use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{ids, AwsError, Output, QueryInput, RequestContext};
use berth_store::rusqlite::{self, params, Connection, OptionalExtension};

use crate::aws_managed::{self, AwsManagedPolicy};
use crate::common::{self, PageRequest, Tag};
use crate::error::IamError;
use crate::iam::IamService;
use crate::policy::{Policy, PolicyKind, MANAGED_POLICY_SIZE};
use crate::{role, user};

/// AWS's limit on the versions of one managed policy.
pub const MAX_POLICY_VERSIONS: i64 = 5;
/// AWS's default quota of managed policies attached to one role (PoliciesPerRole) or user (PoliciesPerUser).
pub const MAX_ATTACHED_POLICIES: i64 = 10;
/// `policyDocumentType`: at most this many characters on the wire, whatever the quotas.
const DOCUMENT_MAX_LEN: usize = 131_072;

/// A managed policy as the API shows it: customer managed (from the store) or AWS managed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub policy_name: String,
    pub policy_id: String,
    pub arn: String,
    pub path: String,
    pub default_version_id: String,
    pub attachment_count: i64,
    pub permissions_boundary_usage_count: i64,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub tags: Vec<Tag>,
}

/// The columns [`ManagedPolicy::from_row`] reads, counts included, from `iam_policies p`.
const POLICY_SELECT: &str = "SELECT p.policy_name, p.policy_id, p.arn, p.path, p.default_version_id, p.description,
        p.created_at, p.updated_at, p.tags,
        (SELECT count(*) FROM iam_attached_policies a WHERE a.policy_arn = p.arn),
        (SELECT count(*) FROM iam_users u WHERE u.permissions_boundary = p.arn)
          + (SELECT count(*) FROM iam_roles r WHERE r.permissions_boundary = p.arn)
     FROM iam_policies p";

impl ManagedPolicy {
    /// `detail`: GetPolicy and CreatePolicy show `Description` and `Tags`; ListPolicies does not.
    fn write_xml(&self, w: &mut XmlWriter, detail: bool) {
        w.elem("PolicyName", &self.policy_name)
            .elem("PolicyId", &self.policy_id)
            .elem("Arn", &self.arn)
            .elem("Path", &self.path)
            .elem("DefaultVersionId", &self.default_version_id)
            .elem("AttachmentCount", self.attachment_count.to_string())
            .elem("PermissionsBoundaryUsageCount", self.permissions_boundary_usage_count.to_string())
            .elem("IsAttachable", "true");
        if detail {
            w.opt_elem("Description", self.description.as_deref());
        }
        w.elem("CreateDate", self.created_at.iso8601()).elem("UpdateDate", self.updated_at.iso8601());
        if detail {
            common::write_tags(w, &self.tags);
        }
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedPolicy> {
        Ok(ManagedPolicy {
            policy_name: row.get(0)?,
            policy_id: row.get(1)?,
            arn: row.get(2)?,
            path: row.get(3)?,
            default_version_id: row.get(4)?,
            description: row.get(5)?,
            created_at: Timestamp(row.get(6)?),
            updated_at: Timestamp(row.get(7)?),
            tags: common::tags_from_json(&row.get::<_, String>(8)?),
            attachment_count: row.get(9)?,
            permissions_boundary_usage_count: row.get(10)?,
        })
    }

    fn from_aws(c: &Connection, p: &AwsManagedPolicy) -> Result<ManagedPolicy, IamError> {
        let arn = p.arn();
        let (attachment_count, permissions_boundary_usage_count) = c.query_row(
            "SELECT (SELECT count(*) FROM iam_attached_policies WHERE policy_arn = ?1),
                    (SELECT count(*) FROM iam_users WHERE permissions_boundary = ?1)
                      + (SELECT count(*) FROM iam_roles WHERE permissions_boundary = ?1)",
            [&arn],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(ManagedPolicy {
            policy_name: p.policy_name.to_string(),
            policy_id: p.policy_id.to_string(),
            arn,
            path: p.path.to_string(),
            default_version_id: p.default_version_id.to_string(),
            attachment_count,
            permissions_boundary_usage_count,
            description: Some(p.description.to_string()),
            created_at: p.created_at,
            updated_at: p.updated_at,
            tags: Vec::new(),
        })
    }

    /// The sort (and `Marker`) key of lists of policies: by name, then ARN (an account may have a
    /// policy named like an AWS managed one).
    fn sort_key(&self) -> String {
        format!("{}\n{}", self.policy_name.to_lowercase(), self.arn)
    }
}

/// One version of a managed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PolicyVersionRow {
    version_id: String,
    document: String,
    is_default: bool,
    created_at: Timestamp,
}

impl PolicyVersionRow {
    fn write_xml(&self, w: &mut XmlWriter, with_document: bool) {
        if with_document {
            w.elem("Document", common::encode_document(&self.document));
        }
        w.elem("VersionId", &self.version_id)
            .elem("IsDefaultVersion", if self.is_default { "true" } else { "false" })
            .elem("CreateDate", self.created_at.iso8601());
    }

    /// Newest first, as AWS lists them: `v10` before `v9`.
    fn sort_key(&self) -> String {
        let n = self.version_id.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        format!("{:020}", u64::MAX - n)
    }
}

fn aws_version(p: &AwsManagedPolicy) -> PolicyVersionRow {
    PolicyVersionRow {
        version_id: p.default_version_id.to_string(),
        document: p.document.to_string(),
        is_default: true,
        created_at: p.updated_at,
    }
}

/// A user or a role: what managed and inline policies are attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalType {
    User,
    Role,
}

impl PrincipalType {
    /// The value of `principal_type` in `iam_attached_policies` and `iam_inline_policies`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "user",
            PrincipalType::Role => "role",
        }
    }

    /// `User` / `Role`, as AWS's quota names spell them (`PoliciesPerRole`).
    pub(crate) fn quota_word(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::Role => "Role",
        }
    }

    /// The request member naming the principal, and its validated value. `max` is the member's
    /// length limit (64 for `userNameType`/`roleNameType`, 128 for `existingUserNameType`).
    pub(crate) fn name_from(self, q: &QueryInput, max: usize) -> Result<String, AwsError> {
        let (member, wire) = match self {
            PrincipalType::User => ("userName", "UserName"),
            PrincipalType::Role => ("roleName", "RoleName"),
        };
        let name = q.required(wire)?;
        common::validate_name(member, name, max)?;
        Ok(name.to_string())
    }

    /// The name of the existing user or role as stored (names are case-insensitive), or its `NoSuchEntity`.
    pub(crate) fn existing_name(self, c: &Connection, name: &str) -> Result<String, IamError> {
        match self {
            PrincipalType::User => Ok(user::get_user(c, name)?.user_name),
            PrincipalType::Role => Ok(role::get_role(c, name)?.role_name),
        }
    }
}

pub(crate) fn no_such_policy(arn: &str) -> IamError {
    IamError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
}

fn no_such_version(arn: &str, version_id: &str) -> IamError {
    IamError::NoSuchEntity(format!("Policy {arn} version {version_id} does not exist or is not attachable."))
}

/// AWS managed policies belong to the `aws` account: any change to one is a cross-account write
/// that no policy allows.
fn aws_managed_is_read_only(ctx: &RequestContext, arn: &str) -> IamError {
    IamError::AccessDenied(format!(
        "User: {} is not authorized to perform: iam:{} on resource: policy {arn}",
        ctx.principal.arn, ctx.operation
    ))
}

/// An identity policy document (managed or inline) as IAM checks it on write: the wire
/// constraints of `policyDocumentType`, then the policy grammar (`MalformedPolicyDocument` with the
/// engine's reason). Size quotas are checked by the caller, which knows which one applies.
pub(crate) fn validate_identity_document(doc: &str) -> Result<(), IamError> {
    if doc.is_empty() || doc.chars().count() > DOCUMENT_MAX_LEN {
        return Err(IamError::validation(
            "policyDocument",
            doc,
            &format!("Member must have length between 1 and {DOCUMENT_MAX_LEN}"),
        ));
    }
    if !doc.chars().all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}')) {
        return Err(IamError::validation(
            "policyDocument",
            doc,
            "Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        ));
    }
    Policy::parse(doc, PolicyKind::Identity).map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))?;
    Ok(())
}

/// A managed policy's document: valid, and within `PolicySize`.
fn validate_managed_document(doc: &str) -> Result<(), IamError> {
    validate_identity_document(doc)?;
    Policy::check_size(doc, MANAGED_POLICY_SIZE).map_err(|e| IamError::LimitExceeded(e.to_string()))?;
    Ok(())
}

/// `policyNameType`: 1–128 of `[\w+=,.@-]`.
pub(crate) fn policy_name(q: &QueryInput) -> Result<String, AwsError> {
    let name = q.required("PolicyName")?;
    common::validate_name("policyName", name, 128)?;
    Ok(name.to_string())
}

/// `policyPathType`: `/` or `/seg/…/` with segments of `[A-Za-z0-9.,+@=_-]`, at most 512 characters.
fn validate_policy_path(path: &str) -> Result<(), IamError> {
    let segment_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".,+@=_-".contains(&b));
    let ok = path == "/"
        || (path.len() <= 512
            && path.len() >= 3
            && path.starts_with('/')
            && path.ends_with('/')
            && path[1..path.len() - 1].split('/').all(segment_ok));
    if ok {
        Ok(())
    } else {
        Err(IamError::validation(
            "path",
            path,
            "Member must satisfy regular expression pattern: ((/[A-Za-z0-9\\.,\\+@=_-]+)*)/",
        ))
    }
}

/// `PolicyArn` (`arnType`: 20–2048 characters, and an ARN).
fn policy_arn(q: &QueryInput) -> Result<String, AwsError> {
    let arn = q.required("PolicyArn")?;
    if !(20..=2048).contains(&arn.chars().count()) {
        return Err(IamError::validation("policyArn", arn, "Member must have length between 20 and 2048").into());
    }
    if Arn::parse(arn).is_none() {
        return Err(IamError::InvalidInput(format!("ARN {arn} is not valid.")).into());
    }
    Ok(arn.to_string())
}

/// `policyVersionIdType`: `v[1-9][0-9]*(\.[A-Za-z0-9-]*)?`.
fn version_id(q: &QueryInput) -> Result<String, AwsError> {
    let v = q.required("VersionId")?;
    let (number, suffix) = match v.strip_prefix('v') {
        Some(rest) => rest.split_once('.').map_or((rest, None), |(n, s)| (n, Some(s))),
        None => ("", None),
    };
    let ok = number.bytes().next().is_some_and(|b| (b'1'..=b'9').contains(&b))
        && number.bytes().all(|b| b.is_ascii_digit())
        && suffix.is_none_or(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !ok {
        return Err(IamError::validation(
            "versionId",
            v,
            "Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?",
        )
        .into());
    }
    Ok(v.to_string())
}

/// A customer managed policy, or `None`.
fn find_local(c: &Connection, arn: &str) -> Result<Option<ManagedPolicy>, IamError> {
    Ok(c.query_row(&format!("{POLICY_SELECT} WHERE p.arn = ?1"), [arn], ManagedPolicy::from_row).optional()?)
}

/// The managed policy (customer or AWS managed) with this ARN, or `NoSuchEntity`.
fn get_policy(c: &Connection, arn: &str) -> Result<ManagedPolicy, IamError> {
    if let Some(p) = aws_managed::find(arn) {
        return ManagedPolicy::from_aws(c, p);
    }
    find_local(c, arn)?.ok_or_else(|| no_such_policy(arn))
}

/// Whether a policy with this ARN exists and can be attached.
fn policy_exists(c: &Connection, arn: &str) -> Result<bool, IamError> {
    if aws_managed::find(arn).is_some() {
        return Ok(true);
    }
    let found: Option<i64> =
        c.query_row("SELECT 1 FROM iam_policies WHERE arn = ?1", [arn], |r| r.get(0)).optional()?;
    Ok(found.is_some())
}

/// Sorts `items` by `key`, starts at the page's marker and cuts the page.
pub(crate) fn page_of<T>(page: &PageRequest, items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(start) = &page.start {
        keyed.retain(|(k, _)| k >= start);
    }
    keyed.truncate(page.max_items + 1);
    let (items, next) = page.cut(keyed, |(k, _)| k.clone());
    (items.into_iter().map(|(_, t)| t).collect(), next)
}

fn xml(w: XmlWriter) -> Output {
    Output::Xml(Some(w.into_string()))
}

impl IamService {
    pub(crate) async fn managed_policy_operation(
        &self,
        ctx: &RequestContext,
        q: &QueryInput,
    ) -> Result<Output, AwsError> {
        match ctx.operation {
            "CreatePolicy" => self.create_policy(ctx, q).await,
            "GetPolicy" => self.get_policy(q).await,
            "ListPolicies" => self.list_policies(q).await,
            "DeletePolicy" => self.delete_policy(ctx, q).await,
            "CreatePolicyVersion" => self.create_policy_version(ctx, q).await,
            "GetPolicyVersion" => self.get_policy_version(q).await,
            "ListPolicyVersions" => self.list_policy_versions(q).await,
            "DeletePolicyVersion" => self.delete_policy_version(ctx, q).await,
            "SetDefaultPolicyVersion" => self.set_default_policy_version(ctx, q).await,
            "AttachRolePolicy" => self.attach_policy(PrincipalType::Role, q).await,
            "DetachRolePolicy" => self.detach_policy(PrincipalType::Role, q).await,
            "ListAttachedRolePolicies" => self.list_attached_policies(PrincipalType::Role, q).await,
            "AttachUserPolicy" => self.attach_policy(PrincipalType::User, q).await,
            "DetachUserPolicy" => self.detach_policy(PrincipalType::User, q).await,
            "ListAttachedUserPolicies" => self.list_attached_policies(PrincipalType::User, q).await,
            op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
        }
    }

    async fn create_policy(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let policy_name = policy_name(q)?;
        let path = q.get("Path").unwrap_or("/").to_string();
        validate_policy_path(&path)?;
        let description = q.get("Description").map(str::to_string);
        if let Some(d) = &description {
            if d.chars().count() > 1000 {
                return Err(IamError::validation(
                    "description",
                    d,
                    "Member must have length less than or equal to 1000",
                )
                .into());
            }
        }
        let tags = common::tags_from_query(q, "Policy")?;
        let document = q.required("PolicyDocument")?.to_string();
        validate_managed_document(&document)?;
        let now = self.now();
        let policy = ManagedPolicy {
            arn: ctx.aws.global_arn("iam", &format!("policy{path}{policy_name}")),
            policy_id: ids::unique_id("ANPA"),
            policy_name,
            path,
            default_version_id: "v1".into(),
            attachment_count: 0,
            permissions_boundary_usage_count: 0,
            description,
            created_at: now,
            updated_at: now,
            tags,
        };
        let row = policy.clone();
        self.store
            .write(move |tx| {
                let exists: Option<String> = tx
                    .query_row("SELECT policy_name FROM iam_policies WHERE policy_name = ?1", [&row.policy_name], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if exists.is_some() {
                    return Err(IamError::EntityAlreadyExists(format!(
                        "A policy called {} already exists. Duplicate names are not allowed.",
                        row.policy_name
                    )));
                }
                tx.execute(
                    "INSERT INTO iam_policies (arn, policy_name, policy_id, path, default_version_id, next_version,
                                               description, created_at, updated_at, tags)
                     VALUES (?1, ?2, ?3, ?4, 'v1', 2, ?5, ?6, ?6, ?7)",
                    params![
                        row.arn,
                        row.policy_name,
                        row.policy_id,
                        row.path,
                        row.description,
                        row.created_at.0,
                        common::tags_to_json(&row.tags)
                    ],
                )?;
                tx.execute(
                    "INSERT INTO iam_policy_versions (policy_arn, version_id, document, created_at) VALUES (?1, 'v1', ?2, ?3)",
                    params![row.arn, document, row.created_at.0],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        let mut w = XmlWriter::new();
        w.node("Policy", |w| policy.write_xml(w, true));
        Ok(xml(w))
    }

    async fn get_policy(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        let policy = self.store.read(move |c| get_policy(c, &arn)).await?;
        let mut w = XmlWriter::new();
        w.node("Policy", |w| policy.write_xml(w, true));
        Ok(xml(w))
    }

    async fn list_policies(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let scope = q.get("Scope").unwrap_or("All");
        if !["All", "AWS", "Local"].contains(&scope) {
            return Err(
                IamError::validation("scope", scope, "Member must satisfy enum value set: [All, AWS, Local]").into()
            );
        }
        let usage = q.get("PolicyUsageFilter");
        if let Some(u) = usage {
            if !["PermissionsPolicy", "PermissionsBoundary"].contains(&u) {
                return Err(IamError::validation(
                    "policyUsageFilter",
                    u,
                    "Member must satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]",
                )
                .into());
            }
        }
        let only_attached = q.bool("OnlyAttached")?.unwrap_or(false);
        let prefix = common::path_prefix(q)?;
        let page = PageRequest::from_query(q)?;
        let (with_local, with_aws) = (scope != "AWS", scope != "Local");
        let mut policies = self
            .store
            .read(move |c| -> Result<Vec<ManagedPolicy>, IamError> {
                let mut policies = Vec::new();
                if with_local {
                    let mut stmt = c.prepare(POLICY_SELECT)?;
                    let rows = stmt.query_map([], ManagedPolicy::from_row)?;
                    policies = rows.collect::<Result<_, _>>()?;
                }
                if with_aws {
                    for p in aws_managed::all() {
                        policies.push(ManagedPolicy::from_aws(c, p)?);
                    }
                }
                Ok(policies)
            })
            .await?;
        policies.retain(|p| {
            p.path.starts_with(&prefix)
                && (!only_attached || p.attachment_count > 0)
                && match usage {
                    Some("PermissionsPolicy") => p.attachment_count > 0,
                    Some("PermissionsBoundary") => p.permissions_boundary_usage_count > 0,
                    _ => true,
                }
        });
        let (policies, next) = page_of(&page, policies, ManagedPolicy::sort_key);
        let mut w = XmlWriter::new();
        w.members("Policies", &policies, |w, p| p.write_xml(w, false));
        common::write_page_end(&mut w, next);
        Ok(xml(w))
    }

    async fn delete_policy(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        if aws_managed::is_aws_managed_arn(&arn) {
            return Err(aws_managed_is_read_only(ctx, &arn).into());
        }
        self.store
            .write(move |tx| {
                let policy = find_local(tx, &arn)?.ok_or_else(|| no_such_policy(&arn))?;
                if policy.attachment_count > 0 || policy.permissions_boundary_usage_count > 0 {
                    return Err(IamError::DeleteConflict("Cannot delete a policy attached to entities.".into()));
                }
                let versions: i64 =
                    tx.query_row("SELECT count(*) FROM iam_policy_versions WHERE policy_arn = ?1", [&arn], |r| {
                        r.get(0)
                    })?;
                if versions > 1 {
                    return Err(IamError::DeleteConflict(
                        "This policy has more than one version. Before you delete a policy, you must delete the \
                         policy's versions. The default version is deleted with the policy."
                            .into(),
                    ));
                }
                tx.execute("DELETE FROM iam_policy_versions WHERE policy_arn = ?1", [&arn])?;
                tx.execute("DELETE FROM iam_policies WHERE arn = ?1", [&arn])?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn create_policy_version(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        if aws_managed::is_aws_managed_arn(&arn) {
            return Err(aws_managed_is_read_only(ctx, &arn).into());
        }
        let document = q.required("PolicyDocument")?.to_string();
        let set_as_default = q.bool("SetAsDefault")?.unwrap_or(false);
        validate_managed_document(&document)?;
        let now = self.now();
        let version = self
            .store
            .write(move |tx| {
                let next: i64 = tx
                    .query_row("SELECT next_version FROM iam_policies WHERE arn = ?1", [&arn], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| no_such_policy(&arn))?;
                let versions: i64 =
                    tx.query_row("SELECT count(*) FROM iam_policy_versions WHERE policy_arn = ?1", [&arn], |r| r.get(0))?;
                if versions >= MAX_POLICY_VERSIONS {
                    return Err(IamError::LimitExceeded(format!(
                        "A managed policy can have up to {MAX_POLICY_VERSIONS} versions. Before you create a new \
                         version, you must delete an existing version."
                    )));
                }
                let version_id = format!("v{next}");
                tx.execute(
                    "INSERT INTO iam_policy_versions (policy_arn, version_id, document, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![arn, version_id, document, now.0],
                )?;
                tx.execute(
                    "UPDATE iam_policies SET next_version = ?2, updated_at = ?3,
                            default_version_id = CASE WHEN ?4 THEN ?5 ELSE default_version_id END
                     WHERE arn = ?1",
                    params![arn, next + 1, now.0, set_as_default, version_id],
                )?;
                Ok(PolicyVersionRow { version_id, document, is_default: set_as_default, created_at: now })
            })
            .await?;
        self.refresh().await?;
        let mut w = XmlWriter::new();
        w.node("PolicyVersion", |w| version.write_xml(w, false));
        Ok(xml(w))
    }

    async fn get_policy_version(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        let version_id = version_id(q)?;
        let version = self
            .store
            .read(move |c| -> Result<PolicyVersionRow, IamError> {
                if let Some(p) = aws_managed::find(&arn) {
                    let v = aws_version(p);
                    return if v.version_id == version_id { Ok(v) } else { Err(no_such_version(&arn, &version_id)) };
                }
                let default: String = c
                    .query_row("SELECT default_version_id FROM iam_policies WHERE arn = ?1", [&arn], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| no_such_policy(&arn))?;
                c.query_row(
                    "SELECT document, created_at FROM iam_policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
                    params![arn, version_id],
                    |r| {
                        Ok(PolicyVersionRow {
                            is_default: version_id == default,
                            version_id: version_id.clone(),
                            document: r.get(0)?,
                            created_at: Timestamp(r.get(1)?),
                        })
                    },
                )
                .optional()?
                .ok_or_else(|| no_such_version(&arn, &version_id))
            })
            .await?;
        let mut w = XmlWriter::new();
        w.node("PolicyVersion", |w| version.write_xml(w, true));
        Ok(xml(w))
    }

    async fn list_policy_versions(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        let page = PageRequest::from_query(q)?;
        let versions = self
            .store
            .read(move |c| -> Result<Vec<PolicyVersionRow>, IamError> {
                if let Some(p) = aws_managed::find(&arn) {
                    return Ok(vec![aws_version(p)]);
                }
                let default: String = c
                    .query_row("SELECT default_version_id FROM iam_policies WHERE arn = ?1", [&arn], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| no_such_policy(&arn))?;
                let mut stmt = c.prepare(
                    "SELECT version_id, document, created_at FROM iam_policy_versions WHERE policy_arn = ?1",
                )?;
                let rows = stmt.query_map([&arn], |r| {
                    let version_id: String = r.get(0)?;
                    Ok(PolicyVersionRow {
                        is_default: version_id == default,
                        version_id,
                        document: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                    })
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        let (versions, next) = page_of(&page, versions, PolicyVersionRow::sort_key);
        let mut w = XmlWriter::new();
        w.members("Versions", &versions, |w, v| v.write_xml(w, false));
        common::write_page_end(&mut w, next);
        Ok(xml(w))
    }

    async fn delete_policy_version(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        if aws_managed::is_aws_managed_arn(&arn) {
            return Err(aws_managed_is_read_only(ctx, &arn).into());
        }
        let version_id = version_id(q)?;
        self.store
            .write(move |tx| {
                let default: String = tx
                    .query_row("SELECT default_version_id FROM iam_policies WHERE arn = ?1", [&arn], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| no_such_policy(&arn))?;
                if version_id == default {
                    return Err(IamError::DeleteConflict("Cannot delete the default version of a policy.".into()));
                }
                let n = tx.execute(
                    "DELETE FROM iam_policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
                    params![arn, version_id],
                )?;
                if n == 0 {
                    return Err(no_such_version(&arn, &version_id));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn set_default_policy_version(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let arn = policy_arn(q)?;
        if aws_managed::is_aws_managed_arn(&arn) {
            return Err(aws_managed_is_read_only(ctx, &arn).into());
        }
        let version_id = version_id(q)?;
        self.store
            .write(move |tx| {
                if find_local(tx, &arn)?.is_none() {
                    return Err(no_such_policy(&arn));
                }
                let exists: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM iam_policy_versions WHERE policy_arn = ?1 AND version_id = ?2",
                        params![arn, version_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if exists.is_none() {
                    return Err(no_such_version(&arn, &version_id));
                }
                tx.execute("UPDATE iam_policies SET default_version_id = ?2 WHERE arn = ?1", params![arn, version_id])?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn attach_policy(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, 64)?;
        let arn = policy_arn(q)?;
        self.store
            .write(move |tx| {
                let name = kind.existing_name(tx, &name)?;
                if !policy_exists(tx, &arn)? {
                    return Err(no_such_policy(&arn));
                }
                let attached: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM iam_attached_policies
                         WHERE principal_type = ?1 AND principal_name = ?2 AND policy_arn = ?3",
                        params![kind.as_str(), name, arn],
                        |r| r.get(0),
                    )
                    .optional()?;
                if attached.is_some() {
                    return Ok(()); // Attaching is idempotent.
                }
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM iam_attached_policies WHERE principal_type = ?1 AND principal_name = ?2",
                    params![kind.as_str(), name],
                    |r| r.get(0),
                )?;
                if count >= MAX_ATTACHED_POLICIES {
                    return Err(IamError::LimitExceeded(format!(
                        "Cannot exceed quota for PoliciesPer{}: {MAX_ATTACHED_POLICIES}",
                        kind.quota_word()
                    )));
                }
                tx.execute(
                    "INSERT INTO iam_attached_policies (principal_type, principal_name, policy_arn) VALUES (?1, ?2, ?3)",
                    params![kind.as_str(), name, arn],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn detach_policy(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, 64)?;
        let arn = policy_arn(q)?;
        self.store
            .write(move |tx| {
                let name = kind.existing_name(tx, &name)?;
                let n = tx.execute(
                    "DELETE FROM iam_attached_policies WHERE principal_type = ?1 AND principal_name = ?2 AND policy_arn = ?3",
                    params![kind.as_str(), name, arn],
                )?;
                if n == 0 {
                    return Err(IamError::NoSuchEntity(format!("Policy {arn} was not found.")));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn list_attached_policies(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, 64)?;
        let prefix = common::path_prefix(q)?;
        let page = PageRequest::from_query(q)?;
        let attached = self
            .store
            .read(move |c| -> Result<Vec<(String, String, String)>, IamError> {
                let name = kind.existing_name(c, &name)?;
                let mut stmt = c.prepare(
                    "SELECT a.policy_arn, p.policy_name, p.path FROM iam_attached_policies a
                     LEFT JOIN iam_policies p ON p.arn = a.policy_arn
                     WHERE a.principal_type = ?1 AND a.principal_name = ?2",
                )?;
                let rows = stmt.query_map(params![kind.as_str(), name], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?))
                })?;
                let mut attached = Vec::new();
                for row in rows {
                    let (arn, policy_name, path) = row?;
                    let (policy_name, path) = match (policy_name, path, aws_managed::find(&arn)) {
                        (Some(n), Some(p), _) => (n, p),
                        (_, _, Some(aws)) => (aws.policy_name.to_string(), aws.path.to_string()),
                        // Attachments are checked on write and block DeletePolicy; none is dangling.
                        _ => continue,
                    };
                    attached.push((policy_name, arn, path));
                }
                Ok(attached)
            })
            .await?;
        let attached: Vec<(String, String, String)> =
            attached.into_iter().filter(|(_, _, path)| path.starts_with(&prefix)).collect();
        let (attached, next) = page_of(&page, attached, |(n, arn, _)| format!("{}\n{arn}", n.to_lowercase()));
        let mut w = XmlWriter::new();
        w.members("AttachedPolicies", &attached, |w, (n, arn, _)| {
            w.elem("PolicyName", n).elem("PolicyArn", arn);
        });
        common::write_page_end(&mut w, next);
        Ok(xml(w))
    }
}
