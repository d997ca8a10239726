//! The IAM policy engine: policy documents parsed and validated on write, and evaluated on every
//! request. Pure: no I/O, no store; callers bring the documents and the request context.
//!
//! - [`Policy::parse`] reads a document of a [`PolicyKind`] (identity, trust, resource) and refuses it
//!   with the `MalformedPolicyDocument` message AWS gives ([`MalformedPolicy`]). Size quotas are a
//!   separate check, [`Policy::check_size`], because AWS reports them as `LimitExceeded`.
//! - [`evaluate`] decides a request against several policies: an explicit `Deny` anywhere wins, then
//!   any `Allow`, else the implicit deny ([`Decision`]).
//!
//! # Speed
//! Evaluation runs on every API request, so all the work that depends only on the document happens
//! in [`Policy::parse`]: action and resource patterns are cut into literal runs, `*`, `?` and policy
//! variables; condition operators are resolved to an enum; condition values are parsed into their
//! types (numbers, dates as epoch seconds, CIDRs as masks, ARN patterns as six components); keys are
//! lower-cased. Matching is a two-pointer glob with backtracking to the last `*` (no regex), and
//! literals compare case-insensitively without folding into new strings. An evaluation allocates
//! nothing, except for condition values of typed operators (numeric, date, IP, bool) that contain
//! policy variables, which are substituted into a string before being parsed. Statements test the
//! action first (cheapest, and the most selective), then the resource, the principal and the
//! conditions; an explicit deny ends the evaluation at once.
//!
//! # Choices where AWS is silent or where berth differs
//! - A key given several values with an operator that has no `ForAnyValue:`/`ForAllValues:`
//!   qualifier passes a positive operator when any value matches, and a negated operator when none
//!   does.
//! - An unresolvable policy variable without a default makes the value containing it match nothing:
//!   that `Resource` entry matches no resource (a `NotResource` entry excludes none), that condition
//!   value is no alternative (so a negated operator whose values are all unresolvable is true). A
//!   multi-valued key is not substituted (its default applies), as in AWS.
//! - `ArnEquals` and `ArnLike` are the same test, as AWS documents: component-wise, wildcards allowed.
//! - Condition values that do not parse for their operator (`NumericLessThan` on `"ten"`, a bad CIDR)
//!   are accepted on write and never match (AWS's exact write-time checks on them are undocumented).
//! - Condition operator names and their `ForAnyValue:`/`ForAllValues:`/`IfExists` parts are matched
//!   case-insensitively; element names (`Effect`, `Action` …) and `Effect` values are case-sensitive.
//! - Duplicate JSON keys in a document (two `Action` fields) are refused as a syntax error rather than
//!   one silently winning.
//! - `Principal` values are checked for shape (an account id, an IAM/STS ARN, a DNS-like service
//!   name), not for existence; wildcards are allowed only as `"*"` / `{"AWS": "*"}`. A role ARN also
//!   matches that role's sessions (`assumed-role/<role>/<session>`); a `CanonicalUser` matches no one.
//! - Resource policies may omit `Resource` (ECR, Secrets Manager style): the statement then applies to
//!   the resource the policy is attached to.

mod condition;
mod document;
mod evaluate;
mod json;
mod pattern;
mod principal;

pub use condition::ConditionKeys;
pub use document::{Effect, Policy, PolicyVersion, Statement};
pub use evaluate::{evaluate, Decision, RequestContext};
pub use principal::PrincipalId;

/// Which kind of document: the rules for `Principal` and `Resource` differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user or role (managed or inline): `Resource` required, no `Principal`.
    Identity,
    /// A role's `AssumeRolePolicyDocument`: `Principal` required, no `Resource`, STS actions only.
    Trust,
    /// Attached to a resource (a repository, a secret …): `Principal` required, `Resource` optional.
    Resource,
}

/// Why a document was refused: the `MalformedPolicyDocument` message, worded like AWS's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

impl MalformedPolicy {
    pub(crate) fn syntax() -> MalformedPolicy {
        MalformedPolicy("Syntax errors in policy.".to_owned())
    }

    pub(crate) fn actions_missing() -> MalformedPolicy {
        MalformedPolicy("Policy statement must contain actions.".to_owned())
    }
}

/// One of AWS's policy size quotas. Sizes are counted in characters, white space excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeQuota {
    /// The quota's name in AWS's `LimitExceeded` message.
    pub name: &'static str,
    pub limit: usize,
}

/// A customer managed policy (`CreatePolicy`, `CreatePolicyVersion`).
pub const MANAGED_POLICY_SIZE: SizeQuota = SizeQuota { name: "PolicySize", limit: 6144 };
/// A role's trust policy (`CreateRole`, `UpdateAssumeRolePolicy`).
pub const TRUST_POLICY_SIZE: SizeQuota = SizeQuota { name: "ACLSizePerRole", limit: 2048 };
/// All inline policies of one role together (`PutRolePolicy`).
pub const ROLE_INLINE_POLICY_SIZE: SizeQuota = SizeQuota { name: "RolePolicySize", limit: 10240 };
/// All inline policies of one user together (`PutUserPolicy`).
pub const USER_INLINE_POLICY_SIZE: SizeQuota = SizeQuota { name: "UserPolicySize", limit: 2048 };
/// All inline policies of one group together.
pub const GROUP_INLINE_POLICY_SIZE: SizeQuota = SizeQuota { name: "GroupPolicySize", limit: 5120 };

/// A document over a size quota: AWS's `LimitExceeded`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Cannot exceed quota for {quota}: {limit}")]
pub struct PolicyTooLarge {
    pub quota: &'static str,
    pub limit: usize,
    /// The document's counted size.
    pub size: usize,
}
