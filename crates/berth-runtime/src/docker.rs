//! The Docker Engine driver: [`Runtime`] on bollard, speaking whatever API version the daemon
//! negotiates down to (Debian's Docker 20.10 speaks 1.41).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointIpamConfig, EndpointSettings, EventMessage, HealthConfig,
    HostConfig, Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig, PortBinding, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, InspectContainerOptions, InspectNetworkOptions,
    KillContainerOptions, ListContainersOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Mutex};

use crate::container::{
    ContainerInfo, ContainerSpec, ContainerStatus, ContainerSummary, HealthStatus, LabelFilter, NetworkAttachment,
    NetworkMode, PortProtocol, PublishedPort, Resources,
};
use crate::error::RuntimeError;
use crate::event::{
    ContainerEvent, ContainerEventKind, ContainerStats, EventFilter, LogLine, LogOptions, OutputStream,
};
use crate::image::{ImageReference, PulledImage, RegistryAuth};
use crate::network::{NetworkInfo, NetworkSpec};
use crate::runtime::{BoxFuture, Runtime};
use crate::time;

/// Where the daemon listens when `DOCKER_HOST` says nothing.
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long the daemon may take to answer `/version` at connect time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any request may wait for the daemon's answer to begin (streams then run on).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines buffered between the engine's stream and a slow reader of logs or events.
const CHANNEL_CAPACITY: usize = 256;
/// The container events [`Runtime::events`] forwards.
const EVENT_ACTIONS: [&str; 5] = ["start", "die", "oom", "health_status", "destroy"];

/// A Docker Engine reached over its API socket.
pub struct DockerRuntime {
    docker: Docker,
    host: String,
    api_version: String,
    /// Serializes [`Runtime::ensure_network`]: API 1.41 creates a second network of the same
    /// name rather than refusing it, so look-up-then-create must not interleave.
    network_lock: Mutex<()>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").field("host", &self.host).field("api_version", &self.api_version).finish()
    }
}

impl DockerRuntime {
    /// Connects to the daemon `DOCKER_HOST` names (`unix:///…`, `tcp://…`), by default the
    /// local socket `/var/run/docker.sock`, and negotiates the API version with it. Fails with
    /// [`RuntimeError::Unavailable`] when no daemon answers there.
    pub async fn connect() -> Result<DockerRuntime, RuntimeError> {
        let host = match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.trim().is_empty() => h,
            _ => DEFAULT_HOST.to_string(),
        };
        DockerRuntime::connect_to(&host).await
    }

    /// Connects to the daemon at `host` (`unix:///var/run/docker.sock`, `tcp://127.0.0.1:2375`).
    pub async fn connect_to(host: &str) -> Result<DockerRuntime, RuntimeError> {
        let unavailable = |source| RuntimeError::Unavailable { host: host.to_string(), source };
        let docker = Docker::connect_with_host(host)
            .map_err(unavailable)?
            .with_timeout(CONNECT_TIMEOUT)
            .with_request_modifier(url_safe_registry_auth);
        let docker = docker.negotiate_version().await.map_err(unavailable)?.with_timeout(REQUEST_TIMEOUT);
        let api_version = docker.client_version().to_string();
        tracing::info!(host, api_version, "connected to the Docker daemon");
        Ok(DockerRuntime { docker, host: host.to_string(), api_version, network_lock: Mutex::new(()) })
    }

    /// The daemon's address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version in use (the lower of the daemon's and bollard's).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// An error for anything the caller has no more specific name for.
    fn error(&self, operation: &'static str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError { status_code, message } => {
                RuntimeError::Refused { operation, status: status_code, message }
            }
            e if is_transport(&e) => RuntimeError::Unavailable { host: self.host.clone(), source: e },
            e => RuntimeError::Docker { operation, source: e },
        }
    }

    async fn pull(&self, reference: &str, auth: Option<&RegistryAuth>) -> Result<PulledImage, RuntimeError> {
        let parsed = ImageReference::parse(reference)?;
        let target = parsed.to_pull();
        let failed = |reason: String| RuntimeError::Pull { reference: reference.to_string(), reason };
        let options = CreateImageOptions { from_image: Some(target.clone()), ..Default::default() };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.expose().to_string()),
            serveraddress: Some(a.server_address.clone()),
            ..Default::default()
        });
        tracing::debug!(reference = %target, with_credentials = auth.is_some(), "pulling");
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut served_digest = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(d) = info.status.as_deref().and_then(|s| s.strip_prefix("Digest: ")) {
                        served_digest = Some(d.trim().to_string());
                    }
                }
                Err(BollardError::DockerStreamError { error }) => return Err(failed(error)),
                Err(BollardError::DockerResponseServerError { message, .. }) => return Err(failed(message)),
                Err(e) if is_transport(&e) => return Err(self.error("pull image", e)),
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        let image = self.docker.inspect_image(&target).await.map_err(|e| match e {
            BollardError::DockerResponseServerError { status_code: 404, message } => {
                failed(format!("the image is not there after the pull: {message}"))
            }
            e => self.error("inspect image", e),
        })?;
        let image_id = image.id.unwrap_or_default();
        let digest = parsed.digest.clone().or(served_digest).or_else(|| {
            // The repository's digest as the engine recorded it, when exactly one is recorded.
            let prefix = format!("{}@", parsed.repository);
            let mut found = image.repo_digests.iter().flatten().filter_map(|rd| rd.strip_prefix(&prefix));
            match (found.next(), found.next()) {
                (Some(d), None) => Some(d.to_string()),
                _ => None,
            }
        });
        let repo_digest = digest.as_ref().map(|d| format!("{}@{d}", parsed.repository));
        tracing::info!(reference, image_id, digest = digest.as_deref().unwrap_or("-"), "pulled");
        Ok(PulledImage { image_id, digest, repo_digest })
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let body = container_body(spec)?;
        let options = CreateContainerOptions { name: Some(spec.name.clone()), ..Default::default() };
        let created = self.docker.create_container(Some(options), body).await.map_err(|e| match e {
            BollardError::DockerResponseServerError { status_code: 409, .. } => {
                RuntimeError::NameInUse { name: spec.name.clone() }
            }
            BollardError::DockerResponseServerError { status_code: 404, message } => {
                if message.starts_with("No such image") {
                    RuntimeError::ImageNotFound { reference: spec.image.clone() }
                } else if let (NetworkMode::Container(id), true) =
                    (&spec.network, message.starts_with("No such container"))
                {
                    RuntimeError::ContainerNotFound { id: id.clone() }
                } else if let (NetworkMode::Network { name, .. }, true) =
                    (&spec.network, message.contains("network") && message.contains("not found"))
                {
                    RuntimeError::NetworkNotFound { name: name.clone() }
                } else {
                    RuntimeError::Refused { operation: "create container", status: 404, message }
                }
            }
            e => self.error("create container", e),
        })?;
        for warning in created.warnings.iter().filter(|w| !w.is_empty()) {
            tracing::warn!(container = spec.name, warning, "Docker's warning on create");
        }
        tracing::debug!(container = spec.name, id = created.id, "created");
        Ok(created.id)
    }

    /// Maps a 404 to [`RuntimeError::ContainerNotFound`], the rest as [`Self::error`].
    fn container_error(&self, operation: &'static str, id: &str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError { status_code: 404, .. } => {
                RuntimeError::ContainerNotFound { id: id.to_string() }
            }
            e => self.error(operation, e),
        }
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let seconds = i32::try_from(seconds).unwrap_or(i32::MAX);
        // The daemon answers only once the container has stopped: give the request that long.
        let docker = self.docker.clone().with_timeout(REQUEST_TIMEOUT + Duration::from_secs(seconds as u64));
        let options = StopContainerOptions { t: Some(seconds), signal: None };
        docker.stop_container(id, Some(options)).await.map_err(|e| self.container_error("stop container", id, e))?;
        tracing::debug!(id, seconds, "stopped");
        Ok(())
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.container_error("inspect container", id, e))?;
        Ok(container_info(c))
    }

    async fn list(&self, labels: &[LabelFilter]) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label".to_string(), labels.iter().map(LabelFilter::to_docker).collect::<Vec<_>>());
        }
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self.docker.list_containers(Some(options)).await.map_err(|e| self.error("list containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                status: c.state.map_or(ContainerStatus::Unknown, |s| ContainerStatus::from_docker(s.as_ref())),
            })
            .collect())
    }

    async fn stats(&self, id: &str) -> Result<ContainerStats, RuntimeError> {
        let options = StatsOptions { stream: false, one_shot: false };
        let mut stream = self.docker.stats(id, Some(options));
        let s = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(self.container_error("read container stats", id, e)),
            None => return Err(RuntimeError::StreamEnded { operation: "read container stats" }),
        };
        let raw = serde_json::to_value(&s).unwrap_or(serde_json::Value::Null);
        let cpu = s.cpu_stats.unwrap_or_default();
        let precpu = s.precpu_stats.unwrap_or_default();
        let memory = s.memory_stats.unwrap_or_default();
        let memory_stats = memory.stats.unwrap_or_default();
        // cgroup v2 names it inactive_file, v1 total_inactive_file (docker stats reads the same).
        let inactive = memory_stats.get("inactive_file").or_else(|| memory_stats.get("total_inactive_file"));
        Ok(ContainerStats {
            read: s.read.as_ref().and_then(|d| time::parse(&d.to_string())),
            cpu_total_ns: cpu.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0),
            precpu_total_ns: precpu.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0),
            system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
            presystem_cpu_ns: precpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(0),
            memory_usage_bytes: memory.usage.unwrap_or(0),
            memory_inactive_file_bytes: inactive.copied().unwrap_or(0),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            raw,
        })
    }

    async fn ensure(&self, spec: &NetworkSpec) -> Result<NetworkInfo, RuntimeError> {
        if spec.name.is_empty() {
            return Err(RuntimeError::Refused {
                operation: "create network",
                status: 400,
                message: "a network needs a name".to_string(),
            });
        }
        let _serial = self.network_lock.lock().await;
        let existing = self.find_network(&spec.name).await?;
        let id = match existing {
            Some(id) => id,
            None => {
                let request = NetworkCreateRequest {
                    name: spec.name.clone(),
                    driver: Some("bridge".to_string()),
                    labels: Some(spec.labels.clone().into_iter().collect()),
                    ipam: spec.subnet.as_ref().map(|subnet| Ipam {
                        driver: Some("default".to_string()),
                        config: Some(vec![IpamConfig {
                            subnet: Some(subnet.clone()),
                            // Recorded, so that inspecting the network tells it.
                            gateway: first_host(subnet).map(|g| g.to_string()),
                            ..Default::default()
                        }]),
                        options: None,
                    }),
                    ..Default::default()
                };
                let created = self.docker.create_network(request).await.map_err(|e| self.error("create network", e))?;
                tracing::info!(network = spec.name, id = created.id, "created network");
                // Another process may have created one of the same name meanwhile: all agree on
                // the oldest and the others remove theirs.
                let winner = self.find_network(&spec.name).await?.unwrap_or_else(|| created.id.clone());
                if winner != created.id {
                    tracing::info!(network = spec.name, id = created.id, "removing a duplicate network");
                    self.docker.remove_network(&created.id).await.map_err(|e| self.error("remove network", e))?;
                }
                winner
            }
        };
        let info = self.network_info(&id).await?;
        if let Some(want) = &spec.subnet {
            if info.subnet.as_deref() != Some(want.as_str()) {
                return Err(RuntimeError::NetworkConflict {
                    name: spec.name.clone(),
                    want: format!("subnet {want}"),
                    have: format!("subnet {}", info.subnet.as_deref().unwrap_or("(none)")),
                });
            }
        }
        Ok(info)
    }

    /// The id of the network named exactly `name` (the oldest, if there are several).
    async fn find_network(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
            .await
            .map_err(|e| self.error("list networks", e))?;
        // The name filter matches substrings; only an exact name counts.
        let mut same = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(|n| (n.created.as_deref().and_then(time::parse), n.id.unwrap_or_default()))
            .collect::<Vec<_>>();
        same.sort();
        Ok(same.into_iter().next().map(|(_, id)| id))
    }

    async fn network_info(&self, id: &str) -> Result<NetworkInfo, RuntimeError> {
        let n = self.docker.inspect_network(id, None::<InspectNetworkOptions>).await.map_err(|e| match e {
            BollardError::DockerResponseServerError { status_code: 404, .. } => {
                RuntimeError::NetworkNotFound { name: id.to_string() }
            }
            e => self.error("inspect network", e),
        })?;
        let id = n.id.unwrap_or_default();
        let ipv4 = n
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.subnet.as_deref().is_some_and(|s| s.contains('.')));
        let options = n.options.unwrap_or_default();
        let bridge_interface = match options.get("com.docker.network.bridge.name") {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("br-{}", id.get(..12).unwrap_or(&id)),
        };
        Ok(NetworkInfo {
            name: n.name.unwrap_or_default(),
            subnet: ipv4.as_ref().and_then(|c| c.subnet.clone()),
            // A network created with a subnet but no gateway does not record it: the engine
            // then gives the bridge the subnet's first address.
            gateway: ipv4.as_ref().and_then(|c| {
                c.gateway.as_deref().and_then(|g| g.parse().ok()).or_else(|| c.subnet.as_deref().and_then(first_host))
            }),
            bridge_interface,
            labels: n.labels.unwrap_or_default().into_iter().collect(),
            id,
        })
    }
}

impl Runtime for DockerRuntime {
    fn pull_image<'a>(
        &'a self,
        reference: &'a str,
        auth: Option<&'a RegistryAuth>,
    ) -> BoxFuture<'a, Result<PulledImage, RuntimeError>> {
        Box::pin(self.pull(reference, auth))
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let options = RemoveImageOptions { force: true, ..Default::default() };
            match self.docker.remove_image(reference, Some(options), None).await {
                Ok(_) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(e) => Err(self.error("remove image", e)),
            }
        })
    }

    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(self.create(spec))
    }

    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            self.docker.start_container(id, None::<StartContainerOptions>).await.map_err(|e| match e {
                // The engine checks the network only now (API 1.41 creates the container anyway).
                BollardError::DockerResponseServerError { status_code: 404, message }
                    if message.starts_with("network ") && message.ends_with(" not found") =>
                {
                    let name = message.trim_start_matches("network ").trim_end_matches(" not found");
                    RuntimeError::NetworkNotFound { name: name.to_string() }
                }
                e => self.container_error("start container", id, e),
            })?;
            tracing::debug!(id, "started");
            Ok(())
        })
    }

    fn stop_container<'a>(&'a self, id: &'a str, timeout: Duration) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(self.stop(id, timeout))
    }

    fn kill_container<'a>(&'a self, id: &'a str, signal: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let options = KillContainerOptions { signal: signal.to_string() };
            self.docker.kill_container(id, Some(options)).await.map_err(|e| match e {
                BollardError::DockerResponseServerError { status_code: 409, .. } => {
                    RuntimeError::NotRunning { id: id.to_string() }
                }
                e => self.container_error("kill container", id, e),
            })?;
            tracing::debug!(id, signal, "signalled");
            Ok(())
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
            match self.docker.remove_container(id, Some(options)).await {
                Ok(()) => {
                    tracing::debug!(id, "removed");
                    Ok(())
                }
                // Gone already, or being removed by an earlier call.
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(BollardError::DockerResponseServerError { status_code: 409, message })
                    if message.contains("already in progress") =>
                {
                    Ok(())
                }
                Err(e) => Err(self.error("remove container", e)),
            }
        })
    }

    fn inspect_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerInfo, RuntimeError>> {
        Box::pin(self.inspect(id))
    }

    fn list_containers<'a>(
        &'a self,
        labels: &'a [LabelFilter],
    ) -> BoxFuture<'a, Result<Vec<ContainerSummary>, RuntimeError>> {
        Box::pin(self.list(labels))
    }

    fn container_stats<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStats, RuntimeError>> {
        Box::pin(self.stats(id))
    }

    fn container_logs(&self, id: &str, options: &LogOptions) -> mpsc::Receiver<Result<LogLine, RuntimeError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let query = LogsOptions {
            follow: options.follow,
            stdout: options.stdout,
            stderr: options.stderr,
            since: options.since.map_or(0, |t| {
                let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
                i32::try_from(secs).unwrap_or(i32::MAX)
            }),
            timestamps: true,
            tail: options.tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(query));
        let (id, host) = (id.to_string(), self.host.clone());
        tokio::spawn(async move {
            while let Some(item) = next_unless_closed(&mut stream, &tx).await {
                let (stream_kind, bytes) = match item {
                    Ok(LogOutput::StdOut { message }) => (OutputStream::Stdout, message),
                    Ok(LogOutput::StdErr { message }) => (OutputStream::Stderr, message),
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(stream_error("read container logs", &id, &host, e))).await;
                        return;
                    }
                };
                for line in split_log_lines(stream_kind, &bytes) {
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    fn events(&self, filter: &EventFilter) -> mpsc::Receiver<Result<ContainerEvent, RuntimeError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), EVENT_ACTIONS.iter().map(|a| a.to_string()).collect()),
        ]);
        if !filter.labels.is_empty() {
            filters.insert("label".to_string(), filter.labels.iter().map(LabelFilter::to_docker).collect());
        }
        let since = filter.since.unwrap_or_else(SystemTime::now);
        let options = EventsOptions { since: Some(time::unix_arg(since)), until: None, filters: Some(filters) };
        let mut stream = self.docker.events(Some(options));
        let host = self.host.clone();
        tokio::spawn(async move {
            while let Some(item) = next_unless_closed(&mut stream, &tx).await {
                let event = match item {
                    Ok(message) => match container_event(message) {
                        Some(e) => Ok(e),
                        None => continue,
                    },
                    Err(e) => Err(stream_error("read events", "", &host, e)),
                };
                let last = event.is_err();
                if tx.send(event).await.is_err() || last {
                    return;
                }
            }
            // The daemon ended the stream (it is stopping): say so, as the receiver must resubscribe.
            if !tx.is_closed() {
                let _ = tx.send(Err(RuntimeError::StreamEnded { operation: "read events" })).await;
            }
        });
        rx
    }

    fn ensure_network<'a>(&'a self, spec: &'a NetworkSpec) -> BoxFuture<'a, Result<NetworkInfo, RuntimeError>> {
        Box::pin(self.ensure(spec))
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            match self.docker.remove_network(name).await {
                Ok(()) => {
                    tracing::info!(network = name, "removed network");
                    Ok(())
                }
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
                Err(BollardError::DockerResponseServerError { message, .. })
                    if message.contains("active endpoints") =>
                {
                    Err(RuntimeError::NetworkInUse { name: name.to_string(), message })
                }
                Err(e) => Err(self.error("remove network", e)),
            }
        })
    }
}

/// The stream's next item, or `None` once the receiver is gone: a reader that went away ends
/// the task (and its connection to the engine) even while the engine has nothing to send.
async fn next_unless_closed<S, T>(stream: &mut S, tx: &mpsc::Sender<T>) -> Option<S::Item>
where
    S: futures_util::Stream + Unpin,
{
    tokio::select! {
        item = stream.next() => item,
        _ = tx.closed() => None,
    }
}

/// Whether the error is the connection to the daemon failing rather than an answer from it.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
    )
}

/// An error in a log or event stream (outside `&self`, in the task that reads it).
fn stream_error(operation: &'static str, id: &str, host: &str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError { status_code: 404, .. } if !id.is_empty() => {
            RuntimeError::ContainerNotFound { id: id.to_string() }
        }
        BollardError::DockerResponseServerError { status_code, message } => {
            RuntimeError::Refused { operation, status: status_code, message }
        }
        e if is_transport(&e) => RuntimeError::Unavailable { host: host.to_string(), source: e },
        e => RuntimeError::Docker { operation, source: e },
    }
}

/// bollard encodes `X-Registry-Auth` in standard base64, but the daemon decodes it as base64url
/// and, for a pull, silently drops credentials it cannot decode: any `+` or `/` in the header
/// would turn an authenticated pull into an anonymous one. The alphabets differ only there.
/// (For ASCII credentials that takes a `>`, `?` or `~` at certain offsets of the JSON, so berth's
/// own ECR passwords never need it; other registries' passwords may.)
fn url_safe_registry_auth<B>(mut req: http::Request<B>) -> http::Request<B> {
    let fixed = req
        .headers()
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.contains(['+', '/']))
        .map(|v| v.replace('+', "-").replace('/', "_"))
        .and_then(|v| http::HeaderValue::from_str(&v).ok());
    if let Some(v) = fixed {
        req.headers_mut().insert("x-registry-auth", v);
    }
    req
}

/// The first host address of an IPv4 subnet in CIDR form (`172.30.5.0/24` → `172.30.5.1`).
fn first_host(cidr: &str) -> Option<Ipv4Addr> {
    let (address, bits) = cidr.split_once('/')?;
    let (address, bits) = (address.parse::<Ipv4Addr>().ok()?, bits.parse::<u32>().ok()?);
    if bits > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Some(Ipv4Addr::from((u32::from(address) & mask) + 1))
}

/// Nanoseconds, as the engine counts health check intervals.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn container_body(spec: &ContainerSpec) -> Result<ContainerCreateBody, RuntimeError> {
    let invalid = |reason: &str| RuntimeError::InvalidSpec { name: spec.name.clone(), reason: reason.to_string() };
    if spec.name.is_empty() {
        return Err(invalid("a container needs a name"));
    }
    if spec.image.is_empty() {
        return Err(invalid("a container needs an image"));
    }
    let shares_namespace = matches!(spec.network, NetworkMode::Host | NetworkMode::Container(_));
    if shares_namespace && spec.hostname.is_some() {
        return Err(invalid("a hostname cannot be set in host mode or in another container's network"));
    }
    if matches!(spec.network, NetworkMode::Container(_)) && !spec.extra_hosts.is_empty() {
        return Err(invalid("extra hosts cannot be set in another container's network"));
    }
    if let Some(h) = &spec.healthcheck {
        let ok = match h.test.first().map(String::as_str) {
            Some("NONE") => h.test.len() == 1,
            Some("CMD") | Some("CMD-SHELL") => h.test.len() > 1,
            _ => false,
        };
        if !ok {
            return Err(invalid("a health check test is [\"CMD\", …], [\"CMD-SHELL\", \"…\"] or [\"NONE\"]"));
        }
    }
    let (network_mode, port_bindings, exposed, networking) = match &spec.network {
        NetworkMode::Bridge { ports } => {
            let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
            for p in ports {
                let key = format!("{}/{}", p.container_port, p.protocol.as_str());
                let binding = PortBinding { host_ip: None, host_port: p.host_port.map(|h| h.to_string()) };
                bindings.entry(key).or_default().get_or_insert_with(Vec::new).push(binding);
            }
            let exposed = bindings.keys().cloned().collect::<Vec<_>>();
            ("bridge".to_string(), Some(bindings), Some(exposed), None)
        }
        NetworkMode::Network { name, ipv4, aliases } => {
            let endpoint = EndpointSettings {
                ipam_config: ipv4
                    .map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_string()), ..Default::default() }),
                aliases: (!aliases.is_empty()).then(|| aliases.clone()),
                ..Default::default()
            };
            let networking = NetworkingConfig { endpoints_config: Some(HashMap::from([(name.clone(), endpoint)])) };
            (name.clone(), None, None, Some(networking))
        }
        NetworkMode::Host => ("host".to_string(), None, None, None),
        NetworkMode::Container(id) => (format!("container:{id}"), None, None, None),
    };
    let host_config = HostConfig {
        network_mode: Some(network_mode),
        port_bindings,
        cpu_shares: spec.resources.cpu_shares,
        nano_cpus: spec.resources.nano_cpus,
        memory: spec.resources.memory_bytes,
        memory_reservation: spec.resources.memory_reservation_bytes,
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits { name: Some(u.name.clone()), soft: Some(u.soft), hard: Some(u.hard) })
                .collect()
        }),
        readonly_rootfs: spec.readonly_root_filesystem.then_some(true),
        extra_hosts: (!spec.extra_hosts.is_empty())
            .then(|| spec.extra_hosts.iter().map(|(host, ip)| format!("{host}:{ip}")).collect()),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        hostname: spec.hostname.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: exposed,
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(nanos(h.start_period)),
            start_interval: None,
        }),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_timeout.map(|t| (t.as_secs() + u64::from(t.subsec_nanos() > 0)) as i64),
        host_config: Some(host_config),
        networking_config: networking,
        ..Default::default()
    })
}

fn container_info(c: ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let status = state.status.map_or(ContainerStatus::Unknown, |s| ContainerStatus::from_docker(s.as_ref()));
    let health =
        state.health.and_then(|h| h.status).map_or(HealthStatus::None, |s| HealthStatus::from_docker(s.as_ref()));
    let settings = c.network_settings.unwrap_or_default();
    let networks = settings
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| {
            let ip = |s: Option<String>| s.and_then(|s| s.parse::<Ipv4Addr>().ok());
            let attachment = NetworkAttachment {
                network_id: e.network_id.unwrap_or_default(),
                ipv4: ip(e.ip_address),
                gateway: ip(e.gateway),
            };
            (name, attachment)
        })
        .collect();
    let mut ports = Vec::new();
    for (key, bindings) in settings.ports.unwrap_or_default() {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let (Ok(container_port), Some(protocol)) = (port.parse::<u16>(), parse_protocol(protocol)) else { continue };
        for b in bindings.unwrap_or_default() {
            let host_ip = b.host_ip.as_deref().and_then(|h| h.parse::<IpAddr>().ok());
            let host_port = b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok());
            if let (Some(host_ip), Some(host_port)) = (host_ip, host_port) {
                ports.push(PublishedPort { container_port, protocol, host_ip, host_port });
            }
        }
    }
    ports.sort_by_key(|p| (p.container_port, p.protocol, p.host_ip, p.host_port));
    let host_config = c.host_config.unwrap_or_default();
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let config = c.config.unwrap_or_default();
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c.name.unwrap_or_default().trim_start_matches('/').to_string(),
        image: config.image.unwrap_or_default(),
        image_id: c.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        status,
        exit_code: if status.is_finished() { state.exit_code } else { None },
        oom_killed: state.oom_killed.unwrap_or(false),
        error: state.error.filter(|e| !e.is_empty()),
        started_at: state.started_at.as_deref().and_then(time::parse),
        finished_at: state.finished_at.as_deref().and_then(time::parse),
        health,
        networks,
        ports,
        resources: Resources {
            cpu_shares: positive(host_config.cpu_shares),
            nano_cpus: positive(host_config.nano_cpus),
            memory_bytes: positive(host_config.memory),
            memory_reservation_bytes: positive(host_config.memory_reservation),
        },
    }
}

fn parse_protocol(s: &str) -> Option<PortProtocol> {
    match s {
        "tcp" => Some(PortProtocol::Tcp),
        "udp" => Some(PortProtocol::Udp),
        _ => None,
    }
}

fn container_event(m: EventMessage) -> Option<ContainerEvent> {
    let actor = m.actor?;
    let id = actor.id?;
    let attributes: BTreeMap<String, String> = actor.attributes.unwrap_or_default().into_iter().collect();
    let action = m.action?;
    let kind = match action.as_str() {
        "start" => ContainerEventKind::Start,
        "die" => ContainerEventKind::Die { exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()) },
        "oom" => ContainerEventKind::Oom,
        "destroy" => ContainerEventKind::Destroy,
        other => {
            let status = other.strip_prefix("health_status:")?.trim();
            ContainerEventKind::HealthStatus(HealthStatus::from_docker(status))
        }
    };
    Some(ContainerEvent { id, kind, time: time::from_unix_nanos(m.time_nano, m.time), attributes })
}

/// Splits one frame of output (`<RFC 3339 time> <text>\n` per line, as asked with timestamps)
/// into lines.
fn split_log_lines(stream: OutputStream, bytes: &[u8]) -> Vec<LogLine> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split('\n')
        .map(|line| {
            let (timestamp, message) = match line.split_once(' ') {
                Some((t, rest)) => match time::parse(t) {
                    Some(t) => (Some(t), rest),
                    None => (None, line),
                },
                None => match time::parse(line) {
                    Some(t) => (Some(t), ""),
                    None => (None, line),
                },
            };
            LogLine { stream, timestamp, message: message.strip_suffix('\r').unwrap_or(message).to_string() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header_is_made_url_safe() {
        let req = http::Request::builder().header("X-Registry-Auth", "ab+c/d==").body(()).unwrap();
        let req = url_safe_registry_auth(req);
        assert_eq!(req.headers()["x-registry-auth"], "ab-c_d==");
        let req = http::Request::builder().header("Other", "a+b").body(()).unwrap();
        assert_eq!(url_safe_registry_auth(req).headers()["other"], "a+b");
    }

    #[test]
    fn the_gateway_is_the_first_address_of_the_subnet() {
        assert_eq!(first_host("172.30.5.0/24"), Some(Ipv4Addr::new(172, 30, 5, 1)));
        assert_eq!(first_host("10.1.2.3/16"), Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(first_host("10.1.2.3/32"), None);
        assert_eq!(first_host("nonsense"), None);
    }

    #[test]
    fn log_frames_split_into_timestamped_lines() {
        let lines =
            split_log_lines(OutputStream::Stderr, b"2024-05-01T12:00:00.5Z first line\n2024-05-01T12:00:01Z second\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, "first line");
        assert_eq!(lines[1].message, "second");
        assert_eq!(lines[0].stream, OutputStream::Stderr);
        assert!(lines[0].timestamp.unwrap() < lines[1].timestamp.unwrap());
        let empty = split_log_lines(OutputStream::Stdout, b"2024-05-01T12:00:00Z \n");
        assert_eq!(empty[0].message, "");
    }
}
