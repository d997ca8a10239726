//! The in-process test harness: a whole berth server on port 0 with a temporary data dir.

use berth_aws::sigv4::SigningCredentials;

use std::sync::Arc;

use berth_aws::time::{SharedClock, SystemClock};

use crate::client::ApiClient;
use crate::{start_with_clock, Config, RunningServer};

/// A running server with its own temporary data dir and a client signed with its root key.
pub struct TestServer {
    pub server: RunningServer,
    pub client: ApiClient,
    clock: SharedClock,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0` with a fresh data dir.
    pub async fn start() -> TestServer {
        TestServer::start_with_clock(Arc::new(SystemClock)).await
    }

    /// Starts a server with a configuration changed by `adjust` (e.g. a task endpoint on a free port).
    pub async fn start_with_config(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("create a temporary data dir");
        let mut config = Config::new("127.0.0.1:0", Some(dir.path().to_path_buf()), None, None).expect("test config");
        adjust(&mut config);
        let clock: SharedClock = Arc::new(SystemClock);
        let server = start_with_clock(config, clock.clone()).await.expect("start a test server");
        let client = root_client(&server).with_clock(clock.clone());
        TestServer { server, client, clock, dir }
    }

    /// Starts a server whose time is `clock` (e.g. a [`berth_aws::time::ManualClock`] to test expiry).
    pub async fn start_with_clock(clock: SharedClock) -> TestServer {
        let dir = tempfile::tempdir().expect("create a temporary data dir");
        let config = Config::new("127.0.0.1:0", Some(dir.path().to_path_buf()), None, None).expect("test config");
        let server = start_with_clock(config, clock.clone()).await.expect("start a test server");
        let client = root_client(&server).with_clock(clock.clone());
        TestServer { server, client, clock, dir }
    }

    /// A client signed with other credentials (an IAM user's key, a role session's).
    pub fn client_with(&self, creds: SigningCredentials) -> ApiClient {
        ApiClient::new(&self.endpoint(), creds, &self.server.config.aws.region)
            .expect("endpoint of a running server")
            .with_clock(self.clock.clone())
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server gracefully and starts a new one on the same data dir.
    pub async fn restart(self) -> TestServer {
        let TestServer { server, dir, clock, .. } = self;
        server.shutdown().await;
        let config = Config::new("127.0.0.1:0", Some(dir.path().to_path_buf()), None, None).expect("test config");
        let server = start_with_clock(config, clock.clone()).await.expect("restart a test server");
        let client = root_client(&server).with_clock(clock.clone());
        TestServer { server, client, clock, dir }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Creates an IAM user (with `policy` as an inline policy, if given) and an access key for it,
    /// through the IAM API as the root key; returns the key. Panics on a refusal: test setup.
    pub async fn create_user(&self, name: &str, policy: Option<&str>) -> SigningCredentials {
        let iam = |action: &'static str, params: &[(&str, &str)]| {
            let c = self.client.clone();
            let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let r = c.query("iam", action, "2010-05-08", &p).await.expect("IAM request");
                assert_eq!(r.status, 200, "{action}: {}", r.text());
                r
            }
        };
        iam("CreateUser", &[("UserName", name)]).await;
        if let Some(policy) = policy {
            iam("PutUserPolicy", &[("UserName", name), ("PolicyName", "p"), ("PolicyDocument", policy)]).await;
        }
        let key = iam("CreateAccessKey", &[("UserName", name)]).await;
        SigningCredentials {
            access_key_id: key.xml_value("AccessKeyId").expect("an access key id"),
            secret_access_key: key.xml_value("SecretAccessKey").expect("a secret access key"),
            session_token: None,
        }
    }

    /// [`TestServer::create_user`], as a client signed with the new key.
    pub async fn user_client(&self, name: &str, policy: Option<&str>) -> ApiClient {
        let key = self.create_user(name, policy).await;
        self.client_with(key)
    }
}

/// The registry password (`aws ecr get-login-password`) for `client`'s identity: GetAuthorizationToken,
/// then the part after `AWS:` of the base64 token.
pub async fn ecr_password(client: &ApiClient) -> String {
    use base64::Engine as _;
    let r = client
        .json("ecr", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", &serde_json::json!({}))
        .await
        .expect("ECR request");
    assert_eq!(r.status, 200, "GetAuthorizationToken: {}", r.text());
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let token = body["authorizationData"][0]["authorizationToken"].as_str().expect("a token");
    let decoded = base64::engine::general_purpose::STANDARD.decode(token).expect("base64");
    String::from_utf8(decoded).expect("utf-8").strip_prefix("AWS:").expect("AWS:<password>").to_string()
}

/// A client signed with the server's root key.
pub fn root_client(server: &RunningServer) -> ApiClient {
    let creds = SigningCredentials {
        access_key_id: server.root.access_key_id.clone(),
        secret_access_key: server.root.secret_access_key.expose().to_string(),
        session_token: None,
    };
    ApiClient::new(&server.endpoint(), creds, &server.config.aws.region).expect("endpoint of a running server")
}
