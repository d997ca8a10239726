//! Inline policies, embedded in one role or user: PutRolePolicy, GetRolePolicy, DeleteRolePolicy,
//! ListRolePolicies and the same four for users.

use berth_aws::xml::XmlWriter;
use berth_aws::{AwsError, Output, QueryInput, RequestContext};
use berth_store::rusqlite::{params, OptionalExtension};

use crate::common::{self, PageRequest};
use crate::error::IamError;
use crate::iam::IamService;
use crate::managed_policy::{self, PrincipalType};
use crate::policy::{Policy, SizeQuota, ROLE_INLINE_POLICY_SIZE, USER_INLINE_POLICY_SIZE};

impl PrincipalType {
    /// The quota on the total size of one principal's inline policies.
    fn inline_quota(self) -> SizeQuota {
        match self {
            PrincipalType::User => USER_INLINE_POLICY_SIZE,
            PrincipalType::Role => ROLE_INLINE_POLICY_SIZE,
        }
    }

    /// The length limit of the name member: `existingUserNameType` (128) for users, `roleNameType` (64).
    fn inline_name_max(self) -> usize {
        match self {
            PrincipalType::User => 128,
            PrincipalType::Role => 64,
        }
    }

    fn no_such_inline_policy(self, policy_name: &str) -> IamError {
        IamError::NoSuchEntity(format!("The {} policy with name {policy_name} cannot be found.", self.as_str()))
    }
}

/// A document's size as AWS counts it against the inline quotas (white space excluded).
fn counted_size(doc: &str, quota: SizeQuota) -> usize {
    match Policy::check_size(doc, quota) {
        Ok(size) => size,
        Err(too_large) => too_large.size,
    }
}

impl IamService {
    pub(crate) async fn inline_policy_operation(
        &self,
        ctx: &RequestContext,
        q: &QueryInput,
    ) -> Result<Output, AwsError> {
        match ctx.operation {
            "PutRolePolicy" => self.put_inline_policy(PrincipalType::Role, q).await,
            "GetRolePolicy" => self.get_inline_policy(PrincipalType::Role, q).await,
            "DeleteRolePolicy" => self.delete_inline_policy(PrincipalType::Role, q).await,
            "ListRolePolicies" => self.list_inline_policies(PrincipalType::Role, q).await,
            "PutUserPolicy" => self.put_inline_policy(PrincipalType::User, q).await,
            "GetUserPolicy" => self.get_inline_policy(PrincipalType::User, q).await,
            "DeleteUserPolicy" => self.delete_inline_policy(PrincipalType::User, q).await,
            "ListUserPolicies" => self.list_inline_policies(PrincipalType::User, q).await,
            op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
        }
    }

    /// Creates or replaces an inline policy, within the quota on all of the principal's inline policies.
    async fn put_inline_policy(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, kind.inline_name_max())?;
        let policy_name = managed_policy::policy_name(q)?;
        let document = q.required("PolicyDocument")?.to_string();
        managed_policy::validate_identity_document(&document)?;
        self.store
            .write(move |tx| {
                let name = kind.existing_name(tx, &name)?;
                let quota = kind.inline_quota();
                let mut stmt = tx.prepare(
                    "SELECT document FROM iam_inline_policies
                     WHERE principal_type = ?1 AND principal_name = ?2 AND policy_name != ?3",
                )?;
                let others = stmt.query_map(params![kind.as_str(), name, policy_name], |r| r.get::<_, String>(0))?;
                let mut total = counted_size(&document, quota);
                for other in others {
                    total += counted_size(&other?, quota);
                }
                if total > quota.limit {
                    return Err(IamError::LimitExceeded(format!(
                        "Maximum policy size of {} bytes exceeded for {} {name}",
                        quota.limit,
                        kind.as_str()
                    )));
                }
                tx.execute(
                    "INSERT INTO iam_inline_policies (principal_type, principal_name, policy_name, document)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (principal_type, principal_name, policy_name) DO UPDATE SET document = excluded.document",
                    params![kind.as_str(), name, policy_name, document],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn get_inline_policy(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, kind.inline_name_max())?;
        let policy_name = managed_policy::policy_name(q)?;
        let (name, policy_name, document) = self
            .store
            .read(move |c| -> Result<(String, String, String), IamError> {
                let name = kind.existing_name(c, &name)?;
                let document: String = c
                    .query_row(
                        "SELECT document FROM iam_inline_policies
                         WHERE principal_type = ?1 AND principal_name = ?2 AND policy_name = ?3",
                        params![kind.as_str(), name, policy_name],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| kind.no_such_inline_policy(&policy_name))?;
                Ok((name, policy_name, document))
            })
            .await?;
        let mut w = XmlWriter::new();
        w.elem(if kind == PrincipalType::Role { "RoleName" } else { "UserName" }, name)
            .elem("PolicyName", policy_name)
            .elem("PolicyDocument", common::encode_document(&document));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn delete_inline_policy(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, kind.inline_name_max())?;
        let policy_name = managed_policy::policy_name(q)?;
        self.store
            .write(move |tx| {
                let name = kind.existing_name(tx, &name)?;
                let n = tx.execute(
                    "DELETE FROM iam_inline_policies WHERE principal_type = ?1 AND principal_name = ?2 AND policy_name = ?3",
                    params![kind.as_str(), name, policy_name],
                )?;
                if n == 0 {
                    return Err(kind.no_such_inline_policy(&policy_name));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn list_inline_policies(&self, kind: PrincipalType, q: &QueryInput) -> Result<Output, AwsError> {
        let name = kind.name_from(q, kind.inline_name_max())?;
        let page = PageRequest::from_query(q)?;
        let names = self
            .store
            .read(move |c| -> Result<Vec<String>, IamError> {
                let name = kind.existing_name(c, &name)?;
                let mut stmt = c.prepare(
                    "SELECT policy_name FROM iam_inline_policies WHERE principal_type = ?1 AND principal_name = ?2",
                )?;
                let rows = stmt.query_map(params![kind.as_str(), name], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        let (names, next) = managed_policy::page_of(&page, names, String::clone);
        let mut w = XmlWriter::new();
        w.node("PolicyNames", |w| {
            for n in &names {
                w.elem("member", n);
            }
        });
        common::write_page_end(&mut w, next);
        Ok(Output::Xml(Some(w.into_string())))
    }
}
