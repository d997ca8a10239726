//! IAM users: the `iam_users` table and the CreateUser / GetUser / ListUsers / DeleteUser operations.

use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{ids, AwsContext, QueryInput};
use berth_store::rusqlite::{self, params, OptionalExtension};
use berth_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::IamError;

pub const MIGRATIONS: &[&str] = &["CREATE TABLE iam_users (
        user_name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        user_id TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL,
        arn TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        permissions_boundary TEXT,
        tags TEXT NOT NULL
    )"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

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

impl User {
    pub fn write_xml(&self, w: &mut XmlWriter) {
        w.elem("Path", &self.path)
            .elem("UserName", &self.user_name)
            .elem("UserId", &self.user_id)
            .elem("Arn", &self.arn)
            .elem("CreateDate", self.created_at.iso8601());
        if let Some(b) = &self.permissions_boundary {
            w.node("PermissionsBoundary", |w| {
                w.elem("PermissionsBoundaryType", "Policy").elem("PermissionsBoundaryArn", b);
            });
        }
        if !self.tags.is_empty() {
            w.members("Tags", &self.tags, |w, t| {
                w.elem("Key", &t.key).elem("Value", &t.value);
            });
        }
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        let tags: String = row.get(6)?;
        Ok(User {
            user_name: row.get(0)?,
            user_id: row.get(1)?,
            path: row.get(2)?,
            arn: row.get(3)?,
            created_at: Timestamp(row.get(4)?),
            permissions_boundary: row.get(5)?,
            // The column is only ever written by serde_json below.
            tags: serde_json::from_str(&tags).unwrap_or_default(),
        })
    }
}

const COLUMNS: &str = "user_name, user_id, path, arn, created_at, permissions_boundary, tags";

/// The validated input of CreateUser.
pub struct NewUser {
    pub user_name: String,
    pub path: String,
    pub permissions_boundary: Option<String>,
    pub tags: Vec<Tag>,
}

impl NewUser {
    pub fn from_query(q: &QueryInput) -> Result<NewUser, berth_aws::AwsError> {
        let user_name = q.required("UserName")?.to_string();
        validate_user_name(&user_name)?;
        let path = q.get("Path").unwrap_or("/").to_string();
        validate_path(&path, "path")?;
        let permissions_boundary = q.get("PermissionsBoundary").map(str::to_string);
        if let Some(b) = &permissions_boundary {
            if !(20..=2048).contains(&b.len()) || !b.starts_with("arn:") {
                return Err(validation(format!(
                    "Value '{b}' at 'permissionsBoundary' failed to satisfy constraint: Member must be an ARN"
                ))
                .into());
            }
        }
        let mut tags = Vec::new();
        for t in q.struct_list("Tags") {
            let key = t.get("Key").copied().unwrap_or("");
            let value = t.get("Value").copied().unwrap_or("");
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(validation("Tag keys must be 1 to 128 characters and values at most 256".into()).into());
            }
            if tags.iter().any(|x: &Tag| x.key == key) {
                return Err(berth_aws::AwsError::client("InvalidInput", format!("Duplicate tag keys found: {key}")));
            }
            tags.push(Tag { key: key.into(), value: value.into() });
        }
        if tags.len() > 50 {
            return Err(berth_aws::AwsError::new(409, "LimitExceeded", "Cannot exceed quota for TagsPerUser: 50"));
        }
        Ok(NewUser { user_name, path, permissions_boundary, tags })
    }
}

fn validation(msg: String) -> IamError {
    IamError::Validation(format!("1 validation error detected: {msg}"))
}

pub fn validate_user_name(name: &str) -> Result<(), IamError> {
    let ok =
        (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "Value '{name}' at 'userName' failed to satisfy constraint: Member must have length between 1 and 64 and match [\\w+=,.@-]+"
        )))
    }
}

pub fn validate_path(path: &str, member: &str) -> Result<(), IamError> {
    let ok = path == "/"
        || ((2..=512).contains(&path.len())
            && path.starts_with('/')
            && path.ends_with('/')
            && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "Value '{path}' at '{member}' failed to satisfy constraint: Member must begin and end with / and contain only printable ASCII"
        )))
    }
}

/// IAM users in the store.
#[derive(Clone)]
pub struct Users {
    store: Store,
}

impl Users {
    pub fn new(store: Store) -> Users {
        Users { store }
    }

    /// user_create: durable before it returns.
    pub async fn create(&self, aws: &AwsContext, new: NewUser, now: Timestamp) -> Result<User, IamError> {
        let user = User {
            arn: aws.global_arn("iam", &format!("user{}{}", new.path, new.user_name)),
            user_name: new.user_name,
            user_id: ids::unique_id("AIDA"),
            path: new.path,
            created_at: now,
            permissions_boundary: new.permissions_boundary,
            tags: new.tags,
        };
        let row = user.clone();
        self.store
            .write(move |tx| {
                let exists: Option<String> = tx
                    .query_row("SELECT user_name FROM iam_users WHERE user_name = ?1", [&row.user_name], |r| r.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Err(IamError::UserExists { name: row.user_name.clone() });
                }
                let tags = serde_json::to_string(&row.tags).map_err(|e| IamError::Validation(e.to_string()))?;
                tx.execute(
                    &format!("INSERT INTO iam_users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    params![
                        row.user_name,
                        row.user_id,
                        row.path,
                        row.arn,
                        row.created_at.0,
                        row.permissions_boundary,
                        tags
                    ],
                )?;
                Ok(())
            })
            .await?;
        Ok(user)
    }

    pub async fn get(&self, name: &str) -> Result<User, IamError> {
        let name = name.to_string();
        self.store
            .read(move |c| {
                c.query_row(&format!("SELECT {COLUMNS} FROM iam_users WHERE user_name = ?1"), [&name], User::from_row)
                    .optional()?
                    .ok_or(IamError::NoSuchUser { name })
            })
            .await
    }

    /// user_delete.
    pub async fn delete(&self, name: &str) -> Result<(), IamError> {
        let name = name.to_string();
        self.store
            .write(move |tx| {
                let n = tx.execute("DELETE FROM iam_users WHERE user_name = ?1", [&name])?;
                if n == 0 {
                    return Err(IamError::NoSuchUser { name });
                }
                Ok(())
            })
            .await
    }

    /// One page of users whose path starts with `path_prefix`, in name order, starting at `marker`.
    /// Returns the page and the marker of the next page.
    pub async fn list(
        &self,
        path_prefix: &str,
        marker: Option<String>,
        max_items: usize,
    ) -> Result<(Vec<User>, Option<String>), IamError> {
        let prefix = path_prefix.to_string();
        self.store
            .read(move |c| {
                let mut stmt = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM iam_users
                     WHERE substr(path, 1, length(?1)) = ?1 AND (?2 IS NULL OR lower(user_name) >= lower(?2))
                     ORDER BY lower(user_name) LIMIT ?3"
                ))?;
                let mut users: Vec<User> = stmt
                    .query_map(params![prefix, marker, max_items as i64 + 1], User::from_row)?
                    .collect::<Result<_, _>>()?;
                let next = if users.len() > max_items { users.pop().map(|u| hex_marker(&u.user_name)) } else { None };
                Ok((users, next))
            })
            .await
    }
}

/// Markers are opaque to clients: the hex of the first name of the next page.
pub fn hex_marker(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_marker(marker: &str) -> Option<String> {
    if !marker.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..marker.len()).step_by(2).map(|i| u8::from_str_radix(marker.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}
