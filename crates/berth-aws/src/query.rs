//! The awsQuery request codec: `application/x-www-form-urlencoded` parameters, with lists as
//! `Name.member.N` and maps as `Name.entry.N.key` / `Name.entry.N.value`.

use std::collections::BTreeMap;

use crate::error::AwsError;
use crate::protocol::Protocol;

/// Why a form body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("invalid percent-encoding in '{0}'")]
    BadPercent(String),
    #[error("parameter is not valid UTF-8 after decoding")]
    NotUtf8,
    #[error("parameter '{0}' is given more than once")]
    Duplicate(String),
    #[error("parameter with an empty name")]
    EmptyName,
}

/// Decodes one `application/x-www-form-urlencoded` component strictly: `+` is a space, every `%`
/// must start a two-digit hex escape, and the result must be UTF-8.
pub fn form_decode(s: &str) -> Result<String, FormError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(|| FormError::BadPercent(truncate(s)))?;
                let hi = (hex[0] as char).to_digit(16);
                let lo = (hex[1] as char).to_digit(16);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(FormError::BadPercent(truncate(s))),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The parameters of an awsQuery request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryInput {
    params: BTreeMap<String, String>,
}

impl QueryInput {
    /// Parses a form body (or a query string).
    pub fn parse(form: &str) -> Result<QueryInput, FormError> {
        let mut input = QueryInput::default();
        input.extend(form)?;
        Ok(input)
    }

    /// Adds the parameters of another form string (the URL's query string of a GET request).
    pub fn extend(&mut self, form: &str) -> Result<(), FormError> {
        for pair in form.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = form_decode(k)?;
            if k.is_empty() {
                return Err(FormError::EmptyName);
            }
            let v = form_decode(v)?;
            if self.params.contains_key(&k) {
                return Err(FormError::Duplicate(k));
            }
            self.params.insert(k, v);
        }
        Ok(())
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> QueryInput {
        QueryInput { params: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.params.remove(name)
    }

    /// A required member: AWS's `ValidationError` when absent.
    pub fn required(&self, name: &str) -> Result<&str, AwsError> {
        self.get(name).ok_or_else(|| AwsError::missing_parameter(Protocol::AwsQuery, &lower_camel(name)))
    }

    /// An optional integer member.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                AwsError::client(
                    "ValidationError",
                    format!("1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a number", lower_camel(name)),
                )
            }),
        }
    }

    /// An optional boolean member (`true` / `false`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(AwsError::client(
                "ValidationError",
                format!("1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a boolean", lower_camel(name)),
            )),
        }
    }

    /// A list member `name.member.1 … name.member.N`, in index order.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, &str)> = self
            .params
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| k[prefix.len()..].parse::<u32>().ok().map(|i| (i, v.as_str())))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// A list of structures `name.member.N.field`: one map of fields per member, in index order.
    pub fn struct_list(&self, name: &str) -> Vec<BTreeMap<&str, &str>> {
        let prefix = format!("{name}.member.");
        let mut by_index: BTreeMap<u32, BTreeMap<&str, &str>> = BTreeMap::new();
        for (k, v) in self.params.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
            if let Some((idx, field)) = k[prefix.len()..].split_once('.') {
                if let Ok(i) = idx.parse::<u32>() {
                    by_index.entry(i).or_default().insert(field, v.as_str());
                }
            }
        }
        by_index.into_values().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `UserName` → `userName`, as AWS names members in validation messages.
pub fn lower_camel(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lists_and_structs() {
        let q = QueryInput::parse(
            "Action=CreateUser&UserName=a+b%2Fc&Tags.member.2.Key=k2&Tags.member.1.Key=k1&Tags.member.1.Value=v1&L.member.10=z&L.member.2=b",
        )
        .unwrap();
        assert_eq!(q.get("UserName"), Some("a b/c"));
        assert_eq!(q.list("L"), vec!["b", "z"]);
        let tags = q.struct_list("Tags");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0]["Value"], "v1");
        assert_eq!(tags[1]["Key"], "k2");
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(QueryInput::parse("a=%zz"), Err(FormError::BadPercent(_))));
        assert!(matches!(QueryInput::parse("a=%4"), Err(FormError::BadPercent(_))));
        assert_eq!(QueryInput::parse("a=%ff"), Err(FormError::NotUtf8));
        assert_eq!(QueryInput::parse("a=1&a=2"), Err(FormError::Duplicate("a".into())));
        assert_eq!(QueryInput::parse("=1"), Err(FormError::EmptyName));
    }
}
