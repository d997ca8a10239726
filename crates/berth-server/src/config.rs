//! The server's configuration, parsed into typed values and validated with errors that name the field.

use std::net::SocketAddr;
use std::path::PathBuf;

use berth_aws::context::{ContextError, DEFAULT_ACCOUNT_ID, DEFAULT_REGION};
use berth_aws::AwsContext;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4566";

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the API listens (`--listen`, `BERTH_LISTEN`).
    pub listen: SocketAddr,
    /// Where state lives (`--data-dir`, `BERTH_DATA_DIR`).
    pub data_dir: PathBuf,
    pub aws: AwsContext,
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: std::time::Duration,
    /// Timings of web-identity token verification (issuer fetch timeout, key cache lifetime).
    pub oidc: berth_iam::oidc::OidcConfig,
    /// The registry's host as clients reach it (`--registry-host`, `BERTH_REGISTRY_HOST`): repository
    /// URIs and `proxyEndpoint` use it. `None`: `localhost:<port berth listens on>`.
    pub registry_host: Option<String>,
    /// How often lifecycle policies are applied and registry garbage is collected.
    pub registry_maintenance_interval: std::time::Duration,
    /// What the registry's collector leaves alone: blobs and blob links younger than this (a push
    /// whose manifest has not arrived yet), and uploads active within it.
    pub registry_gc_grace: std::time::Duration,
    /// Where the task endpoint listens (task credentials and metadata v4, `--task-endpoint`):
    /// `169.254.170.2:80` for real use (containers' SDKs look there); `None` (the library default,
    /// so parallel test servers do not fight over the one address) serves none.
    pub task_endpoint: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("listen address '{value}' is not an IP address and port, e.g. 127.0.0.1:4566")]
    Listen { value: String },
    #[error("no data directory given and no home directory to put one in: set --data-dir or BERTH_DATA_DIR")]
    NoDataDir,
    #[error(transparent)]
    Context(#[from] ContextError),
}

impl Config {
    pub fn new(
        listen: &str,
        data_dir: Option<PathBuf>,
        account_id: Option<&str>,
        region: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let listen = listen.parse().map_err(|_| ConfigError::Listen { value: listen.to_string() })?;
        let data_dir = match data_dir {
            Some(d) => d,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let aws = AwsContext::new(account_id.unwrap_or(DEFAULT_ACCOUNT_ID), region.unwrap_or(DEFAULT_REGION))?;
        Ok(Config {
            listen,
            data_dir,
            aws,
            max_body_bytes: berth_aws::gateway::DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: std::time::Duration::from_secs(30),
            oidc: berth_iam::oidc::OidcConfig::default(),
            registry_host: None,
            registry_maintenance_interval: std::time::Duration::from_secs(3600),
            registry_gc_grace: std::time::Duration::from_secs(3600),
            task_endpoint: None,
        })
    }
}

/// `$XDG_DATA_HOME/berth`, else `$HOME/.local/share/berth`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("berth"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/share/berth"))
}
