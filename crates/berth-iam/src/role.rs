//! IAM roles: CreateRole, GetRole, ListRoles, UpdateAssumeRolePolicy, DeleteRole.

use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{ids, AwsError, Output, QueryInput, RequestContext};
use berth_store::rusqlite::{self, params, OptionalExtension};

use crate::common::{self, Tag};
use crate::error::IamError;
use crate::iam::IamService;
use crate::policy::{Policy, PolicyKind};

/// AWS's default quota for the size of a role's trust policy (ACLSizePerRole).
pub const TRUST_POLICY_MAX_LEN: usize = 2048;
pub const DEFAULT_MAX_SESSION_DURATION: i64 = 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub role_name: String,
    pub role_id: String,
    pub path: String,
    pub arn: String,
    pub created_at: Timestamp,
    pub assume_role_policy: String,
    pub description: Option<String>,
    pub max_session_duration: i64,
    pub permissions_boundary: Option<String>,
    pub tags: Vec<Tag>,
}

const ROLE_COLUMNS: &str = "role_name, role_id, path, arn, created_at, assume_role_policy, description, \
                            max_session_duration, permissions_boundary, tags";

impl Role {
    pub fn write_xml(&self, w: &mut XmlWriter) {
        w.elem("Path", &self.path)
            .elem("RoleName", &self.role_name)
            .elem("RoleId", &self.role_id)
            .elem("Arn", &self.arn)
            .elem("CreateDate", self.created_at.iso8601())
            .elem("AssumeRolePolicyDocument", common::encode_document(&self.assume_role_policy))
            .opt_elem("Description", self.description.as_deref())
            .elem("MaxSessionDuration", self.max_session_duration.to_string());
        common::write_permissions_boundary(w, self.permissions_boundary.as_deref());
        common::write_tags(w, &self.tags);
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Role> {
        Ok(Role {
            role_name: row.get(0)?,
            role_id: row.get(1)?,
            path: row.get(2)?,
            arn: row.get(3)?,
            created_at: Timestamp(row.get(4)?),
            assume_role_policy: row.get(5)?,
            description: row.get(6)?,
            max_session_duration: row.get(7)?,
            permissions_boundary: row.get(8)?,
            tags: common::tags_from_json(&row.get::<_, String>(9)?),
        })
    }
}

pub(crate) fn get_role(c: &rusqlite::Connection, name: &str) -> Result<Role, IamError> {
    c.prepare_cached(&format!("SELECT {ROLE_COLUMNS} FROM iam_roles WHERE role_name = ?1"))?
        .query_row([name], Role::from_row)
        .optional()?
        .ok_or_else(|| no_such_role(name))
}

pub(crate) fn no_such_role(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

/// A trust policy, validated as IAM does on write.
pub(crate) fn validate_trust_policy(doc: &str) -> Result<(), IamError> {
    if doc.chars().count() > TRUST_POLICY_MAX_LEN {
        return Err(IamError::LimitExceeded(format!("Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_MAX_LEN}")));
    }
    Policy::parse(doc, PolicyKind::Trust).map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))?;
    Ok(())
}

fn role_name(q: &QueryInput) -> Result<String, AwsError> {
    let name = q.required("RoleName")?;
    common::validate_name("roleName", name, 64)?;
    Ok(name.to_string())
}

impl IamService {
    pub(crate) async fn role_operation(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        match ctx.operation {
            "CreateRole" => self.create_role(ctx, q).await,
            "GetRole" => self.get_role(q).await,
            "ListRoles" => self.list_roles(q).await,
            "UpdateAssumeRolePolicy" => self.update_assume_role_policy(q).await,
            "DeleteRole" => self.delete_role(q).await,
            op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
        }
    }

    async fn create_role(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let role_name = role_name(q)?;
        let path = q.get("Path").unwrap_or("/").to_string();
        common::validate_path("path", &path)?;
        let assume_role_policy = q.required("AssumeRolePolicyDocument")?.to_string();
        validate_trust_policy(&assume_role_policy)?;
        let description = q.get("Description").map(str::to_string);
        if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
            return Err(
                IamError::validation("description", "…", "Member must have length less than or equal to 1000").into()
            );
        }
        let max_session_duration = q.int("MaxSessionDuration")?.unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        if !(3600..=43200).contains(&max_session_duration) {
            return Err(IamError::validation(
                "maxSessionDuration",
                &max_session_duration.to_string(),
                "Member must have value less than or equal to 43200 and greater than or equal to 3600",
            )
            .into());
        }
        let permissions_boundary = q.get("PermissionsBoundary").map(str::to_string);
        let role = Role {
            arn: ctx.aws.global_arn("iam", &format!("role{path}{role_name}")),
            role_id: ids::unique_id("AROA"),
            role_name,
            path,
            created_at: self.now(),
            assume_role_policy,
            description,
            max_session_duration,
            permissions_boundary,
            tags: common::tags_from_query(q, "Role")?,
        };
        let row = role.clone();
        self.store
            .write(move |tx| {
                if get_role(tx, &row.role_name).is_ok() {
                    return Err(IamError::EntityAlreadyExists(format!(
                        "Role with name {} already exists.",
                        row.role_name
                    )));
                }
                tx.execute(
                    &format!("INSERT INTO iam_roles ({ROLE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                    params![
                        row.role_name,
                        row.role_id,
                        row.path,
                        row.arn,
                        row.created_at.0,
                        row.assume_role_policy,
                        row.description,
                        row.max_session_duration,
                        row.permissions_boundary,
                        common::tags_to_json(&row.tags)
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        let mut w = XmlWriter::new();
        w.node("Role", |w| role.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn get_role(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let name = role_name(q)?;
        let role = self.store.read(move |c| get_role(c, &name)).await?;
        let mut w = XmlWriter::new();
        w.node("Role", |w| role.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn list_roles(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let (roles, next) =
            common::list_by_path(&self.store, q, "iam_roles", ROLE_COLUMNS, "role_name", Role::from_row, |r| {
                &r.role_name
            })
            .await?;
        let mut w = XmlWriter::new();
        w.members("Roles", &roles, |w, r| r.write_xml(w));
        common::write_page_end(&mut w, next);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn update_assume_role_policy(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let name = role_name(q)?;
        let doc = q.required("PolicyDocument")?.to_string();
        validate_trust_policy(&doc)?;
        self.store
            .write(move |tx| {
                let n = tx
                    .execute("UPDATE iam_roles SET assume_role_policy = ?2 WHERE role_name = ?1", params![name, doc])?;
                if n == 0 {
                    return Err(no_such_role(&name));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }

    async fn delete_role(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let name = role_name(q)?;
        self.store
            .write(move |tx| {
                get_role(tx, &name)?;
                let count = |table: &str| -> Result<i64, IamError> {
                    let sql =
                        format!("SELECT count(*) FROM {table} WHERE principal_type = 'role' AND principal_name = ?1");
                    Ok(tx.query_row(&sql, [&name], |r| r.get(0))?)
                };
                if count("iam_attached_policies")? > 0 {
                    return Err(IamError::DeleteConflict(
                        "Cannot delete entity, must detach all policies first.".into(),
                    ));
                }
                if count("iam_inline_policies")? > 0 {
                    return Err(IamError::DeleteConflict("Cannot delete entity, must delete policies first.".into()));
                }
                tx.execute("DELETE FROM iam_roles WHERE role_name = ?1", [&name])?;
                tx.execute("DELETE FROM sts_sessions WHERE role_name = ?1", [&name])?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }
}
