//! IAM and STS enforced on every request: the operation tables, least-privilege users, roles and
//! their sessions, with real signed requests over real sockets.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_aws::sigv4::SigningCredentials;
use berth_aws::time::ManualClock;
use berth_aws::Auth;
use berth_server::client::{ApiClient, ApiResponse};
use berth_server::testing::TestServer;

const IAM: &str = "2010-05-08";
const STS: &str = "2011-06-15";

/// Operations that are not authorized by an identity policy for `<prefix>:<Operation>`, and why.
const NOT_BY_IDENTITY_POLICY: &[(&str, &str)] = &[
    ("GetCallerIdentity", "answered for every valid credential, as AWS does"),
    ("AssumeRole", "the trust policy and sts:AssumeRole are evaluated in the handler"),
    ("AssumeRoleWithWebIdentity", "unsigned; the token and the trust policy decide"),
];

async fn iam(c: &ApiClient, action: &str, params: &[(&str, &str)]) -> ApiResponse {
    c.query("iam", action, IAM, params).await.expect("request")
}

async fn sts(c: &ApiClient, action: &str, params: &[(&str, &str)]) -> ApiResponse {
    c.query("sts", action, STS, params).await.expect("request")
}

fn ok(r: ApiResponse) -> ApiResponse {
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn error(r: &ApiResponse, status: u16, code: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.xml_value("Code").as_deref(), Some(code), "{}", r.text());
    r.xml_value("Message").unwrap_or_default()
}

/// Creates a user with an access key and the given inline policy; returns a client signed with its key.
async fn user_with_policy(t: &TestServer, name: &str, policy: &str) -> ApiClient {
    t.user_client(name, Some(policy)).await
}

#[tokio::test]
async fn every_routed_operation_has_an_authorization_entry_and_a_handler() {
    let t = TestServer::start().await;
    let mut count = 0;
    for spec in &t.server.services {
        for op in spec.operations {
            count += 1;
            match &op.auth {
                Auth::Action { action, .. } => {
                    assert_eq!(*action, format!("{}:{}", spec.action_prefix, op.name), "{}", op.name)
                }
                Auth::AnyAuthenticated | Auth::Unsigned => assert!(
                    NOT_BY_IDENTITY_POLICY.iter().any(|(name, _)| *name == op.name),
                    "{} is not authorized by an identity policy: add it to NOT_BY_IDENTITY_POLICY with the reason",
                    op.name
                ),
            }
            // The handler exists: an empty call gets a validation error or an answer, never "no such operation".
            let version = if spec.signing_name == "sts" { STS } else { IAM };
            let r = t.client.query(spec.signing_name, op.name, version, &[]).await.unwrap();
            assert!(r.status < 500, "{} answered {}: {}", op.name, r.status, r.text());
            assert_ne!(r.xml_value("Code").as_deref(), Some("InvalidAction"), "{}: {}", op.name, r.text());
        }
    }
    assert!(count > 40, "only {count} operations routed");
    t.shutdown().await;
}

#[tokio::test]
async fn a_user_can_do_only_what_its_policies_allow() {
    let t = TestServer::start().await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:ListRoles"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::000000000000:user/${aws:username}"},
        {"Effect": "Deny", "Action": "iam:ListRoles", "Resource": "*"}
    ]}"#;
    let deployer = user_with_policy(&t, "deployer", policy).await;

    let me = ok(sts(&deployer, "GetCallerIdentity", &[]).await);
    assert_eq!(me.xml_value("Arn").as_deref(), Some("arn:aws:iam::000000000000:user/deployer"));
    assert!(me.xml_value("UserId").unwrap().starts_with("AIDA"));

    ok(iam(&deployer, "ListUsers", &[]).await);
    ok(iam(&deployer, "GetUser", &[("UserName", "deployer")]).await);
    ok(iam(&deployer, "GetUser", &[]).await);
    ok(iam(&t.client, "CreateUser", &[("UserName", "other")]).await);
    let msg = error(&iam(&deployer, "GetUser", &[("UserName", "other")]).await, 403, "AccessDenied");
    assert_eq!(
        msg,
        "User: arn:aws:iam::000000000000:user/deployer is not authorized to perform: iam:GetUser on resource: arn:aws:iam::000000000000:user/other"
    );
    // An explicit deny beats the allow.
    error(&iam(&deployer, "ListRoles", &[]).await, 403, "AccessDenied");
    // Nothing else is allowed, and nothing is written.
    error(&iam(&deployer, "CreateUser", &[("UserName", "mallory")]).await, 403, "AccessDenied");
    error(&iam(&t.client, "GetUser", &[("UserName", "mallory")]).await, 404, "NoSuchEntity");

    // A deactivated key stops working at once; a reactivated one works again.
    let keys = ok(iam(&t.client, "ListAccessKeys", &[("UserName", "deployer")]).await);
    let key_id = keys.xml_value("AccessKeyId").unwrap();
    ok(iam(
        &t.client,
        "UpdateAccessKey",
        &[("UserName", "deployer"), ("AccessKeyId", &key_id), ("Status", "Inactive")],
    )
    .await);
    error(&sts(&deployer, "GetCallerIdentity", &[]).await, 403, "InvalidClientTokenId");
    ok(iam(&t.client, "UpdateAccessKey", &[("UserName", "deployer"), ("AccessKeyId", &key_id), ("Status", "Active")])
        .await);
    ok(sts(&deployer, "GetCallerIdentity", &[]).await);

    // The user cannot go while it has keys and policies.
    error(&iam(&t.client, "DeleteUser", &[("UserName", "deployer")]).await, 409, "DeleteConflict");
    t.shutdown().await;
}

const TRUST_ACCOUNT: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]}"#;

#[tokio::test]
async fn role_sessions_carry_the_roles_permissions_until_they_expire() {
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let t = TestServer::start_with_clock(clock.clone()).await;
    let role = ok(iam(
        &t.client,
        "CreateRole",
        &[("RoleName", "deploy"), ("AssumeRolePolicyDocument", TRUST_ACCOUNT), ("MaxSessionDuration", "7200")],
    )
    .await);
    let role_arn = role.xml_value("Arn").unwrap();
    assert_eq!(role_arn, "arn:aws:iam::000000000000:role/deploy");
    let role_policy =
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}"#;
    ok(iam(
        &t.client,
        "PutRolePolicy",
        &[("RoleName", "deploy"), ("PolicyName", "list"), ("PolicyDocument", role_policy)],
    )
    .await);

    // The trust policy names the account: the caller's own policies must allow sts:AssumeRole too.
    let nobody = user_with_policy(
        &t,
        "nobody",
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}"#,
    )
    .await;
    let msg = error(
        &sts(&nobody, "AssumeRole", &[("RoleArn", &role_arn), ("RoleSessionName", "s1")]).await,
        403,
        "AccessDenied",
    );
    assert_eq!(
        msg,
        format!("User: arn:aws:iam::000000000000:user/nobody is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
    );
    let allowed = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "{role_arn}"}}]}}"#
    );
    let pipeline = user_with_policy(&t, "pipeline", &allowed).await;
    let too_long =
        sts(&pipeline, "AssumeRole", &[("RoleArn", &role_arn), ("RoleSessionName", "s1"), ("DurationSeconds", "7201")])
            .await;
    error(&too_long, 400, "ValidationError");
    error(
        &sts(&pipeline, "AssumeRole", &[("RoleArn", "arn:aws:iam::000000000000:role/nope"), ("RoleSessionName", "s1")])
            .await,
        403,
        "AccessDenied",
    );

    let session = ok(sts(&pipeline, "AssumeRole", &[("RoleArn", &role_arn), ("RoleSessionName", "ci-run-7")]).await);
    let key = session.xml_value("AccessKeyId").unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_eq!(session.xml_value("Arn").as_deref(), Some("arn:aws:sts::000000000000:assumed-role/deploy/ci-run-7"));
    let as_role = t.client_with(SigningCredentials {
        access_key_id: key,
        secret_access_key: session.xml_value("SecretAccessKey").unwrap(),
        session_token: session.xml_value("SessionToken"),
    });
    let me = ok(sts(&as_role, "GetCallerIdentity", &[]).await);
    assert_eq!(me.xml_value("Arn").as_deref(), Some("arn:aws:sts::000000000000:assumed-role/deploy/ci-run-7"));
    assert!(me.xml_value("UserId").unwrap().starts_with("AROA"));
    assert!(me.xml_value("UserId").unwrap().ends_with(":ci-run-7"));
    ok(iam(&as_role, "ListRoles", &[]).await);
    let msg = error(&iam(&as_role, "ListUsers", &[]).await, 403, "AccessDenied");
    assert!(
        msg.starts_with(
            "User: arn:aws:sts::000000000000:assumed-role/deploy/ci-run-7 is not authorized to perform: iam:ListUsers"
        ),
        "{msg}"
    );

    // Without its session token, the key is refused.
    let no_token = t.client_with(SigningCredentials { session_token: None, ..as_role_creds(&session) });
    error(&sts(&no_token, "GetCallerIdentity", &[]).await, 403, "InvalidClientTokenId");

    // The session survives a restart of nothing but time: after an hour it is expired.
    clock.advance(Duration::from_secs(3601));
    error(&sts(&as_role, "GetCallerIdentity", &[]).await, 403, "ExpiredToken");
    t.shutdown().await;
}

fn as_role_creds(session: &ApiResponse) -> SigningCredentials {
    SigningCredentials {
        access_key_id: session.xml_value("AccessKeyId").unwrap(),
        secret_access_key: session.xml_value("SecretAccessKey").unwrap(),
        session_token: session.xml_value("SessionToken"),
    }
}

#[tokio::test]
async fn a_trust_policy_naming_the_user_is_enough_and_sessions_survive_a_restart() {
    let t = TestServer::start().await;
    let nobody = user_with_policy(
        &t,
        "builder",
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}"#,
    )
    .await;
    let trust = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/builder"}, "Action": "sts:AssumeRole"}]}"#;
    ok(iam(&t.client, "CreateRole", &[("RoleName", "build"), ("AssumeRolePolicyDocument", trust)]).await);
    let session = ok(sts(
        &nobody,
        "AssumeRole",
        &[("RoleArn", "arn:aws:iam::000000000000:role/build"), ("RoleSessionName", "b1")],
    )
    .await);
    let t = t.restart().await;
    let as_role = t.client_with(as_role_creds(&session));
    let me = ok(sts(&as_role, "GetCallerIdentity", &[]).await);
    assert_eq!(me.xml_value("Arn").as_deref(), Some("arn:aws:sts::000000000000:assumed-role/build/b1"));
    // Deleting the role ends its sessions.
    ok(iam(&t.client, "DeleteRole", &[("RoleName", "build")]).await);
    error(&sts(&as_role, "GetCallerIdentity", &[]).await, 403, "InvalidClientTokenId");
    t.shutdown().await;
}
