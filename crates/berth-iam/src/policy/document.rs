//! A policy document: parsed and validated on write ([`Policy::parse`]), then only read.

use super::condition::{parse_conditions, Condition, VENDOR_MESSAGE};
use super::json::Json;
use super::pattern::{Pattern, Syntax};
use super::principal::PrincipalSet;
use super::{MalformedPolicy, PolicyKind, PolicyTooLarge, SizeQuota};

/// The policy language version (`Version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `2012-10-17`: the current language, with policy variables.
    V2012_10_17,
    /// `2008-10-17`, also what a document without `Version` gets: `${…}` is literal text.
    V2008_10_17,
}

impl PolicyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V2012_10_17 => "2012-10-17",
            PolicyVersion::V2008_10_17 => "2008-10-17",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// A parsed, validated policy document.
#[derive(Clone, Debug)]
pub struct Policy {
    kind: PolicyKind,
    version: PolicyVersion,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a policy.
#[derive(Clone, Debug)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    /// `Some` in trust and resource policies.
    pub(crate) principal: Option<Matcher<PrincipalSet>>,
    pub(crate) action: Matcher<Box<[Pattern]>>,
    /// `None` where the document has no `Resource`/`NotResource` (trust policies; resource policies
    /// that leave it implicit): the statement is about the resource the policy is attached to.
    pub(crate) resource: Option<Matcher<Box<[Pattern]>>>,
    pub(crate) conditions: Box<[Condition]>,
}

/// An element and its `Not…` twin: `negated` for `NotAction`, `NotResource`, `NotPrincipal`.
#[derive(Clone, Debug)]
pub(crate) struct Matcher<T> {
    pub(crate) negated: bool,
    pub(crate) what: T,
}

const TOP_LEVEL_FIELDS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_FIELDS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

impl Policy {
    /// Parses and validates a policy document of the given kind, with the messages AWS gives in
    /// `MalformedPolicyDocument`. Size quotas are checked separately by [`Policy::check_size`].
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, MalformedPolicy> {
        let Some(Json::Object(fields)) = Json::parse(json) else {
            return Err(MalformedPolicy::syntax());
        };
        if let Some((name, _)) = fields.iter().find(|(name, _)| !TOP_LEVEL_FIELDS.contains(&name.as_str())) {
            return Err(MalformedPolicy(format!("Unknown field {name}")));
        }
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let version = match field("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Json::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Json::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(_) => return Err(MalformedPolicy("Invalid Version".to_owned())),
        };
        let id = match field("Id") {
            None => None,
            Some(Json::String(id)) => Some(id.clone()),
            Some(_) => return Err(MalformedPolicy::syntax()),
        };
        let statements: Vec<&Json> = match field("Statement") {
            None => return Err(MalformedPolicy("Missing required field Statement".to_owned())),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(one @ Json::Object(_)) => vec![one],
            Some(_) => return Err(MalformedPolicy::syntax()),
        };
        let statements =
            statements.into_iter().map(|s| Statement::parse(s, kind, version)).collect::<Result<Vec<_>, _>>()?;
        // AWS's own examples repeat `"Sid": ""`: only non-empty ids must be unique.
        let mut sids: Vec<&str> =
            statements.iter().filter_map(|s| s.sid.as_deref()).filter(|s| !s.is_empty()).collect();
        sids.sort_unstable();
        if sids.windows(2).any(|w| w[0] == w[1]) {
            return Err(MalformedPolicy("Statement IDs (SID) in a single policy must be unique.".to_owned()));
        }
        Ok(Policy { kind, version, id, statements })
    }

    /// Checks a document against one of AWS's size quotas; white space is not counted, as in AWS.
    /// Returns the counted size.
    pub fn check_size(json: &str, quota: SizeQuota) -> Result<usize, PolicyTooLarge> {
        let size = json.chars().filter(|c| !c.is_whitespace()).count();
        if size > quota.limit {
            return Err(PolicyTooLarge { quota: quota.name, limit: quota.limit, size });
        }
        Ok(size)
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    fn parse(element: &Json, kind: PolicyKind, version: PolicyVersion) -> Result<Statement, MalformedPolicy> {
        let Json::Object(fields) = element else {
            return Err(MalformedPolicy::syntax());
        };
        if let Some((name, _)) = fields.iter().find(|(name, _)| !STATEMENT_FIELDS.contains(&name.as_str())) {
            return Err(MalformedPolicy(format!("Unknown field {name}")));
        }
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let variables = version == PolicyVersion::V2012_10_17;

        let sid = match field("Sid") {
            None => None,
            Some(Json::String(sid)) => Some(sid.clone()),
            Some(_) => return Err(MalformedPolicy::syntax()),
        };
        if let (Some(sid), PolicyKind::Identity | PolicyKind::Trust) = (&sid, kind) {
            if !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(MalformedPolicy(
                    "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression \
                     [0-9A-Za-z]*"
                        .to_owned(),
                ));
            }
        }

        let effect = match field("Effect") {
            None => return Err(MalformedPolicy("Missing required field Effect".to_owned())),
            Some(Json::String(e)) if e == "Allow" => Effect::Allow,
            Some(Json::String(e)) if e == "Deny" => Effect::Deny,
            Some(Json::String(e)) => return Err(MalformedPolicy(format!("Invalid effect: {e}"))),
            Some(_) => return Err(MalformedPolicy::syntax()),
        };

        let principal = match (field("Principal"), field("NotPrincipal")) {
            (Some(_), Some(_)) => return Err(MalformedPolicy::syntax()),
            (Some(_), None) | (None, Some(_)) if kind == PolicyKind::Identity => {
                return Err(MalformedPolicy("Policy document should not specify a principal.".to_owned()))
            }
            (Some(p), None) => Some(Matcher { negated: false, what: PrincipalSet::parse(p)? }),
            (None, Some(p)) => Some(Matcher { negated: true, what: PrincipalSet::parse(p)? }),
            (None, None) if kind == PolicyKind::Identity => None,
            (None, None) => return Err(MalformedPolicy("Missing required field Principal".to_owned())),
        };

        let action = match (field("Action"), field("NotAction")) {
            (Some(_), Some(_)) => return Err(MalformedPolicy::syntax()),
            (Some(a), None) => Matcher { negated: false, what: parse_actions(a, kind, false)? },
            (None, Some(a)) => Matcher { negated: true, what: parse_actions(a, kind, true)? },
            (None, None) => return Err(MalformedPolicy::actions_missing()),
        };

        let resource = match (field("Resource"), field("NotResource")) {
            (Some(_), Some(_)) => return Err(MalformedPolicy::syntax()),
            (Some(_), None) if kind == PolicyKind::Trust => {
                return Err(MalformedPolicy("Has prohibited field Resource".to_owned()))
            }
            (None, Some(_)) if kind == PolicyKind::Trust => {
                return Err(MalformedPolicy("Has prohibited field NotResource".to_owned()))
            }
            (Some(r), None) => Some(Matcher { negated: false, what: parse_resources(r, version)? }),
            (None, Some(r)) => Some(Matcher { negated: true, what: parse_resources(r, version)? }),
            (None, None) if kind == PolicyKind::Identity => {
                return Err(MalformedPolicy("Policy statement must contain resources.".to_owned()))
            }
            (None, None) => None,
        };

        let conditions = match field("Condition") {
            None => Vec::new(),
            Some(c) => parse_conditions(c, variables)?,
        };

        Ok(Statement { sid, effect, principal, action, resource, conditions: conditions.into_boxed_slice() })
    }
}

/// A string or a list of strings; `None` for any other shape.
fn string_list(element: &Json) -> Option<Vec<&str>> {
    match element {
        Json::String(s) => Some(vec![s.as_str()]),
        Json::Array(items) => items
            .iter()
            .map(|v| match v {
                Json::String(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn parse_actions(element: &Json, kind: PolicyKind, negated: bool) -> Result<Box<[Pattern]>, MalformedPolicy> {
    let actions = string_list(element).ok_or_else(MalformedPolicy::syntax)?;
    if actions.is_empty() {
        return Err(MalformedPolicy::actions_missing());
    }
    let syntax = Syntax { wildcards: true, variables: false, ignore_case: true };
    actions
        .into_iter()
        .map(|action| {
            if action != "*" {
                match action.split_once(':') {
                    Some((vendor, name))
                        if !vendor.is_empty()
                            && !name.is_empty()
                            && vendor.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'*' | b'?')) => {
                    }
                    _ => return Err(MalformedPolicy(VENDOR_MESSAGE.to_owned())),
                }
            }
            if kind == PolicyKind::Trust && !negated && !is_sts_action(action) {
                return Err(MalformedPolicy("AssumeRole policy may only specify STS AssumeRole actions.".to_owned()));
            }
            Ok(Pattern::parse(action, syntax))
        })
        .collect()
}

/// Trust policies speak only of STS: `sts:AssumeRole*`, `sts:TagSession`, `sts:SetSourceIdentity` …
fn is_sts_action(action: &str) -> bool {
    action == "*" || action.split_once(':').is_some_and(|(vendor, _)| vendor.eq_ignore_ascii_case("sts"))
}

fn parse_resources(element: &Json, version: PolicyVersion) -> Result<Box<[Pattern]>, MalformedPolicy> {
    let resources = string_list(element).ok_or_else(MalformedPolicy::syntax)?;
    if resources.is_empty() {
        return Err(MalformedPolicy("Policy statement must contain resources.".to_owned()));
    }
    let syntax = Syntax { wildcards: true, variables: version == PolicyVersion::V2012_10_17, ignore_case: false };
    resources
        .into_iter()
        .map(|resource| {
            let arn_shaped =
                resource.starts_with("arn:") && (resource.matches(':').count() >= 5 || resource.contains('*'));
            let wildcard_only = !resource.is_empty() && resource.bytes().all(|b| b == b'*');
            if !arn_shaped && !wildcard_only {
                return Err(match version {
                    PolicyVersion::V2012_10_17 => {
                        MalformedPolicy(format!("Resource {resource} must be in ARN format or \"*\"."))
                    }
                    PolicyVersion::V2008_10_17 => MalformedPolicy("The policy failed legacy parsing".to_owned()),
                });
            }
            Ok(Pattern::parse(resource, syntax))
        })
        .collect()
}
