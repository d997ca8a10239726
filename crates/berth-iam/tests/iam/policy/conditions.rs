//! Condition operators, one `Condition` element per row, on an otherwise allow-everything statement:
//! the row says whether the condition holds (→ `Allow`) or not (→ `ImplicitDeny`).

use berth_iam::policy::{ConditionKeys, Decision, PolicyKind, RequestContext};

use crate::policy::{assert_none_failed, keys, parse, Keys};

/// The `Condition` element, the request's keys, whether the condition holds.
pub type CondRow = (&'static str, Keys, bool);

pub fn run(group: &str, version: &str, rows: &[CondRow]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (condition, spec, holds)) in rows.iter().enumerate() {
        let doc = format!(
            r#"{{"Version":"{version}","Statement":{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}}}"#
        );
        let policy = parse(&doc, PolicyKind::Identity);
        let keys: ConditionKeys = keys(spec);
        let got = policy.evaluate(&RequestContext::new("s3:GetObject", "arn:aws:s3:::b/k", &keys));
        let want = if *holds { Decision::Allow } else { Decision::ImplicitDeny };
        if got != want {
            failures.push(format!("{group} row {i}: {condition} with {spec:?}: got {got:?}, want {want:?}"));
        }
    }
    failures
}

const USERNAME_ALICE: Keys = &[("aws:username", &["alice"])];
const NO_KEYS: Keys = &[];

#[test]
#[rustfmt::skip]
fn string_operators() {
    assert_none_failed(run("string", "2012-10-17", &[
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, USERNAME_ALICE, true),
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, &[("aws:username", &["Alice"])], false),
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, &[("aws:username", &["alice2"])], false),
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, NO_KEYS, false),
        (r#"{"StringEquals":{"aws:username":["bob","alice"]}}"#, USERNAME_ALICE, true),
        (r#"{"StringEquals":{"AWS:UserName":"alice"}}"#, USERNAME_ALICE, true),
        (r#"{"StringEquals":{"aws:username":"alice"}}"#, &[("AWS:USERNAME", &["alice"])], true),
        (r#"{"StringEquals":{"aws:username":"*"}}"#, USERNAME_ALICE, false),
        (r#"{"StringEquals":{"aws:username":"*"}}"#, &[("aws:username", &["*"])], true),
        (r#"{"StringEquals":{"aws:username":"al?ce"}}"#, USERNAME_ALICE, false),
        (r#"{"StringEquals":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"StringEquals":{"aws:SecureTransport":true}}"#, &[("aws:SecureTransport", &["true"])], true),
        (r#"{"StringEquals":{"aws:username":""}}"#, &[("aws:username", &[""])], true),
        (r#"{"StringEquals":{"aws:username":[]}}"#, USERNAME_ALICE, false),
        (r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#, NO_KEYS, true),
        (r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#, USERNAME_ALICE, true),
        (r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#, &[("aws:username", &["bob"])], false),
        (r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#, &[("aws:RequestedRegion", &["us-east-1"])], false),
        (r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#, &[("aws:RequestedRegion", &["eu-west-1"])], false),
        (r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#, &[("aws:RequestedRegion", &["ap-south-1"])], true),
        (r#"{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#, NO_KEYS, true),
        (r#"{"StringNotEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#, NO_KEYS, true),
        (r#"{"StringNotEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#, &[("aws:RequestedRegion", &["us-east-1"])], false),
        (r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#, USERNAME_ALICE, true),
        (r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#, &[("aws:username", &["bob"])], false),
        (r#"{"StringEqualsIgnoreCase":{"aws:username":"ÄRGER"}}"#, &[("aws:username", &["ärger"])], true),
        (r#"{"StringEqualsIgnoreCase":{"aws:username":"alice"}}"#, &[("aws:username", &["alicE*"])], false),
        (r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#, USERNAME_ALICE, false),
        (r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#, &[("aws:username", &["bob"])], true),
        (r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#, NO_KEYS, true),
        (r#"{"StringLike":{"ex:sub":"repo:octo-org/*"}}"#, &[("ex:sub", &["repo:octo-org/x:ref:refs/heads/main"])], true),
        (r#"{"StringLike":{"ex:sub":"repo:octo-org/*"}}"#, &[("ex:sub", &["repo:octo-org"])], false),
        (r#"{"StringLike":{"ex:name":"home/?ob"}}"#, &[("ex:name", &["home/bob"])], true),
        (r#"{"StringLike":{"ex:name":"home/?ob"}}"#, &[("ex:name", &["home/bobb"])], false),
        (r#"{"StringLike":{"ex:name":"home/?ob"}}"#, &[("ex:name", &["home/ob"])], false),
        (r#"{"StringLike":{"ex:name":"*"}}"#, &[("ex:name", &["anything at all"])], true),
        (r#"{"StringLike":{"ex:name":"*"}}"#, &[("ex:name", &[""])], true),
        (r#"{"StringLike":{"ex:name":"*"}}"#, NO_KEYS, false),
        (r#"{"StringLike":{"ex:name":"a*b*c"}}"#, &[("ex:name", &["aXXbYYc"])], true),
        (r#"{"StringLike":{"ex:name":"a*b*c"}}"#, &[("ex:name", &["abc"])], true),
        (r#"{"StringLike":{"ex:name":"a*b*c"}}"#, &[("ex:name", &["aXbY"])], false),
        (r#"{"StringLike":{"ex:name":"*.txt"}}"#, &[("ex:name", &["notes.txt"])], true),
        (r#"{"StringLike":{"ex:name":"*.txt"}}"#, &[("ex:name", &["notes.txt.bak"])], false),
        (r#"{"StringLike":{"ex:name":"*a*a*a*a*b"}}"#, &[("ex:name", &["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])], false),
        (r#"{"StringLike":{"ex:name":"Repo:*"}}"#, &[("ex:name", &["repo:x"])], false),
        (r#"{"StringLike":{"ex:name":"caf?"}}"#, &[("ex:name", &["café"])], true),
        (r#"{"StringLike":{"ex:name":"??"}}"#, &[("ex:name", &["é"])], false),
        (r#"{"StringLike":{"ex:name":["x*","y*"]}}"#, &[("ex:name", &["yes"])], true),
        (r#"{"StringLikeIfExists":{"ex:name":"x*"}}"#, NO_KEYS, true),
        (r#"{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::123456789012:role/admin-x"])], false),
        (r#"{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin*"}}"#, &[("aws:PrincipalArn", &["arn:aws:iam::123456789012:role/dev"])], true),
        (r#"{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/admin*"}}"#, NO_KEYS, true),
        (r#"{"stringequals":{"aws:username":"alice"}}"#, USERNAME_ALICE, true),
        (r#"{"BinaryEquals":{"ex:blob":"QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}"#, &[("ex:blob", &["QmluYXJ5VmFsdWVJbkJhc2U2NA=="])], true),
        (r#"{"BinaryEquals":{"ex:blob":"QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}"#, &[("ex:blob", &["QmluYXJ5"])], false),
        (r#"{"BinaryEqualsIfExists":{"ex:blob":"QmluYXJ5"}}"#, NO_KEYS, true),
    ]));
}

#[test]
#[rustfmt::skip]
fn numeric_operators() {
    assert_none_failed(run("numeric", "2012-10-17", &[
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["11"])], false),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["9.5"])], true),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["abc"])], false),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, NO_KEYS, false),
        (r#"{"NumericLessThan":{"s3:max-keys":10}}"#, &[("s3:max-keys", &["10"])], false),
        (r#"{"NumericLessThan":{"s3:max-keys":0}}"#, &[("s3:max-keys", &["-1"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10.0"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["1e1"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":["5","10"]}}"#, &[("s3:max-keys", &["5"])], true),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10"])], false),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["11"])], true),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, NO_KEYS, true),
        (r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["11"])], true),
        (r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10"])], false),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#, &[("s3:max-keys", &["NaN"])], false),
        (r#"{"NumericGreaterThanEqualsIfExists":{"s3:max-keys":"10"}}"#, NO_KEYS, true),
        (r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#, &[("aws:MultiFactorAuthAge", &["120"])], true),
        (r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#, &[("aws:MultiFactorAuthAge", &["7200"])], false),
        // A value that is not a number matches nothing: the negated operator then holds.
        (r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#, &[("s3:max-keys", &["10"])], false),
        (r#"{"NumericNotEquals":{"s3:max-keys":"ten"}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"NumericEquals":{"s3:max-keys":true}}"#, &[("s3:max-keys", &["1"])], false),
    ]));
}

#[test]
#[rustfmt::skip]
fn date_operators() {
    const NOW: Keys = &[("aws:CurrentTime", &["2020-05-01T00:00:00Z"])];
    assert_none_failed(run("date", "2012-10-17", &[
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"}}"#, NOW, true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-06-01T00:00:00Z"}}"#, NOW, false),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, false),
        (r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, true),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2020-05-01T00:00:01Z"}}"#, NOW, true),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, false),
        (r#"{"DateLessThanEquals":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, true),
        (r#"{"DateEquals":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, true),
        (r#"{"DateEquals":{"aws:CurrentTime":"1588291200"}}"#, NOW, true),
        (r#"{"DateEquals":{"aws:CurrentTime":1588291200}}"#, NOW, true),
        (r#"{"DateEquals":{"aws:EpochTime":"2020-05-01T00:00:00Z"}}"#, &[("aws:EpochTime", &["1588291200"])], true),
        (r#"{"DateLessThan":{"aws:EpochTime":"2020-05-01T00:00:00Z"}}"#, &[("aws:EpochTime", &["1588291199"])], true),
        (r#"{"DateNotEquals":{"aws:CurrentTime":"2020-05-01T00:00:00Z"}}"#, NOW, false),
        (r#"{"DateNotEquals":{"aws:CurrentTime":"2021-05-01T00:00:00Z"}}"#, NOW, true),
        (r#"{"DateNotEquals":{"aws:CurrentTime":"2021-05-01T00:00:00Z"}}"#, NO_KEYS, true),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2020-05-01T01:00:00+01:00"}}"#, NOW, false),
        (r#"{"DateLessThanEquals":{"aws:CurrentTime":"2020-05-01T01:00:00+01:00"}}"#, NOW, true),
        (r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2020-05-01"}}"#, NOW, true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-05-01"}}"#, NOW, false),
        (r#"{"DateEquals":{"aws:CurrentTime":"2020-05-01T00:00:00.500Z"}}"#, NOW, true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"}}"#, &[("aws:CurrentTime", &["yesterday"])], false),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"}}"#, NO_KEYS, false),
        (r#"{"DateLessThanIfExists":{"aws:TokenIssueTime":"2020-04-01T00:00:00Z"}}"#, NO_KEYS, true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"not a date"}}"#, NOW, false),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"1969-12-31T23:59:59Z"}}"#, &[("aws:CurrentTime", &["0"])], true),
    ]));
}

#[test]
#[rustfmt::skip]
fn bool_operators() {
    assert_none_failed(run("bool", "2012-10-17", &[
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["true"])], true),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["false"])], false),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["TRUE"])], true),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &[("aws:SecureTransport", &["yes"])], false),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, NO_KEYS, false),
        (r#"{"Bool":{"aws:SecureTransport":false}}"#, &[("aws:SecureTransport", &["false"])], true),
        (r#"{"Bool":{"aws:SecureTransport":"False"}}"#, &[("aws:SecureTransport", &["false"])], true),
        (r#"{"Bool":{"aws:SecureTransport":"maybe"}}"#, &[("aws:SecureTransport", &["true"])], false),
        (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#, NO_KEYS, true),
        (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#, &[("aws:MultiFactorAuthPresent", &["true"])], false),
        (r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#, &[("aws:MultiFactorAuthPresent", &["false"])], true),
    ]));
}

#[test]
#[rustfmt::skip]
fn ip_address_operators() {
    const INSIDE: Keys = &[("aws:SourceIp", &["203.0.113.7"])];
    const OUTSIDE: Keys = &[("aws:SourceIp", &["203.0.114.1"])];
    assert_none_failed(run("ip", "2012-10-17", &[
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, OUTSIDE, false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, NO_KEYS, false),
        (r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7"}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.8"}}"#, INSIDE, false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.7/32"}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, OUTSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.5/24"}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.112.0/23"}}"#, INSIDE, true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.112.0/23"}}"#, OUTSIDE, false),
        (r#"{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}"#, &[("aws:SourceIp", &["2001:db8:1234:5678::1"])], true),
        (r#"{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}"#, &[("aws:SourceIp", &["2001:db8:1234:5679::1"])], false),
        (r#"{"IpAddress":{"aws:SourceIp":"::/0"}}"#, &[("aws:SourceIp", &["2001:db8::1"])], true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["2001:db8::1"])], false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["::ffff:203.0.113.7"])], true),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, &[("aws:SourceIp", &["not-an-ip"])], false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/33"}}"#, INSIDE, false),
        (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/"}}"#, INSIDE, false),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/33"}}"#, INSIDE, true),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, INSIDE, false),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, OUTSIDE, true),
        (r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#, NO_KEYS, true),
        (r#"{"IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}"#, NO_KEYS, true),
    ]));
}

#[test]
#[rustfmt::skip]
fn arn_operators() {
    const TASK: Keys = &[("aws:SourceArn", &["arn:aws:ecs:us-west-2:111122223333:task/cluster/abc"])];
    const ROLE: Keys = &[("aws:SourceArn", &["arn:aws:iam::123456789012:role/ops-deploy"])];
    const OBJECT: Keys = &[("aws:SourceArn", &["arn:aws:s3:::bucket-1/key"])];
    assert_none_failed(run("arn", "2012-10-17", &[
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-west-2:111122223333:*"}}"#, TASK, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-east-1:111122223333:*"}}"#, TASK, false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:*:111122223333:task/*"}}"#, TASK, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-west-?:111122223333:task/*"}}"#, TASK, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:role/ops-*"}}"#, ROLE, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:role/dev-*"}}"#, ROLE, false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::123456789012:role/OPS-deploy"}}"#, ROLE, false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket*"}}"#, OBJECT, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*:us-west-2:111122223333:task/cluster/abc"}}"#, TASK, true),
        // Components are matched one by one: a `*` inside the account does not swallow a colon.
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::123*:role/x"}}"#, &[("aws:SourceArn", &["arn:aws:iam::123:456:role/x"])], false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::123*:role/x"}}"#, &[("aws:SourceArn", &["arn:aws:iam::123456789012:role/x"])], true),
        // A trailing `*` in a short pattern runs to the end of the ARN.
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*"}}"#, TASK, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*"}}"#, &[("aws:SourceArn", &["arn:aws-cn:s3:::b"])], false),
        (r#"{"ArnLike":{"aws:SourceArn":"*"}}"#, OBJECT, true),
        (r#"{"ArnLike":{"aws:SourceArn":"*"}}"#, &[("aws:SourceArn", &["not-an-arn"])], false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-west-2"}}"#, TASK, false),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-west-2:111122223333:*"}}"#, &[("aws:SourceArn", &["arn:aws:ecs"])], false),
        (r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:iam::123456789012:role/ops-deploy"}}"#, ROLE, true),
        (r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:iam::123456789012:role/ops-*"}}"#, ROLE, true),
        (r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:iam::123456789012:role/ops"}}"#, ROLE, false),
        (r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:iam::123456789012:role/ops-deploy"}}"#, ROLE, false),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:iam::*:role/ops-*"}}"#, ROLE, false),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:iam::*:role/dev-*"}}"#, ROLE, true),
        (r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:iam::*:role/dev-*"}}"#, NO_KEYS, true),
        (r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:role/dev-*"}}"#, NO_KEYS, false),
        (r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:iam::*:role/dev-*"}}"#, NO_KEYS, true),
    ]));
}

#[test]
#[rustfmt::skip]
fn null_operator() {
    assert_none_failed(run("null", "2012-10-17", &[
        (r#"{"Null":{"aws:TokenIssueTime":"true"}}"#, NO_KEYS, true),
        (r#"{"Null":{"aws:TokenIssueTime":"true"}}"#, &[("aws:TokenIssueTime", &["2020-05-01T00:00:00Z"])], false),
        (r#"{"Null":{"aws:TokenIssueTime":"false"}}"#, &[("aws:TokenIssueTime", &["2020-05-01T00:00:00Z"])], true),
        (r#"{"Null":{"aws:TokenIssueTime":"false"}}"#, NO_KEYS, false),
        (r#"{"Null":{"aws:TokenIssueTime":true}}"#, NO_KEYS, true),
        (r#"{"Null":{"aws:TagKeys":"true"}}"#, &[("aws:TagKeys", &[])], true),
        (r#"{"Null":{"aws:TokenIssueTime":"maybe"}}"#, NO_KEYS, false),
    ]));
}

#[test]
#[rustfmt::skip]
fn set_operators_and_multi_valued_keys() {
    const TAGS: &str = r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["environment","cost-center"]}}"#;
    const ANY_TAG: &str = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["environment","webserver"]}}"#;
    assert_none_failed(run("sets", "2012-10-17", &[
        (TAGS, &[("aws:TagKeys", &["environment"])], true),
        (TAGS, &[("aws:TagKeys", &["environment", "cost-center"])], true),
        (TAGS, &[("aws:TagKeys", &["environment", "owner"])], false),
        (TAGS, &[("aws:TagKeys", &["Environment"])], false),
        (TAGS, NO_KEYS, true),
        (TAGS, &[("aws:TagKeys", &[])], true),
        (ANY_TAG, &[("aws:TagKeys", &["environment", "x"])], true),
        (ANY_TAG, &[("aws:TagKeys", &["webserver"])], true),
        (ANY_TAG, &[("aws:TagKeys", &["x", "y"])], false),
        (ANY_TAG, NO_KEYS, false),
        (ANY_TAG, &[("aws:TagKeys", &[])], false),
        (r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"environment"}}"#, NO_KEYS, true),
        (r#"{"ForAllValues:StringLike":{"aws:TagKeys":["env*","cost-*"]}}"#, &[("aws:TagKeys", &["environment", "cost-center"])], true),
        (r#"{"ForAllValues:StringLike":{"aws:TagKeys":["env*","cost-*"]}}"#, &[("aws:TagKeys", &["environment", "owner"])], false),
        (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a", "b"])], true),
        (r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], false),
        (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","private"]}}"#, &[("aws:TagKeys", &["public", "shared"])], true),
        (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","private"]}}"#, &[("aws:TagKeys", &["public", "secret"])], false),
        (r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","private"]}}"#, NO_KEYS, true),
        (r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"team-*"}}"#, &[("aws:TagKeys", &["owner", "team-blue"])], true),
        (r#"{"ForAllValues:NumericLessThan":{"ex:sizes":"10"}}"#, &[("ex:sizes", &["1", "9"])], true),
        (r#"{"ForAllValues:NumericLessThan":{"ex:sizes":"10"}}"#, &[("ex:sizes", &["1", "19"])], false),
        (r#"{"forallvalues:stringequals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["a"])], true),
        // Several values without a qualifier: any one matches a positive operator, none a negated one.
        (r#"{"StringEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "a"])], true),
        (r#"{"StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "a"])], false),
        (r#"{"StringNotEquals":{"aws:TagKeys":"a"}}"#, &[("aws:TagKeys", &["b", "c"])], true),
    ]));
}

#[test]
#[rustfmt::skip]
fn several_keys_and_blocks_must_all_hold() {
    const TWO_KEYS: &str = r#"{"StringEquals":{"ex:x":"1","ex:y":"2"}}"#;
    const TWO_BLOCKS: &str = r#"{"StringEquals":{"ex:x":"1"},"NumericLessThan":{"ex:n":"5"}}"#;
    assert_none_failed(run("and", "2012-10-17", &[
        (TWO_KEYS, &[("ex:x", &["1"]), ("ex:y", &["2"])], true),
        (TWO_KEYS, &[("ex:x", &["1"])], false),
        (TWO_KEYS, &[("ex:x", &["1"]), ("ex:y", &["3"])], false),
        (TWO_BLOCKS, &[("ex:x", &["1"]), ("ex:n", &["4"])], true),
        (TWO_BLOCKS, &[("ex:x", &["1"]), ("ex:n", &["5"])], false),
        (TWO_BLOCKS, &[("ex:x", &["2"]), ("ex:n", &["4"])], false),
        (r#"{}"#, NO_KEYS, true),
        (r#"{"StringEquals":{}}"#, NO_KEYS, true),
    ]));
}
