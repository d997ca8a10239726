//! The IAM policy engine, table-driven: each row is a request against a set of policy documents
//! and the exact [`Decision`], or a document and the exact `MalformedPolicyDocument` message.
//! The tables live in `tests/iam/policy/`.

#[path = "policy/conditions.rs"]
mod conditions;
#[path = "policy/documents.rs"]
mod documents;
#[path = "policy/evaluation.rs"]
mod evaluation;
#[path = "policy/principals.rs"]
mod principals;
#[path = "policy/variables.rs"]
mod variables;

use berth_iam::policy::{evaluate, ConditionKeys, Decision, Policy, PolicyKind, PrincipalId, RequestContext};

/// Condition keys of a row: each key with one value, or several (multi-valued keys).
pub type Keys = &'static [(&'static str, &'static [&'static str])];

/// The caller of a row, for `Principal`/`NotPrincipal`.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    Nobody,
    /// An IAM principal: its ARN and account.
    Aws(&'static str, &'static str),
    Federated(&'static str),
    Service(&'static str),
}

impl Who {
    fn principal(self) -> Option<PrincipalId> {
        match self {
            Who::Nobody => None,
            Who::Aws(arn, account) => Some(PrincipalId::Aws { arn: arn.into(), account_id: account.into() }),
            Who::Federated(p) => Some(PrincipalId::Federated(p.into())),
            Who::Service(s) => Some(PrincipalId::Service(s.into())),
        }
    }
}

/// One request row: name, action, resource, caller, condition keys, the decision.
pub type Row = (&'static str, &'static str, &'static str, Who, Keys, Decision);

pub fn keys(spec: Keys) -> ConditionKeys {
    let mut keys = ConditionKeys::new();
    for (key, values) in spec {
        match values {
            [one] => keys.set(key, *one),
            many => keys.set_multi(key, many.iter().copied()),
        };
    }
    keys
}

pub fn parse(doc: &str, kind: PolicyKind) -> Policy {
    match Policy::parse(doc, kind) {
        Ok(p) => p,
        Err(e) => panic!("policy refused ({e}):\n{doc}"),
    }
}

/// Runs `rows` against `docs` evaluated together; returns the failures, each naming its row.
pub fn run(group: &str, docs: &[(&str, PolicyKind)], rows: &[Row]) -> Vec<String> {
    let policies: Vec<Policy> = docs.iter().map(|(doc, kind)| parse(doc, *kind)).collect();
    let mut failures = Vec::new();
    for (name, action, resource, who, spec, want) in rows {
        let keys = keys(spec);
        let principal = who.principal();
        let ctx = RequestContext { action, resource, principal: principal.as_ref(), keys: &keys };
        let got = evaluate(&policies, &ctx);
        if got != *want {
            failures.push(format!("{group} / {name}: got {got:?}, want {want:?}"));
        }
    }
    failures
}

/// Panics with every failing row at once.
pub fn assert_none_failed(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} failing rows:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn no_policies_is_an_implicit_deny() {
    let keys = ConditionKeys::new();
    let ctx = RequestContext::new("ecs:ListClusters", "*", &keys);
    assert_eq!(evaluate(std::iter::empty::<&Policy>(), &ctx), Decision::ImplicitDeny);
}

#[test]
fn single_policy_evaluate_and_statement_accessors() {
    let doc = r#"{"Version":"2012-10-17","Id":"p1","Statement":[
        {"Sid":"One","Effect":"Allow","Action":"ecs:*","Resource":"*"},
        {"Effect":"Deny","Action":"ecs:DeleteCluster","Resource":"*"}]}"#;
    let policy = parse(doc, PolicyKind::Identity);
    assert_eq!(policy.id(), Some("p1"));
    assert_eq!(policy.version(), berth_iam::policy::PolicyVersion::V2012_10_17);
    assert_eq!(policy.statements().len(), 2);
    assert_eq!(policy.statements()[0].sid(), Some("One"));
    assert_eq!(policy.statements()[1].sid(), None);
    assert_eq!(policy.statements()[1].effect(), berth_iam::policy::Effect::Deny);
    let keys = ConditionKeys::new();
    let ctx = RequestContext::new("ecs:DeleteCluster", "*", &keys);
    assert_eq!(policy.evaluate(&ctx), Decision::ExplicitDeny);
    assert!(policy.statements()[0].applies_to(&ctx));
    assert!(!policy.evaluate(&ctx).is_allowed());
    let ctx = RequestContext::new("ecs:ListClusters", "*", &keys);
    assert!(policy.evaluate(&ctx).is_allowed());
}

#[test]
fn condition_keys_are_case_insensitive_and_empty_lists_are_absent() {
    let keys = ConditionKeys::new()
        .with("AWS:UserName", "alice")
        .with_multi("aws:TagKeys", ["a", "b"])
        .with_multi("ex:Empty", Vec::<String>::new());
    assert_eq!(keys.get("aws:username"), Some(&["alice".to_owned()][..]));
    assert_eq!(keys.get("AWS:USERNAME").map(<[String]>::len), Some(1));
    assert_eq!(keys.get("aws:tagkeys").map(<[String]>::len), Some(2));
    assert!(!keys.contains("ex:empty"));
    assert!(!keys.contains("ex:missing"));
    let mut keys = keys;
    keys.remove("AWS:USERNAME");
    assert!(!keys.contains("aws:username"));
}

#[test]
fn version_defaults_to_2008() {
    let policy = parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#, PolicyKind::Identity);
    assert_eq!(policy.version(), berth_iam::policy::PolicyVersion::V2008_10_17);
    assert_eq!(policy.version().as_str(), "2008-10-17");
}

#[test]
fn size_quotas_ignore_white_space() {
    use berth_iam::policy::{MANAGED_POLICY_SIZE, TRUST_POLICY_SIZE};
    let statement = r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k"}"#;
    let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
    assert_eq!(Policy::check_size(&doc, MANAGED_POLICY_SIZE), Ok(doc.len()));
    let spaced = doc.replace(',', " ,\n\t ");
    assert_eq!(Policy::check_size(&spaced, MANAGED_POLICY_SIZE), Ok(doc.len()));

    // Exactly at the limit passes; one more character is refused with AWS's quota message.
    let pad = |n: usize| format!(r#"{{"Id":"{}"}}"#, "x".repeat(n - 9));
    assert_eq!(Policy::check_size(&pad(6144), MANAGED_POLICY_SIZE), Ok(6144));
    let err = Policy::check_size(&pad(6145), MANAGED_POLICY_SIZE).unwrap_err();
    assert_eq!(err.to_string(), "Cannot exceed quota for PolicySize: 6144");
    assert_eq!(err.size, 6145);
    let err = Policy::check_size(&pad(2049), TRUST_POLICY_SIZE).unwrap_err();
    assert_eq!(err.to_string(), "Cannot exceed quota for ACLSizePerRole: 2048");
}
