//! Reading members of a JSON request, and the opaque pagination tokens of the list operations.
//!
//! botocore checks types before sending, so a member of the wrong type comes only from a hand-made
//! request; it is refused as ECS's front end does, with `SerializationException`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::EcsError;

/// Items per page when `maxResults` is not given, and the most it may ask for (ECS: 1–100).
pub const MAX_PAGE: usize = 100;

fn wrong_type(member: &str, expected: &str) -> EcsError {
    EcsError::Serialization(format!("Invalid value for '{member}': expected {expected}"))
}

/// ECS's answer for a missing required member.
pub fn missing(member: &str) -> EcsError {
    EcsError::invalid(format!("{member} is required."))
}

pub fn str_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, EcsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(member, "a string")),
    }
}

pub fn required_str<'a>(input: &'a Map<String, Value>, member: &str) -> Result<&'a str, EcsError> {
    str_member(input, member)?.ok_or_else(|| missing(member))
}

pub fn i64_member(input: &Map<String, Value>, member: &str) -> Result<Option<i64>, EcsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| wrong_type(member, "an integer")),
    }
}

pub fn array_member<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<&'a Vec<Value>>, EcsError> {
    match input.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(wrong_type(member, "a list")),
    }
}

/// A list of strings (`clusters`, `include`, `tagKeys`, `taskDefinitions`).
pub fn string_list<'a>(input: &'a Map<String, Value>, member: &str) -> Result<Option<Vec<&'a str>>, EcsError> {
    let Some(items) = array_member(input, member)? else { return Ok(None) };
    items
        .iter()
        .map(|v| v.as_str().ok_or_else(|| wrong_type(member, "a list of strings")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Deserializes a whole request (or part of one) into its typed input structure.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, EcsError> {
    serde_json::from_value(value).map_err(|e| EcsError::Serialization(format!("Invalid request: {e}")))
}

/// How far into a list a paginated call is: at most `max` items after the key `after`.
#[derive(Debug)]
pub struct Page {
    pub max: usize,
    pub after: Option<String>,
}

/// `maxResults` (1–100) and `nextToken`; a token is bound to the `scope` that issued it (the
/// operation, and for `ListTaskDefinitions` the sort order), so one operation's token is refused
/// by another.
pub fn page_params(input: &Map<String, Value>, scope: &str) -> Result<Page, EcsError> {
    let max = match i64_member(input, "maxResults")? {
        None => MAX_PAGE,
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
        Some(n) => return Err(EcsError::invalid(format!("maxResults must be between 1 and {MAX_PAGE} (got {n})."))),
    };
    let after = match str_member(input, "nextToken")? {
        None => None,
        Some(token) => {
            let decoded = URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once('\n')) {
                Some((s, key)) if s == scope => Some(key.to_string()),
                _ => return Err(EcsError::invalid("Invalid nextToken.")),
            }
        }
    };
    Ok(Page { max, after })
}

/// The token that continues after `key`.
pub fn next_token(scope: &str, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scope}\n{key}"))
}

/// One page of `items` (in list order, each with its key) and the token for the next page if
/// there is more. `items` must hold only items after the page's `after` key.
pub fn paginate<T>(items: Vec<(String, T)>, page: &Page, scope: &str) -> (Vec<T>, Option<String>) {
    let mut rest = items.into_iter().peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < page.max {
        let Some((k, item)) = rest.next() else { break };
        out.push(item);
        last = Some(k);
    }
    let next = match (rest.peek(), last) {
        (Some(_), Some(k)) => Some(next_token(scope, &k)),
        _ => None,
    };
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tokens_continue_their_own_scope_only() {
        let items = |after: Option<&str>| {
            (0..5).map(|i| (format!("k{i}"), i)).filter(|(k, _)| after.is_none_or(|a| k.as_str() > a)).collect()
        };
        let page = page_params(&map(json!({ "maxResults": 2 })), "A").unwrap();
        let (first, next) = paginate(items(None), &page, "A");
        assert_eq!(first, vec![0, 1]);
        let token = next.unwrap();
        let page = page_params(&map(json!({ "maxResults": 2, "nextToken": token })), "A").unwrap();
        assert_eq!(page.after.as_deref(), Some("k1"));
        let (second, _) = paginate(items(page.after.as_deref()), &page, "A");
        assert_eq!(second, vec![2, 3]);
        assert!(page_params(&map(json!({ "nextToken": token })), "B").is_err());
        assert!(page_params(&map(json!({ "nextToken": "!!" })), "A").is_err());
        for bad in [0, 101] {
            assert_eq!(
                page_params(&map(json!({ "maxResults": bad })), "A").unwrap_err().code(),
                "InvalidParameterException"
            );
        }
        // An exactly full last page has no token.
        let page = page_params(&map(json!({ "maxResults": 5 })), "A").unwrap();
        assert!(paginate(items(None), &page, "A").1.is_none());
    }
}
