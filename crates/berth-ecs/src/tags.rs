//! Resource tags as ECS has them: `{key, value}` (lower case, unlike ECR), at most 50 per
//! resource, keys of 1–128 and values of 0–256 characters, `aws:` reserved.
//!
//! Clusters and task definitions keep their tags in `ecs_tags`, by ARN; tasks keep theirs in their
//! own row (see [`crate::schema`]).

use berth_store::rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::EcsError;

pub const MAX_TAGS: usize = 50;
const MAX_KEY: usize = 128;
const MAX_VALUE: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The `tags` member of a request: a list of `{key, value}`, validated.
pub fn parse(value: Option<&Value>, member: &str) -> Result<Vec<Tag>, EcsError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = value
        .as_array()
        .ok_or_else(|| EcsError::Serialization(format!("Invalid value for '{member}': expected a list of tags")))?;
    let mut tags = Vec::with_capacity(items.len());
    for item in items {
        let obj = item
            .as_object()
            .ok_or_else(|| EcsError::Serialization(format!("Invalid value for '{member}': expected a list of tags")))?;
        let field = |name: &str| match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(EcsError::Serialization(format!("Invalid value for '{member}.{name}': expected a string"))),
        };
        let key = field("key")?.ok_or_else(|| EcsError::invalid("Tag keys must be provided."))?;
        let value = field("value")?.unwrap_or_default();
        tags.push(Tag { key, value });
    }
    validate(&tags)?;
    Ok(tags)
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// Checks each tag and the list (distinct keys, at most [`MAX_TAGS`]).
pub fn validate(tags: &[Tag]) -> Result<(), EcsError> {
    if tags.len() > MAX_TAGS {
        return Err(too_many());
    }
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        validate_key(&t.key)?;
        if t.value.chars().count() > MAX_VALUE {
            return Err(EcsError::invalid(format!(
                "The value of tag '{}' is invalid: tag values have at most {MAX_VALUE} characters.",
                t.key
            )));
        }
        if !t.value.chars().all(allowed) {
            return Err(EcsError::invalid(format!(
                "The value of tag '{}' is invalid: tag values may contain only letters, numbers, spaces and _ . : / = + - @.",
                t.key
            )));
        }
        if !seen.insert(t.key.as_str()) {
            return Err(EcsError::invalid(format!("Tag key '{}' is given more than once.", t.key)));
        }
    }
    Ok(())
}

/// A tag key: 1–128 allowed characters, not starting with `aws:`.
pub fn validate_key(key: &str) -> Result<(), EcsError> {
    let len = key.chars().count();
    if !(1..=MAX_KEY).contains(&len) {
        return Err(EcsError::invalid(format!("Tag key '{key}' is invalid: tag keys have 1 to {MAX_KEY} characters.")));
    }
    if !key.chars().all(allowed) {
        return Err(EcsError::invalid(format!(
            "Tag key '{key}' is invalid: tag keys may contain only letters, numbers, spaces and _ . : / = + - @."
        )));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(EcsError::invalid(format!(
            "Tag key '{key}' is invalid: the prefix 'aws:' is reserved for AWS use."
        )));
    }
    Ok(())
}

pub fn too_many() -> EcsError {
    EcsError::invalid(format!("The resource would have more than {MAX_TAGS} tags; at most {MAX_TAGS} are allowed."))
}

pub fn to_json(tags: &[Tag]) -> Value {
    serde_json::to_value(tags).unwrap_or(Value::Array(Vec::new()))
}

/// The tags of `arn`, in the order they were first set.
pub fn get(conn: &Connection, arn: &str) -> Result<Vec<Tag>, EcsError> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM ecs_tags WHERE resource_arn = ?1 ORDER BY rowid")?;
    let rows = stmt.query_map([arn], |r| Ok(Tag { key: r.get(0)?, value: r.get(1)? }))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Adds `tags` to `arn`, replacing the values of keys it has; refuses to go over [`MAX_TAGS`].
pub fn add(conn: &Connection, arn: &str, tags: &[Tag]) -> Result<(), EcsError> {
    let mut current = get(conn, arn)?;
    for t in tags {
        match current.iter_mut().find(|c| c.key == t.key) {
            Some(c) => c.value = t.value.clone(),
            None => current.push(t.clone()),
        }
    }
    if current.len() > MAX_TAGS {
        return Err(too_many());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO ecs_tags (resource_arn, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (resource_arn, key) DO UPDATE SET value = excluded.value",
    )?;
    for t in tags {
        stmt.execute(params![arn, t.key, t.value])?;
    }
    Ok(())
}

/// Removes the tags with these keys (keys it does not have are ignored, as in ECS).
pub fn remove(conn: &Connection, arn: &str, keys: &[&str]) -> Result<(), EcsError> {
    let mut stmt = conn.prepare_cached("DELETE FROM ecs_tags WHERE resource_arn = ?1 AND key = ?2")?;
    for k in keys {
        stmt.execute(params![arn, k])?;
    }
    Ok(())
}

/// Replaces every tag of `arn`.
pub fn replace(conn: &Connection, arn: &str, tags: &[Tag]) -> Result<(), EcsError> {
    conn.execute("DELETE FROM ecs_tags WHERE resource_arn = ?1", [arn])?;
    add(conn, arn, tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_follow_ecs_limits() {
        let ok = parse(Some(&json!([{ "key": "team", "value": "a b:c/d=e+f-g@h_i.j" }, { "key": "empty" }])), "tags")
            .unwrap();
        assert_eq!(ok[1], Tag { key: "empty".into(), value: String::new() });
        for bad in [
            json!([{ "value": "x" }]),
            json!([{ "key": "", "value": "x" }]),
            json!([{ "key": "k".repeat(129), "value": "x" }]),
            json!([{ "key": "k", "value": "v".repeat(257) }]),
            json!([{ "key": "AWS:x", "value": "v" }]),
            json!([{ "key": "a", "value": "1" }, { "key": "a", "value": "2" }]),
            json!([{ "key": "semi;colon", "value": "1" }]),
        ] {
            assert_eq!(parse(Some(&bad), "tags").unwrap_err().code(), "InvalidParameterException", "{bad}");
        }
        assert_eq!(parse(Some(&json!([{ "key": 1 }])), "tags").unwrap_err().code(), "SerializationException");
        let many: Vec<Value> = (0..51).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect();
        assert!(parse(Some(&Value::Array(many[..50].to_vec())), "tags").is_ok());
        assert!(parse(Some(&Value::Array(many)), "tags").is_err());
    }
}
