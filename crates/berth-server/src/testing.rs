//! The in-process test harness: a whole berth server on port 0 with a temporary data dir.

use berth_aws::sigv4::SigningCredentials;

use crate::client::ApiClient;
use crate::{start, Config, RunningServer};

/// A running server with its own temporary data dir and a client signed with its root key.
pub struct TestServer {
    pub server: RunningServer,
    pub client: ApiClient,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0` with a fresh data dir.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("create a temporary data dir");
        let server = start_in(dir.path()).await;
        let client = root_client(&server);
        TestServer { server, client, dir }
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server gracefully and starts a new one on the same data dir.
    pub async fn restart(self) -> TestServer {
        let TestServer { server, dir, .. } = self;
        server.shutdown().await;
        let server = start_in(dir.path()).await;
        let client = root_client(&server);
        TestServer { server, client, dir }
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

async fn start_in(dir: &std::path::Path) -> RunningServer {
    let config = Config::new("127.0.0.1:0", Some(dir.to_path_buf()), None, None).expect("test config");
    start(config).await.expect("start a test server")
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
