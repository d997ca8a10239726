//! What IAM's resources share: names, paths, tags, and `Marker`/`MaxItems` pagination.

use berth_aws::xml::XmlWriter;
use berth_aws::{AwsError, QueryInput};
use serde::{Deserialize, Serialize};

use crate::error::IamError;

/// A tag on an IAM resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// `Tags.member.N.Key` / `.Value`, validated as IAM does (at most 50, keys 1–128, values ≤ 256).
pub fn tags_from_query(q: &QueryInput, entity: &str) -> Result<Vec<Tag>, IamError> {
    let mut tags: Vec<Tag> = Vec::new();
    for t in q.struct_list("Tags") {
        let key = t.get("Key").copied().unwrap_or("");
        let value = t.get("Value").copied().unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(IamError::validation("tags.member.key", key, "Member must have length between 1 and 128"));
        }
        if value.chars().count() > 256 {
            return Err(IamError::validation(
                "tags.member.value",
                value,
                "Member must have length less than or equal to 256",
            ));
        }
        if tags.iter().any(|x| x.key == key) {
            return Err(IamError::InvalidInput(format!("Duplicate tag keys found: {key}")));
        }
        tags.push(Tag { key: key.into(), value: value.into() });
    }
    if tags.len() > 50 {
        return Err(IamError::LimitExceeded(format!("Cannot exceed quota for TagsPer{entity}: 50")));
    }
    Ok(tags)
}

pub fn write_tags(w: &mut XmlWriter, tags: &[Tag]) {
    if !tags.is_empty() {
        w.members("Tags", tags, |w, t| {
            w.elem("Key", &t.key).elem("Value", &t.value);
        });
    }
}

/// `<PermissionsBoundary>` of a user or role, when it has one.
pub fn write_permissions_boundary(w: &mut XmlWriter, arn: Option<&str>) {
    if let Some(arn) = arn {
        w.node("PermissionsBoundary", |w| {
            w.elem("PermissionsBoundaryType", "Policy").elem("PermissionsBoundaryArn", arn);
        });
    }
}

pub fn tags_to_json(tags: &[Tag]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

pub fn tags_from_json(text: &str) -> Vec<Tag> {
    serde_json::from_str(text).unwrap_or_default()
}

/// User, role, group and policy names: 1–`max` of `[\w+=,.@-]`.
pub fn validate_name(member: &str, name: &str, max: usize) -> Result<(), IamError> {
    let ok =
        (1..=max).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::validation(
            member,
            name,
            &format!("Member must have length between 1 and {max} and match [\\w+=,.@-]+"),
        ))
    }
}

/// Paths: `/` or `/…/` of printable ASCII, at most 512 characters.
pub fn validate_path(member: &str, path: &str) -> Result<(), IamError> {
    let ok = path == "/"
        || ((2..=512).contains(&path.len())
            && path.starts_with('/')
            && path.ends_with('/')
            && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(IamError::validation(member, path, "Member must begin and end with / and contain only printable ASCII"))
    }
}

/// `PathPrefix`: `/` followed by printable ASCII, at most 512 characters.
pub fn path_prefix(q: &QueryInput) -> Result<String, IamError> {
    let prefix = q.get("PathPrefix").unwrap_or("/");
    if !prefix.starts_with('/') || prefix.len() > 512 || !prefix.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(IamError::validation(
            "pathPrefix",
            prefix,
            "Member must begin with / and contain only printable ASCII",
        ));
    }
    Ok(prefix.to_string())
}

/// A page request: `Marker` (opaque; here the hex of the first sort key of the page) and `MaxItems` (1–1000, default 100).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// The sort key the page starts at (inclusive).
    pub start: Option<String>,
    pub max_items: usize,
}

impl PageRequest {
    pub fn from_query(q: &QueryInput) -> Result<PageRequest, AwsError> {
        let max_items = q.int("MaxItems")?.unwrap_or(100);
        if !(1..=1000).contains(&max_items) {
            return Err(IamError::validation(
                "maxItems",
                &max_items.to_string(),
                "Member must have value between 1 and 1000",
            )
            .into());
        }
        let start = match q.get("Marker") {
            None => None,
            Some(m) => Some(decode_marker(m).ok_or_else(|| AwsError::client("ValidationError", "Invalid Marker"))?),
        };
        Ok(PageRequest { start, max_items: max_items as usize })
    }

    /// Cuts `items` (sorted by `key`, starting at `start`, with at most `max_items + 1` entries) into
    /// the page and the marker of the next page.
    pub fn cut<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        if items.len() > self.max_items {
            let next = items.get(self.max_items).map(|t| encode_marker(&key(t)));
            items.truncate(self.max_items);
            (items, next)
        } else {
            (items, None)
        }
    }

    /// The SQL `LIMIT` that lets [`PageRequest::cut`] see whether there is a next page.
    pub fn limit(&self) -> i64 {
        self.max_items as i64 + 1
    }
}

/// One page of the entities of `table` (users, roles) whose path starts with the request's
/// `PathPrefix`, in case-insensitive order of `name_column`, as ListUsers and ListRoles answer.
pub(crate) async fn list_by_path<T: Send + 'static>(
    store: &berth_store::Store,
    q: &QueryInput,
    table: &'static str,
    columns: &'static str,
    name_column: &'static str,
    from_row: fn(&berth_store::rusqlite::Row<'_>) -> berth_store::rusqlite::Result<T>,
    name_of: fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let prefix = path_prefix(q)?;
    let page = PageRequest::from_query(q)?;
    let p = page.clone();
    let items = store
        .read(move |c| -> Result<Vec<T>, IamError> {
            let mut stmt = c.prepare(&format!(
                "SELECT {columns} FROM {table}
                 WHERE substr(path, 1, length(?1)) = ?1 AND (?2 IS NULL OR lower({name_column}) >= lower(?2))
                 ORDER BY lower({name_column}) LIMIT ?3"
            ))?;
            let rows = stmt.query_map(berth_store::rusqlite::params![prefix, p.start, p.limit()], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await?;
    Ok(page.cut(items, |t| name_of(t).to_lowercase()))
}

/// `<IsTruncated>` and, when truncated, `<Marker>`.
pub fn write_page_end(w: &mut XmlWriter, next: Option<String>) {
    w.elem("IsTruncated", if next.is_some() { "true" } else { "false" });
    w.opt_elem("Marker", next);
}

pub fn encode_marker(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_marker(marker: &str) -> Option<String> {
    if !marker.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..marker.len()).step_by(2).map(|i| u8::from_str_radix(marker.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

/// A policy document as it arrives (URL-decoded JSON text) and as IAM returns it: URL-encoded.
pub fn encode_document(doc: &str) -> String {
    berth_aws::sigv4::uri_encode(doc.as_bytes())
}
