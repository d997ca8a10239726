//! Policy variables: `${aws:username}`, tags, defaults and escapes, in `Resource` and in conditions;
//! literal text in documents without `Version: 2012-10-17`.

use berth_iam::policy::Decision::{Allow, ImplicitDeny};
use berth_iam::policy::PolicyKind::Identity;

use super::conditions::run as run_conditions;
use crate::policy::{assert_none_failed, run, Keys, Row, Who::Nobody};

const NO_KEYS: Keys = &[];

#[test]
#[rustfmt::skip]
fn variables_in_condition_values() {
    const SAME_PROJECT: &str = r#"{"StringEquals":{"aws:ResourceTag/project":"${aws:PrincipalTag/project}"}}"#;
    const HOME_PREFIX: &str = r#"{"StringLike":{"s3:prefix":"home/${aws:username}/*"}}"#;
    const TEAM_OR_NONE: &str = r#"{"StringEquals":{"ex:team":"${aws:PrincipalTag/team, 'none'}"}}"#;
    const ACCOUNT_ROLES: &str = r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:role/*"}}"#;
    assert_none_failed(run_conditions("variables", "2012-10-17", &[
        (SAME_PROJECT, &[("aws:ResourceTag/project", &["blue"]), ("aws:PrincipalTag/project", &["blue"])], true),
        (SAME_PROJECT, &[("aws:ResourceTag/project", &["blue"]), ("aws:PrincipalTag/project", &["green"])], false),
        (SAME_PROJECT, &[("aws:ResourceTag/project", &["blue"])], false),
        (SAME_PROJECT, &[("aws:resourcetag/PROJECT", &["blue"]), ("AWS:PrincipalTag/Project", &["blue"])], true),
        (HOME_PREFIX, &[("aws:username", &["alice"]), ("s3:prefix", &["home/alice/docs"])], true),
        (HOME_PREFIX, &[("aws:username", &["alice"]), ("s3:prefix", &["home/bob/docs"])], false),
        (HOME_PREFIX, &[("s3:prefix", &["home/alice/docs"])], false),
        // A variable's value is literal text: a user named `*` is not a wildcard.
        (HOME_PREFIX, &[("aws:username", &["*"]), ("s3:prefix", &["home/bob/x"])], false),
        (HOME_PREFIX, &[("aws:username", &["*"]), ("s3:prefix", &["home/*/x"])], true),
        (TEAM_OR_NONE, &[("ex:team", &["none"])], true),
        (TEAM_OR_NONE, &[("ex:team", &["none"]), ("aws:PrincipalTag/team", &["blue"])], false),
        (TEAM_OR_NONE, &[("ex:team", &["blue"]), ("aws:PrincipalTag/team", &["blue"])], true),
        (r#"{"StringEquals":{"ex:v":"${ex:k, 'it''s'}"}}"#, &[("ex:v", &["it's"])], true),
        (r#"{"StringEquals":{"ex:v":"${ ex:k , 'spaced' }"}}"#, &[("ex:v", &["spaced"])], true),
        (r#"{"StringEquals":{"ex:v":"${ex:k, 'a}b'}"}}"#, &[("ex:v", &["a}b"])], true),
        (r#"{"StringEquals":{"ex:v":"${ex:k, ''}"}}"#, &[("ex:v", &[""])], true),
        (r#"{"StringLike":{"ex:v":"a${*}b"}}"#, &[("ex:v", &["a*b"])], true),
        (r#"{"StringLike":{"ex:v":"a${*}b"}}"#, &[("ex:v", &["axb"])], false),
        (r#"{"StringLike":{"ex:v":"what${?}"}}"#, &[("ex:v", &["what?"])], true),
        (r#"{"StringLike":{"ex:v":"what${?}"}}"#, &[("ex:v", &["whatx"])], false),
        (r#"{"StringEquals":{"ex:v":"${$}{literal}"}}"#, &[("ex:v", &["${literal}"])], true),
        // Multi-valued keys are not substituted; their default applies.
        (r#"{"StringEquals":{"ex:v":"${aws:TagKeys}"}}"#, &[("ex:v", &["a"]), ("aws:TagKeys", &["a", "b"])], false),
        (r#"{"StringEquals":{"ex:v":"${aws:TagKeys, 'many'}"}}"#, &[("ex:v", &["many"]), ("aws:TagKeys", &["a", "b"])], true),
        // An unresolvable value is no alternative: a negated operator over it holds.
        (r#"{"StringNotEquals":{"ex:v":"${ex:missing}"}}"#, &[("ex:v", &["x"])], true),
        (r#"{"StringNotEquals":{"ex:v":["${ex:missing}","x"]}}"#, &[("ex:v", &["x"])], false),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"${aws:TokenIssueTime}"}}"#, &[("aws:CurrentTime", &["2020-05-01T00:00:00Z"]), ("aws:TokenIssueTime", &["2020-04-01T00:00:00Z"])], true),
        (r#"{"DateGreaterThan":{"aws:CurrentTime":"${aws:TokenIssueTime}"}}"#, &[("aws:CurrentTime", &["2020-05-01T00:00:00Z"])], false),
        (r#"{"IpAddress":{"aws:SourceIp":"${ex:cidr}"}}"#, &[("aws:SourceIp", &["10.1.2.3"]), ("ex:cidr", &["10.0.0.0/8"])], true),
        (r#"{"IpAddress":{"aws:SourceIp":"${ex:net}.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.1.2.3"]), ("ex:net", &["10"])], true),
        (r#"{"NumericLessThan":{"ex:n":"${ex:max}"}}"#, &[("ex:n", &["3"]), ("ex:max", &["5"])], true),
        (r#"{"NumericLessThan":{"ex:n":"${ex:max, '2'}"}}"#, &[("ex:n", &["3"])], false),
        (r#"{"Bool":{"ex:b":"${ex:flag}"}}"#, &[("ex:b", &["true"]), ("ex:flag", &["true"])], true),
        (ACCOUNT_ROLES, &[("aws:PrincipalArn", &["arn:aws:iam::123456789012:role/x"]), ("aws:PrincipalAccount", &["123456789012"])], true),
        (ACCOUNT_ROLES, &[("aws:PrincipalArn", &["arn:aws:iam::123456789012:role/x"]), ("aws:PrincipalAccount", &["999999999999"])], false),
        (r#"{"StringEquals":{"ex:v":"${aws:username"}}"#, &[("ex:v", &["${aws:username"])], true),
        (r#"{"StringEquals":{"ex:v":"${}"}}"#, &[("ex:v", &["${}"])], true),
        (r#"{"StringEquals":{"ex:v":"${AWS:UserName}"}}"#, &[("ex:v", &["alice"]), ("aws:username", &["alice"])], true),
        (r#"{"StringEqualsIgnoreCase":{"ex:v":"${aws:username}"}}"#, &[("ex:v", &["alice"]), ("aws:username", &["ALICE"])], true),
        (r#"{"StringLike":{"ex:v":"${ex:prefix}*"}}"#, &[("ex:v", &["abc"]), ("ex:prefix", &["ab"])], true),
        (r#"{"StringLike":{"ex:v":"team-${aws:PrincipalTag/team}-*"}}"#, &[("ex:v", &["team-blue-01"]), ("aws:PrincipalTag/team", &["blue"])], true),
        (r#"{"StringLike":{"ex:v":"team-${aws:PrincipalTag/team}-*"}}"#, &[("ex:v", &["team-green-01"]), ("aws:PrincipalTag/team", &["blue"])], false),
    ]));
}

#[test]
#[rustfmt::skip]
fn variables_are_literal_text_before_2012() {
    assert_none_failed(run_conditions("2008", "2008-10-17", &[
        (r#"{"StringEquals":{"ex:v":"${aws:username}"}}"#, &[("ex:v", &["${aws:username}"])], true),
        (r#"{"StringEquals":{"ex:v":"${aws:username}"}}"#, &[("ex:v", &["alice"]), ("aws:username", &["alice"])], false),
        (r#"{"StringLike":{"ex:v":"a${*}b"}}"#, &[("ex:v", &["a${*}b"])], true),
        (r#"{"StringLike":{"ex:v":"a${*}b"}}"#, &[("ex:v", &["a*b"])], false),
    ]));
}

/// AWS's example: each user may list and use their own home folder in a shared bucket.
const HOME_FOLDER: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowListingOfUserFolder",
      "Effect": "Allow",
      "Action": "s3:ListBucket",
      "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
      "Condition": {"StringLike": {"s3:prefix": ["home/${aws:username}/*", "home/${aws:username}"]}}
    },
    {
      "Sid": "AllowAllS3ActionsInUserFolder",
      "Effect": "Allow",
      "Action": "s3:*",
      "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/home/${aws:username}/*"
    }
  ]
}"#;

const BUCKET: &str = "arn:aws:s3:::amzn-s3-demo-bucket";
const ALICE: Keys = &[("aws:username", &["alice"])];

#[test]
#[rustfmt::skip]
fn home_folder_per_user() {
    let rows: &[Row] = &[
        ("list own folder", "s3:ListBucket", BUCKET, Nobody, &[("aws:username", &["alice"]), ("s3:prefix", &["home/alice/"])], Allow),
        ("list own folder root", "s3:ListBucket", BUCKET, Nobody, &[("aws:username", &["alice"]), ("s3:prefix", &["home/alice"])], Allow),
        ("list another's folder", "s3:ListBucket", BUCKET, Nobody, &[("aws:username", &["alice"]), ("s3:prefix", &["home/bob/"])], ImplicitDeny),
        ("list without prefix", "s3:ListBucket", BUCKET, Nobody, ALICE, ImplicitDeny),
        ("get own object", "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/notes.txt", Nobody, ALICE, Allow),
        ("delete deep own object", "s3:DeleteObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/a/b/c", Nobody, ALICE, Allow),
        ("put into another's folder", "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/bob/x", Nobody, ALICE, ImplicitDeny),
        ("no user name, no folder", "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/x", Nobody, NO_KEYS, ImplicitDeny),
        ("a user name with a star is literal", "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/home/alice/x", Nobody, &[("aws:username", &["al*"])], ImplicitDeny),
        ("other bucket", "s3:GetObject", "arn:aws:s3:::other-bucket/home/alice/x", Nobody, ALICE, ImplicitDeny),
    ];
    assert_none_failed(run("home folder", &[(HOME_FOLDER, Identity)], rows));
}

#[test]
#[rustfmt::skip]
fn variables_in_resources() {
    const DEFAULTED: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::bucket/${aws:username, 'anonymous'}/*"}}"#;
    const NOT_MINE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject",
        "NotResource":"arn:aws:s3:::bucket/${aws:username}/*"}}"#;
    const LEGACY: &str = r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::bucket/${aws:username}/*"}}"#;
    const NO_VERSION: &str = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::bucket/${aws:username}/*"}}"#;
    const TAGGED_ROLE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*",
        "Resource":"arn:aws:ecs:us-east-1:123456789012:service/${aws:PrincipalTag/team}-*/*"}}"#;
    assert_none_failed(run("defaulted", &[(DEFAULTED, Identity)], &[
        ("default when absent", "s3:GetObject", "arn:aws:s3:::bucket/anonymous/x", Nobody, NO_KEYS, Allow),
        ("value when present", "s3:GetObject", "arn:aws:s3:::bucket/alice/x", Nobody, ALICE, Allow),
        ("not the default when present", "s3:GetObject", "arn:aws:s3:::bucket/anonymous/x", Nobody, ALICE, ImplicitDeny),
    ]));
    assert_none_failed(run("not mine", &[(NOT_MINE, Identity)], &[
        ("own folder excluded", "s3:GetObject", "arn:aws:s3:::bucket/alice/x", Nobody, ALICE, ImplicitDeny),
        ("other folder allowed", "s3:GetObject", "arn:aws:s3:::bucket/bob/x", Nobody, ALICE, Allow),
        ("unresolvable entry excludes nothing", "s3:GetObject", "arn:aws:s3:::bucket/alice/x", Nobody, NO_KEYS, Allow),
    ]));
    for (name, doc) in [("2008", LEGACY), ("no version", NO_VERSION)] {
        assert_none_failed(run(name, &[(doc, Identity)], &[
            ("variable is not substituted", "s3:GetObject", "arn:aws:s3:::bucket/alice/x", Nobody, ALICE, ImplicitDeny),
            ("variable is literal text", "s3:GetObject", "arn:aws:s3:::bucket/${aws:username}/x", Nobody, ALICE, Allow),
        ]));
    }
    assert_none_failed(run("tagged", &[(TAGGED_ROLE, Identity)], &[
        ("team's service", "ecs:UpdateService", "arn:aws:ecs:us-east-1:123456789012:service/blue-prod/web", Nobody, &[("aws:PrincipalTag/team", &["blue"])], Allow),
        ("other team's service", "ecs:UpdateService", "arn:aws:ecs:us-east-1:123456789012:service/green-prod/web", Nobody, &[("aws:PrincipalTag/team", &["blue"])], ImplicitDeny),
        ("untagged principal", "ecs:UpdateService", "arn:aws:ecs:us-east-1:123456789012:service/blue-prod/web", Nobody, NO_KEYS, ImplicitDeny),
    ]));
}

/// AWS's attribute-based access control example: start and stop instances of your own project.
#[test]
#[rustfmt::skip]
fn abac_project_tags() {
    const ABAC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["ec2:StartInstances","ec2:StopInstances"],"Resource":"*",
        "Condition":{"StringEquals":{"aws:ResourceTag/Project":"${aws:PrincipalTag/Project}"}}}]}"#;
    const I: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";
    assert_none_failed(run("abac", &[(ABAC, Identity)], &[
        ("same project", "ec2:StopInstances", I, Nobody, &[("aws:ResourceTag/Project", &["Unicorn"]), ("aws:PrincipalTag/Project", &["Unicorn"])], Allow),
        ("other project", "ec2:StopInstances", I, Nobody, &[("aws:ResourceTag/Project", &["Pegasus"]), ("aws:PrincipalTag/Project", &["Unicorn"])], ImplicitDeny),
        ("untagged instance", "ec2:StartInstances", I, Nobody, &[("aws:PrincipalTag/Project", &["Unicorn"])], ImplicitDeny),
        ("other action", "ec2:TerminateInstances", I, Nobody, &[("aws:ResourceTag/Project", &["Unicorn"]), ("aws:PrincipalTag/Project", &["Unicorn"])], ImplicitDeny),
    ]));
}
