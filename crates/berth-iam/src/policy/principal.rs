//! `Principal` / `NotPrincipal`: who a trust or resource policy statement is about.

use super::json::Json;
use super::MalformedPolicy;

/// The caller, as a trust or resource policy sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalId {
    /// An IAM user, a role session (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`), or the
    /// account root (`arn:aws:iam::<acct>:root`).
    Aws { arn: String, account_id: String },
    /// A web identity or SAML provider: `arn:aws:iam::<acct>:oidc-provider/<host>`, or a well-known
    /// name such as `cognito-identity.amazonaws.com`.
    Federated(String),
    /// An AWS service: `ecs-tasks.amazonaws.com`.
    Service(String),
}

/// A `Principal` element, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalSet {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Everyone,
    Listed(Box<[Entry]>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `"123456789012"` or `"arn:aws:iam::123456789012:root"`: every principal of the account.
    Account(Box<str>),
    /// `arn:aws:iam::<acct>:role/<path/><name>`: the role, and its sessions.
    Role {
        arn: Box<str>,
        account: Box<str>,
        name: Box<str>,
    },
    /// Any other ARN: that principal exactly.
    Arn(Box<str>),
    Federated(Box<str>),
    Service(Box<str>),
    /// Parsed and kept; berth has no S3 canonical users, so it matches no caller.
    CanonicalUser,
}

impl PrincipalSet {
    pub(crate) fn parse(element: &Json) -> Result<PrincipalSet, MalformedPolicy> {
        let fields = match element {
            Json::String(s) if s == "*" => return Ok(PrincipalSet::Everyone),
            Json::Object(fields) => fields,
            _ => return Err(MalformedPolicy::syntax()),
        };
        if fields.is_empty() {
            return Err(MalformedPolicy::syntax());
        }
        let mut entries = Vec::new();
        let mut everyone = false;
        for (kind, value) in fields {
            let values: Vec<&str> = match value {
                Json::String(s) => vec![s.as_str()],
                Json::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|v| match v {
                        Json::String(s) => Ok(s.as_str()),
                        _ => Err(MalformedPolicy::syntax()),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(MalformedPolicy::syntax()),
            };
            for v in values {
                let invalid = || MalformedPolicy(format!("Invalid principal in policy: \"{kind}\":\"{v}\""));
                match kind.as_str() {
                    "AWS" if v == "*" => everyone = true,
                    "AWS" => entries.push(parse_aws(v).ok_or_else(invalid)?),
                    "Federated" if valid_name(v) || (is_arn(v) && !has_wildcard(v)) => {
                        entries.push(Entry::Federated(v.into()))
                    }
                    "Service" if valid_name(v) => entries.push(Entry::Service(v.to_ascii_lowercase().into())),
                    "CanonicalUser" if !v.is_empty() && !has_wildcard(v) => entries.push(Entry::CanonicalUser),
                    _ => return Err(invalid()),
                }
            }
        }
        Ok(if everyone { PrincipalSet::Everyone } else { PrincipalSet::Listed(entries.into_boxed_slice()) })
    }

    pub(crate) fn matches(&self, caller: Option<&PrincipalId>) -> bool {
        let entries = match self {
            PrincipalSet::Everyone => return true,
            PrincipalSet::Listed(entries) => entries,
        };
        let Some(caller) = caller else {
            return false;
        };
        entries.iter().any(|entry| match (entry, caller) {
            (Entry::Account(account), PrincipalId::Aws { account_id, .. }) => **account == **account_id,
            (Entry::Arn(want), PrincipalId::Aws { arn, .. }) => **want == **arn,
            (Entry::Role { arn: want, account, name }, PrincipalId::Aws { arn, account_id }) => {
                **want == **arn || (**account == **account_id && session_role(arn) == Some(name))
            }
            (Entry::Federated(want), PrincipalId::Federated(provider)) => **want == **provider,
            (Entry::Service(want), PrincipalId::Service(service)) => want.eq_ignore_ascii_case(service),
            _ => false,
        })
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

fn is_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.matches(':').count() >= 5
}

/// A DNS-like name: `ecs-tasks.amazonaws.com`, `cognito-identity.amazonaws.com`, `accounts.google.com`.
fn valid_name(s: &str) -> bool {
    s.contains('.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn parse_aws(v: &str) -> Option<Entry> {
    if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Entry::Account(v.into()));
    }
    if !is_arn(v) || has_wildcard(v) {
        return None;
    }
    // arn:partition:service:region:account:resource
    let mut parts = v.splitn(6, ':');
    let (_, _, service, _, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || resource.is_empty() {
        return None;
    }
    match (service, resource) {
        ("iam", "root") => Some(Entry::Account(account.into())),
        ("iam", r) if r.starts_with("role/") => {
            let name = r.rsplit('/').next().filter(|n| !n.is_empty())?;
            Some(Entry::Role { arn: v.into(), account: account.into(), name: name.into() })
        }
        ("iam" | "sts", _) => Some(Entry::Arn(v.into())),
        _ => None,
    }
}

/// The role name of a role session ARN `arn:<p>:sts::<acct>:assumed-role/<role>/<session>`.
fn session_role(arn: &str) -> Option<&str> {
    let (_, resource) = arn.rsplit_once(':')?;
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    arn.split(':').nth(2).filter(|s| *s == "sts").map(|_| role)
}
