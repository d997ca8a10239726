//! Access keys and OIDC providers through the IAM service itself (`Service::call`, as the gateway calls
//! it), on a real SQLite store in a temporary directory, with the credential store that authenticates
//! every request checked after each write.

use std::sync::Arc;

use berth_aws::time::{SharedClock, SystemClock, Timestamp};
use berth_aws::{
    AwsContext, AwsError, CredentialStore, Input, Output, Principal, PrincipalKind, QueryInput, RequestContext, Secret,
    Service,
};
use berth_iam::iam::IAM_SPEC;
use berth_iam::oidc_provider::{find_provider_by_issuer, OidcProvider};
use berth_iam::{IamError, IamService, IamState, RootCredentialSource, RootCredentials};
use berth_store::Store;

const ROOT_KEY_ID: &str = "BERTHROOTKEY0001";
const ACCOUNT: &str = "000000000000";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const THUMBPRINT: &str = "6938fd4d98bab03faadb97b34396831e3780aea1";

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    state: Arc<IamState>,
    iam: IamService,
    root: Principal,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.migrate("iam", berth_iam::schema::MIGRATIONS).unwrap();
    let root_credentials = RootCredentials {
        access_key_id: ROOT_KEY_ID.into(),
        secret_access_key: Secret::new("root-secret-for-the-tests-only"),
        source: RootCredentialSource::Environment,
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let now = Timestamp::from_system(clock.now());
    let state = IamState::load(&AwsContext::default(), &root_credentials, &store, now).unwrap();
    let root = (*state.lookup(ROOT_KEY_ID).unwrap().principal).clone();
    assert_eq!(root.kind, PrincipalKind::Root);
    let iam = IamService::new(store.clone(), clock, state.clone());
    Harness { _dir: dir, store, state, iam, root }
}

impl Harness {
    async fn call_as(
        &self,
        principal: &Principal,
        op: &'static str,
        params: &[(&str, &str)],
    ) -> Result<String, AwsError> {
        assert!(IAM_SPEC.operation(op).is_some(), "{op} is not in IAM's operation table");
        let ctx = RequestContext {
            request_id: "test-request".into(),
            operation: op,
            principal: principal.clone().into(),
            aws: AwsContext::default().into(),
            source_ip: None,
        };
        match self.iam.call(&ctx, Input::Query(QueryInput::from_pairs(params.iter().copied()))).await? {
            Output::Xml(xml) => Ok(xml.unwrap_or_default()),
            Output::Json(v) => panic!("IAM answered JSON: {v}"),
        }
    }

    async fn call(&self, op: &'static str, params: &[(&str, &str)]) -> Result<String, AwsError> {
        let root = self.root.clone();
        self.call_as(&root, op, params).await
    }

    async fn ok(&self, op: &'static str, params: &[(&str, &str)]) -> String {
        match self.call(op, params).await {
            Ok(xml) => xml,
            Err(e) => panic!("{op} {params:?} failed: {e}"),
        }
    }

    async fn create_user(&self, name: &str) {
        self.ok("CreateUser", &[("UserName", name)]).await;
    }

    /// Creates a key for `user`: (access key id, secret).
    async fn create_key(&self, user: &str) -> (String, String) {
        let xml = self.ok("CreateAccessKey", &[("UserName", user)]).await;
        (text(&xml, "AccessKeyId"), text(&xml, "SecretAccessKey"))
    }

    async fn key_ids(&self, user: &str) -> Vec<String> {
        texts(&self.ok("ListAccessKeys", &[("UserName", user)]).await, "AccessKeyId")
    }

    async fn find_provider(&self, issuer: &str) -> Option<OidcProvider> {
        let issuer = issuer.to_string();
        self.store.read(move |c| find_provider_by_issuer(c, &issuer)).await.unwrap()
    }

    async fn provider_arns(&self) -> Vec<String> {
        texts(&self.ok("ListOpenIDConnectProviders", &[]).await, "Arn")
    }
}

/// The texts of every `<tag>…</tag>` in `xml`, in order.
fn texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).unwrap_or_else(|| panic!("unclosed <{tag}> in {xml}"));
        out.push(after[..end].to_string());
        rest = &after[end + close.len()..];
    }
    out
}

/// The text of the one `<tag>` in `xml`.
fn text(xml: &str, tag: &str) -> String {
    let all = texts(xml, tag);
    assert_eq!(all.len(), 1, "expected one <{tag}> in {xml}");
    all.into_iter().next().unwrap()
}

fn refused(result: Result<String, AwsError>) -> AwsError {
    match result {
        Ok(xml) => panic!("expected an error, got {xml}"),
        Err(e) => e,
    }
}

fn assert_error(result: Result<String, AwsError>, status: u16, code: &str, message: &str) {
    let e = refused(result);
    assert_eq!((e.status, e.code.as_ref(), e.message.as_str()), (status, code, message));
}

fn assert_code(result: Result<String, AwsError>, status: u16, code: &str) -> String {
    let e = refused(result);
    assert_eq!((e.status, e.code.as_ref()), (status, code), "{e}");
    e.message
}

// ---------------------------------------------------------------------------------------------------
// Access keys

#[tokio::test]
async fn a_created_key_signs_the_next_request_as_its_user() {
    let h = harness();
    h.create_user("alice").await;
    let xml = h.ok("CreateAccessKey", &[("UserName", "alice")]).await;
    let id = text(&xml, "AccessKeyId");
    let secret = text(&xml, "SecretAccessKey");
    assert_eq!(text(&xml, "UserName"), "alice");
    assert_eq!(text(&xml, "Status"), "Active");
    assert!(text(&xml, "CreateDate").ends_with('Z'));
    assert!(xml.starts_with("<AccessKey><UserName>"), "{xml}");
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);

    let credential = h.state.lookup(&id).expect("the new key is usable at once");
    assert_eq!(credential.secret_access_key.expose(), secret);
    assert!(credential.session_token.is_none() && credential.expires_at.is_none());
    assert_eq!(credential.principal.kind, PrincipalKind::User { name: "alice".into() });
    assert_eq!(credential.principal.arn, format!("arn:aws:iam::{ACCOUNT}:user/alice"));
    assert_eq!(credential.principal.access_key_id, id);
    assert!(credential.principal.user_id.starts_with("AIDA"));
    assert!(!format!("{credential:?}").contains(&secret), "the secret shows in Debug");

    // Listed without its secret.
    let list = h.ok("ListAccessKeys", &[("UserName", "alice")]).await;
    assert_eq!(texts(&list, "AccessKeyId"), vec![id.clone()]);
    assert_eq!(texts(&list, "UserName"), vec!["alice"]);
    assert_eq!(texts(&list, "Status"), vec!["Active"]);
    assert_eq!(text(&list, "IsTruncated"), "false");
    assert!(!list.contains("SecretAccessKey") && !list.contains(&secret), "{list}");
    assert!(list.starts_with("<AccessKeyMetadata><member>"), "{list}");

    // The stored user name, whatever the case of the request.
    h.create_user("Bob").await;
    let xml = h.ok("CreateAccessKey", &[("UserName", "bob")]).await;
    assert_eq!(text(&xml, "UserName"), "Bob");
    let bob = h.state.lookup(&text(&xml, "AccessKeyId")).unwrap();
    assert_eq!(bob.principal.kind, PrincipalKind::User { name: "Bob".into() });
}

#[tokio::test]
async fn without_a_user_name_a_user_manages_its_own_keys_and_root_must_name_one() {
    let h = harness();
    h.create_user("alice").await;
    let (first, _) = h.create_key("alice").await;
    let alice = (*h.state.lookup(&first).unwrap().principal).clone();

    let xml = h.call_as(&alice, "CreateAccessKey", &[]).await.unwrap();
    assert_eq!(text(&xml, "UserName"), "alice");
    let second = text(&xml, "AccessKeyId");
    assert_eq!(h.state.lookup(&second).unwrap().principal.kind, PrincipalKind::User { name: "alice".into() });

    let list = h.call_as(&alice, "ListAccessKeys", &[]).await.unwrap();
    let mut listed = texts(&list, "AccessKeyId");
    listed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    h.call_as(&alice, "UpdateAccessKey", &[("AccessKeyId", &second), ("Status", "Inactive")]).await.unwrap();
    assert!(h.state.lookup(&second).is_none());
    h.call_as(&alice, "DeleteAccessKey", &[("AccessKeyId", &second)]).await.unwrap();
    assert_eq!(h.key_ids("alice").await, vec![first.clone()]);

    // Root credentials without UserName: AWS would manage the root user's own keys; berth refuses.
    for (op, params) in [
        ("CreateAccessKey", vec![]),
        ("ListAccessKeys", vec![]),
        ("UpdateAccessKey", vec![("AccessKeyId", first.as_str()), ("Status", "Inactive")]),
        ("DeleteAccessKey", vec![("AccessKeyId", first.as_str())]),
    ] {
        assert_error(
            h.call(op, &params).await,
            400,
            "ValidationError",
            "Must specify userName when calling with non-User credentials",
        );
    }
    assert!(h.state.lookup(&first).is_some());
    assert_eq!(h.key_ids("alice").await, vec![first]);
}

#[tokio::test]
async fn a_user_has_at_most_two_keys() {
    let h = harness();
    h.create_user("alice").await;
    let (a, _) = h.create_key("alice").await;
    let (b, _) = h.create_key("alice").await;
    assert_error(
        h.call("CreateAccessKey", &[("UserName", "alice")]).await,
        409,
        "LimitExceeded",
        "Cannot exceed quota for AccessKeysPerUser: 2",
    );
    // Nothing half-written: still the two keys.
    let mut ids = h.key_ids("alice").await;
    ids.sort();
    let mut expected = vec![a.clone(), b];
    expected.sort();
    assert_eq!(ids, expected);

    // An inactive key still counts; a deleted one does not.
    h.ok("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &a), ("Status", "Inactive")]).await;
    assert_code(h.call("CreateAccessKey", &[("UserName", "alice")]).await, 409, "LimitExceeded");
    h.ok("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", &a)]).await;
    let (c, _) = h.create_key("alice").await;
    assert!(h.state.lookup(&c).is_some());

    // The quota is per user.
    h.create_user("bob").await;
    h.create_key("bob").await;
}

#[tokio::test]
async fn unknown_users_and_keys_are_no_such_entity() {
    let h = harness();
    for op in ["CreateAccessKey", "ListAccessKeys"] {
        assert_error(
            h.call(op, &[("UserName", "ghost")]).await,
            404,
            "NoSuchEntity",
            "The user with name ghost cannot be found.",
        );
    }
    assert_error(
        h.call(
            "UpdateAccessKey",
            &[("UserName", "ghost"), ("AccessKeyId", "AKIAAAAAAAAAAAAAAAAA"), ("Status", "Active")],
        )
        .await,
        404,
        "NoSuchEntity",
        "The user with name ghost cannot be found.",
    );

    h.create_user("alice").await;
    h.create_user("bob").await;
    let (alices, _) = h.create_key("alice").await;
    let unknown = "AKIAZZZZZZZZZZZZZZZZ";
    let message = format!("The Access Key with id {unknown} cannot be found.");
    assert_error(
        h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", unknown), ("Status", "Inactive")]).await,
        404,
        "NoSuchEntity",
        &message,
    );
    assert_error(
        h.call("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", unknown)]).await,
        404,
        "NoSuchEntity",
        &message,
    );

    // Another user's key is not found under bob's name, and is left alone.
    let message = format!("The Access Key with id {alices} cannot be found.");
    assert_error(
        h.call("UpdateAccessKey", &[("UserName", "bob"), ("AccessKeyId", &alices), ("Status", "Inactive")]).await,
        404,
        "NoSuchEntity",
        &message,
    );
    assert_error(
        h.call("DeleteAccessKey", &[("UserName", "bob"), ("AccessKeyId", &alices)]).await,
        404,
        "NoSuchEntity",
        &message,
    );
    assert!(h.state.lookup(&alices).is_some());
    let list = h.ok("ListAccessKeys", &[("UserName", "alice")]).await;
    assert_eq!(texts(&list, "Status"), vec!["Active"]);
    assert!(h.key_ids("bob").await.is_empty());
    let empty = h.ok("ListAccessKeys", &[("UserName", "bob")]).await;
    assert_eq!(empty, "<AccessKeyMetadata></AccessKeyMetadata><IsTruncated>false</IsTruncated>");
}

#[tokio::test]
async fn malformed_requests_are_validation_errors() {
    let h = harness();
    h.create_user("alice").await;
    let (id, _) = h.create_key("alice").await;

    assert_error(
        h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", "AKIASHORT"), ("Status", "Active")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value 'AKIASHORT' at 'accessKeyId' failed to satisfy constraint: \
         Member must have length greater than or equal to 16",
    );
    assert_code(
        h.call("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", "AKIA-NOT/A+WORD-ID")]).await,
        400,
        "ValidationError",
    );
    assert_error(
        h.call("DeleteAccessKey", &[("UserName", "alice")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value null at 'accessKeyId' failed to satisfy constraint: Member must not be null",
    );
    assert_error(
        h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id)]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value null at 'status' failed to satisfy constraint: Member must not be null",
    );
    assert_error(
        h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", "Disabled")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value 'Disabled' at 'status' failed to satisfy constraint: \
         Member must satisfy enum value set: [Active, Inactive, Expired]",
    );
    for status in ["Expired", "active", ""] {
        assert_code(
            h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", status)]).await,
            400,
            "ValidationError",
        );
    }
    assert_code(h.call("CreateAccessKey", &[("UserName", "not a name")]).await, 400, "ValidationError");
    assert_code(h.call("ListAccessKeys", &[("UserName", "alice"), ("MaxItems", "0")]).await, 400, "ValidationError");
    // None of it changed the key.
    assert!(h.state.lookup(&id).is_some());
}

#[tokio::test]
async fn an_inactive_key_does_not_authenticate_until_reactivated() {
    let h = harness();
    h.create_user("alice").await;
    let (id, secret) = h.create_key("alice").await;
    h.ok("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", "Inactive")]).await;
    assert!(h.state.lookup(&id).is_none(), "an inactive key must not authenticate");
    let list = h.ok("ListAccessKeys", &[("UserName", "alice")]).await;
    assert_eq!(texts(&list, "Status"), vec!["Inactive"]);

    // Idempotent, and back.
    h.ok("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", "Inactive")]).await;
    h.ok("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", "Active")]).await;
    let credential = h.state.lookup(&id).expect("reactivated");
    assert_eq!(credential.secret_access_key.expose(), secret);
    let list = h.ok("ListAccessKeys", &[("UserName", "alice")]).await;
    assert_eq!(texts(&list, "Status"), vec!["Active"]);
}

#[tokio::test]
async fn a_deleted_key_is_gone() {
    let h = harness();
    h.create_user("alice").await;
    let (id, _) = h.create_key("alice").await;
    let (other, _) = h.create_key("alice").await;
    h.ok("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id)]).await;
    assert!(h.state.lookup(&id).is_none());
    assert!(h.state.lookup(&other).is_some());
    assert_eq!(h.key_ids("alice").await, vec![other]);
    assert_code(h.call("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id)]).await, 404, "NoSuchEntity");
    assert_code(
        h.call("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id), ("Status", "Active")]).await,
        404,
        "NoSuchEntity",
    );
}

#[tokio::test]
async fn a_user_with_keys_cannot_be_deleted() {
    let h = harness();
    h.create_user("alice").await;
    let (id, _) = h.create_key("alice").await;
    let (inactive, _) = h.create_key("alice").await;
    h.ok("UpdateAccessKey", &[("UserName", "alice"), ("AccessKeyId", &inactive), ("Status", "Inactive")]).await;

    assert_code(h.call("DeleteUser", &[("UserName", "alice")]).await, 409, "DeleteConflict");
    assert!(h.state.lookup(&id).is_some());
    h.ok("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", &id)]).await;
    // An inactive key is a key too.
    assert_code(h.call("DeleteUser", &[("UserName", "alice")]).await, 409, "DeleteConflict");
    h.ok("DeleteAccessKey", &[("UserName", "alice"), ("AccessKeyId", &inactive)]).await;
    h.ok("DeleteUser", &[("UserName", "alice")]).await;

    assert_code(h.call("CreateAccessKey", &[("UserName", "alice")]).await, 404, "NoSuchEntity");
    assert_code(h.call("ListAccessKeys", &[("UserName", "alice")]).await, 404, "NoSuchEntity");
    let rows: i64 = h
        .store
        .read(|c| c.query_row("SELECT count(*) FROM iam_access_keys", [], |r| r.get(0)).map_err(IamError::from))
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // A new user of the same name starts with no keys.
    h.create_user("alice").await;
    assert!(h.key_ids("alice").await.is_empty());
}

#[tokio::test]
async fn access_keys_are_listed_in_pages() {
    let h = harness();
    h.create_user("alice").await;
    h.create_key("alice").await;
    h.create_key("alice").await;
    let mut all = h.key_ids("alice").await;
    all.sort();

    let first = h.ok("ListAccessKeys", &[("UserName", "alice"), ("MaxItems", "1")]).await;
    assert_eq!(texts(&first, "AccessKeyId"), vec![all[0].clone()]);
    assert_eq!(text(&first, "IsTruncated"), "true");
    let marker = text(&first, "Marker");
    let second = h.ok("ListAccessKeys", &[("UserName", "alice"), ("MaxItems", "1"), ("Marker", &marker)]).await;
    assert_eq!(texts(&second, "AccessKeyId"), vec![all[1].clone()]);
    assert_eq!(text(&second, "IsTruncated"), "false");
    assert!(texts(&second, "Marker").is_empty());
}

// ---------------------------------------------------------------------------------------------------
// OIDC providers

#[tokio::test]
async fn an_https_provider_is_created_read_and_listed() {
    let h = harness();
    let url = format!("{GITHUB}/");
    let xml = h
        .ok(
            "CreateOpenIDConnectProvider",
            &[
                ("Url", &url),
                ("ClientIDList.member.1", "sts.amazonaws.com"),
                ("ClientIDList.member.2", "sts.amazonaws.com"),
                ("ThumbprintList.member.1", THUMBPRINT),
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "platform"),
            ],
        )
        .await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com");
    assert_eq!(text(&xml, "OpenIDConnectProviderArn"), arn);
    assert_eq!(texts(&xml, "Key"), vec!["team"]);
    assert_eq!(texts(&xml, "Value"), vec!["platform"]);

    let got = h.ok("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await;
    assert_eq!(text(&got, "Url"), "token.actions.githubusercontent.com");
    assert!(got.contains("<ClientIDList><member>sts.amazonaws.com</member></ClientIDList>"), "{got}");
    assert!(got.contains(&format!("<ThumbprintList><member>{THUMBPRINT}</member></ThumbprintList>")), "{got}");
    assert!(text(&got, "CreateDate").ends_with('Z'));
    assert!(got.contains("<Tags><member><Key>team</Key><Value>platform</Value></member></Tags>"), "{got}");

    assert_eq!(h.provider_arns().await, vec![arn.clone()]);
    let list = h.ok("ListOpenIDConnectProviders", &[]).await;
    assert_eq!(
        list,
        format!("<OpenIDConnectProviderList><member><Arn>{arn}</Arn></member></OpenIDConnectProviderList>")
    );

    // What STS finds for a token of this issuer.
    let provider = h.find_provider(GITHUB).await.expect("found by its issuer");
    assert_eq!(provider.arn, arn);
    assert_eq!(provider.url, GITHUB);
    assert_eq!(provider.host_path(), "token.actions.githubusercontent.com");
    assert_eq!(provider.client_ids, vec!["sts.amazonaws.com"]);
    assert_eq!(provider.thumbprints, vec![THUMBPRINT]);
    assert_eq!(h.find_provider(&format!("{GITHUB}/")).await, Some(provider));
    assert!(h.find_provider("http://token.actions.githubusercontent.com").await.is_none());
    assert!(h.find_provider("token.actions.githubusercontent.com").await.is_none());
    assert!(h.find_provider("https://token.actions.githubusercontent.com/x").await.is_none());
    assert!(h.find_provider("").await.is_none());
}

#[tokio::test]
async fn a_loopback_issuer_may_use_http() {
    let h = harness();
    let xml = h
        .ok(
            "CreateOpenIDConnectProvider",
            &[("Url", "http://127.0.0.1:8123/issuer/"), ("ClientIDList.member.1", "berth")],
        )
        .await;
    let arn = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/127.0.0.1:8123/issuer");
    assert_eq!(text(&xml, "OpenIDConnectProviderArn"), arn);
    assert!(!xml.contains("<Tags>"), "{xml}");

    // Thumbprints are optional.
    let got = h.ok("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await;
    assert_eq!(text(&got, "Url"), "127.0.0.1:8123/issuer");
    assert!(got.contains("<ThumbprintList></ThumbprintList>"), "{got}");

    let provider = h.find_provider("http://127.0.0.1:8123/issuer").await.expect("found");
    assert_eq!(provider.url, "http://127.0.0.1:8123/issuer", "the scheme is kept for STS");
    assert_eq!(provider.client_ids, vec!["berth"]);
    assert!(provider.thumbprints.is_empty());
    assert_eq!(h.find_provider("http://127.0.0.1:8123/issuer//").await.map(|p| p.arn), Some(arn.clone()));
    assert!(h.find_provider("https://127.0.0.1:8123/issuer").await.is_none(), "the scheme must match");
    assert!(h.find_provider("http://127.0.0.1:8123").await.is_none());
    assert!(h.find_provider("http://127.0.0.1:8124/issuer").await.is_none());

    // The same host and path over https is the same provider (same ARN).
    assert_error(
        h.call("CreateOpenIDConnectProvider", &[("Url", "https://127.0.0.1:8123/issuer")]).await,
        409,
        "EntityAlreadyExists",
        "Provider with url https://127.0.0.1:8123/issuer already exists.",
    );

    for url in ["http://localhost:9000", "http://[::1]:9001/a/b"] {
        h.ok("CreateOpenIDConnectProvider", &[("Url", url)]).await;
        assert!(h.find_provider(url).await.is_some(), "{url}");
    }
    assert_eq!(h.provider_arns().await.len(), 3);
}

#[tokio::test]
async fn unusable_urls_are_refused_and_nothing_is_stored() {
    let h = harness();
    for url in [
        "http://example.com",
        "http://10.0.0.1:8080/issuer",
        "example.com",
        "ftp://example.com",
        "https://",
        "https://example.com?tenant=1",
        "https://example.com/#frag",
        "https://user@example.com",
        "https://exa mple.com",
    ] {
        let message = assert_code(h.call("CreateOpenIDConnectProvider", &[("Url", url)]).await, 400, "InvalidInput");
        assert!(message.starts_with("Invalid Open ID Connect Provider URL: "), "{url}: {message}");
    }
    let long = format!("https://example.com/{}", "a".repeat(240));
    assert_error(
        h.call("CreateOpenIDConnectProvider", &[("Url", &long)]).await,
        400,
        "ValidationError",
        &format!(
            "1 validation error detected: Value '{long}' at 'url' failed to satisfy constraint: \
             Member must have length less than or equal to 255"
        ),
    );
    assert_error(
        h.call("CreateOpenIDConnectProvider", &[("ClientIDList.member.1", "x")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value null at 'url' failed to satisfy constraint: Member must not be null",
    );
    assert!(h.provider_arns().await.is_empty());
}

#[tokio::test]
async fn a_provider_url_is_registered_once() {
    let h = harness();
    h.ok("CreateOpenIDConnectProvider", &[("Url", "https://issuer.example.com/tenant")]).await;
    for url in ["https://issuer.example.com/tenant", "https://issuer.example.com/tenant/"] {
        assert_error(
            h.call("CreateOpenIDConnectProvider", &[("Url", url), ("ClientIDList.member.1", "other")]).await,
            409,
            "EntityAlreadyExists",
            "Provider with url https://issuer.example.com/tenant already exists.",
        );
    }
    // Another path of the same host is another provider.
    h.ok("CreateOpenIDConnectProvider", &[("Url", "https://issuer.example.com")]).await;
    assert_eq!(
        h.provider_arns().await,
        vec![
            format!("arn:aws:iam::{ACCOUNT}:oidc-provider/issuer.example.com"),
            format!("arn:aws:iam::{ACCOUNT}:oidc-provider/issuer.example.com/tenant"),
        ]
    );
    // The refused duplicate changed nothing.
    let p = h.find_provider("https://issuer.example.com/tenant").await.unwrap();
    assert!(p.client_ids.is_empty());
}

#[tokio::test]
async fn client_ids_are_added_and_removed_idempotently() {
    let h = harness();
    let xml =
        h.ok("CreateOpenIDConnectProvider", &[("Url", GITHUB), ("ClientIDList.member.1", "sts.amazonaws.com")]).await;
    let arn = text(&xml, "OpenIDConnectProviderArn");
    let client_ids = || async { h.find_provider(GITHUB).await.unwrap().client_ids };

    h.ok(
        "AddClientIDToOpenIDConnectProvider",
        &[("OpenIDConnectProviderArn", &arn), ("ClientID", "sts.amazonaws.com")],
    )
    .await;
    assert_eq!(client_ids().await, vec!["sts.amazonaws.com"]);

    for _ in 0..2 {
        h.ok("AddClientIDToOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", "berth-deploy")])
            .await;
    }
    assert_eq!(client_ids().await, vec!["sts.amazonaws.com", "berth-deploy"]);
    let got = h.ok("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await;
    assert!(
        got.contains("<ClientIDList><member>sts.amazonaws.com</member><member>berth-deploy</member></ClientIDList>"),
        "{got}"
    );

    h.ok(
        "RemoveClientIDFromOpenIDConnectProvider",
        &[("OpenIDConnectProviderArn", &arn), ("ClientID", "sts.amazonaws.com")],
    )
    .await;
    assert_eq!(client_ids().await, vec!["berth-deploy"]);
    for id in ["sts.amazonaws.com", "never-added"] {
        h.ok("RemoveClientIDFromOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", id)]).await;
    }
    assert_eq!(client_ids().await, vec!["berth-deploy"]);
    h.ok(
        "RemoveClientIDFromOpenIDConnectProvider",
        &[("OpenIDConnectProviderArn", &arn), ("ClientID", "berth-deploy")],
    )
    .await;
    assert!(client_ids().await.is_empty());

    // Client ids: 1 to 255 characters.
    let long = "c".repeat(256);
    assert_error(
        h.call("AddClientIDToOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", &long)]).await,
        400,
        "ValidationError",
        &format!(
            "1 validation error detected: Value '{long}' at 'clientID' failed to satisfy constraint: \
             Member must have length less than or equal to 255"
        ),
    );
    for op in ["AddClientIDToOpenIDConnectProvider", "RemoveClientIDFromOpenIDConnectProvider"] {
        assert_code(h.call(op, &[("OpenIDConnectProviderArn", &arn), ("ClientID", "")]).await, 400, "ValidationError");
        assert_code(h.call(op, &[("OpenIDConnectProviderArn", &arn)]).await, 400, "ValidationError");
    }
    h.ok("AddClientIDToOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", &"c".repeat(255))])
        .await;

    // Unknown providers.
    let unknown = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/nobody.example.com");
    for op in ["AddClientIDToOpenIDConnectProvider", "RemoveClientIDFromOpenIDConnectProvider"] {
        assert_error(
            h.call(op, &[("OpenIDConnectProviderArn", &unknown), ("ClientID", "x")]).await,
            404,
            "NoSuchEntity",
            &format!("OpenIDConnect Provider not found for arn {unknown}"),
        );
    }
}

#[tokio::test]
async fn a_provider_has_at_most_a_hundred_client_ids() {
    let h = harness();
    let ids: Vec<String> = (0..101).map(|i| format!("client-{i}")).collect();
    let names: Vec<String> = (1..=101).map(|i| format!("ClientIDList.member.{i}")).collect();
    let mut params: Vec<(&str, &str)> = vec![("Url", GITHUB)];
    params.extend(names.iter().map(String::as_str).zip(ids.iter().map(String::as_str)));
    assert_error(
        h.call("CreateOpenIDConnectProvider", &params).await,
        409,
        "LimitExceeded",
        "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100",
    );
    assert!(h.provider_arns().await.is_empty());

    params.pop();
    let xml = h.ok("CreateOpenIDConnectProvider", &params).await;
    let arn = text(&xml, "OpenIDConnectProviderArn");
    assert_error(
        h.call("AddClientIDToOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", "one-more")])
            .await,
        409,
        "LimitExceeded",
        "Cannot exceed quota for ClientIdsPerOpenIdConnectProvider: 100",
    );
    // Adding one it already has is still fine.
    h.ok("AddClientIDToOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn), ("ClientID", "client-7")]).await;
    assert_eq!(h.find_provider(GITHUB).await.unwrap().client_ids.len(), 100);

    let long = "x".repeat(256);
    let message = assert_code(
        h.call(
            "CreateOpenIDConnectProvider",
            &[("Url", "https://other.example.com"), ("ClientIDList.member.1", &long)],
        )
        .await,
        400,
        "ValidationError",
    );
    assert!(message.contains("at 'clientIDList' failed to satisfy constraint"), "{message}");
}

#[tokio::test]
async fn thumbprints_are_validated_and_replaced() {
    let h = harness();
    let six: Vec<String> = (0..6).map(|i| format!("{i}").repeat(40)).collect();
    let names: Vec<String> = (1..=6).map(|i| format!("ThumbprintList.member.{i}")).collect();
    let mut params: Vec<(&str, &str)> = vec![("Url", GITHUB)];
    params.extend(names.iter().map(String::as_str).zip(six.iter().map(String::as_str)));
    assert_error(
        h.call("CreateOpenIDConnectProvider", &params).await,
        400,
        "InvalidInput",
        "Thumbprint list must contain fewer than 5 entries.",
    );
    assert_error(
        h.call("CreateOpenIDConnectProvider", &[("Url", GITHUB), ("ThumbprintList.member.1", "abc")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value '[abc]' at 'thumbprintList' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must have length less than or equal to 40, \
         Member must have length greater than or equal to 40]",
    );
    let not_hex = "g".repeat(40);
    assert_code(
        h.call("CreateOpenIDConnectProvider", &[("Url", GITHUB), ("ThumbprintList.member.1", &not_hex)]).await,
        400,
        "InvalidInput",
    );
    assert!(h.provider_arns().await.is_empty());

    params.pop();
    let xml = h.ok("CreateOpenIDConnectProvider", &params).await;
    let arn = text(&xml, "OpenIDConnectProviderArn");
    assert_eq!(h.find_provider(GITHUB).await.unwrap().thumbprints.len(), 5);

    // Replaced, not merged.
    let upper = THUMBPRINT.to_uppercase();
    h.ok(
        "UpdateOpenIDConnectProviderThumbprint",
        &[("OpenIDConnectProviderArn", &arn), ("ThumbprintList.member.1", &upper)],
    )
    .await;
    assert_eq!(h.find_provider(GITHUB).await.unwrap().thumbprints, vec![upper.clone()]);
    let got = h.ok("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await;
    assert_eq!(texts(&got, "member"), vec![upper.clone()]);

    // An empty list (botocore sends `ThumbprintList=`) is allowed; a missing one is not.
    h.ok("UpdateOpenIDConnectProviderThumbprint", &[("OpenIDConnectProviderArn", &arn), ("ThumbprintList", "")]).await;
    assert!(h.find_provider(GITHUB).await.unwrap().thumbprints.is_empty());
    assert_error(
        h.call("UpdateOpenIDConnectProviderThumbprint", &[("OpenIDConnectProviderArn", &arn)]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value null at 'thumbprintList' failed to satisfy constraint: Member must not be null",
    );
    assert_code(
        h.call(
            "UpdateOpenIDConnectProviderThumbprint",
            &[("OpenIDConnectProviderArn", &arn), ("ThumbprintList.member.1", "0123")],
        )
        .await,
        400,
        "ValidationError",
    );
    let unknown = format!("arn:aws:iam::{ACCOUNT}:oidc-provider/nobody.example.com");
    assert_code(
        h.call(
            "UpdateOpenIDConnectProviderThumbprint",
            &[("OpenIDConnectProviderArn", &unknown), ("ThumbprintList.member.1", THUMBPRINT)],
        )
        .await,
        404,
        "NoSuchEntity",
    );
}

#[tokio::test]
async fn a_deleted_provider_is_gone() {
    let h = harness();
    let xml =
        h.ok("CreateOpenIDConnectProvider", &[("Url", GITHUB), ("ClientIDList.member.1", "sts.amazonaws.com")]).await;
    let arn = text(&xml, "OpenIDConnectProviderArn");
    h.ok("CreateOpenIDConnectProvider", &[("Url", "https://gitlab.example.com")]).await;

    h.ok("DeleteOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await;
    assert_eq!(h.provider_arns().await, vec![format!("arn:aws:iam::{ACCOUNT}:oidc-provider/gitlab.example.com")]);
    assert!(h.find_provider(GITHUB).await.is_none());
    let message = format!("OpenIDConnect Provider not found for arn {arn}");
    assert_error(
        h.call("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await,
        404,
        "NoSuchEntity",
        &message,
    );
    assert_error(
        h.call("DeleteOpenIDConnectProvider", &[("OpenIDConnectProviderArn", &arn)]).await,
        404,
        "NoSuchEntity",
        &message,
    );
    assert_error(
        h.call("GetOpenIDConnectProvider", &[("OpenIDConnectProviderArn", "arn:short")]).await,
        400,
        "ValidationError",
        "1 validation error detected: Value 'arn:short' at 'openIDConnectProviderArn' failed to satisfy constraint: \
         Member must have length greater than or equal to 20",
    );
    assert_code(h.call("GetOpenIDConnectProvider", &[]).await, 400, "ValidationError");

    // It can be registered again.
    h.ok("CreateOpenIDConnectProvider", &[("Url", GITHUB)]).await;
    assert!(h.find_provider(GITHUB).await.unwrap().client_ids.is_empty());
}

#[tokio::test]
async fn an_account_has_at_most_a_hundred_providers() {
    let h = harness();
    for i in 0..100 {
        h.ok("CreateOpenIDConnectProvider", &[("Url", &format!("https://issuer{i}.example.com"))]).await;
    }
    assert_error(
        h.call("CreateOpenIDConnectProvider", &[("Url", "https://one-more.example.com")]).await,
        409,
        "LimitExceeded",
        "Cannot exceed quota for OpenIdConnectProvidersPerAccount: 100",
    );
    assert_eq!(h.provider_arns().await.len(), 100);
    assert!(h.find_provider("https://one-more.example.com").await.is_none());
}
