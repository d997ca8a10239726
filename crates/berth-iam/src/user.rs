//! IAM users: CreateUser, GetUser, ListUsers, DeleteUser.

use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{ids, AwsError, Output, PrincipalKind, QueryInput, RequestContext};
use berth_store::rusqlite::{self, params, OptionalExtension};

use crate::common::{self, Tag};
use crate::error::IamError;
use crate::iam::IamService;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_name: String,
    pub user_id: String,
    pub path: String,
    pub arn: String,
    pub created_at: Timestamp,
    pub permissions_boundary: Option<String>,
    pub tags: Vec<Tag>,
}

pub(crate) const USER_COLUMNS: &str = "user_name, user_id, path, arn, created_at, permissions_boundary, tags";

impl User {
    pub fn write_xml(&self, w: &mut XmlWriter) {
        w.elem("Path", &self.path)
            .elem("UserName", &self.user_name)
            .elem("UserId", &self.user_id)
            .elem("Arn", &self.arn)
            .elem("CreateDate", self.created_at.iso8601());
        common::write_permissions_boundary(w, self.permissions_boundary.as_deref());
        common::write_tags(w, &self.tags);
    }

    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        Ok(User {
            user_name: row.get(0)?,
            user_id: row.get(1)?,
            path: row.get(2)?,
            arn: row.get(3)?,
            created_at: Timestamp(row.get(4)?),
            permissions_boundary: row.get(5)?,
            tags: common::tags_from_json(&row.get::<_, String>(6)?),
        })
    }
}

/// Reads one user in a transaction or on a connection: `NoSuchEntity` when absent.
pub(crate) fn get_user(c: &rusqlite::Connection, name: &str) -> Result<User, IamError> {
    // Cached: GetUser is on the path of every IAM call that names a user.
    c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM iam_users WHERE user_name = ?1"))?
        .query_row([name], User::from_row)
        .optional()?
        .ok_or_else(|| no_such_user(name))
}

pub(crate) fn no_such_user(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

/// The user a request names with `UserName`, or the calling IAM user when it names none.
pub(crate) fn target_user_name(ctx: &RequestContext, q: &QueryInput) -> Result<String, IamError> {
    match (q.get("UserName"), &ctx.principal.kind) {
        (Some(name), _) => {
            common::validate_name("userName", name, 64)?;
            Ok(name.to_string())
        }
        (None, PrincipalKind::User { name }) => Ok(name.clone()),
        (None, _) => Err(IamError::Validation("Must specify userName when calling with non-User credentials".into())),
    }
}

impl IamService {
    pub(crate) async fn create_user(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let user_name = q.required("UserName")?.to_string();
        common::validate_name("userName", &user_name, 64)?;
        let path = q.get("Path").unwrap_or("/").to_string();
        common::validate_path("path", &path)?;
        let permissions_boundary = q.get("PermissionsBoundary").map(str::to_string);
        if let Some(b) = &permissions_boundary {
            if !(20..=2048).contains(&b.len()) || !b.starts_with("arn:") {
                return Err(IamError::validation("permissionsBoundary", b, "Member must be an ARN").into());
            }
        }
        let user = User {
            arn: ctx.aws.global_arn("iam", &format!("user{path}{user_name}")),
            user_id: ids::unique_id("AIDA"),
            user_name,
            path,
            created_at: self.now(),
            permissions_boundary,
            tags: common::tags_from_query(q, "User")?,
        };
        let row = user.clone();
        self.store
            .write(move |tx| {
                let exists: Option<String> = tx
                    .query_row("SELECT user_name FROM iam_users WHERE user_name = ?1", [&row.user_name], |r| r.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Err(IamError::EntityAlreadyExists(format!(
                        "User with name {} already exists.",
                        row.user_name
                    )));
                }
                tx.execute(
                    &format!("INSERT INTO iam_users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    params![
                        row.user_name,
                        row.user_id,
                        row.path,
                        row.arn,
                        row.created_at.0,
                        row.permissions_boundary,
                        common::tags_to_json(&row.tags)
                    ],
                )?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        let mut w = XmlWriter::new();
        w.node("User", |w| user.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    pub(crate) async fn get_user(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let mut w = XmlWriter::new();
        if q.get("UserName").is_none() && ctx.principal.kind == PrincipalKind::Root {
            // The root user has no name or path: AWS answers with its id and ARN.
            w.node("User", |w| {
                w.elem("UserId", &ctx.principal.user_id)
                    .elem("Arn", &ctx.principal.arn)
                    .elem("CreateDate", Timestamp(0).iso8601());
            });
            return Ok(Output::Xml(Some(w.into_string())));
        }
        let name = target_user_name(ctx, q)?;
        let user = self.store.read(move |c| get_user(c, &name)).await?;
        w.node("User", |w| user.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    pub(crate) async fn list_users(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let (users, next) =
            common::list_by_path(&self.store, q, "iam_users", USER_COLUMNS, "user_name", User::from_row, |u| {
                &u.user_name
            })
            .await?;
        let mut w = XmlWriter::new();
        w.members("Users", &users, |w, u| u.write_xml(w));
        common::write_page_end(&mut w, next);
        Ok(Output::Xml(Some(w.into_string())))
    }

    pub(crate) async fn delete_user(&self, q: &QueryInput) -> Result<Output, AwsError> {
        let name = q.required("UserName")?.to_string();
        common::validate_name("userName", &name, 64)?;
        self.store
            .write(move |tx| {
                get_user(tx, &name)?;
                let dependents: i64 = tx.query_row(
                    "SELECT (SELECT count(*) FROM iam_access_keys WHERE user_name = ?1)
                          + (SELECT count(*) FROM iam_attached_policies WHERE principal_type = 'user' AND principal_name = ?1)
                          + (SELECT count(*) FROM iam_inline_policies WHERE principal_type = 'user' AND principal_name = ?1)",
                    [&name],
                    |r| r.get(0),
                )?;
                if dependents > 0 {
                    return Err(IamError::DeleteConflict(
                        "Cannot delete entity, must delete access keys and policies first.".into(),
                    ));
                }
                tx.execute("DELETE FROM iam_users WHERE user_name = ?1", [&name])?;
                Ok(())
            })
            .await?;
        self.refresh().await?;
        Ok(Output::Xml(None))
    }
}
