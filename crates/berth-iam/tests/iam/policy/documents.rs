//! Validation on write: documents refused with AWS's `MalformedPolicyDocument` message, and
//! documents that must be accepted.

use berth_iam::policy::PolicyKind::{self, Identity, Resource, Trust};
use berth_iam::policy::{MalformedPolicy, Policy};

use crate::policy::assert_none_failed;

const SYNTAX: &str = "Syntax errors in policy.";
const VENDOR: &str = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
const NO_PRINCIPAL: &str = "Policy document should not specify a principal.";
const NO_ACTIONS: &str = "Policy statement must contain actions.";
const NO_RESOURCES: &str = "Policy statement must contain resources.";

/// Wraps one statement (the inside of its braces) into a 2012-10-17 document.
fn stmt(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{{{body}}}]}}"#)
}

/// A statement that is valid as an identity policy, plus `extra`.
fn identity_with(extra: &str) -> String {
    stmt(&format!(r#""Effect":"Allow","Action":"s3:GetObject","Resource":"*"{extra}"#))
}

/// A statement that is valid as a trust policy, plus `extra`.
fn trust_with(extra: &str) -> String {
    stmt(&format!(
        r#""Effect":"Allow","Principal":{{"Service":"ecs-tasks.amazonaws.com"}},"Action":"sts:AssumeRole"{extra}"#
    ))
}

fn trust_principal(principal: &str) -> String {
    stmt(&format!(r#""Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole""#))
}

fn condition(block: &str) -> String {
    identity_with(&format!(r#","Condition":{block}"#))
}

#[test]
#[rustfmt::skip]
fn malformed_documents_are_refused_with_aws_messages() {
    let rows: Vec<(&str, PolicyKind, String, &str)> = vec![
        ("not JSON", Identity, "not json".into(), SYNTAX),
        ("empty", Identity, "".into(), SYNTAX),
        ("truncated", Identity, r#"{"Version":"2012-10-17""#.into(), SYNTAX),
        ("trailing garbage", Identity, format!("{} x", identity_with("")), SYNTAX),
        ("array", Identity, "[]".into(), SYNTAX),
        ("string", Identity, r#""policy""#.into(), SYNTAX),
        ("null", Identity, "null".into(), SYNTAX),
        ("duplicate key", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject","Action":"iam:*","Resource":"*""#), SYNTAX),
        ("no Statement", Identity, r#"{"Version":"2012-10-17"}"#.into(), "Missing required field Statement"),
        ("unknown top-level field", Identity, r#"{"Version":"2012-10-17","Statement":[],"Foo":1}"#.into(), "Unknown field Foo"),
        ("top-level field in lower case", Identity, r#"{"Version":"2012-10-17","statement":[]}"#.into(), "Unknown field statement"),
        ("bad Version", Identity, r#"{"Version":"2012-10-18","Statement":[]}"#.into(), "Invalid Version"),
        ("Version as a number", Identity, r#"{"Version":2012,"Statement":[]}"#.into(), "Invalid Version"),
        ("Id not a string", Identity, r#"{"Id":5,"Statement":[]}"#.into(), SYNTAX),
        ("Statement a string", Identity, r#"{"Statement":"allow"}"#.into(), SYNTAX),
        ("Statement of numbers", Identity, r#"{"Statement":[1]}"#.into(), SYNTAX),
        ("unknown statement field", Identity, identity_with(r#","Effects":"Allow""#), "Unknown field Effects"),
        ("statement field in lower case", Identity, stmt(r#""effect":"Allow","Action":"s3:GetObject","Resource":"*""#), "Unknown field effect"),
        ("no Effect", Identity, stmt(r#""Action":"s3:GetObject","Resource":"*""#), "Missing required field Effect"),
        ("Effect Permit", Identity, stmt(r#""Effect":"Permit","Action":"s3:GetObject","Resource":"*""#), "Invalid effect: Permit"),
        ("Effect in lower case", Identity, stmt(r#""Effect":"allow","Action":"s3:GetObject","Resource":"*""#), "Invalid effect: allow"),
        ("Effect not a string", Identity, stmt(r#""Effect":true,"Action":"s3:GetObject","Resource":"*""#), SYNTAX),
        ("no Action", Identity, stmt(r#""Effect":"Allow","Resource":"*""#), NO_ACTIONS),
        ("empty Action", Identity, stmt(r#""Effect":"Allow","Action":[],"Resource":"*""#), NO_ACTIONS),
        ("Action and NotAction", Identity, stmt(r#""Effect":"Allow","Action":"s3:*","NotAction":"iam:*","Resource":"*""#), SYNTAX),
        ("Action a number", Identity, stmt(r#""Effect":"Allow","Action":5,"Resource":"*""#), SYNTAX),
        ("Action list of numbers", Identity, stmt(r#""Effect":"Allow","Action":[5],"Resource":"*""#), SYNTAX),
        ("action without vendor", Identity, stmt(r#""Effect":"Allow","Action":"GetObject","Resource":"*""#), VENDOR),
        ("action with empty vendor", Identity, stmt(r#""Effect":"Allow","Action":":GetObject","Resource":"*""#), VENDOR),
        ("action with empty name", Identity, stmt(r#""Effect":"Allow","Action":"s3:","Resource":"*""#), VENDOR),
        ("vendor with a space", Identity, stmt(r#""Effect":"Allow","Action":"s3 :GetObject","Resource":"*""#), VENDOR),
        ("NotAction without vendor", Identity, stmt(r#""Effect":"Allow","NotAction":["iam:*","s3"],"Resource":"*""#), VENDOR),
        ("no Resource", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject""#), NO_RESOURCES),
        ("empty Resource", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject","Resource":[]"#), NO_RESOURCES),
        ("Resource and NotResource", Identity, identity_with(r#","NotResource":"*""#), SYNTAX),
        ("Resource an object", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject","Resource":{"a":"b"}"#), SYNTAX),
        ("Resource not an ARN", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject","Resource":"my-bucket""#), "Resource my-bucket must be in ARN format or \"*\"."),
        ("Resource not an ARN, legacy", Identity, r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"my-bucket"}}"#.into(), "The policy failed legacy parsing"),
        ("Resource with too few colons", Identity, stmt(r#""Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3::my-bucket""#), "Resource arn:aws:s3::my-bucket must be in ARN format or \"*\"."),
        ("Principal in an identity policy", Identity, identity_with(r#","Principal":"*""#), NO_PRINCIPAL),
        ("NotPrincipal in an identity policy", Identity, identity_with(r#","NotPrincipal":{"AWS":"123456789012"}"#), NO_PRINCIPAL),
        ("Principal and NotPrincipal", Trust, trust_with(r#","NotPrincipal":{"AWS":"123456789012"}"#), SYNTAX),
        ("trust without Principal", Trust, stmt(r#""Effect":"Allow","Action":"sts:AssumeRole""#), "Missing required field Principal"),
        ("resource policy without Principal", Resource, stmt(r#""Effect":"Allow","Action":"ecr:*""#), "Missing required field Principal"),
        ("trust with Resource", Trust, trust_with(r#","Resource":"*""#), "Has prohibited field Resource"),
        ("trust with NotResource", Trust, trust_with(r#","NotResource":"*""#), "Has prohibited field NotResource"),
        ("trust with a non-STS action", Trust, trust_principal(r#""*""#).replace("sts:AssumeRole", "s3:GetObject"), "AssumeRole policy may only specify STS AssumeRole actions."),
        ("invalid AWS principal", Trust, trust_principal(r#"{"AWS":"not-an-arn"}"#), "Invalid principal in policy: \"AWS\":\"not-an-arn\""),
        ("wildcard in an AWS principal ARN", Trust, trust_principal(r#"{"AWS":"arn:aws:iam::123456789012:user/*"}"#), "Invalid principal in policy: \"AWS\":\"arn:aws:iam::123456789012:user/*\""),
        ("short account id", Trust, trust_principal(r#"{"AWS":"12345"}"#), "Invalid principal in policy: \"AWS\":\"12345\""),
        ("an S3 ARN as principal", Trust, trust_principal(r#"{"AWS":["123456789012","arn:aws:s3:::bucket"]}"#), "Invalid principal in policy: \"AWS\":\"arn:aws:s3:::bucket\""),
        ("invalid service principal", Trust, trust_principal(r#"{"Service":"not a service"}"#), "Invalid principal in policy: \"Service\":\"not a service\""),
        ("unknown principal type", Trust, trust_principal(r#"{"Foo":"bar"}"#), "Invalid principal in policy: \"Foo\":\"bar\""),
        ("principal type in lower case", Trust, trust_principal(r#"{"aws":"123456789012"}"#), "Invalid principal in policy: \"aws\":\"123456789012\""),
        ("Principal a plain string", Trust, trust_principal(r#""someone""#), SYNTAX),
        ("Principal empty", Trust, trust_principal("{}"), SYNTAX),
        ("Principal value a number", Trust, trust_principal(r#"{"AWS":123456789012}"#), SYNTAX),
        ("Principal value an empty list", Trust, trust_principal(r#"{"AWS":[]}"#), SYNTAX),
        ("condition key without vendor", Identity, condition(r#"{"IpAddress":{"SourceIp":"203.0.113.0/24"}}"#), VENDOR),
        ("condition key with empty name", Identity, condition(r#"{"StringEquals":{"aws:":"x"}}"#), VENDOR),
        ("unknown condition operator", Identity, condition(r#"{"StringEqualz":{"aws:username":"x"}}"#), "Invalid Condition type : StringEqualz"),
        ("unknown operator with a set qualifier", Identity, condition(r#"{"ForAnyValue:StringEqualz":{"aws:TagKeys":"x"}}"#), "Invalid Condition type : ForAnyValue:StringEqualz"),
        ("unknown set qualifier", Identity, condition(r#"{"ForSomeValues:StringEquals":{"aws:TagKeys":"x"}}"#), "Invalid Condition type : ForSomeValues:StringEquals"),
        ("Null with IfExists", Identity, condition(r#"{"NullIfExists":{"aws:TokenIssueTime":"true"}}"#), "Invalid Condition type : NullIfExists"),
        ("IfExists twice", Identity, condition(r#"{"StringEqualsIfExistsIfExists":{"aws:username":"x"}}"#), "Invalid Condition type : StringEqualsIfExistsIfExists"),
        ("bare IfExists", Identity, condition(r#"{"IfExists":{"aws:username":"x"}}"#), "Invalid Condition type : IfExists"),
        ("condition value an object", Identity, condition(r#"{"StringEquals":{"aws:username":{"a":"b"}}}"#), SYNTAX),
        ("condition value null", Identity, condition(r#"{"StringEquals":{"aws:username":null}}"#), SYNTAX),
        ("condition value a nested list", Identity, condition(r#"{"StringEquals":{"aws:username":[["a"]]}}"#), SYNTAX),
        ("Condition a list", Identity, condition(r#"[{"StringEquals":{"aws:username":"a"}}]"#), SYNTAX),
        ("operator block a string", Identity, condition(r#"{"StringEquals":"aws:username"}"#), SYNTAX),
        ("duplicate Sid", Identity, r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Same","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Sid":"Same","Effect":"Deny","Action":"s3:PutObject","Resource":"*"}]}"#.into(), "Statement IDs (SID) in a single policy must be unique."),
        ("Sid with a space in an IAM policy", Identity, identity_with(r#","Sid":"Allow reads""#), "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"),
        ("Sid with a dash in a trust policy", Trust, trust_with(r#","Sid":"ecs-tasks""#), "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"),
        ("Sid a number", Identity, identity_with(r#","Sid":1"#), SYNTAX),
    ];
    let mut failures = Vec::new();
    for (name, kind, doc, want) in &rows {
        match Policy::parse(doc, *kind) {
            Ok(_) => failures.push(format!("{name}: accepted, want {want:?}")),
            Err(MalformedPolicy(got)) if got != *want => failures.push(format!("{name}: got {got:?}, want {want:?}")),
            Err(_) => {}
        }
    }
    assert_none_failed(failures);
}

#[test]
#[rustfmt::skip]
fn valid_documents_are_accepted() {
    let rows: Vec<(&str, PolicyKind, String)> = vec![
        ("no Version", Identity, r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#.into()),
        ("Version 2008", Identity, r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#.into()),
        ("no statements", Identity, r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
        ("Id and Sid", Identity, r#"{"Version":"2012-10-17","Id":"any text, really","Statement":[{"Sid":"ReadOnly1","Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::b/*"}]}"#.into()),
        ("empty Sids repeat", Trust, r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Sid":"","Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.into()),
        ("resource policy Sid with spaces", Resource, r#"{"Version":"2012-10-17","Statement":[{"Sid":"Allow pull from the org","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#.into()),
        ("NotAction and NotResource", Identity, stmt(r#""Effect":"Deny","NotAction":["iam:*","sts:*"],"NotResource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#)),
        ("wildcard vendor", Identity, stmt(r#""Effect":"Allow","Action":"*:Describe*","Resource":"*""#)),
        ("star resources", Identity, stmt(r#""Effect":"Allow","Action":"s3:*","Resource":["*","arn:aws:s3:::*","arn:aws:*"]"#)),
        ("resource with a variable", Identity, stmt(r#""Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/home/${aws:username}/*""#)),
        ("every operator", Identity, condition(r#"{
            "StringEquals":{"ex:a":"x"},"StringNotEquals":{"ex:a":"x"},"StringEqualsIgnoreCase":{"ex:a":"x"},
            "StringNotEqualsIgnoreCase":{"ex:a":"x"},"StringLike":{"ex:a":"x*"},"StringNotLike":{"ex:a":"x*"},
            "NumericEquals":{"ex:n":1},"NumericNotEquals":{"ex:n":1},"NumericLessThan":{"ex:n":1},
            "NumericLessThanEquals":{"ex:n":1},"NumericGreaterThan":{"ex:n":1},"NumericGreaterThanEquals":{"ex:n":1.5},
            "DateEquals":{"ex:d":"2020-01-01T00:00:00Z"},"DateNotEquals":{"ex:d":"2020-01-01"},"DateLessThan":{"ex:d":1577836800},
            "DateLessThanEquals":{"ex:d":"2020-01-01T00:00:00Z"},"DateGreaterThan":{"ex:d":"2020-01-01T00:00:00Z"},
            "DateGreaterThanEquals":{"ex:d":"2020-01-01T00:00:00Z"},"Bool":{"ex:b":true},"BinaryEquals":{"ex:x":"QQ=="},
            "IpAddress":{"ex:ip":"10.0.0.0/8"},"NotIpAddress":{"ex:ip":["10.0.0.0/8","2001:db8::/32"]},
            "ArnEquals":{"ex:arn":"arn:aws:s3:::b"},"ArnLike":{"ex:arn":"arn:aws:s3:::*"},"ArnNotEquals":{"ex:arn":"arn:aws:s3:::b"},
            "ArnNotLike":{"ex:arn":"arn:aws:s3:::*"},"Null":{"ex:z":"true"},"StringEqualsIfExists":{"ex:a":"x"},
            "ForAnyValue:StringLike":{"ex:s":["a*","b*"]},"ForAllValues:StringEqualsIgnoreCase":{"ex:s":"a"},
            "ForAllValues:NumericLessThanIfExists":{"ex:s":"9"}}"#)),
        ("trust with NotAction", Trust, trust_with("").replace(r#""Action":"sts:AssumeRole""#, r#""NotAction":"iam:*""#)),
        ("trust with every STS assume action", Trust, trust_with("").replace(r#""Action":"sts:AssumeRole""#, r#""Action":["sts:AssumeRole","sts:AssumeRoleWithWebIdentity","sts:AssumeRoleWithSAML","sts:TagSession","sts:SetSourceIdentity","sts:*"]"#)),
        ("trust Principal *", Trust, trust_principal(r#""*""#)),
        ("trust AWS *", Trust, trust_principal(r#"{"AWS":"*"}"#)),
        ("trust federated by name", Trust, trust_principal(r#"{"Federated":"cognito-identity.amazonaws.com"}"#)),
        ("trust federated SAML provider", Trust, trust_principal(r#"{"Federated":"arn:aws:iam::123456789012:saml-provider/ExampleOrgSSO"}"#)),
        ("trust with every AWS principal form", Trust, trust_principal(r#"{"AWS":["123456789012","arn:aws:iam::123456789012:root","arn:aws:iam::123456789012:user/a/b/alice","arn:aws:iam::123456789012:role/r","arn:aws:sts::123456789012:assumed-role/r/s"]}"#)),
        ("canonical user", Resource, stmt(r#""Effect":"Allow","Principal":{"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#)),
        ("condition values of every scalar type", Identity, condition(r#"{"StringEquals":{"ex:a":["x",1,true,2.5]}}"#)),
        ("operator names in other letter case", Identity, condition(r#"{"stringlikeifexists":{"ex:a":"x*"}}"#)),
        ("white space everywhere", Identity, "\n {\n \"Version\" : \"2012-10-17\" ,\n \"Statement\" : { \"Effect\" : \"Allow\" , \"Action\" : \"*\" , \"Resource\" : \"*\" } }\n".into()),
    ];
    let mut failures = Vec::new();
    for (name, kind, doc) in &rows {
        if let Err(e) = Policy::parse(doc, *kind) {
            failures.push(format!("{name}: refused with {e}"));
        }
    }
    assert_none_failed(failures);
}
