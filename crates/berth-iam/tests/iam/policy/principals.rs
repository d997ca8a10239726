//! Trust and resource policies: `Principal`, `NotPrincipal`, and the web-identity trust policy of
//! GitHub Actions (AWS's documented form).

use berth_iam::policy::Decision::{Allow, ExplicitDeny, ImplicitDeny};
use berth_iam::policy::PolicyKind::{Identity, Resource, Trust};

use crate::policy::Who::{Aws, Federated, Nobody, Service};
use crate::policy::{assert_none_failed, run, Keys};

const NO_KEYS: Keys = &[];
const GITHUB: &str = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
const WEB: &str = "sts:AssumeRoleWithWebIdentity";

const GITHUB_TRUST: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {"token.actions.githubusercontent.com:sub": "repo:octo-org/octo-repo:*"}
      }
    }
  ]
}"#;

#[test]
#[rustfmt::skip]
fn github_actions_oidc_trust() {
    const MAIN: Keys = &[
        ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
        ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:ref:refs/heads/main"]),
    ];
    assert_none_failed(run("github", &[(GITHUB_TRUST, Trust)], &[
        ("main branch", WEB, "*", Federated(GITHUB), MAIN, Allow),
        ("environment", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:environment:prod"]),
        ], Allow),
        ("pull request", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:pull_request"]),
        ], Allow),
        ("other repository", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/other-repo:ref:refs/heads/main"]),
        ], ImplicitDeny),
        ("repository whose name extends the allowed one", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo-fork:ref:refs/heads/main"]),
        ], ImplicitDeny),
        ("other organization", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:evil-org/octo-repo:ref:refs/heads/main"]),
        ], ImplicitDeny),
        ("wrong audience", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["https://github.com/octo-org"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:ref:refs/heads/main"]),
        ], ImplicitDeny),
        ("no audience", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:ref:refs/heads/main"]),
        ], ImplicitDeny),
        ("no subject", WEB, "*", Federated(GITHUB), &[("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"])], ImplicitDeny),
        ("several audiences, one right", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["other", "sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:octo-org/octo-repo:ref:refs/heads/main"]),
        ], Allow),
        ("keys in other letter case", WEB, "*", Federated(GITHUB), &[
            ("Token.Actions.GitHubUserContent.com:AUD", &["sts.amazonaws.com"]),
            ("TOKEN.ACTIONS.GITHUBUSERCONTENT.COM:sub", &["repo:octo-org/octo-repo:ref:refs/heads/main"]),
        ], Allow),
        ("provider of another account", WEB, "*", Federated("arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com"), MAIN, ImplicitDeny),
        ("another provider", WEB, "*", Federated("arn:aws:iam::123456789012:oidc-provider/gitlab.com"), MAIN, ImplicitDeny),
        ("plain AssumeRole", "sts:AssumeRole", "*", Federated(GITHUB), MAIN, ImplicitDeny),
        ("action in other letter case", "STS:assumerolewithwebidentity", "*", Federated(GITHUB), MAIN, Allow),
        ("an IAM user", WEB, "*", Aws("arn:aws:iam::123456789012:user/alice", "123456789012"), MAIN, ImplicitDeny),
        ("anonymous", WEB, "*", Nobody, MAIN, ImplicitDeny),
    ]));
}

/// The deploy role of berth's own proof: only the main branch of one repository.
#[test]
#[rustfmt::skip]
fn deploy_role_pinned_to_main() {
    const DEPLOY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"},
        "Action":"sts:AssumeRoleWithWebIdentity",
        "Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"sts.amazonaws.com",
                                     "token.actions.githubusercontent.com:sub":"repo:acme/shop:ref:refs/heads/main"}}}}"#;
    assert_none_failed(run("deploy", &[(DEPLOY, Trust)], &[
        ("main", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:acme/shop:ref:refs/heads/main"]),
        ], Allow),
        ("another branch", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:acme/shop:ref:refs/heads/feature"]),
        ], ImplicitDeny),
        ("a branch named like main", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:acme/shop:ref:refs/heads/main2"]),
        ], ImplicitDeny),
        ("pull request", WEB, "*", Federated(GITHUB), &[
            ("token.actions.githubusercontent.com:aud", &["sts.amazonaws.com"]),
            ("token.actions.githubusercontent.com:sub", &["repo:acme/shop:pull_request"]),
        ], ImplicitDeny),
    ]));
}

/// The task role and execution role trust of ECS, plain and with AWS's confused-deputy guard.
#[test]
#[rustfmt::skip]
fn ecs_tasks_service_trust() {
    const TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow",
        "Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const GUARDED: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"Service":["ecs-tasks.amazonaws.com"]},"Action":"sts:AssumeRole",
        "Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-west-2:111122223333:*"},
                     "StringEquals":{"aws:SourceAccount":"111122223333"}}}]}"#;
    const ECS: &str = "ecs-tasks.amazonaws.com";
    assert_none_failed(run("tasks", &[(TASKS, Trust)], &[
        ("ecs tasks", "sts:AssumeRole", "*", Service(ECS), NO_KEYS, Allow),
        ("service name in capitals", "sts:AssumeRole", "*", Service("ECS-TASKS.amazonaws.com"), NO_KEYS, Allow),
        ("another service", "sts:AssumeRole", "*", Service("ec2.amazonaws.com"), NO_KEYS, ImplicitDeny),
        ("a user", "sts:AssumeRole", "*", Aws("arn:aws:iam::111122223333:user/alice", "111122223333"), NO_KEYS, ImplicitDeny),
        ("other action", "sts:TagSession", "*", Service(ECS), NO_KEYS, ImplicitDeny),
        ("a federated caller", "sts:AssumeRole", "*", Federated(ECS), NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("guarded", &[(GUARDED, Trust)], &[
        ("right task, right account", "sts:AssumeRole", "*", Service(ECS), &[
            ("aws:SourceArn", &["arn:aws:ecs:us-west-2:111122223333:task/default/0123"]),
            ("aws:SourceAccount", &["111122223333"]),
        ], Allow),
        ("another account", "sts:AssumeRole", "*", Service(ECS), &[
            ("aws:SourceArn", &["arn:aws:ecs:us-west-2:444455556666:task/default/0123"]),
            ("aws:SourceAccount", &["444455556666"]),
        ], ImplicitDeny),
        ("another region", "sts:AssumeRole", "*", Service(ECS), &[
            ("aws:SourceArn", &["arn:aws:ecs:us-east-1:111122223333:task/default/0123"]),
            ("aws:SourceAccount", &["111122223333"]),
        ], ImplicitDeny),
        ("no source", "sts:AssumeRole", "*", Service(ECS), NO_KEYS, ImplicitDeny),
    ]));
}

#[test]
#[rustfmt::skip]
fn aws_principals() {
    const ACCOUNT_ROOT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}}"#;
    const ACCOUNT_ID: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}"#;
    const ONE_USER: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"AWS":["arn:aws:iam::111122223333:user/alice"]},"Action":"sts:AssumeRole"}}"#;
    const ONE_ROLE: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::111122223333:role/path/Deployer"},"Action":["sts:AssumeRole","sts:TagSession"]}}"#;
    const MIXED: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
        "Principal":{"AWS":["arn:aws:iam::111122223333:user/alice","444455556666"],"Service":"lambda.amazonaws.com"},
        "Action":"sts:AssumeRole"}}"#;
    const ALICE: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/alice", "111122223333");
    const BOB: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/bob", "111122223333");
    const ROOT: crate::policy::Who = Aws("arn:aws:iam::111122223333:root", "111122223333");
    const STRANGER: crate::policy::Who = Aws("arn:aws:iam::999999999999:user/alice", "999999999999");
    const DEPLOYER_SESSION: crate::policy::Who = Aws("arn:aws:sts::111122223333:assumed-role/Deployer/run-42", "111122223333");
    for (name, doc) in [("root arn", ACCOUNT_ROOT), ("account id", ACCOUNT_ID)] {
        assert_none_failed(run(name, &[(doc, Trust)], &[
            ("user of the account", "sts:AssumeRole", "*", ALICE, NO_KEYS, Allow),
            ("role session of the account", "sts:AssumeRole", "*", DEPLOYER_SESSION, NO_KEYS, Allow),
            ("the root", "sts:AssumeRole", "*", ROOT, NO_KEYS, Allow),
            ("user of another account", "sts:AssumeRole", "*", STRANGER, NO_KEYS, ImplicitDeny),
            ("a service", "sts:AssumeRole", "*", Service("ecs-tasks.amazonaws.com"), NO_KEYS, ImplicitDeny),
        ]));
    }
    assert_none_failed(run("one user", &[(ONE_USER, Trust)], &[
        ("alice", "sts:AssumeRole", "*", ALICE, NO_KEYS, Allow),
        ("bob", "sts:AssumeRole", "*", BOB, NO_KEYS, ImplicitDeny),
        ("alice of another account", "sts:AssumeRole", "*", STRANGER, NO_KEYS, ImplicitDeny),
        ("the root of the account", "sts:AssumeRole", "*", ROOT, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("one role", &[(ONE_ROLE, Trust)], &[
        ("the role's session", "sts:AssumeRole", "*", DEPLOYER_SESSION, NO_KEYS, Allow),
        ("the role itself", "sts:TagSession", "*", Aws("arn:aws:iam::111122223333:role/path/Deployer", "111122223333"), NO_KEYS, Allow),
        ("another role's session", "sts:AssumeRole", "*", Aws("arn:aws:sts::111122223333:assumed-role/Other/run-42", "111122223333"), NO_KEYS, ImplicitDeny),
        ("same role name, other account", "sts:AssumeRole", "*", Aws("arn:aws:sts::999999999999:assumed-role/Deployer/run-42", "999999999999"), NO_KEYS, ImplicitDeny),
        ("a user", "sts:AssumeRole", "*", ALICE, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("mixed", &[(MIXED, Trust)], &[
        ("alice", "sts:AssumeRole", "*", ALICE, NO_KEYS, Allow),
        ("any principal of the second account", "sts:AssumeRole", "*", Aws("arn:aws:iam::444455556666:user/x", "444455556666"), NO_KEYS, Allow),
        ("lambda", "sts:AssumeRole", "*", Service("lambda.amazonaws.com"), NO_KEYS, Allow),
        ("bob", "sts:AssumeRole", "*", BOB, NO_KEYS, ImplicitDeny),
    ]));
}

#[test]
#[rustfmt::skip]
fn everyone_and_not_principal() {
    const ANYONE_IN_ORG_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*",
        "Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}}}"#;
    const AWS_STAR: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"ecr:*"}}"#;
    const ONLY_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Anyone may read","Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"},
        {"Sid":"But only alice","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"*","Resource":"*"}]}"#;
    const ALICE: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/alice", "111122223333");
    const BOB: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/bob", "111122223333");
    assert_none_failed(run("anyone in account", &[(ANYONE_IN_ORG_ACCOUNT, Trust)], &[
        ("principal of the account", "sts:AssumeRole", "*", BOB, &[("aws:PrincipalAccount", &["111122223333"])], Allow),
        ("principal of another account", "sts:AssumeRole", "*", BOB, &[("aws:PrincipalAccount", &["999999999999"])], ImplicitDeny),
        ("anonymous without the key", "sts:AssumeRole", "*", Nobody, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("aws star", &[(AWS_STAR, Resource)], &[
        ("a user", "ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/app", BOB, NO_KEYS, Allow),
        ("a service", "ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/app", Service("ecs-tasks.amazonaws.com"), NO_KEYS, Allow),
        ("anonymous", "ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/app", Nobody, NO_KEYS, Allow),
        ("other action", "s3:GetObject", "arn:aws:ecr:us-east-1:111122223333:repository/app", BOB, NO_KEYS, ImplicitDeny),
    ]));
    assert_none_failed(run("only alice", &[(ONLY_ALICE, Resource)], &[
        ("alice", "secretsmanager:GetSecretValue", "*", ALICE, NO_KEYS, Allow),
        ("bob", "secretsmanager:GetSecretValue", "*", BOB, NO_KEYS, ExplicitDeny),
        ("anonymous", "secretsmanager:GetSecretValue", "*", Nobody, NO_KEYS, ExplicitDeny),
        ("a service", "secretsmanager:GetSecretValue", "*", Service("ecs-tasks.amazonaws.com"), NO_KEYS, ExplicitDeny),
    ]));
}

/// A decision point that sees an identity policy and a resource policy together: the identity
/// policy ignores the principal, the resource policy's deny still wins.
#[test]
#[rustfmt::skip]
fn identity_and_resource_policies_together() {
    const IDENTITY: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#;
    const REPO: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"ecr:PutImage"},
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/carol"},"Action":"ecr:BatchGetImage",
         "Resource":"arn:aws:ecr:us-east-1:111122223333:repository/app"}]}"#;
    const R: &str = "arn:aws:ecr:us-east-1:111122223333:repository/app";
    const BOB: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/bob", "111122223333");
    const CAROL: crate::policy::Who = Aws("arn:aws:iam::111122223333:user/carol", "111122223333");
    assert_none_failed(run("both", &[(IDENTITY, Identity), (REPO, Resource)], &[
        ("bob pulls", "ecr:BatchGetImage", R, BOB, NO_KEYS, Allow),
        ("bob pushes", "ecr:PutImage", R, BOB, NO_KEYS, ExplicitDeny),
        ("carol pushes", "ecr:PutImage", R, CAROL, NO_KEYS, Allow),
    ]));
    assert_none_failed(run("resource alone", &[(REPO, Resource)], &[
        ("carol pulls", "ecr:BatchGetImage", R, CAROL, NO_KEYS, Allow),
        ("carol pulls another repository", "ecr:BatchGetImage", "arn:aws:ecr:us-east-1:111122223333:repository/other", CAROL, NO_KEYS, ImplicitDeny),
        ("bob pulls", "ecr:BatchGetImage", R, BOB, NO_KEYS, ImplicitDeny),
        ("bob pushes anywhere", "ecr:PutImage", "arn:aws:ecr:us-east-1:111122223333:repository/other", BOB, NO_KEYS, ExplicitDeny),
    ]));
}
