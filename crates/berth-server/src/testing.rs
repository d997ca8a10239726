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
