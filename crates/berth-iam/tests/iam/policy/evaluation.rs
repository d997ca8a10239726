//! Identity policies: actions, resources, their `Not…` forms, and how several policies and
//! statements combine (explicit deny wins, then allow, else implicit deny). Most documents are the
//! examples of AWS's IAM documentation.

use berth_iam::policy::Decision::{Allow, ExplicitDeny, ImplicitDeny};
use berth_iam::policy::PolicyKind::Identity;

use crate::policy::{assert_none_failed, run, Keys, Who::Nobody};

const NO_KEYS: Keys = &[];

const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

#[test]
#[rustfmt::skip]
fn actions_with_wildcards_match_case_insensitively() {
    const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Action":["s3:Get*","s3:List*"],"Resource":"arn:aws:s3:::bucket/*"}}"#;
    const DESCRIBE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Action":["ecs:Describe?ervices","ecs:List*"],"Resource":"*"}}"#;
    const O: &str = "arn:aws:s3:::bucket/key";
    assert_none_failed(run("read bucket", &[(READ_BUCKET, Identity)], &[
        ("get", "s3:GetObject", O, Nobody, NO_KEYS, Allow),
        ("list", "s3:ListMultipartUploadParts", O, Nobody, NO_KEYS, Allow),
        ("upper-case action", "S3:GETOBJECT", O, Nobody, NO_KEYS, Allow),
        ("mixed-case action", "s3:getobjectTagging", O, Nobody, NO_KEYS, Allow),
        ("put", "s3:PutObject", O, Nobody, NO_KEYS, ImplicitDeny),
        ("prefix of a wildcard", "s3:Ge", O, Nobody, NO_KEYS, ImplicitDeny),
        ("other service", "sqs:GetQueueUrl", O, Nobody, NO_KEYS, ImplicitDeny),
        ("other bucket", "s3:GetObject", "arn:aws:s3:::bucket2/key", Nobody, NO_KEYS, ImplicitDeny),
        ("bucket itself", "s3:GetObject", "arn:aws:s3:::bucket", Nobody, NO_KEYS, ImplicitDeny),
        ("resources are case-sensitive", "s3:GetObject", "arn:aws:s3:::Bucket/key", Nobody, NO_KEYS, ImplicitDeny),
        ("deep key", "s3:GetObject", "arn:aws:s3:::bucket/a/b/c:d", Nobody, NO_KEYS, Allow),
        ("no resource-level permission", "s3:GetObject", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("describe", &[(DESCRIBE, Identity)], &[
        ("question mark", "ecs:DescribeServices", "*", Nobody, NO_KEYS, Allow),
        ("question mark is one character", "ecs:DescribeXXervices", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("list", "ecs:ListClusters", "*", Nobody, NO_KEYS, Allow),
        ("vendor must match", "ecsx:ListClusters", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("any resource", "ecs:ListClusters", "arn:aws:ecs:us-east-1:123456789012:cluster/default", Nobody, NO_KEYS, Allow),
    ]));
    assert_none_failed(run("allow all", &[(ALLOW_ALL, Identity)], &[
        ("anything", "iam:CreateUser", "arn:aws:iam::123456789012:user/bob", Nobody, NO_KEYS, Allow),
        ("star resource", "ecs:ListClusters", "*", Nobody, NO_KEYS, Allow),
    ]));
}

#[test]
#[rustfmt::skip]
fn resources_with_wildcards() {
    const RESOURCES: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::123456789012:user/accounting/*"},
        {"Effect":"Allow","Action":"ecs:*","Resource":["arn:aws:ecs:*:123456789012:service/prod/*","arn:aws:ecs:us-east-1:123456789012:cluster/prod"]},
        {"Effect":"Allow","Action":"logs:*","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-?:*"}]}"#;
    assert_none_failed(run("resources", &[(RESOURCES, Identity)], &[
        ("user on the path", "iam:GetUser", "arn:aws:iam::123456789012:user/accounting/alice", Nobody, NO_KEYS, Allow),
        ("user off the path", "iam:GetUser", "arn:aws:iam::123456789012:user/alice", Nobody, NO_KEYS, ImplicitDeny),
        ("user in another account", "iam:GetUser", "arn:aws:iam::999999999999:user/accounting/alice", Nobody, NO_KEYS, ImplicitDeny),
        ("service in any region", "ecs:UpdateService", "arn:aws:ecs:eu-west-1:123456789012:service/prod/web", Nobody, NO_KEYS, Allow),
        ("service of another cluster", "ecs:UpdateService", "arn:aws:ecs:eu-west-1:123456789012:service/dev/web", Nobody, NO_KEYS, ImplicitDeny),
        ("the cluster", "ecs:DescribeClusters", "arn:aws:ecs:us-east-1:123456789012:cluster/prod", Nobody, NO_KEYS, Allow),
        ("a cluster with a longer name", "ecs:DescribeClusters", "arn:aws:ecs:us-east-1:123456789012:cluster/prod2", Nobody, NO_KEYS, ImplicitDeny),
        ("log group, one character", "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-1:log-stream:x", Nobody, NO_KEYS, Allow),
        ("log group, two characters", "logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-12:log-stream:x", Nobody, NO_KEYS, ImplicitDeny),
        ("action of another statement", "iam:GetUser", "arn:aws:ecs:eu-west-1:123456789012:service/prod/web", Nobody, NO_KEYS, ImplicitDeny),
    ]));
}

/// AWS's examples for `NotAction`: allow everything but IAM; deny everything but IAM without MFA.
#[test]
#[rustfmt::skip]
fn not_action() {
    const ALL_BUT_IAM: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#;
    const POWER_USER: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","NotAction":["iam:*","organizations:*","account:*"],"Resource":"*"},
        {"Effect":"Allow","Action":["iam:CreateServiceLinkedRole","iam:DeleteServiceLinkedRole","iam:ListRoles","organizations:DescribeOrganization","account:ListRegions"],"Resource":"*"}]}"#;
    const DENY_ALL_BUT_IAM_WITHOUT_MFA: &str = r#"{"Version":"2012-10-17","Statement":[{
        "Sid":"DenyAllUsersNotUsingMFA","Effect":"Deny","NotAction":"iam:*","Resource":"*",
        "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}]}"#;
    const DENY_ALL_BUT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny",
        "NotAction":["iam:*","sts:GetCallerIdentity"],"Resource":"*"}}"#;
    assert_none_failed(run("all but iam", &[(ALL_BUT_IAM, Identity)], &[
        ("ecs", "ecs:UpdateService", "*", Nobody, NO_KEYS, Allow),
        ("iam", "iam:CreateUser", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("IAM in capitals", "IAM:CreateUser", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("a vendor starting with iam", "iamx:CreateUser", "*", Nobody, NO_KEYS, Allow),
    ]));
    assert_none_failed(run("power user", &[(POWER_USER, Identity)], &[
        ("ec2", "ec2:RunInstances", "*", Nobody, NO_KEYS, Allow),
        ("iam create user", "iam:CreateUser", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("iam list roles", "iam:ListRoles", "*", Nobody, NO_KEYS, Allow),
        ("organizations", "organizations:LeaveOrganization", "*", Nobody, NO_KEYS, ImplicitDeny),
        ("organizations describe", "organizations:DescribeOrganization", "*", Nobody, NO_KEYS, Allow),
    ]));
    let docs = [(ALLOW_ALL, Identity), (DENY_ALL_BUT_IAM_WITHOUT_MFA, Identity)];
    assert_none_failed(run("mfa", &docs, &[
        ("ecs without mfa", "ecs:ListClusters", "*", Nobody, &[("aws:MultiFactorAuthPresent", &["false"])], ExplicitDeny),
        ("ecs with long-term keys (no mfa key)", "ecs:ListClusters", "*", Nobody, NO_KEYS, ExplicitDeny),
        ("ecs with mfa", "ecs:ListClusters", "*", Nobody, &[("aws:MultiFactorAuthPresent", &["true"])], Allow),
        ("iam without mfa", "iam:ChangePassword", "*", Nobody, &[("aws:MultiFactorAuthPresent", &["false"])], Allow),
    ]));
    assert_none_failed(run("deny all but", &[(ALLOW_ALL, Identity), (DENY_ALL_BUT, Identity)], &[
        ("ecs", "ecs:ListClusters", "*", Nobody, NO_KEYS, ExplicitDeny),
        ("iam", "iam:CreateUser", "*", Nobody, NO_KEYS, Allow),
        ("whoami", "sts:GetCallerIdentity", "*", Nobody, NO_KEYS, Allow),
        ("other sts", "sts:AssumeRole", "*", Nobody, NO_KEYS, ExplicitDeny),
    ]));
}

/// AWS's `NotResource` examples: all of S3 but the payroll folder, and a deny outside one bucket.
#[test]
#[rustfmt::skip]
fn not_resource() {
    const ALL_BUT_PAYROLL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*",
        "NotResource":["arn:aws:s3:::HRBucket/Payroll","arn:aws:s3:::HRBucket/Payroll/*"]}}"#;
    const ONLY_PAYROLL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*",
        "NotResource":["arn:aws:s3:::HRBucket/Payroll","arn:aws:s3:::HRBucket/Payroll/*"]}}"#;
    assert_none_failed(run("all but payroll", &[(ALL_BUT_PAYROLL, Identity)], &[
        ("payroll file", "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/2020.csv", Nobody, NO_KEYS, ImplicitDeny),
        ("payroll folder", "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll", Nobody, NO_KEYS, ImplicitDeny),
        ("other folder", "s3:GetObject", "arn:aws:s3:::HRBucket/Benefits/x", Nobody, NO_KEYS, Allow),
        ("other bucket", "s3:PutObject", "arn:aws:s3:::other/x", Nobody, NO_KEYS, Allow),
        ("a name that extends Payroll", "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll2", Nobody, NO_KEYS, Allow),
        ("other service", "ec2:RunInstances", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("only payroll", &[(ALLOW_ALL, Identity), (ONLY_PAYROLL, Identity)], &[
        ("payroll", "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/x", Nobody, NO_KEYS, Allow),
        ("elsewhere in S3", "s3:GetObject", "arn:aws:s3:::HRBucket/Benefits/x", Nobody, NO_KEYS, ExplicitDeny),
        ("not S3", "ecs:ListClusters", "*", Nobody, NO_KEYS, Allow),
    ]));
}

#[test]
#[rustfmt::skip]
fn explicit_deny_wins_across_policies() {
    const ECS_ADMIN: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*"}}"#;
    const NO_DELETE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny",
        "Action":["ecs:Delete*","ecs:DeregisterTaskDefinition"],"Resource":"*"}}"#;
    const READ_ONLY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["ecs:Describe*","ecs:List*"],"Resource":"*"}}"#;
    const S: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
    for (order, docs) in [("allow first", [ECS_ADMIN, NO_DELETE]), ("deny first", [NO_DELETE, ECS_ADMIN])] {
        let docs = docs.map(|d| (d, Identity));
        assert_none_failed(run(order, &docs, &[
            ("update", "ecs:UpdateService", S, Nobody, NO_KEYS, Allow),
            ("delete", "ecs:DeleteService", S, Nobody, NO_KEYS, ExplicitDeny),
            ("deregister", "ecs:DeregisterTaskDefinition", "*", Nobody, NO_KEYS, ExplicitDeny),
            ("not ecs", "s3:GetObject", "*", Nobody, NO_KEYS, ImplicitDeny),
        ]));
    }
    assert_none_failed(run("deny only", &[(NO_DELETE, Identity)], &[
        ("delete", "ecs:DeleteService", S, Nobody, NO_KEYS, ExplicitDeny),
        ("update is not allowed by a deny-only policy", "ecs:UpdateService", S, Nobody, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("two allows", &[(READ_ONLY, Identity), (ECS_ADMIN, Identity)], &[
        ("describe", "ecs:DescribeServices", S, Nobody, NO_KEYS, Allow),
        ("update", "ecs:UpdateService", S, Nobody, NO_KEYS, Allow),
    ]));
    const IN_ONE: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":"ecs:DeleteService","Resource":"*"},
        {"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#;
    assert_none_failed(run("one policy", &[(IN_ONE, Identity)], &[
        ("delete", "ecs:DeleteService", S, Nobody, NO_KEYS, ExplicitDeny),
        ("update", "ecs:UpdateService", S, Nobody, NO_KEYS, Allow),
    ]));
}

/// AWS's example: deny everything from outside the corporate networks, unless a service calls on
/// the user's behalf.
#[test]
#[rustfmt::skip]
fn deny_outside_source_ip() {
    const DENY_OUTSIDE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]},"Bool":{"aws:ViaAWSService":"false"}}}}"#;
    let docs = [(ALLOW_ALL, Identity), (DENY_OUTSIDE, Identity)];
    assert_none_failed(run("source ip", &docs, &[
        ("inside", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["192.0.2.10"]), ("aws:ViaAWSService", &["false"])], Allow),
        ("second network", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["203.0.113.200"]), ("aws:ViaAWSService", &["false"])], Allow),
        ("outside", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["198.51.100.1"]), ("aws:ViaAWSService", &["false"])], ExplicitDeny),
        ("outside, via a service", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["198.51.100.1"]), ("aws:ViaAWSService", &["true"])], Allow),
        ("outside over IPv6", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["2001:db8::1"]), ("aws:ViaAWSService", &["false"])], ExplicitDeny),
        ("no via key: Bool is false, no deny", "ec2:RunInstances", "*", Nobody, &[("aws:SourceIp", &["198.51.100.1"])], Allow),
    ]));
}

/// AWS's example: allow within a date window on `aws:CurrentTime`.
#[test]
#[rustfmt::skip]
fn date_window() {
    const WINDOW: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:UpdateService","Resource":"*",
        "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-04-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2020-06-30T23:59:59Z"}}}]}"#;
    assert_none_failed(run("window", &[(WINDOW, Identity)], &[
        ("inside", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2020-05-15T12:00:00Z"])], Allow),
        ("before", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2020-03-31T23:59:59Z"])], ImplicitDeny),
        ("at the start", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2020-04-01T00:00:00Z"])], ImplicitDeny),
        ("last second", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2020-06-30T23:59:58Z"])], Allow),
        ("at the end", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2020-06-30T23:59:59Z"])], ImplicitDeny),
        ("after", "ecs:UpdateService", "*", Nobody, &[("aws:CurrentTime", &["2021-01-01T00:00:00Z"])], ImplicitDeny),
        ("no clock", "ecs:UpdateService", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
}

/// AWS's examples: deny outside two regions (with global services exempt), deny plain HTTP, and
/// deny long-term credentials (`Null` on `aws:TokenIssueTime`).
#[test]
#[rustfmt::skip]
fn global_keys_in_deny_guards() {
    const REGIONS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyAllOutsideRequestedRegions","Effect":"Deny",
        "NotAction":["cloudfront:*","iam:*","route53:*","support:*","sts:*"],"Resource":"*",
        "Condition":{"StringNotEquals":{"aws:RequestedRegion":["eu-central-1","eu-west-1"]}}}]}"#;
    const TLS_ONLY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*",
        "Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#;
    const TEMPORARY_ONLY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"ec2:*","Resource":"*",
        "Condition":{"Null":{"aws:TokenIssueTime":"true"}}}}"#;
    assert_none_failed(run("regions", &[(ALLOW_ALL, Identity), (REGIONS, Identity)], &[
        ("allowed region", "ecs:ListClusters", "*", Nobody, &[("aws:RequestedRegion", &["eu-west-1"])], Allow),
        ("other region", "ecs:ListClusters", "*", Nobody, &[("aws:RequestedRegion", &["us-east-1"])], ExplicitDeny),
        ("global service", "iam:ListUsers", "*", Nobody, &[("aws:RequestedRegion", &["us-east-1"])], Allow),
        ("no region: negated operator holds", "ecs:ListClusters", "*", Nobody, NO_KEYS, ExplicitDeny),
    ]));
    assert_none_failed(run("tls", &[(ALLOW_ALL, Identity), (TLS_ONLY, Identity)], &[
        ("https", "s3:GetObject", "*", Nobody, &[("aws:SecureTransport", &["true"])], Allow),
        ("http", "s3:GetObject", "*", Nobody, &[("aws:SecureTransport", &["false"])], ExplicitDeny),
        ("unknown transport", "s3:GetObject", "*", Nobody, NO_KEYS, Allow),
    ]));
    assert_none_failed(run("temporary", &[(ALLOW_ALL, Identity), (TEMPORARY_ONLY, Identity)], &[
        ("long-term keys", "ec2:RunInstances", "*", Nobody, NO_KEYS, ExplicitDeny),
        ("role session", "ec2:RunInstances", "*", Nobody, &[("aws:TokenIssueTime", &["2020-05-01T00:00:00Z"])], Allow),
        ("other service", "s3:GetObject", "*", Nobody, NO_KEYS, Allow),
    ]));
}

/// AWS's tag-key examples: only the allowed tag keys on create, and at least one required.
#[test]
#[rustfmt::skip]
fn tag_key_sets() {
    const ALLOWED_KEYS: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:TagResource","Resource":"*",
        "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["environment","cost-center"]},"Null":{"aws:TagKeys":"false"}}}}"#;
    const ONE_OF: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:CreateService","Resource":"*",
        "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["environment","webserver"]}}}}"#;
    assert_none_failed(run("allowed keys", &[(ALLOWED_KEYS, Identity)], &[
        ("both keys", "ecs:TagResource", "*", Nobody, &[("aws:TagKeys", &["environment", "cost-center"])], Allow),
        ("one key", "ecs:TagResource", "*", Nobody, &[("aws:TagKeys", &["cost-center"])], Allow),
        ("an extra key", "ecs:TagResource", "*", Nobody, &[("aws:TagKeys", &["environment", "owner"])], ImplicitDeny),
        ("no tags at all", "ecs:TagResource", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("one of", &[(ONE_OF, Identity)], &[
        ("has environment", "ecs:CreateService", "*", Nobody, &[("aws:TagKeys", &["environment", "owner"])], Allow),
        ("has neither", "ecs:CreateService", "*", Nobody, &[("aws:TagKeys", &["owner"])], ImplicitDeny),
        ("untagged", "ecs:CreateService", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
}
