//! The managed and inline policy API of IAM, called through `berth_aws::Service::call` on an
//! `IamService` over a real SQLite store, as the root user: shapes, pagination, errors, the
//! all-or-nothing writes, the built-in AWS managed policies, and the effect of every change on the
//! in-memory `IamState` that authorizes requests.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use berth_aws::query::form_decode;
use berth_aws::time::{SharedClock, SystemClock, Timestamp};
use berth_aws::{
    AuthzRequest, AwsContext, AwsError, Input, Output, Principal, PrincipalKind, QueryInput, RequestContext, Secret,
    Service,
};
use berth_iam::policy::{Decision, Policy, PolicyKind};
use berth_iam::{IamService, IamState, RootCredentialSource, RootCredentials};
use berth_store::Store;
use tempfile::TempDir;

const ACCOUNT: &str = "000000000000";
const ALLOW_GET_OBJECT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const ALLOW_S3: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
const DENY_GET_OBJECT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST_ECS_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const OBJECT: &str = "arn:aws:s3:::shop-assets/logo.png";

// ---------------------------------------------------------------------------------------------------
// The service under test

struct Iam {
    _dir: TempDir,
    aws: AwsContext,
    state: Arc<IamState>,
    service: IamService,
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn open(dir: &Path) -> (Store, Arc<IamState>) {
    let store = Store::open(dir).expect("open store");
    store.migrate("iam", berth_iam::schema::MIGRATIONS).expect("migrate");
    let root = RootCredentials {
        access_key_id: "AKIAROOTROOTROOT0001".into(),
        secret_access_key: Secret::new("root-secret-root-secret-root-secret-0001"),
        source: RootCredentialSource::Environment,
    };
    let state = IamState::load(&AwsContext::default(), &root, &store, now()).expect("load iam state");
    (store, state)
}

impl Iam {
    fn new() -> Iam {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, state) = open(dir.path());
        let clock: SharedClock = Arc::new(SystemClock);
        let service = IamService::new(store, clock, state.clone());
        Iam { _dir: dir, aws: AwsContext::default(), state, service }
    }

    fn root(&self) -> Principal {
        Principal {
            arn: self.aws.root_arn(),
            user_id: ACCOUNT.into(),
            account_id: ACCOUNT.into(),
            access_key_id: "AKIAROOTROOTROOT0001".into(),
            kind: PrincipalKind::Root,
        }
    }

    async fn call(&self, operation: &'static str, params: &[(&str, &str)]) -> Result<String, AwsError> {
        let ctx = RequestContext {
            request_id: "test-request".into(),
            operation,
            principal: self.root().into(),
            aws: self.aws.clone().into(),
            source_ip: None,
        };
        let input = Input::Query(QueryInput::from_pairs(params.iter().copied()));
        match self.service.call(&ctx, input).await? {
            Output::Xml(xml) => Ok(xml.unwrap_or_default()),
            Output::Json(v) => panic!("{operation}: IAM answered JSON: {v}"),
        }
    }

    async fn ok(&self, operation: &'static str, params: &[(&str, &str)]) -> String {
        match self.call(operation, params).await {
            Ok(xml) => xml,
            Err(e) => panic!("{operation} {params:?} failed: {} {}: {}", e.status, e.code, e.message),
        }
    }

    async fn err(&self, operation: &'static str, params: &[(&str, &str)]) -> AwsError {
        match self.call(operation, params).await {
            Ok(xml) => panic!("{operation} {params:?} succeeded: {xml}"),
            Err(e) => e,
        }
    }

    async fn create_user(&self, name: &str) {
        self.ok("CreateUser", &[("UserName", name)]).await;
    }

    async fn create_role(&self, name: &str) {
        self.ok("CreateRole", &[("RoleName", name), ("AssumeRolePolicyDocument", TRUST_ECS_TASKS)]).await;
    }

    /// Creates a customer managed policy at `/` and returns its ARN.
    async fn create_policy(&self, name: &str, document: &str) -> String {
        let xml = self.ok("CreatePolicy", &[("PolicyName", name), ("PolicyDocument", document)]).await;
        let arn = text(&xml, "Arn");
        assert_eq!(arn, policy_arn(name));
        arn
    }

    /// Every page of a list operation, following `Marker`: the values of `field` in order, and the number of pages.
    async fn list_all(
        &self,
        operation: &'static str,
        params: &[(&str, &str)],
        max_items: &str,
        field: &str,
    ) -> (Vec<String>, usize) {
        let mut values = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut p: Vec<(&str, &str)> = params.to_vec();
            p.push(("MaxItems", max_items));
            if let Some(m) = &marker {
                p.push(("Marker", m));
            }
            let xml = self.ok(operation, &p).await;
            pages += 1;
            values.extend(texts(&xml, field));
            match text(&xml, "IsTruncated").as_str() {
                "true" => marker = Some(text(&xml, "Marker")),
                "false" => {
                    assert!(find(&xml, "Marker").is_none(), "{xml}");
                    return (values, pages);
                }
                other => panic!("IsTruncated {other}"),
            }
            assert!(pages < 100, "pagination does not end");
        }
    }

    /// The identity-policy decision for IAM user `name` doing `action` on `resource`.
    fn user_decision(&self, name: &str, action: &str, resource: &str) -> Decision {
        let principal = Principal {
            arn: self.aws.global_arn("iam", &format!("user/{name}")),
            user_id: "AIDAEXAMPLEEXAMPLE01".into(),
            account_id: ACCOUNT.into(),
            access_key_id: "AKIAEXAMPLEEXAMPLE01".into(),
            kind: PrincipalKind::User { name: name.into() },
        };
        self.decision(&principal, action, resource)
    }

    /// The identity-policy decision for a session of role `role`.
    fn role_decision(&self, role: &str, action: &str, resource: &str) -> Decision {
        let principal = Principal {
            arn: self.aws.global_arn("sts", &format!("assumed-role/{role}/task")),
            user_id: "AROAEXAMPLEEXAMPLE01:task".into(),
            account_id: ACCOUNT.into(),
            access_key_id: "ASIAEXAMPLEEXAMPLE01".into(),
            kind: PrincipalKind::AssumedRole { role_name: role.into(), session_name: "task".into() },
        };
        self.decision(&principal, action, resource)
    }

    fn decision(&self, principal: &Principal, action: &str, resource: &str) -> Decision {
        self.state.identity_decision(&AuthzRequest {
            principal,
            action,
            resource,
            source_ip: None,
            now: now(),
            region: "us-east-1",
            resource_policy: None,
        })
    }
}

fn policy_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
}

fn assert_error(e: &AwsError, status: u16, code: &str, message: &str) {
    assert_eq!((e.status, e.code.as_ref(), e.message.as_str()), (status, code, message), "{e:?}");
}

/// A policy document with exactly `size` characters that are not white space.
fn document_of_size(size: usize) -> String {
    let shape = |sid: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{sid}","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#
        )
    };
    let base = shape("").chars().count();
    assert!(size > base, "a document cannot be smaller than {base}");
    let doc = shape(&"A".repeat(size - base));
    assert_eq!(doc.chars().filter(|c| !c.is_whitespace()).count(), size);
    doc
}

// ---------------------------------------------------------------------------------------------------
// XML

fn find<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(&xml[start..end])
}

fn text(xml: &str, tag: &str) -> String {
    find(xml, tag).unwrap_or_else(|| panic!("no <{tag}> in {xml}")).to_string()
}

fn texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

/// A URL-encoded policy document as IAM returns it, decoded as botocore does.
fn document(xml: &str, tag: &str) -> String {
    let encoded = text(xml, tag);
    assert!(encoded.starts_with("%7B"), "documents are returned URL-encoded: {encoded}");
    form_decode(&encoded).expect("URL-encoded document")
}

// ---------------------------------------------------------------------------------------------------
// Managed policies

#[tokio::test]
async fn create_get_and_list_policies() {
    let iam = Iam::new();
    let xml = iam
        .ok(
            "CreatePolicy",
            &[
                ("PolicyName", "deploy-assets"),
                ("Path", "/team/web/"),
                ("PolicyDocument", ALLOW_S3),
                ("Description", "Lets the pipeline publish assets"),
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "web"),
            ],
        )
        .await;
    let created = text(&xml, "Policy");
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/team/web/deploy-assets");
    assert_eq!(text(&created, "PolicyName"), "deploy-assets");
    assert_eq!(text(&created, "Arn"), arn);
    assert_eq!(text(&created, "Path"), "/team/web/");
    assert_eq!(text(&created, "DefaultVersionId"), "v1");
    assert_eq!(text(&created, "AttachmentCount"), "0");
    assert_eq!(text(&created, "PermissionsBoundaryUsageCount"), "0");
    assert_eq!(text(&created, "IsAttachable"), "true");
    assert_eq!(text(&created, "Description"), "Lets the pipeline publish assets");
    assert_eq!(text(&created, "Key"), "team");
    assert_eq!(text(&created, "Value"), "web");
    let id = text(&created, "PolicyId");
    assert!(id.starts_with("ANPA") && id.len() == 21, "{id}");
    let created_at = text(&created, "CreateDate");
    assert!(Timestamp::parse_iso8601(&created_at).is_some(), "{created_at}");
    assert_eq!(text(&created, "UpdateDate"), created_at);

    // GetPolicy shows the same policy.
    let got = text(&iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await, "Policy");
    assert_eq!(got, created);

    // Its first version holds the document, URL-encoded.
    let v1 = iam.ok("GetPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v1")]).await;
    assert_eq!(document(&v1, "Document"), ALLOW_S3);
    assert_eq!(text(&v1, "IsDefaultVersion"), "true");
    assert_eq!(text(&v1, "VersionId"), "v1");

    // Names are unique in the account, whatever the case and the path.
    let e = iam.err("CreatePolicy", &[("PolicyName", "Deploy-Assets"), ("PolicyDocument", ALLOW_S3)]).await;
    assert_error(
        &e,
        409,
        "EntityAlreadyExists",
        "A policy called Deploy-Assets already exists. Duplicate names are not allowed.",
    );

    // Missing, unknown and malformed ARNs.
    let missing = policy_arn("nothing-here");
    let e = iam.err("GetPolicy", &[("PolicyArn", &missing)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {missing} does not exist or is not attachable."));
    let e = iam.err("GetPolicy", &[("PolicyArn", "not-an-arn-but-long-enough")]).await;
    assert_error(&e, 400, "InvalidInput", "ARN not-an-arn-but-long-enough is not valid.");
    assert_eq!(iam.err("GetPolicy", &[]).await.code, "ValidationError");
    let e = iam.err("CreatePolicy", &[("PolicyName", "bad name"), ("PolicyDocument", ALLOW_S3)]).await;
    assert_eq!(e.code, "ValidationError");
    let e = iam.err("CreatePolicy", &[("PolicyName", "p"), ("Path", "/no-end"), ("PolicyDocument", ALLOW_S3)]).await;
    assert_eq!(e.code, "ValidationError");
    let long = "d".repeat(1001);
    let e = iam.err("CreatePolicy", &[("PolicyName", "p"), ("Description", &long), ("PolicyDocument", ALLOW_S3)]).await;
    assert_eq!(e.code, "ValidationError");

    // Seven more local policies, listed in name order over pages of two.
    for name in ["zeta", "alpha", "Mu", "beta", "epsilon", "Gamma", "delta"] {
        iam.create_policy(name, ALLOW_GET_OBJECT).await;
    }
    let (names, pages) = iam.list_all("ListPolicies", &[("Scope", "Local")], "2", "PolicyName").await;
    assert_eq!(names, ["alpha", "beta", "delta", "deploy-assets", "epsilon", "Gamma", "Mu", "zeta"]);
    assert_eq!(pages, 4);
    let (one_page, pages) = iam.list_all("ListPolicies", &[("Scope", "Local")], "100", "PolicyName").await;
    assert_eq!((one_page, pages), (names.clone(), 1));

    // ListPolicies leaves out descriptions and tags.
    let listed = iam.ok("ListPolicies", &[("Scope", "Local"), ("PathPrefix", "/team/")]).await;
    assert_eq!(texts(&listed, "PolicyName"), ["deploy-assets"]);
    assert!(find(&listed, "Description").is_none() && find(&listed, "Tags").is_none(), "{listed}");
    assert_eq!(text(&listed, "AttachmentCount"), "0");
    let listed = iam.ok("ListPolicies", &[("Scope", "Local"), ("PathPrefix", "/other/")]).await;
    assert!(texts(&listed, "PolicyName").is_empty());

    // Scope=AWS lists the built-in AWS managed policies; All lists both.
    let (aws, _) = iam.list_all("ListPolicies", &[("Scope", "AWS")], "3", "Arn").await;
    assert_eq!(aws.len(), berth_iam::aws_managed::all().len());
    assert!(aws.iter().all(|a| a.starts_with("arn:aws:iam::aws:policy/")), "{aws:?}");
    assert!(aws.contains(&"arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".to_string()));
    let (all, _) = iam.list_all("ListPolicies", &[], "5", "Arn").await;
    assert_eq!(all.len(), aws.len() + names.len());
    let (only_attached, _) = iam.list_all("ListPolicies", &[("OnlyAttached", "true")], "5", "Arn").await;
    assert!(only_attached.is_empty());

    let e = iam.err("ListPolicies", &[("Scope", "Everything")]).await;
    assert_eq!((e.status, e.code.as_ref()), (400, "ValidationError"));
    let e = iam.err("ListPolicies", &[("PolicyUsageFilter", "Sometimes")]).await;
    assert_eq!(e.code, "ValidationError");
    let e = iam.err("ListPolicies", &[("MaxItems", "0")]).await;
    assert_eq!(e.code, "ValidationError");
}

#[tokio::test]
async fn policy_versions_lifecycle() {
    let iam = Iam::new();
    let arn = iam.create_policy("assets", ALLOW_S3).await;
    let version = |doc: &'static str, default: &'static str| {
        let arn = arn.clone();
        let iam = &iam;
        async move {
            let xml = iam
                .ok("CreatePolicyVersion", &[("PolicyArn", &arn), ("PolicyDocument", doc), ("SetAsDefault", default)])
                .await;
            let v = text(&xml, "PolicyVersion");
            assert!(find(&v, "Document").is_none(), "CreatePolicyVersion returns no document: {v}");
            assert_eq!(text(&v, "IsDefaultVersion"), default);
            text(&v, "VersionId")
        }
    };
    assert_eq!(version(ALLOW_GET_OBJECT, "false").await, "v2");
    assert_eq!(version(DENY_GET_OBJECT, "true").await, "v3");
    assert_eq!(version(ALLOW_GET_OBJECT, "false").await, "v4");
    assert_eq!(version(ALLOW_S3, "false").await, "v5");
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "DefaultVersionId"), "v3");

    // At most five versions; the refused one leaves nothing behind.
    let e = iam.err("CreatePolicyVersion", &[("PolicyArn", &arn), ("PolicyDocument", ALLOW_S3)]).await;
    assert_error(
        &e,
        409,
        "LimitExceeded",
        "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
    );
    let (ids, pages) = iam.list_all("ListPolicyVersions", &[("PolicyArn", &arn)], "2", "VersionId").await;
    assert_eq!((ids, pages), (vec!["v5".to_string(), "v4".into(), "v3".into(), "v2".into(), "v1".into()], 3));
    let listed = iam.ok("ListPolicyVersions", &[("PolicyArn", &arn)]).await;
    assert_eq!(texts(&listed, "IsDefaultVersion"), ["false", "false", "true", "false", "false"]);
    assert!(find(&listed, "Document").is_none(), "{listed}");

    let v3 = iam.ok("GetPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v3")]).await;
    assert_eq!(document(&v3, "Document"), DENY_GET_OBJECT);
    assert_eq!(text(&v3, "IsDefaultVersion"), "true");

    // The default version cannot be deleted, nor a policy with other versions.
    let e = iam.err("DeletePolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v3")]).await;
    assert_error(&e, 409, "DeleteConflict", "Cannot delete the default version of a policy.");
    let e = iam.err("DeletePolicy", &[("PolicyArn", &arn)]).await;
    assert_error(
        &e,
        409,
        "DeleteConflict",
        "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. \
         The default version is deleted with the policy.",
    );

    // Switch the default, then delete the others.
    iam.ok("SetDefaultPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v5")]).await;
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "DefaultVersionId"), "v5");
    let v3 = iam.ok("GetPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v3")]).await;
    assert_eq!(text(&v3, "IsDefaultVersion"), "false");
    for v in ["v1", "v2", "v3", "v4"] {
        iam.ok("DeletePolicyVersion", &[("PolicyArn", &arn), ("VersionId", v)]).await;
    }
    let e = iam.err("GetPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v1")]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {arn} version v1 does not exist or is not attachable."));
    let e = iam.err("DeletePolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v2")]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {arn} version v2 does not exist or is not attachable."));
    let e = iam.err("SetDefaultPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v9")]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {arn} version v9 does not exist or is not attachable."));
    let e = iam.err("GetPolicyVersion", &[("PolicyArn", &arn), ("VersionId", "1")]).await;
    assert_eq!((e.status, e.code.as_ref()), (400, "ValidationError"));

    // Version ids are never reused.
    assert_eq!(version(ALLOW_GET_OBJECT, "false").await, "v6");
    let (ids, _) = iam.list_all("ListPolicyVersions", &[("PolicyArn", &arn)], "10", "VersionId").await;
    assert_eq!(ids, ["v6", "v5"]);

    // Versions of a missing policy.
    let missing = policy_arn("missing");
    let e = iam.err("CreatePolicyVersion", &[("PolicyArn", &missing), ("PolicyDocument", ALLOW_S3)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {missing} does not exist or is not attachable."));
    let e = iam.err("ListPolicyVersions", &[("PolicyArn", &missing)]).await;
    assert_eq!(e.code, "NoSuchEntity");

    // Down to one version, the policy can go.
    iam.ok("DeletePolicyVersion", &[("PolicyArn", &arn), ("VersionId", "v6")]).await;
    iam.ok("DeletePolicy", &[("PolicyArn", &arn)]).await;
    let e = iam.err("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(e.code, "NoSuchEntity");
    let e = iam.err("DeletePolicy", &[("PolicyArn", &arn)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {arn} does not exist or is not attachable."));
    // The name is free again, and the new policy starts at v1.
    let arn = iam.create_policy("assets", ALLOW_S3).await;
    let (ids, _) = iam.list_all("ListPolicyVersions", &[("PolicyArn", &arn)], "10", "VersionId").await;
    assert_eq!(ids, ["v1"]);
}

// ---------------------------------------------------------------------------------------------------
// Attachments

#[tokio::test]
async fn attach_and_detach_for_users_and_roles() {
    let iam = Iam::new();
    iam.create_user("ci").await;
    iam.create_role("web-task").await;
    let arn = iam.create_policy("publish", ALLOW_S3).await;

    // Attaching is idempotent, names are case-insensitive, AttachmentCount counts entities.
    iam.ok("AttachUserPolicy", &[("UserName", "ci"), ("PolicyArn", &arn)]).await;
    iam.ok("AttachUserPolicy", &[("UserName", "CI"), ("PolicyArn", &arn)]).await;
    iam.ok("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &arn)]).await;
    let listed = iam.ok("ListAttachedUserPolicies", &[("UserName", "ci")]).await;
    assert_eq!(texts(&listed, "PolicyName"), ["publish"]);
    assert_eq!(texts(&listed, "PolicyArn"), [arn.as_str()]);
    assert_eq!(text(&listed, "IsTruncated"), "false");
    let listed = iam.ok("ListAttachedRolePolicies", &[("RoleName", "web-task")]).await;
    assert_eq!(texts(&listed, "PolicyArn"), [arn.as_str()]);
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "AttachmentCount"), "2");
    let (attached, _) = iam.list_all("ListPolicies", &[("OnlyAttached", "true")], "10", "PolicyName").await;
    assert_eq!(attached, ["publish"]);
    let (used, _) =
        iam.list_all("ListPolicies", &[("PolicyUsageFilter", "PermissionsPolicy")], "10", "PolicyName").await;
    assert_eq!(used, ["publish"]);

    // An attached policy cannot be deleted.
    let e = iam.err("DeletePolicy", &[("PolicyArn", &arn)]).await;
    assert_error(&e, 409, "DeleteConflict", "Cannot delete a policy attached to entities.");

    // Missing policies, users and roles; detaching what is not attached.
    let missing = policy_arn("missing");
    let e = iam.err("AttachUserPolicy", &[("UserName", "ci"), ("PolicyArn", &missing)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {missing} does not exist or is not attachable."));
    let e = iam.err("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &missing)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {missing} does not exist or is not attachable."));
    let e = iam.err("AttachUserPolicy", &[("UserName", "nobody"), ("PolicyArn", &arn)]).await;
    assert_error(&e, 404, "NoSuchEntity", "The user with name nobody cannot be found.");
    let e = iam.err("AttachRolePolicy", &[("RoleName", "nobody"), ("PolicyArn", &arn)]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role with name nobody cannot be found.");
    let e = iam.err("ListAttachedRolePolicies", &[("RoleName", "nobody")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role with name nobody cannot be found.");
    let e = iam.err("DetachUserPolicy", &[("UserName", "nobody"), ("PolicyArn", &arn)]).await;
    assert_error(&e, 404, "NoSuchEntity", "The user with name nobody cannot be found.");
    let e = iam.err("DetachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &missing)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {missing} was not found."));
    let e = iam.err("AttachRolePolicy", &[("RoleName", "web-task")]).await;
    assert_eq!(e.code, "ValidationError");

    // A user or role with attachments cannot be deleted.
    let e = iam.err("DeleteRole", &[("RoleName", "web-task")]).await;
    assert_eq!(e.code, "DeleteConflict");

    // Ten managed policies per role and per user; re-attaching one at the limit is still fine.
    let mut more = Vec::new();
    for i in 0..10 {
        more.push(iam.create_policy(&format!("extra-{i:02}"), ALLOW_GET_OBJECT).await);
    }
    for arn in &more[..9] {
        iam.ok("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", arn)]).await;
        iam.ok("AttachUserPolicy", &[("UserName", "ci"), ("PolicyArn", arn)]).await;
    }
    let e = iam.err("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &more[9])]).await;
    assert_error(&e, 409, "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10");
    let e = iam.err("AttachUserPolicy", &[("UserName", "ci"), ("PolicyArn", &more[9])]).await;
    assert_error(&e, 409, "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 10");
    iam.ok("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &more[0])]).await;
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &more[9])]).await;
    assert_eq!(text(&policy, "AttachmentCount"), "0");

    // Listing pages through them in name order.
    let (names, pages) = iam.list_all("ListAttachedRolePolicies", &[("RoleName", "web-task")], "3", "PolicyName").await;
    let mut expected: Vec<String> = (0..9).map(|i| format!("extra-{i:02}")).collect();
    expected.push("publish".into());
    assert_eq!((names, pages), (expected, 4));
    let (names, _) = iam
        .list_all(
            "ListAttachedUserPolicies",
            &[("UserName", "ci"), ("PathPrefix", "/service-role/")],
            "3",
            "PolicyName",
        )
        .await;
    assert!(names.is_empty());

    // Detaching frees the slot and the policy.
    iam.ok("DetachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &arn)]).await;
    iam.ok("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &more[9])]).await;
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "AttachmentCount"), "1");
    let e = iam.err("DetachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &arn)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {arn} was not found."));
    iam.ok("DetachUserPolicy", &[("UserName", "CI"), ("PolicyArn", &arn)]).await;
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "AttachmentCount"), "0");
    iam.ok("DeletePolicy", &[("PolicyArn", &arn)]).await;
    let listed = iam.ok("ListAttachedUserPolicies", &[("UserName", "ci")]).await;
    assert!(!texts(&listed, "PolicyArn").contains(&arn));
}

#[tokio::test]
async fn a_policy_used_as_permissions_boundary_is_counted_and_kept() {
    let iam = Iam::new();
    let arn = iam.create_policy("boundary", ALLOW_S3).await;
    iam.ok("CreateUser", &[("UserName", "bounded"), ("PermissionsBoundary", &arn)]).await;
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "PermissionsBoundaryUsageCount"), "1");
    assert_eq!(text(&policy, "AttachmentCount"), "0");
    let (names, _) =
        iam.list_all("ListPolicies", &[("PolicyUsageFilter", "PermissionsBoundary")], "10", "PolicyName").await;
    assert_eq!(names, ["boundary"]);
    let e = iam.err("DeletePolicy", &[("PolicyArn", &arn)]).await;
    assert_error(&e, 409, "DeleteConflict", "Cannot delete a policy attached to entities.");
}

#[tokio::test]
async fn aws_managed_policies_are_visible_attachable_and_read_only() {
    let iam = Iam::new();
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    let exec = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

    let policy = text(&iam.ok("GetPolicy", &[("PolicyArn", admin)]).await, "Policy");
    assert_eq!(text(&policy, "PolicyName"), "AdministratorAccess");
    assert_eq!(text(&policy, "PolicyId"), "ANPAIWMBCKSKIEE64ZLYK");
    assert_eq!(text(&policy, "Arn"), admin);
    assert_eq!(text(&policy, "Path"), "/");
    assert_eq!(text(&policy, "DefaultVersionId"), "v1");
    assert_eq!(text(&policy, "CreateDate"), "2015-02-06T18:39:46Z");
    assert_eq!(text(&policy, "Description"), "Provides full access to AWS services and resources.");
    assert_eq!(text(&policy, "IsAttachable"), "true");

    let policy = iam.ok("GetPolicy", &[("PolicyArn", exec)]).await;
    assert_eq!(text(&policy, "Path"), "/service-role/");
    let v1 = iam.ok("GetPolicyVersion", &[("PolicyArn", exec), ("VersionId", "v1")]).await;
    let doc = document(&v1, "Document");
    assert!(doc.contains("\"ecr:GetAuthorizationToken\"") && doc.contains("\"logs:PutLogEvents\""), "{doc}");
    assert_eq!(text(&v1, "IsDefaultVersion"), "true");
    let e = iam.err("GetPolicyVersion", &[("PolicyArn", exec), ("VersionId", "v2")]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {exec} version v2 does not exist or is not attachable."));
    let listed = iam.ok("ListPolicyVersions", &[("PolicyArn", exec)]).await;
    assert_eq!(texts(&listed, "VersionId"), ["v1"]);

    // Only the built-in set exists.
    let read_only = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    let e = iam.err("GetPolicy", &[("PolicyArn", read_only)]).await;
    assert_error(&e, 404, "NoSuchEntity", &format!("Policy {read_only} does not exist or is not attachable."));
    // Without the service-role/ path it is another (missing) policy.
    let e = iam.err("GetPolicy", &[("PolicyArn", "arn:aws:iam::aws:policy/AmazonECSTaskExecutionRolePolicy")]).await;
    assert_eq!(e.code, "NoSuchEntity");

    // Attachable to roles and users, and counted.
    iam.create_role("web-execution").await;
    iam.create_user("deployer").await;
    iam.ok("AttachRolePolicy", &[("RoleName", "web-execution"), ("PolicyArn", exec)]).await;
    iam.ok("AttachUserPolicy", &[("UserName", "deployer"), ("PolicyArn", admin)]).await;
    let listed = iam.ok("ListAttachedRolePolicies", &[("RoleName", "web-execution")]).await;
    assert_eq!(texts(&listed, "PolicyName"), ["AmazonECSTaskExecutionRolePolicy"]);
    assert_eq!(texts(&listed, "PolicyArn"), [exec]);
    let listed =
        iam.ok("ListAttachedRolePolicies", &[("RoleName", "web-execution"), ("PathPrefix", "/service-role/")]).await;
    assert_eq!(texts(&listed, "PolicyArn"), [exec]);
    let policy = iam.ok("GetPolicy", &[("PolicyArn", exec)]).await;
    assert_eq!(text(&policy, "AttachmentCount"), "1");
    let (attached, _) =
        iam.list_all("ListPolicies", &[("Scope", "AWS"), ("OnlyAttached", "true")], "10", "PolicyName").await;
    assert_eq!(attached, ["AdministratorAccess", "AmazonECSTaskExecutionRolePolicy"]);
    let (local, _) =
        iam.list_all("ListPolicies", &[("Scope", "Local"), ("OnlyAttached", "true")], "10", "PolicyName").await;
    assert!(local.is_empty());

    // They grant what AWS's documents grant.
    assert_eq!(iam.role_decision("web-execution", "ecr:GetAuthorizationToken", "*"), Decision::Allow);
    assert_eq!(iam.role_decision("web-execution", "logs:PutLogEvents", "*"), Decision::Allow);
    assert_eq!(iam.role_decision("web-execution", "ecs:CreateCluster", "*"), Decision::ImplicitDeny);
    assert_eq!(iam.user_decision("deployer", "iam:CreateUser", "*"), Decision::Allow);
    iam.ok("DetachUserPolicy", &[("UserName", "deployer"), ("PolicyArn", admin)]).await;
    iam.ok("AttachUserPolicy", &[("UserName", "deployer"), ("PolicyArn", "arn:aws:iam::aws:policy/PowerUserAccess")])
        .await;
    assert_eq!(iam.user_decision("deployer", "ecs:UpdateService", "*"), Decision::Allow);
    assert_eq!(iam.user_decision("deployer", "iam:ListRoles", "*"), Decision::Allow);
    assert_eq!(iam.user_decision("deployer", "iam:CreateUser", "*"), Decision::ImplicitDeny);

    // They cannot be changed: every write is refused as AWS refuses writes to the `aws` account.
    let root = iam.aws.root_arn();
    let e = iam.err("DeletePolicy", &[("PolicyArn", admin)]).await;
    assert_error(
        &e,
        403,
        "AccessDenied",
        &format!("User: {root} is not authorized to perform: iam:DeletePolicy on resource: policy {admin}"),
    );
    let e = iam.err("CreatePolicyVersion", &[("PolicyArn", admin), ("PolicyDocument", ALLOW_S3)]).await;
    assert_eq!((e.status, e.code.as_ref()), (403, "AccessDenied"));
    let e = iam.err("DeletePolicyVersion", &[("PolicyArn", admin), ("VersionId", "v1")]).await;
    assert_eq!((e.status, e.code.as_ref()), (403, "AccessDenied"));
    let e = iam.err("SetDefaultPolicyVersion", &[("PolicyArn", admin), ("VersionId", "v1")]).await;
    assert_eq!((e.status, e.code.as_ref()), (403, "AccessDenied"));
    let policy = iam.ok("GetPolicy", &[("PolicyArn", admin)]).await;
    assert_eq!(text(&policy, "DefaultVersionId"), "v1");
}

// ---------------------------------------------------------------------------------------------------
// Inline policies

#[tokio::test]
async fn role_inline_policies() {
    let iam = Iam::new();
    iam.create_role("web-task").await;
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_GET_OBJECT)])
        .await;
    let xml = iam.ok("GetRolePolicy", &[("RoleName", "WEB-TASK"), ("PolicyName", "read")]).await;
    assert_eq!(text(&xml, "RoleName"), "web-task");
    assert_eq!(text(&xml, "PolicyName"), "read");
    assert_eq!(document(&xml, "PolicyDocument"), ALLOW_GET_OBJECT);

    // Putting again replaces the document.
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_S3)]).await;
    let xml = iam.ok("GetRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read")]).await;
    assert_eq!(document(&xml, "PolicyDocument"), ALLOW_S3);

    for name in ["write", "admin", "logs"] {
        iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", name), ("PolicyDocument", ALLOW_S3)]).await;
    }
    let (names, pages) = iam.list_all("ListRolePolicies", &[("RoleName", "web-task")], "3", "member").await;
    assert_eq!((names, pages), (vec!["admin".to_string(), "logs".into(), "read".into(), "write".into()], 2));

    iam.ok("DeleteRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read")]).await;
    let e = iam.err("GetRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role policy with name read cannot be found.");
    let e = iam.err("DeleteRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role policy with name read cannot be found.");
    let (names, _) = iam.list_all("ListRolePolicies", &[("RoleName", "web-task")], "100", "member").await;
    assert_eq!(names, ["admin", "logs", "write"]);

    // A missing role.
    let e =
        iam.err("PutRolePolicy", &[("RoleName", "nobody"), ("PolicyName", "x"), ("PolicyDocument", ALLOW_S3)]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role with name nobody cannot be found.");
    let e = iam.err("GetRolePolicy", &[("RoleName", "nobody"), ("PolicyName", "x")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role with name nobody cannot be found.");
    let e = iam.err("ListRolePolicies", &[("RoleName", "nobody")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The role with name nobody cannot be found.");
    let e = iam.err("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "x")]).await;
    assert_eq!(e.code, "ValidationError");

    // 10,240 characters (white space excluded) for all of a role's inline policies together.
    for name in ["read", "write", "admin", "logs"] {
        let _ = iam.call("DeleteRolePolicy", &[("RoleName", "web-task"), ("PolicyName", name)]).await;
    }
    let big = document_of_size(6000);
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "big"), ("PolicyDocument", &big)]).await;
    let rest = document_of_size(4240);
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "rest"), ("PolicyDocument", &rest)]).await;
    let one_more = document_of_size(200);
    let e = iam
        .err("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "more"), ("PolicyDocument", &one_more)])
        .await;
    assert_error(&e, 409, "LimitExceeded", "Maximum policy size of 10240 bytes exceeded for role web-task");
    let e = iam
        .err(
            "PutRolePolicy",
            &[("RoleName", "web-task"), ("PolicyName", "big"), ("PolicyDocument", &document_of_size(6001))],
        )
        .await;
    assert_eq!(e.code, "LimitExceeded");
    // Replacing one within the total is fine; white space does not count.
    let spaced = format!("{}{}", document_of_size(5800), " \n".repeat(3000));
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "big"), ("PolicyDocument", &spaced)]).await;
    let (names, _) = iam.list_all("ListRolePolicies", &[("RoleName", "web-task")], "100", "member").await;
    assert_eq!(names, ["big", "rest"]);
}

#[tokio::test]
async fn user_inline_policies() {
    let iam = Iam::new();
    iam.create_user("ci").await;
    iam.ok("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_GET_OBJECT)]).await;
    let xml = iam.ok("GetUserPolicy", &[("UserName", "ci"), ("PolicyName", "read")]).await;
    assert_eq!(text(&xml, "UserName"), "ci");
    assert_eq!(text(&xml, "PolicyName"), "read");
    assert_eq!(document(&xml, "PolicyDocument"), ALLOW_GET_OBJECT);
    let listed = iam.ok("ListUserPolicies", &[("UserName", "ci")]).await;
    assert_eq!(texts(&listed, "member"), ["read"]);
    assert_eq!(text(&listed, "IsTruncated"), "false");

    let e = iam.err("GetUserPolicy", &[("UserName", "ci"), ("PolicyName", "write")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The user policy with name write cannot be found.");
    let e =
        iam.err("PutUserPolicy", &[("UserName", "nobody"), ("PolicyName", "x"), ("PolicyDocument", ALLOW_S3)]).await;
    assert_error(&e, 404, "NoSuchEntity", "The user with name nobody cannot be found.");

    // A user with inline policies cannot be deleted until they are gone.
    let e = iam.err("DeleteUser", &[("UserName", "ci")]).await;
    assert_eq!(e.code, "DeleteConflict");
    iam.ok("DeleteUserPolicy", &[("UserName", "ci"), ("PolicyName", "read")]).await;
    let e = iam.err("DeleteUserPolicy", &[("UserName", "ci"), ("PolicyName", "read")]).await;
    assert_error(&e, 404, "NoSuchEntity", "The user policy with name read cannot be found.");
    let listed = iam.ok("ListUserPolicies", &[("UserName", "ci")]).await;
    assert!(texts(&listed, "member").is_empty());

    // 2,048 characters for all of a user's inline policies together.
    let first = document_of_size(1500);
    iam.ok("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "first"), ("PolicyDocument", &first)]).await;
    let second = document_of_size(600);
    let e =
        iam.err("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "second"), ("PolicyDocument", &second)]).await;
    assert_error(&e, 409, "LimitExceeded", "Maximum policy size of 2048 bytes exceeded for user ci");
    let second = document_of_size(548);
    iam.ok("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "second"), ("PolicyDocument", &second)]).await;
    let (names, _) = iam.list_all("ListUserPolicies", &[("UserName", "ci")], "1", "member").await;
    assert_eq!(names, ["first", "second"]);
}

// ---------------------------------------------------------------------------------------------------
// Validation: the engine's reasons, the quotas, and nothing written

#[tokio::test]
async fn malformed_and_oversized_documents_are_refused_and_leave_nothing() {
    let iam = Iam::new();
    iam.create_user("ci").await;
    iam.create_role("web-task").await;
    let arn = iam.create_policy("kept", ALLOW_S3).await;

    let no_action = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#;
    let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:*","Resource":"*"}]}"#;
    let no_resource = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#;
    let bad_effect = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}"#;
    let cases = ["this is not json", no_action, with_principal, no_resource, bad_effect, "{}", "[]"];
    for doc in cases {
        let reason = Policy::parse(doc, PolicyKind::Identity).expect_err(doc).to_string();
        let expect = |e: AwsError| assert_error(&e, 400, "MalformedPolicyDocument", &reason);
        expect(iam.err("CreatePolicy", &[("PolicyName", "refused"), ("PolicyDocument", doc)]).await);
        expect(iam.err("CreatePolicyVersion", &[("PolicyArn", &arn), ("PolicyDocument", doc)]).await);
        expect(
            iam.err("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "refused"), ("PolicyDocument", doc)])
                .await,
        );
        expect(
            iam.err("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "refused"), ("PolicyDocument", doc)]).await,
        );
    }
    let e = iam.err("CreatePolicy", &[("PolicyName", "refused"), ("PolicyDocument", no_action)]).await;
    assert_eq!(e.message, "Policy statement must contain actions.");
    let e = iam.err("CreatePolicy", &[("PolicyName", "refused"), ("PolicyDocument", "this is not json")]).await;
    assert_eq!(e.message, "Syntax errors in policy.");

    // Characters outside the document alphabet, and an empty document.
    let e = iam.err("CreatePolicy", &[("PolicyName", "refused"), ("PolicyDocument", "{\"Id\":\"\u{2603}\"}")]).await;
    assert_eq!((e.status, e.code.as_ref()), (400, "ValidationError"));
    let e = iam.err("PutUserPolicy", &[("UserName", "ci"), ("PolicyName", "refused"), ("PolicyDocument", "")]).await;
    assert_eq!(e.code, "ValidationError");

    // Managed policies: 6,144 characters, white space excluded.
    let too_big = document_of_size(6145);
    let e = iam.err("CreatePolicy", &[("PolicyName", "refused"), ("PolicyDocument", &too_big)]).await;
    assert_error(&e, 409, "LimitExceeded", "Cannot exceed quota for PolicySize: 6144");
    let e = iam.err("CreatePolicyVersion", &[("PolicyArn", &arn), ("PolicyDocument", &too_big)]).await;
    assert_error(&e, 409, "LimitExceeded", "Cannot exceed quota for PolicySize: 6144");
    let at_limit = format!("{}{}", document_of_size(6144), " ".repeat(4000));
    iam.ok("CreatePolicy", &[("PolicyName", "at-limit"), ("PolicyDocument", &at_limit)]).await;

    // Nothing was written by the refused calls.
    let (names, _) = iam.list_all("ListPolicies", &[("Scope", "Local")], "100", "PolicyName").await;
    assert_eq!(names, ["at-limit", "kept"]);
    let (versions, _) = iam.list_all("ListPolicyVersions", &[("PolicyArn", &arn)], "100", "VersionId").await;
    assert_eq!(versions, ["v1"]);
    let policy = iam.ok("GetPolicy", &[("PolicyArn", &arn)]).await;
    assert_eq!(text(&policy, "UpdateDate"), text(&policy, "CreateDate"));
    let (inline, _) = iam.list_all("ListRolePolicies", &[("RoleName", "web-task")], "100", "member").await;
    assert!(inline.is_empty());
    let (inline, _) = iam.list_all("ListUserPolicies", &[("UserName", "ci")], "100", "member").await;
    assert!(inline.is_empty());
    assert_eq!(iam.user_decision("ci", "s3:GetObject", OBJECT), Decision::ImplicitDeny);
    assert_eq!(iam.role_decision("web-task", "s3:GetObject", OBJECT), Decision::ImplicitDeny);
}

// ---------------------------------------------------------------------------------------------------
// Authorization follows every write

#[tokio::test]
async fn inline_and_attached_policies_decide_what_a_user_may_do() {
    let iam = Iam::new();
    iam.create_user("alice").await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::ImplicitDeny);

    // An inline Allow.
    iam.ok("PutUserPolicy", &[("UserName", "alice"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_GET_OBJECT)])
        .await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::Allow);
    assert_eq!(iam.user_decision("alice", "s3:PutObject", OBJECT), Decision::ImplicitDeny);

    // An explicit Deny in an attached managed policy wins; detaching it restores the Allow.
    let deny = iam.create_policy("no-reads", DENY_GET_OBJECT).await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::Allow, "not attached yet");
    iam.ok("AttachUserPolicy", &[("UserName", "alice"), ("PolicyArn", &deny)]).await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::ExplicitDeny);
    iam.ok("DetachUserPolicy", &[("UserName", "alice"), ("PolicyArn", &deny)]).await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::Allow);

    // Deleting the inline policy takes the Allow away.
    iam.ok("DeleteUserPolicy", &[("UserName", "alice"), ("PolicyName", "read")]).await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::ImplicitDeny);

    // A managed policy applies through its default version only.
    let s3 = iam.create_policy("s3", ALLOW_S3).await;
    iam.ok("AttachUserPolicy", &[("UserName", "alice"), ("PolicyArn", &s3)]).await;
    assert_eq!(iam.user_decision("alice", "s3:PutObject", OBJECT), Decision::Allow);
    iam.ok("CreatePolicyVersion", &[("PolicyArn", &s3), ("PolicyDocument", ALLOW_GET_OBJECT)]).await;
    assert_eq!(iam.user_decision("alice", "s3:PutObject", OBJECT), Decision::Allow, "v2 is not the default");
    iam.ok("SetDefaultPolicyVersion", &[("PolicyArn", &s3), ("VersionId", "v2")]).await;
    assert_eq!(iam.user_decision("alice", "s3:PutObject", OBJECT), Decision::ImplicitDeny);
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::Allow);
    iam.ok("CreatePolicyVersion", &[("PolicyArn", &s3), ("PolicyDocument", DENY_GET_OBJECT), ("SetAsDefault", "true")])
        .await;
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::ExplicitDeny);

    // The same for a role's sessions.
    iam.create_role("web-task").await;
    iam.ok("PutRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_GET_OBJECT)])
        .await;
    assert_eq!(iam.role_decision("web-task", "s3:GetObject", OBJECT), Decision::Allow);
    iam.ok("AttachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &deny)]).await;
    assert_eq!(iam.role_decision("web-task", "s3:GetObject", OBJECT), Decision::ExplicitDeny);
    iam.ok("DetachRolePolicy", &[("RoleName", "web-task"), ("PolicyArn", &deny)]).await;
    iam.ok("DeleteRolePolicy", &[("RoleName", "web-task"), ("PolicyName", "read")]).await;
    assert_eq!(iam.role_decision("web-task", "s3:GetObject", OBJECT), Decision::ImplicitDeny);
}

#[tokio::test]
async fn policies_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, state) = open(dir.path());
        let iam = Iam {
            _dir: tempfile::tempdir().expect("tempdir"),
            aws: AwsContext::default(),
            state: state.clone(),
            service: IamService::new(store, Arc::new(SystemClock), state),
        };
        iam.create_user("alice").await;
        iam.ok("PutUserPolicy", &[("UserName", "alice"), ("PolicyName", "read"), ("PolicyDocument", ALLOW_GET_OBJECT)])
            .await;
        let arn = iam.create_policy("deny", DENY_GET_OBJECT).await;
        iam.ok("AttachUserPolicy", &[("UserName", "alice"), ("PolicyArn", &arn)]).await;
        iam.ok(
            "AttachUserPolicy",
            &[("UserName", "alice"), ("PolicyArn", "arn:aws:iam::aws:policy/AmazonSSMReadOnlyAccess")],
        )
        .await;
    }
    // A fresh store and state over the same files see the same decisions.
    let (store, state) = open(dir.path());
    let iam = Iam {
        _dir: tempfile::tempdir().expect("tempdir"),
        aws: AwsContext::default(),
        state: state.clone(),
        service: IamService::new(store, Arc::new(SystemClock), state),
    };
    assert_eq!(iam.user_decision("alice", "s3:GetObject", OBJECT), Decision::ExplicitDeny);
    assert_eq!(iam.user_decision("alice", "ssm:GetParameter", "*"), Decision::Allow);
    let listed = iam.ok("ListAttachedUserPolicies", &[("UserName", "alice")]).await;
    assert_eq!(texts(&listed, "PolicyName"), ["AmazonSSMReadOnlyAccess", "deny"]);
}
