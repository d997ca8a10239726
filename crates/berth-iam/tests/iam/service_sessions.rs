//! Sessions for AWS services acting with a role (ECS tasks): `StsService::assume_role_for_service`.

use std::sync::Arc;
use std::time::SystemTime;

use berth_aws::time::{SharedClock, SystemClock, Timestamp};
use berth_aws::{AwsContext, CredentialStore, PrincipalKind, Secret};
use berth_iam::oidc::{OidcConfig, OidcVerifier};
use berth_iam::{IamError, IamService, IamState, RootCredentialSource, RootCredentials, StsService};
use berth_store::Store;

const ACCOUNT: &str = "000000000000";

fn trust(condition: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"ecs-tasks.amazonaws.com"}},"Action":"sts:AssumeRole"{condition}}}]}}"#
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    state: Arc<IamState>,
    store: Store,
    sts: StsService,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    store.migrate("iam", berth_iam::schema::MIGRATIONS).expect("migrate");
    let root = RootCredentials {
        access_key_id: "AKIAROOTROOTROOT0001".into(),
        secret_access_key: Secret::new("root-secret-root-secret-root-secret-0001"),
        source: RootCredentialSource::Environment,
    };
    let now = Timestamp::from_system(SystemTime::now());
    let state = IamState::load(&AwsContext::default(), &root, &store, now).expect("load iam state");
    let clock: SharedClock = Arc::new(SystemClock);
    let sts =
        StsService::new(store.clone(), clock.clone(), state.clone(), OidcVerifier::new(OidcConfig::default(), clock));
    Setup { _dir: dir, state, store, sts }
}

async fn create_role(s: &Setup, name: &str, trust_policy: &str) -> String {
    use berth_aws::{Input, Principal, QueryInput, RequestContext, Service};
    let iam = IamService::new(s.store.clone(), Arc::new(SystemClock), s.state.clone());
    let ctx = RequestContext {
        request_id: "t".into(),
        operation: "CreateRole",
        principal: Arc::new(Principal {
            arn: format!("arn:aws:iam::{ACCOUNT}:root"),
            user_id: ACCOUNT.into(),
            account_id: ACCOUNT.into(),
            access_key_id: "AKIAROOTROOTROOT0001".into(),
            kind: PrincipalKind::Root,
        }),
        aws: Arc::new(AwsContext::default()),
        source_ip: None,
    };
    let input = Input::Query(QueryInput::from_pairs([("RoleName", name), ("AssumeRolePolicyDocument", trust_policy)]));
    iam.call(&ctx, input).await.expect("CreateRole");
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

#[tokio::test]
async fn a_role_trusting_ecs_tasks_gives_the_service_a_working_session() {
    let s = setup();
    let arn = create_role(&s, "task-role", &trust("")).await;
    let task = "arn:aws:ecs:us-east-1:000000000000:task/default/0123456789abcdef";
    let session = s
        .sts
        .assume_role_for_service(&arn, "ecs-tasks.amazonaws.com", Some(task), "0123456789abcdef", 3600)
        .await
        .unwrap();
    assert!(session.access_key_id.starts_with("ASIA"));
    assert_eq!(session.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/task-role/0123456789abcdef"));
    // The key works at once, as the role's session.
    let cred = s.state.lookup(&session.access_key_id).expect("the new key is known");
    assert_eq!(cred.principal.arn, session.arn);
    assert!(matches!(&cred.principal.kind, PrincipalKind::AssumedRole { role_name, .. } if role_name == "task-role"));
    assert_eq!(cred.expires_at, Some(session.expires_at));
}

#[tokio::test]
async fn trust_policies_decide_which_services_and_sources_may_use_a_role() {
    let s = setup();
    let ec2_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let arn = create_role(&s, "ec2-role", ec2_only).await;
    let e = s.sts.assume_role_for_service(&arn, "ecs-tasks.amazonaws.com", None, "t1", 3600).await.unwrap_err();
    assert!(
        matches!(&e, IamError::AccessDenied(m) if m.contains("ecs-tasks.amazonaws.com") && m.contains(&arn)),
        "{e}"
    );

    // Confused-deputy conditions: the source account and the task ARN are checked.
    let scoped = trust(
        r#","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"},"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-east-1:000000000000:task/prod/*"}}"#,
    );
    let arn = create_role(&s, "scoped", &scoped).await;
    let prod = "arn:aws:ecs:us-east-1:000000000000:task/prod/abc";
    let dev = "arn:aws:ecs:us-east-1:000000000000:task/dev/abc";
    assert!(s.sts.assume_role_for_service(&arn, "ecs-tasks.amazonaws.com", Some(prod), "abc", 3600).await.is_ok());
    assert!(s.sts.assume_role_for_service(&arn, "ecs-tasks.amazonaws.com", Some(dev), "abc", 3600).await.is_err());

    // A role that does not exist, or in another account, is refused the same way.
    let missing = format!("arn:aws:iam::{ACCOUNT}:role/nope");
    assert!(s.sts.assume_role_for_service(&missing, "ecs-tasks.amazonaws.com", None, "t", 3600).await.is_err());
    let other = "arn:aws:iam::111111111111:role/task-role";
    assert!(s.sts.assume_role_for_service(other, "ecs-tasks.amazonaws.com", None, "t", 3600).await.is_err());
}
