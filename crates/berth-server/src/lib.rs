//! Wiring: configuration, the one API gateway, the services behind it, and the HTTP server.
//! Also the in-process test harness ([`testing`]) and a signed API client ([`client`]).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod client;
pub mod config;
pub mod testing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_aws::time::Timestamp;
use berth_aws::time::{SharedClock, SystemClock};
use berth_aws::Gateway;
use berth_ecs::EcsService;
use berth_iam::oidc::OidcVerifier;
use berth_iam::{IamService, IamState, RootCredentials, StsService};
use berth_registry::distribution::{full, Body};
use berth_registry::{DataPath, EcrService, Registry};
use berth_store::Store;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Config;

/// The file in the data dir that records where the last server listened (read by `berth env`).
pub const ENDPOINT_FILE: &str = "endpoint";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error(transparent)]
    RootCredentials(#[from] berth_iam::RootCredentialsError),
    #[error("cannot start IAM: {0}")]
    Iam(#[from] berth_iam::IamError),
    #[error("cannot start the registry: {0}")]
    Registry(#[from] berth_registry::RegistryError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A started server. Dropping it does not stop it: call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub root: RootCredentials,
    pub config: Config,
    /// The services served, with their operation tables.
    pub services: Vec<&'static berth_aws::ServiceSpec>,
    /// The registry's host as clients reach it (`localhost:4566`).
    pub registry_host: String,
    /// Where the task endpoint listens, if it does.
    pub task_endpoint: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// `http://<addr>`, what `AWS_ENDPOINT_URL` should be.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the configured grace),
    /// then closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Runs until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await;
    }
}

/// Opens the state, builds every service and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(config: Config, clock: SharedClock) -> Result<RunningServer, ServerError> {
    // The store takes the data dir's lock first: a second server on the same dir stops here.
    let store = Store::open(&config.data_dir)?;
    let root = RootCredentials::load_or_create(&config.data_dir)?;

    // IAM first: every request is authenticated and authorized against its in-memory view.
    store.migrate("iam", berth_iam::schema::MIGRATIONS)?;
    let now = Timestamp::from_system(clock.now());
    let iam_state = IamState::load(&config.aws, &root, &store, now)?;
    let verifier = OidcVerifier::new(config.oidc.clone(), clock.clone());

    // Bound before the services are built: the registry names itself by the port clients reach.
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
    let registry_host = config.registry_host.clone().unwrap_or_else(|| format!("localhost:{}", local_addr.port()));
    let registry = Registry::open(
        store.clone(),
        &config.data_dir.join("registry"),
        registry_host.clone(),
        config.aws.clone(),
        clock.clone(),
    )
    .await?;

    let mut gateway = Gateway::new(config.aws.clone(), iam_state.clone(), iam_state.clone(), clock.clone())
        .with_max_body_bytes(config.max_body_bytes);
    let sts = Arc::new(StsService::new(store.clone(), clock.clone(), iam_state.clone(), verifier));
    gateway.register(sts.clone());
    gateway.register(Arc::new(IamService::new(store.clone(), clock.clone(), iam_state.clone())));
    gateway.register(Arc::new(EcrService::new(registry.clone(), iam_state.clone())));
    gateway.register(Arc::new(EcsService::open(store.clone(), clock.clone(), config.aws.clone(), iam_state.clone())?));
    let gateway = Arc::new(gateway);
    let services = gateway.specs();
    let credentials: Arc<dyn berth_aws::CredentialStore> = iam_state.clone();
    let data_path = Arc::new(DataPath::new(registry, iam_state.clone(), iam_state));

    write_endpoint_file(&config.data_dir, local_addr)?;

    let (stop, stop_rx) = watch::channel(false);
    let grace = config.shutdown_grace;
    // What containers reach at 169.254.170.2: their task role's credentials and their metadata.
    let role_sessions: Arc<dyn berth_ecs::ports::RoleSessions> =
        Arc::new(adapters::StsRoleSessions { sts: sts.clone(), duration_secs: 6 * 3600 });
    let (task_endpoint, task_endpoint_addr) = match config.task_endpoint {
        Some(addr) => start_task_endpoint(addr, &store, role_sessions.clone(), &clock, &config, stop_rx.clone()).await,
        None => (None, None),
    };
    // Lifecycle policies and garbage collection, stopped with the server (it holds the store).
    let maintenance = berth_registry::maintenance::spawn(
        data_path.registry().clone(),
        config.registry_maintenance_interval,
        config.registry_gc_grace,
        stop_rx.clone(),
    );
    // The task controller: RunTask's rows become containers on the Docker Engine. Without an
    // engine berth still serves its API, and tasks stop with a stoppedReason that says why. The
    // engine is reached from the controller's own task, so that start-up does not wait on Docker.
    let images: Arc<dyn berth_ecs::ports::ImageSource> =
        Arc::new(adapters::RegistryImages { registry: data_path.registry().clone(), credentials });
    let controller = {
        let (store, clock, region, sessions, stop) =
            (store.clone(), clock.clone(), config.aws.region.clone(), role_sessions.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let runtime: Option<Arc<dyn berth_runtime::Runtime>> = match berth_runtime::DockerRuntime::connect().await {
                Ok(rt) => Some(Arc::new(rt)),
                Err(e) => {
                    tracing::warn!(error = %e, "no Docker Engine: ECS tasks cannot run (they stop with ResourceInitializationError)");
                    None
                }
            };
            let controller =
                berth_ecs::task_controller::TaskController::new(store, clock, &region, runtime, images, sessions);
            let _ = controller.spawn(stop).await;
        })
    };
    let task = tokio::spawn(async move {
        serve(listener, gateway, data_path, stop_rx, grace, store).await;
        let _ = controller.await;
        let _ = maintenance.await;
        if let Some(t) = task_endpoint {
            let _ = t.await;
        }
    });
    Ok(RunningServer {
        local_addr,
        data_dir: config.data_dir.clone(),
        root,
        config,
        services,
        registry_host,
        task_endpoint: task_endpoint_addr,
        stop,
        task,
    })
}

/// Starts the task endpoint on `addr`, adding 169.254.170.2 to `lo` first when that is the address.
/// Failing to bind is not fatal: berth serves its API, and tasks run without credentials or
/// metadata (said in the log).
async fn start_task_endpoint(
    addr: SocketAddr,
    store: &Store,
    sessions: Arc<dyn berth_ecs::ports::RoleSessions>,
    clock: &SharedClock,
    config: &Config,
    stop: watch::Receiver<bool>,
) -> (Option<JoinHandle<()>>, Option<SocketAddr>) {
    use berth_ecs::task_endpoint::{self, TaskEndpoint};
    if addr.ip().to_string() == task_endpoint::LINK_LOCAL_ADDRESS {
        task_endpoint::ensure_link_local_address();
    }
    match task_endpoint::bind(addr).await {
        Ok(listener) => {
            let local = listener.local_addr().ok();
            let endpoint = TaskEndpoint::new(store.clone(), sessions, clock.clone(), &config.aws.region);
            tracing::info!(addr = ?local, "task endpoint (credentials, metadata v4) listening");
            (Some(tokio::spawn(endpoint.serve(listener, stop))), local)
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot listen for the task endpoint: tasks get no credentials or metadata");
            (None, None)
        }
    }
}

fn write_endpoint_file(data_dir: &Path, addr: SocketAddr) -> Result<(), ServerError> {
    let path = data_dir.join(ENDPOINT_FILE);
    std::fs::write(&path, format!("http://{addr}\n")).map_err(|source| ServerError::Io { path, source })
}

async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    data_path: Arc<DataPath>,
    mut stop: watch::Receiver<bool>,
    grace: std::time::Duration,
    store: Store,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(30));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gateway.clone();
                let dp = data_path.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let gw = gw.clone();
                    let dp = dp.clone();
                    async move { Ok::<_, Infallible>(route(&gw, &dp, req, peer).await) }
                });
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "in-flight requests did not finish within the grace period"),
    }
    drop(store);
}

/// One request: the health check, the registry data path (streamed), or the AWS API (body read
/// whole, up to the limit).
async fn route(gateway: &Gateway, data_path: &DataPath, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    if DataPath::handles(req.uri().path()) {
        return data_path.handle(req, Some(peer)).await;
    }
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/_berth/health" {
        let mut resp = Response::new(full(&b"{\"status\":\"ok\"}"[..]));
        resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        return resp;
    }
    let limit = gateway.max_body_bytes();
    let declared_too_large = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64);
    if declared_too_large {
        return close_after(gateway.body_too_large(&parts).map(full));
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return close_after(gateway.body_too_large(&parts).map(full));
        }
        Err(e) => {
            tracing::debug!(error = %e, "request body could not be read");
            let mut resp = Response::new(full(bytes::Bytes::new()));
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            return close_after(resp);
        }
    };
    gateway.handle(&parts, &body, Some(peer)).await.map(full)
}

/// The rest of an over-long body is not read: close the connection after answering.
fn close_after<B>(mut resp: Response<B>) -> Response<B> {
    resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}
