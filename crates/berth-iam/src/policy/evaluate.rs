//! Deciding a request against policies (AWS's "Policy evaluation logic", for the policies one
//! decision point sees together: all of a caller's identity policies, or one trust policy).

use super::condition::ConditionKeys;
use super::document::{Effect, Matcher, Policy, Statement};
use super::principal::PrincipalId;
use super::PolicyKind;

/// Everything the evaluation may look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// `ecs:UpdateService`; matched case-insensitively, as AWS does.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without resource-level permissions.
    pub resource: &'a str,
    /// The caller, for `Principal`/`NotPrincipal` (trust and resource policies).
    pub principal: Option<&'a PrincipalId>,
    /// Condition keys and policy variables.
    pub keys: &'a ConditionKeys,
}

impl<'a> RequestContext<'a> {
    pub fn new(action: &'a str, resource: &'a str, keys: &'a ConditionKeys) -> RequestContext<'a> {
        RequestContext { action, resource, principal: None, keys }
    }

    pub fn with_principal(self, principal: &'a PrincipalId) -> RequestContext<'a> {
        RequestContext { principal: Some(principal), ..self }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// A matching `Deny` statement.
    ExplicitDeny,
    /// No matching statement allowed the request.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Evaluates several policies together (all the caller's identity policies, or one trust policy):
/// explicit Deny anywhere wins, then any Allow, else implicit deny.
pub fn evaluate<'p>(policies: impl IntoIterator<Item = &'p Policy>, ctx: &RequestContext<'_>) -> Decision {
    let mut allowed = false;
    for policy in policies {
        let identity = policy.kind() == PolicyKind::Identity;
        for statement in policy.statements() {
            if statement.matches(ctx, identity) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

impl Policy {
    /// [`evaluate`] with this policy alone.
    pub fn evaluate(&self, ctx: &RequestContext<'_>) -> Decision {
        evaluate([self], ctx)
    }
}

impl Statement {
    /// Does this statement apply to the request (action, resource, principal and conditions)?
    /// Its effect is [`Statement::effect`].
    pub fn applies_to(&self, ctx: &RequestContext<'_>) -> bool {
        self.matches(ctx, self.principal.is_none())
    }

    fn matches(&self, ctx: &RequestContext<'_>, identity: bool) -> bool {
        let keys = ctx.keys;
        let action = &self.action;
        if action.what.iter().any(|p| p.matches(ctx.action, keys)) == action.negated {
            return false;
        }
        if let Some(resource) = &self.resource {
            if resource.what.iter().any(|p| p.matches(ctx.resource, keys)) == resource.negated {
                return false;
            }
        }
        if !identity {
            if let Some(Matcher { negated, what }) = &self.principal {
                if what.matches(ctx.principal) == *negated {
                    return false;
                }
            }
        }
        self.conditions.iter().all(|c| c.matches(keys))
    }
}
