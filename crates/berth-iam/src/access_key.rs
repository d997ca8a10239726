//! IAM access keys: CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey.
//!
//! A key belongs to an IAM user: the `UserName` of the request, or the calling IAM user when it names
//! none. (AWS would let root credentials without a `UserName` manage the root user's own keys; berth's
//! root key lives outside IAM, so such a call gets `ValidationError` "Must specify userName when calling
//! with non-User credentials".)
//!
//! The secret is handed out once, by CreateAccessKey. It is never listed, logged or put in an error;
//! otherwise only the credential store reads it (`state.rs`). Every write is one transaction followed
//! by a refresh of that store, so a new key signs the very next request and a deactivated or deleted
//! key stops working at once.

use berth_aws::time::Timestamp;
use berth_aws::xml::XmlWriter;
use berth_aws::{ids, AwsError, Output, QueryInput, RequestContext, Secret};
use berth_store::rusqlite::{self, params};

use crate::common::{self, PageRequest};
use crate::error::IamError;
use crate::iam::IamService;
use crate::user::{get_user, target_user_name};

/// AWS's quota of access keys per IAM user (AccessKeysPerUser).
pub const ACCESS_KEYS_PER_USER: i64 = 2;

/// Whether a key may sign requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKeyStatus {
    Active,
    Inactive,
}

impl AccessKeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKeyStatus::Active => "Active",
            AccessKeyStatus::Inactive => "Inactive",
        }
    }

    /// The `Status` of UpdateAccessKey. `Expired` is in the API's enum but is a state AWS sets, not
    /// one a caller can.
    fn from_request(value: &str) -> Result<AccessKeyStatus, IamError> {
        match value {
            "Active" => Ok(AccessKeyStatus::Active),
            "Inactive" => Ok(AccessKeyStatus::Inactive),
            "Expired" => {
                Err(IamError::validation("status", value, "Member must satisfy enum value set: [Active, Inactive]"))
            }
            _ => Err(IamError::validation(
                "status",
                value,
                "Member must satisfy enum value set: [Active, Inactive, Expired]",
            )),
        }
    }

    fn from_stored(value: &str) -> AccessKeyStatus {
        // The table's CHECK constraint admits only these two.
        if value == "Active" {
            AccessKeyStatus::Active
        } else {
            AccessKeyStatus::Inactive
        }
    }
}

/// What ListAccessKeys shows of a key (AWS's `AccessKeyMetadata`): everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: AccessKeyStatus,
    pub created_at: Timestamp,
}

impl AccessKeyMetadata {
    pub fn write_xml(&self, w: &mut XmlWriter) {
        w.elem("UserName", &self.user_name)
            .elem("AccessKeyId", &self.access_key_id)
            .elem("Status", self.status.as_str())
            .elem("CreateDate", self.created_at.iso8601());
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKeyMetadata> {
        Ok(AccessKeyMetadata {
            user_name: row.get(0)?,
            access_key_id: row.get(1)?,
            status: AccessKeyStatus::from_stored(&row.get::<_, String>(2)?),
            created_at: Timestamp(row.get(3)?),
        })
    }
}

/// A new key as CreateAccessKey returns it (AWS's `AccessKey`): the only time the secret is shown.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    pub metadata: AccessKeyMetadata,
    /// Redacted by `Debug`.
    pub secret_access_key: Secret,
}

impl NewAccessKey {
    pub fn write_xml(&self, w: &mut XmlWriter) {
        let m = &self.metadata;
        w.elem("UserName", &m.user_name)
            .elem("AccessKeyId", &m.access_key_id)
            .elem("Status", m.status.as_str())
            .elem("SecretAccessKey", self.secret_access_key.expose())
            .elem("CreateDate", m.created_at.iso8601());
    }
}

fn no_such_access_key(access_key_id: &str) -> IamError {
    IamError::NoSuchEntity(format!("The Access Key with id {access_key_id} cannot be found."))
}

/// `AccessKeyId`: 16–128 word characters (`accessKeyIdType`).
fn access_key_id(q: &QueryInput) -> Result<String, AwsError> {
    let id = q.required("AccessKeyId")?;
    let constraint = if id.len() < 16 {
        Some("Member must have length greater than or equal to 16")
    } else if id.len() > 128 {
        Some("Member must have length less than or equal to 128")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("Member must satisfy regular expression pattern: [\\w]+")
    } else {
        None
    };
    match constraint {
        Some(c) => Err(IamError::validation("accessKeyId", id, c).into()),
        None => Ok(id.to_string()),
    }
}

impl IamService {
    pub(crate) async fn access_key_operation(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        match ctx.operation {
            "CreateAccessKey" => self.create_access_key(ctx, q).await,
            "ListAccessKeys" => self.list_access_keys(ctx, q).await,
            "UpdateAccessKey" => self.update_access_key(ctx, q).await,
            "DeleteAccessKey" => self.delete_access_key(ctx, q).await,
            op => Err(AwsError::client("InvalidAction", format!("Could not find operation {op}"))),
        }
    }

    async fn create_access_key(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let name = target_user_name(ctx, q)?;
        let access_key_id = ids::access_key_id("AKIA");
        let secret = Secret::new(ids::secret_access_key());
        let created_at = self.now();
        let key = self
            .store
            .write(move |tx| -> Result<NewAccessKey, IamError> {
                // The user's name as stored (names are case-insensitive).
                let user = get_user(tx, &name)?;
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM iam_access_keys WHERE user_name = ?1",
                    [&user.user_name],
                    |r| r.get(0),
                )?;
                if count >= ACCESS_KEYS_PER_USER {
                    return Err(IamError::LimitExceeded(format!(
                        "Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"
                    )));
                }
                tx.execute(
                    "INSERT INTO iam_access_keys (access_key_id, user_name, secret_access_key, status, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        access_key_id,
                        user.user_name,
                        secret.expose(),
                        AccessKeyStatus::Active.as_str(),
                        created_at.0
                    ],
                )?;
                let metadata = AccessKeyMetadata {
                    user_name: user.user_name,
                    access_key_id,
                    status: AccessKeyStatus::Active,
                    created_at,
                };
                Ok(NewAccessKey { metadata, secret_access_key: secret })
            })
            .await?;
        self.refresh().await?;
        tracing::info!(user = %key.metadata.user_name, access_key_id = %key.metadata.access_key_id, "access key created");
        let mut w = XmlWriter::new();
        w.node("AccessKey", |w| key.write_xml(w));
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn list_access_keys(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let name = target_user_name(ctx, q)?;
        let page = PageRequest::from_query(q)?;
        let p = page.clone();
        let keys = self
            .store
            .read(move |c| -> Result<Vec<AccessKeyMetadata>, IamError> {
                let user = get_user(c, &name)?;
                let mut stmt = c.prepare(
                    "SELECT user_name, access_key_id, status, created_at FROM iam_access_keys
                     WHERE user_name = ?1 AND (?2 IS NULL OR access_key_id >= ?2)
                     ORDER BY access_key_id LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![user.user_name, p.start, p.limit()], AccessKeyMetadata::from_row)?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        let (keys, next) = page.cut(keys, |k| k.access_key_id.clone());
        let mut w = XmlWriter::new();
        w.members("AccessKeyMetadata", &keys, |w, k| k.write_xml(w));
        common::write_page_end(&mut w, next);
        Ok(Output::Xml(Some(w.into_string())))
    }

    async fn update_access_key(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let name = target_user_name(ctx, q)?;
        let id = access_key_id(q)?;
        let status = AccessKeyStatus::from_request(q.required("Status")?)?;
        let logged_id = id.clone();
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let user = get_user(tx, &name)?;
                let n = tx.execute(
                    "UPDATE iam_access_keys SET status = ?3 WHERE access_key_id = ?1 AND user_name = ?2",
                    params![id, user.user_name, status.as_str()],
                )?;
                if n == 0 {
                    return Err(no_such_access_key(&id));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        tracing::info!(access_key_id = %logged_id, status = status.as_str(), "access key updated");
        Ok(Output::Xml(None))
    }

    async fn delete_access_key(&self, ctx: &RequestContext, q: &QueryInput) -> Result<Output, AwsError> {
        let name = target_user_name(ctx, q)?;
        let id = access_key_id(q)?;
        let logged_id = id.clone();
        self.store
            .write(move |tx| -> Result<(), IamError> {
                let user = get_user(tx, &name)?;
                let n = tx.execute(
                    "DELETE FROM iam_access_keys WHERE access_key_id = ?1 AND user_name = ?2",
                    params![id, user.user_name],
                )?;
                if n == 0 {
                    return Err(no_such_access_key(&id));
                }
                Ok(())
            })
            .await?;
        self.refresh().await?;
        tracing::info!(access_key_id = %logged_id, "access key deleted");
        Ok(Output::Xml(None))
    }
}
