//! The task controller: drives Docker containers from the `ecs_tasks` rows the API writes.
//!
//! It wakes on every store commit ([`Store::subscribe`]), on the runtime's events of task
//! containers (label [`LABEL_TASK`]) and every [`TICK`]. Each pass re-reads the tasks that are not
//! STOPPED and lists the containers carrying [`LABEL_TASK`]; Docker is the record of what runs, so
//! after a crash the next pass adopts the containers it finds (a task whose containers exist is
//! observed, never started again) and removes the containers of tasks that are gone or stopped.
//!
//! Slow work (pulls, waiting for `dependsOn`, stop timeouts) runs as one job per task, so one task
//! never holds up another; a task with a job in flight is left alone by the passes. Jobs write
//! the row through [`TaskController::modify`]: read, change, `UPDATE … WHERE version = ?` in one
//! transaction, so a concurrent `StopTask` is never overwritten.
//!
//! Lifecycle: PROVISIONING → PENDING (resolving, pulling, creating) → RUNNING (every essential
//! container runs); a stop (StopTask, an essential container exiting, a failed start) sets the
//! desired status STOPPED, then DEPROVISIONING (containers stopped with their `stopTimeout`, then
//! removed) → STOPPED. Stopped tasks are deleted [`STOPPED_RETENTION_MS`] after they stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_aws::time::SharedClock;
use berth_runtime::{
    ContainerSpec, ContainerStatus, ContainerSummary, EventFilter, HealthCheck, HealthStatus, LabelFilter,
    NetworkMode as RtNetwork, NetworkSpec, PortMapping as RtPort, PortProtocol, Resources, Runtime, RuntimeError,
    Ulimit,
};
use berth_store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::EcsError;
use crate::ports::{ImageSource, RoleSessions};
use crate::task_definition::{self as td, ContainerCondition, ContainerDefinition, NetworkMode, TaskDefinitionSpec};
use crate::tasks::{self, TaskRow};

/// The labels berth puts on every task container.
pub const LABEL_CLUSTER: &str = "berth.ecs.cluster";
pub const LABEL_TASK: &str = "berth.ecs.task";
pub const LABEL_CONTAINER: &str = "berth.ecs.container";
/// The data dir of the berth that made the container: several berths (tests, users) may share
/// one engine, and each adopts or removes only its own containers.
pub const LABEL_OWNER: &str = "berth.ecs.owner";
/// How often a pass runs without any other reason to.
pub const TICK: Duration = Duration::from_secs(2);
/// How long a STOPPED task stays describable (ECS: about an hour).
pub const STOPPED_RETENTION_MS: i64 = 3_600_000;
/// ECS's default `stopTimeout`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a container waits for its `dependsOn` conditions at most (ECS's `startTimeout`
/// default is 3 minutes for START/HEALTHY; COMPLETE/SUCCESS wait as long as it takes, capped here).
const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(600);
/// Where containers reach the task endpoint.
const ENDPOINT_HOST: &str = "169.254.170.2";

/// The per-cluster network of `awsvpc` tasks.
pub fn network_name(cluster: &str) -> String {
    format!("berth-ecs-{cluster}")
}

/// The Docker name of a task's container.
pub fn container_name(task_id: &str, container: &str) -> String {
    format!("ecs-{task_id}-{container}")
}

/// Why a task failed to start, as ECS words it in `stoppedReason`.
struct StartFailure(String);

/// The controller. Build it with [`TaskController::new`] and run it with [`TaskController::spawn`].
pub struct TaskController {
    store: Store,
    clock: SharedClock,
    region: String,
    /// None when Docker did not answer at start: tasks then stop with a reason saying so.
    runtime: Option<Arc<dyn Runtime>>,
    images: Arc<dyn ImageSource>,
    sessions: Arc<dyn RoleSessions>,
    /// Tasks (by ARN) and orphan containers (by id) with a job in flight.
    busy: Mutex<HashSet<String>>,
    /// [`LABEL_OWNER`]'s value: this store's data dir.
    owner: String,
}

impl TaskController {
    pub fn new(
        store: Store,
        clock: SharedClock,
        region: &str,
        runtime: Option<Arc<dyn Runtime>>,
        images: Arc<dyn ImageSource>,
        sessions: Arc<dyn RoleSessions>,
    ) -> Arc<TaskController> {
        let owner = store.data_dir().display().to_string();
        Arc::new(TaskController {
            owner,
            store,
            clock,
            region: region.to_string(),
            runtime,
            images,
            sessions,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Runs the controller until `stop` turns true; jobs in flight are then aborted (their
    /// containers are adopted by the next server's controller).
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }

    fn subscribe_events(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<Result<berth_runtime::ContainerEvent, RuntimeError>>> {
        let rt = self.runtime.as_ref()?;
        Some(rt.events(&EventFilter { labels: self.own_containers(), since: None }))
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        let mut events = self.subscribe_events();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut jobs = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            while jobs.try_join_next().is_some() {}
            if let Err(e) = self.clone().pass(&mut jobs).await {
                tracing::warn!(error = %e, "task controller pass failed");
            }
            let event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                r = changes.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
                ev = event => match ev {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "container events ended; re-subscribing");
                        events = None;
                    }
                    None => events = None,
                },
                _ = tick.tick() => {
                    if events.is_none() {
                        events = self.subscribe_events();
                    }
                }
            }
            // Let a burst of commits and events settle into one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        jobs.shutdown().await;
    }

    /// The label filter of this berth's task containers.
    fn own_containers(&self) -> Vec<LabelFilter> {
        vec![LabelFilter::has(LABEL_TASK), LabelFilter::equals(LABEL_OWNER, self.owner.clone())]
    }

    fn try_claim(&self, key: &str) -> bool {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_string())
    }

    fn release(&self, key: &str) {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    fn is_busy(&self, key: &str) -> bool {
        self.busy.lock().unwrap_or_else(|e| e.into_inner()).contains(key)
    }

    /// One look at every task and every task container.
    async fn pass(self: Arc<Self>, jobs: &mut JoinSet<()>) -> Result<(), EcsError> {
        let cutoff = self.now_ms() - STOPPED_RETENTION_MS;
        let (rows, known, expired) = self
            .store
            .read(move |c| {
                Ok::<_, EcsError>((
                    tasks::not_stopped(c)?,
                    tasks::all_arns(c)?,
                    tasks::count_stopped_before(c, cutoff)?,
                ))
            })
            .await?;
        // Written only when there is something to delete: every commit wakes the controller.
        if expired > 0 {
            self.store
                .write(move |tx| {
                    let n = tasks::delete_stopped_before(tx, cutoff)?;
                    td::purge_deleted(tx)?;
                    tracing::debug!(expired = n, "deleted stopped tasks");
                    Ok::<_, EcsError>(())
                })
                .await?;
        }
        let Some(rt) = self.runtime.clone() else {
            for row in rows {
                self.without_runtime(row).await?;
            }
            return Ok(());
        };
        let containers = match rt.list_containers(&self.own_containers()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list task containers");
                return Ok(());
            }
        };
        let mut by_task: HashMap<String, Vec<ContainerSummary>> = HashMap::new();
        for c in containers {
            let task = c.labels.get(LABEL_TASK).cloned().unwrap_or_default();
            by_task.entry(task).or_default().push(c);
        }
        // Containers of no task berth drives any more: stopped and removed.
        let live: HashSet<&str> = rows.iter().map(|r| r.task_arn.as_str()).collect();
        for (task, list) in &by_task {
            if live.contains(task.as_str()) || self.is_busy(task) {
                continue;
            }
            let state = known.iter().find(|(a, _)| a == task).map(|(_, s)| s.as_str()).unwrap_or("unknown");
            for c in list {
                if !self.try_claim(&c.id) {
                    continue;
                }
                tracing::info!(container = %c.id, task = %task, state, "removing a container of a task that is not running");
                let this = self.clone();
                let id = c.id.clone();
                jobs.spawn(async move {
                    if let Some(rt) = &this.runtime {
                        if let Err(e) = rt.stop_container(&id, Duration::from_secs(10)).await {
                            tracing::debug!(container = %id, error = %e, "stop of an orphan failed");
                        }
                        if let Err(e) = rt.remove_container(&id).await {
                            tracing::warn!(container = %id, error = %e, "cannot remove an orphan container");
                        }
                    }
                    this.release(&id);
                });
            }
        }
        for row in rows {
            if self.is_busy(&row.task_arn) {
                continue;
            }
            let existing = by_task.remove(&row.task_arn).unwrap_or_default();
            if row.desired_status == tasks::STOPPED {
                self.spawn_job(jobs, row, Job::Stop);
            } else if existing.is_empty() && matches!(row.last_status.as_str(), tasks::PROVISIONING | tasks::PENDING) {
                self.spawn_job(jobs, row, Job::Start);
            } else if row.last_status != tasks::RUNNING && !all_created(&row, &existing) {
                // A start cut short (berth was killed while it created containers): ECS does not
                // restart a task, it stops it.
                let reason = "ResourceInitializationError: berth restarted while the task was starting";
                self.fail(&row.task_arn, reason).await?;
            } else {
                self.observe(row, &rt, &existing).await?;
            }
        }
        Ok(())
    }

    fn spawn_job(self: &Arc<Self>, jobs: &mut JoinSet<()>, row: TaskRow, job: Job) {
        if !self.try_claim(&row.task_arn) {
            return;
        }
        let this = self.clone();
        jobs.spawn(async move {
            let arn = row.task_arn.clone();
            let result = match job {
                Job::Start => this.start(row).await,
                Job::Stop => this.stop(row).await,
            };
            if let Err(e) = result {
                tracing::warn!(task = %arn, error = %e, "task job failed; retrying on the next pass");
            }
            this.release(&arn);
        });
    }

    /// Reads the task, lets `f` change it and writes it back in one transaction. `false` if the
    /// task is gone. A change that changes nothing is rolled back, so that it bumps no store
    /// revision (each commit wakes this controller again).
    async fn modify(&self, task_arn: &str, f: impl FnOnce(&mut TaskRow) + Send + 'static) -> Result<bool, EcsError> {
        let arn = task_arn.to_string();
        let written = self
            .store
            .write(move |tx| {
                let Some(mut row) = tasks::get(tx, &arn)? else { return Err(Unwritten::Gone) };
                let before = row.clone();
                f(&mut row);
                if row == before {
                    return Err(Unwritten::Unchanged);
                }
                Ok(tasks::update(tx, &row)?)
            })
            .await;
        match written {
            Ok(done) => Ok(done),
            Err(Unwritten::Unchanged) => Ok(true),
            Err(Unwritten::Gone) => Ok(false),
            Err(Unwritten::Failed(e)) => Err(e),
        }
    }

    /// Stops a task that could not start: the stop job then removes whatever was created.
    async fn fail(&self, task_arn: &str, reason: &str) -> Result<(), EcsError> {
        tracing::info!(task = %task_arn, reason, "task failed to start");
        let reason = reason.to_string();
        let now = self.now_ms();
        self.modify(task_arn, move |row| {
            if row.desired_status != tasks::STOPPED {
                row.desired_status = tasks::STOPPED.into();
                row.stop_code = Some("TaskFailedToStart".into());
                row.stopped_reason = Some(reason);
                row.stopping_at = Some(now);
            }
        })
        .await?;
        Ok(())
    }

    async fn without_runtime(&self, row: TaskRow) -> Result<(), EcsError> {
        if row.desired_status != tasks::STOPPED {
            let reason = "ResourceInitializationError: berth has no container runtime (Docker did not answer when berth started)";
            return self.fail(&row.task_arn, reason).await;
        }
        let now = self.now_ms();
        self.modify(&row.task_arn, move |r| finish_stop(r, now, &HashMap::new())).await?;
        self.purge_deleted_definitions().await
    }

    async fn spec_of(&self, row: &TaskRow) -> Result<TaskDefinitionSpec, EcsError> {
        let (family, revision) = (row.family.clone(), row.revision);
        let def = self.store.read(move |c| td::get(c, &family, revision)).await?;
        def.map(|d| d.spec)
            .ok_or_else(|| EcsError::client(format!("task definition {} is gone", row.task_definition_arn)))
    }

    // ---- start ----

    /// The task as it is now, if it is still in one of `statuses` (a pass may act on a snapshot
    /// taken before a job it raced with finished).
    async fn current(&self, task_arn: &str, still: fn(&TaskRow) -> bool) -> Result<Option<TaskRow>, EcsError> {
        let arn = task_arn.to_string();
        Ok(self.store.read(move |c| tasks::get(c, &arn)).await?.filter(still))
    }

    async fn start(self: &Arc<Self>, row: TaskRow) -> Result<(), EcsError> {
        let still_to_start = |r: &TaskRow| {
            r.desired_status == tasks::RUNNING && matches!(r.last_status.as_str(), tasks::PROVISIONING | tasks::PENDING)
        };
        let Some(row) = self.current(&row.task_arn, still_to_start).await? else { return Ok(()) };
        let spec = match self.spec_of(&row).await {
            Ok(s) => s,
            Err(e) => return self.fail(&row.task_arn, &format!("ResourceInitializationError: {e}")).await,
        };
        match self.try_start(&row, &spec).await {
            Ok(()) => Ok(()),
            Err(Ok(StartFailure(reason))) => self.fail(&row.task_arn, &reason).await,
            Err(Err(e)) => Err(e),
        }
    }

    async fn try_start(&self, row: &TaskRow, spec: &TaskDefinitionSpec) -> Result<(), Result<StartFailure, EcsError>> {
        let rt = self.runtime.clone().ok_or_else(|| Ok(StartFailure("no runtime".into())))?;
        let arn = row.task_arn.clone();
        let now = self.now_ms();
        self.modify(&arn, move |r| {
            r.last_status = tasks::PENDING.into();
            r.runtime["pullStartedAt"] = json!(now);
        })
        .await
        .map_err(Err)?;

        // Registry credentials as the execution role's session, as ECS pulls from private ECR.
        let pull_as = match row.runtime["executionRoleArn"].as_str() {
            Some(role) => match self.sessions.assume(role, &row.task_arn, &row.task_id).await {
                Ok(s) => Some(s.access_key_id),
                Err(e) => {
                    return Err(Ok(StartFailure(format!(
                        "ResourceInitializationError: unable to pull secrets or registry auth: {e}"
                    ))))
                }
            },
            None => None,
        };
        let mut pulled: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for cd in &spec.container_definitions {
            let resolved = self
                .images
                .resolve(&cd.image, pull_as.as_deref())
                .await
                .map_err(|e| Ok(StartFailure(format!("CannotPullContainerError: {e}"))))?;
            let image = rt
                .pull_image(&resolved.pull_reference, resolved.auth.as_ref())
                .await
                .map_err(|e| Ok(StartFailure(format!("CannotPullContainerError: {}", pull_reason(&e)))))?;
            let digest = resolved.digest.or(image.digest);
            pulled.insert(cd.name.clone(), (resolved.pull_reference, digest));
        }
        let digests: BTreeMap<String, Option<String>> =
            pulled.iter().map(|(k, (_, d))| (k.clone(), d.clone())).collect();
        let now = self.now_ms();
        self.modify(&arn, move |r| {
            r.runtime["pullStoppedAt"] = json!(now);
            for c in r.containers.as_array_mut().into_iter().flatten() {
                if let Some(Some(d)) = c["name"].as_str().and_then(|n| digests.get(n)) {
                    c["imageDigest"] = json!(d);
                }
            }
        })
        .await
        .map_err(Err)?;

        let endpoint_ids = {
            let arn = arn.clone();
            self.store.read(move |c| tasks::endpoint_ids(c, &arn)).await.map_err(Err)?
        };
        let credentials_id = endpoint_ids.iter().find(|(_, k, _)| k == "credentials").map(|(id, _, _)| id.clone());
        let metadata_id = |name: &str| {
            endpoint_ids
                .iter()
                .find(|(_, k, c)| k == "metadata" && c.as_deref() == Some(name))
                .map(|(id, _, _)| id.clone())
        };

        let network = match spec.network_mode {
            NetworkMode::Awsvpc => {
                let labels = BTreeMap::from([(LABEL_CLUSTER.to_string(), row.cluster.clone())]);
                let net = NetworkSpec { name: network_name(&row.cluster), labels, subnet: None };
                let info = rt.ensure_network(&net).await.map_err(|e| {
                    Ok(StartFailure(format!("ResourceInitializationError: cannot set up the task network: {e}")))
                })?;
                Some(info.name)
            }
            _ => None,
        };

        let order = start_order(spec);
        let mut first: Option<String> = None;
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for cd in order {
            self.wait_for_dependencies(&rt, row, cd, &ids).await?;
            // The task's network namespace lives in its first container; one that already ran to
            // completion (an init container others wait for) cannot be joined any more, and the
            // next container takes its place on the network (berth has no pause container).
            if let Some(f) = &first {
                let running = rt.inspect_container(f).await.is_ok_and(|i| i.status == ContainerStatus::Running);
                if !running {
                    first = None;
                }
            }
            let net = match (&spec.network_mode, &first, &network) {
                (NetworkMode::Awsvpc, None, Some(n)) => {
                    RtNetwork::Network { name: n.clone(), ipv4: None, aliases: vec![cd.name.clone()] }
                }
                (NetworkMode::Awsvpc, Some(f), _) => RtNetwork::Container(f.clone()),
                (NetworkMode::Host, _, _) => RtNetwork::Host,
                _ => RtNetwork::Bridge {
                    ports: cd
                        .port_mappings
                        .iter()
                        .map(|p| RtPort {
                            container_port: p.container_port,
                            host_port: (p.host_port != 0).then_some(p.host_port),
                            protocol: match p.protocol {
                                td::TransportProtocol::Tcp => PortProtocol::Tcp,
                                td::TransportProtocol::Udp => PortProtocol::Udp,
                            },
                        })
                        .collect(),
                },
            };
            let (image, _) = pulled.get(&cd.name).cloned().unwrap_or_default();
            let container_spec =
                self.container_spec(row, spec, cd, image, net, credentials_id.as_deref(), metadata_id(&cd.name));
            let id = match rt.create_container(&container_spec).await {
                Ok(id) => id,
                Err(RuntimeError::NameInUse { name }) => {
                    // Created by an earlier attempt of this job: adopt it.
                    rt.inspect_container(&name)
                        .await
                        .map(|i| i.id)
                        .map_err(|e| Ok(StartFailure(format!("CannotCreateContainerError: {e}"))))?
                }
                Err(e) => return Err(Ok(StartFailure(format!("CannotCreateContainerError: {e}")))),
            };
            if first.is_none() {
                first = Some(id.clone());
            }
            ids.insert(cd.name.clone(), id.clone());
            rt.start_container(&id).await.map_err(|e| Ok(StartFailure(format!("CannotStartContainerError: {e}"))))?;
            let (name, cid) = (cd.name.clone(), id.clone());
            self.modify(&arn, move |r| {
                for c in r.containers.as_array_mut().into_iter().flatten() {
                    if c["name"].as_str() == Some(name.as_str()) {
                        c["runtimeId"] = json!(cid);
                        c["lastStatus"] = json!(tasks::RUNNING);
                    }
                }
            })
            .await
            .map_err(Err)?;
        }

        // Addresses and bindings, read back from the engine.
        let mut private_ip = None;
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        // Containers that already ran to completion (a non-essential init container).
        let mut finished: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for (name, id) in &ids {
            let info = rt
                .inspect_container(id)
                .await
                .map_err(|e| Ok(StartFailure(format!("CannotInspectContainerError: {e}"))))?;
            if let (Some(n), false) = (&network, info.status.is_finished()) {
                if let Some(ip) = info.networks.get(n).and_then(|a| a.ipv4) {
                    private_ip = Some(ip.to_string());
                }
            }
            let b = info
                .ports
                .iter()
                .map(|p| {
                    json!({
                        "bindIP": p.host_ip.to_string(),
                        "containerPort": p.container_port,
                        "hostPort": p.host_port,
                        "protocol": p.protocol.as_str(),
                    })
                })
                .collect();
            bindings.insert(name.clone(), b);
            if info.status.is_finished() {
                finished.insert(name.clone(), info.exit_code);
            }
        }
        let now = self.now_ms();
        let awsvpc = spec.network_mode == NetworkMode::Awsvpc;
        let cluster = row.cluster.clone();
        let ids_json = ids.clone();
        self.modify(&arn, move |r| {
            let attachment_id = berth_aws::ids::uuid_v4();
            if awsvpc {
                let ip = private_ip.clone().unwrap_or_default();
                r.attachments = json!([{
                    "id": attachment_id,
                    "type": "ElasticNetworkInterface",
                    "status": "ATTACHED",
                    "details": [
                        { "name": "subnetId", "value": format!("subnet-{}", network_name(&cluster)) },
                        { "name": "networkInterfaceId", "value": format!("eni-{}", &r.task_id[..17.min(r.task_id.len())]) },
                        { "name": "privateIPv4Address", "value": ip },
                    ],
                }]);
            }
            for c in r.containers.as_array_mut().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                if awsvpc {
                    c["networkInterfaces"] =
                        json!([{ "attachmentId": attachment_id, "privateIpv4Address": private_ip }]);
                }
                if let Some(b) = bindings.get(&name) {
                    c["networkBindings"] = json!(b);
                }
                if let Some(id) = ids_json.get(&name) {
                    c["runtimeId"] = json!(id);
                }
                if let Some(exit) = finished.get(&name) {
                    c["lastStatus"] = json!(tasks::STOPPED);
                    if let Some(code) = exit {
                        c["exitCode"] = json!(code);
                    }
                }
            }
            r.runtime["connectivityAt"] = json!(now);
            if r.desired_status == tasks::RUNNING {
                r.last_status = tasks::RUNNING.into();
                r.started_at = Some(now);
            }
        })
        .await
        .map_err(Err)?;
        tracing::info!(task = %arn, "task running");
        Ok(())
    }

    /// Waits until `cd`'s `dependsOn` conditions hold (or the task is to stop, or one can never hold).
    async fn wait_for_dependencies(
        &self,
        rt: &Arc<dyn Runtime>,
        row: &TaskRow,
        cd: &ContainerDefinition,
        ids: &BTreeMap<String, String>,
    ) -> Result<(), Result<StartFailure, EcsError>> {
        let deps = cd.depends_on.clone().unwrap_or_default();
        if deps.is_empty() {
            return Ok(());
        }
        let timeout = cd.start_timeout.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(DEFAULT_DEPENDENCY_TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut all = true;
            for d in &deps {
                let Some(id) = ids.get(&d.container_name) else {
                    return Err(Ok(StartFailure(format!(
                        "DependencyError: container {} depends on {}, which was not started",
                        cd.name, d.container_name
                    ))));
                };
                let info =
                    rt.inspect_container(id).await.map_err(|e| Ok(StartFailure(format!("DependencyError: {e}"))))?;
                let finished = info.status.is_finished();
                let ok = match d.condition {
                    ContainerCondition::Start => true,
                    ContainerCondition::Complete => finished,
                    ContainerCondition::Success => finished && info.exit_code == Some(0),
                    ContainerCondition::Healthy => info.health == HealthStatus::Healthy,
                };
                let never = match d.condition {
                    ContainerCondition::Success => finished && info.exit_code != Some(0),
                    ContainerCondition::Healthy => finished || info.health == HealthStatus::Unhealthy,
                    _ => false,
                };
                if never {
                    return Err(Ok(StartFailure(format!(
                        "DependencyError: dependency {} of container {} cannot reach {:?}",
                        d.container_name, cd.name, d.condition
                    ))));
                }
                all &= ok;
            }
            if all {
                return Ok(());
            }
            let arn = row.task_arn.clone();
            let current = self.store.read(move |c| tasks::get(c, &arn)).await.map_err(Err)?;
            if current.is_none_or(|r| r.desired_status == tasks::STOPPED) {
                return Err(Ok(StartFailure("Task stopped while starting".into())));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Ok(StartFailure(format!(
                    "DependencyError: the dependencies of container {} were not met within {timeout:?}",
                    cd.name
                ))));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn container_spec(
        &self,
        row: &TaskRow,
        spec: &TaskDefinitionSpec,
        cd: &ContainerDefinition,
        image: String,
        network: RtNetwork,
        credentials_id: Option<&str>,
        metadata_id: Option<String>,
    ) -> ContainerSpec {
        let overrides: Vec<Value> = row.runtime["containerOverrides"].as_array().cloned().unwrap_or_default();
        let o = overrides.iter().find(|o| o["name"].as_str() == Some(cd.name.as_str())).cloned().unwrap_or(Value::Null);
        let mut env: Vec<(String, String)> = cd
            .environment
            .iter()
            .filter_map(|kv| Some((kv.name.clone()?, kv.value.clone().unwrap_or_default())))
            .collect();
        for kv in o["environment"].as_array().into_iter().flatten() {
            if let Some(k) = kv["name"].as_str() {
                env.push((k.to_string(), kv["value"].as_str().unwrap_or_default().to_string()));
            }
        }
        env.push(("AWS_DEFAULT_REGION".into(), self.region.clone()));
        env.push(("AWS_REGION".into(), self.region.clone()));
        env.push(("AWS_EXECUTION_ENV".into(), format!("AWS_ECS_{}", row.launch_type)));
        if let Some(id) = credentials_id {
            env.push(("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(), format!("/v2/credentials/{id}")));
        }
        if let Some(id) = metadata_id {
            let uri = format!("http://{ENDPOINT_HOST}/v4/{id}");
            env.push(("ECS_CONTAINER_METADATA_URI_V4".into(), uri.clone()));
            env.push(("ECS_CONTAINER_METADATA_URI".into(), uri));
        }
        let command = match o["command"].as_array() {
            Some(c) => Some(c.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()),
            None => cd.command.clone(),
        };
        let mib = |v: Option<i64>| v.map(|m| m * 1024 * 1024);
        let cpu = o["cpu"].as_i64().unwrap_or(i64::from(cd.cpu));
        let memory = o["memory"].as_i64().or(cd.memory.map(i64::from));
        let reservation = o["memoryReservation"].as_i64().or(cd.memory_reservation.map(i64::from));
        let mut labels = cd.docker_labels.clone().unwrap_or_default();
        labels.insert(LABEL_CLUSTER.into(), row.cluster.clone());
        labels.insert(LABEL_TASK.into(), row.task_arn.clone());
        labels.insert(LABEL_CONTAINER.into(), cd.name.clone());
        labels.insert(LABEL_OWNER.into(), self.owner.clone());
        let hostname = match network {
            RtNetwork::Bridge { .. } => cd.hostname.clone(),
            _ => None,
        };
        ContainerSpec {
            name: container_name(&row.task_id, &cd.name),
            image,
            command,
            entrypoint: cd.entry_point.clone(),
            env,
            working_dir: cd.working_directory.clone(),
            user: cd.user.clone(),
            hostname,
            labels,
            network,
            resources: Resources {
                cpu_shares: (cpu > 0).then_some(cpu.max(2)),
                // Task-level CPU units cap each container (1024 units = one CPU).
                nano_cpus: spec.cpu_units().map(|u| i64::from(u) * 1_000_000_000 / 1024),
                memory_bytes: mib(memory),
                memory_reservation_bytes: mib(reservation),
            },
            healthcheck: cd.health_check.as_ref().map(|h| HealthCheck {
                test: h.command.clone(),
                interval: Duration::from_secs(u64::from(h.interval)),
                timeout: Duration::from_secs(u64::from(h.timeout)),
                retries: h.retries,
                start_period: Duration::from_secs(u64::from(h.start_period.unwrap_or(0))),
            }),
            stop_signal: None,
            stop_timeout: Some(stop_timeout(cd)),
            ulimits: cd
                .ulimits
                .iter()
                .flatten()
                .map(|u| Ulimit { name: u.name.clone(), soft: u.soft_limit, hard: u.hard_limit })
                .collect(),
            readonly_root_filesystem: cd.readonly_root_filesystem.unwrap_or(false),
            extra_hosts: cd
                .extra_hosts
                .iter()
                .flatten()
                .filter_map(|h| h.ip_address.parse::<IpAddr>().ok().map(|ip| (h.hostname.clone(), ip)))
                .collect(),
        }
    }

    // ---- observe ----

    /// Brings a started task's row in line with its containers: statuses, exit codes, health,
    /// RUNNING once every essential container runs, a stop when an essential one exited.
    async fn observe(
        &self,
        row: TaskRow,
        rt: &Arc<dyn Runtime>,
        existing: &[ContainerSummary],
    ) -> Result<(), EcsError> {
        let spec = self.spec_of(&row).await?;
        let mut states: HashMap<String, (ContainerStatus, Option<i64>, HealthStatus, Option<String>)> = HashMap::new();
        for c in existing {
            let Some(name) = c.labels.get(LABEL_CONTAINER) else { continue };
            match rt.inspect_container(&c.id).await {
                Ok(info) => {
                    let reason = info
                        .oom_killed
                        .then(|| "OutOfMemoryError: Container killed due to memory usage".to_string())
                        .or(info.error.clone());
                    states.insert(name.clone(), (info.status, info.exit_code, info.health, reason));
                }
                Err(RuntimeError::ContainerNotFound { .. }) => {}
                Err(e) => {
                    tracing::debug!(container = %c.id, error = %e, "cannot inspect a task container");
                    return Ok(());
                }
            }
        }
        let now = self.now_ms();
        let ids: HashMap<String, String> =
            existing.iter().filter_map(|c| Some((c.labels.get(LABEL_CONTAINER)?.clone(), c.id.clone()))).collect();
        self.modify(&row.task_arn, move |r| {
            let mut essential_exited = false;
            let mut all_essential_running = true;
            let mut health = Vec::new();
            for c in r.containers.as_array_mut().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                let essential = spec.container(&name).is_none_or(|d| d.essential);
                let has_check = spec.container(&name).is_some_and(|d| d.health_check.is_some());
                if let Some(id) = ids.get(&name) {
                    c["runtimeId"] = json!(id);
                }
                match states.get(&name) {
                    Some((status, exit, h, reason)) => {
                        if status.is_finished() {
                            c["lastStatus"] = json!(tasks::STOPPED);
                            if let Some(code) = exit {
                                c["exitCode"] = json!(code);
                            }
                            if let Some(reason) = reason {
                                c["reason"] = json!(reason);
                            }
                            if essential {
                                essential_exited = true;
                            }
                        } else if *status == ContainerStatus::Running {
                            c["lastStatus"] = json!(tasks::RUNNING);
                        }
                        if *status != ContainerStatus::Running && essential {
                            all_essential_running = false;
                        }
                        let hs = match (has_check, h) {
                            (true, HealthStatus::Healthy) => "HEALTHY",
                            (true, HealthStatus::Unhealthy) => "UNHEALTHY",
                            _ => "UNKNOWN",
                        };
                        c["healthStatus"] = json!(hs);
                        if essential && has_check {
                            health.push(hs);
                        }
                    }
                    None => {
                        // Gone from the engine (removed behind berth's back).
                        if c["lastStatus"] != json!(tasks::STOPPED) {
                            c["lastStatus"] = json!(tasks::STOPPED);
                            c["reason"] = json!("Container removed outside berth");
                        }
                        if essential {
                            essential_exited = true;
                            all_essential_running = false;
                        }
                    }
                }
            }
            r.health_status = if health.contains(&"UNHEALTHY") {
                "UNHEALTHY"
            } else if !health.is_empty() && health.iter().all(|h| *h == "HEALTHY") {
                "HEALTHY"
            } else {
                "UNKNOWN"
            }
            .into();
            if essential_exited && r.desired_status != tasks::STOPPED {
                r.desired_status = tasks::STOPPED.into();
                r.stop_code = Some("EssentialContainerExited".into());
                r.stopped_reason = Some("Essential container in task exited".into());
                r.stopping_at = Some(now);
            } else if all_essential_running && r.last_status != tasks::RUNNING && r.desired_status == tasks::RUNNING {
                r.last_status = tasks::RUNNING.into();
                r.started_at.get_or_insert(now);
            }
        })
        .await?;
        Ok(())
    }

    // ---- stop ----

    async fn stop(self: &Arc<Self>, row: TaskRow) -> Result<(), EcsError> {
        let Some(row) = self.current(&row.task_arn, |r| r.last_status != tasks::STOPPED).await? else { return Ok(()) };
        let now = self.now_ms();
        self.modify(&row.task_arn, move |r| {
            r.last_status = tasks::DEPROVISIONING.into();
            r.stopping_at.get_or_insert(now);
        })
        .await?;
        let mut exits: HashMap<String, (Option<i64>, Option<String>)> = HashMap::new();
        if let Some(rt) = &self.runtime {
            let spec = self.spec_of(&row).await.ok();
            let containers = rt
                .list_containers(&[
                    LabelFilter::equals(LABEL_TASK, row.task_arn.clone()),
                    LabelFilter::equals(LABEL_OWNER, self.owner.clone()),
                ])
                .await
                .map_err(|e| EcsError::client(format!("cannot list the task's containers: {e}")))?;
            // In parallel: each with its own stop timeout.
            let mut stops = JoinSet::new();
            for c in containers {
                let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
                let timeout =
                    spec.as_ref().and_then(|s| s.container(&name)).map(stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
                let rt = rt.clone();
                stops.spawn(async move {
                    if let Err(e) = rt.stop_container(&c.id, timeout).await {
                        tracing::debug!(container = %c.id, error = %e, "stop failed");
                    }
                    let info = rt.inspect_container(&c.id).await.ok();
                    (name, c.id, info)
                });
            }
            while let Some(done) = stops.join_next().await {
                let Ok((name, id, info)) = done else { continue };
                if let Some(info) = info {
                    let reason =
                        info.oom_killed.then(|| "OutOfMemoryError: Container killed due to memory usage".to_string());
                    exits.insert(name, (info.exit_code, reason));
                }
                if let Err(e) = rt.remove_container(&id).await {
                    tracing::warn!(container = %id, error = %e, "cannot remove a task container");
                    return Err(EcsError::client(format!("cannot remove container {id}: {e}")));
                }
            }
        }
        let now = self.now_ms();
        self.modify(&row.task_arn, move |r| finish_stop(r, now, &exits)).await?;
        tracing::info!(task = %row.task_arn, "task stopped");
        self.purge_deleted_definitions().await
    }

    /// A deleted task definition revision (DELETE_IN_PROGRESS) goes once no task uses it.
    async fn purge_deleted_definitions(&self) -> Result<(), EcsError> {
        let in_progress: bool = self
            .store
            .read(|c| {
                let n: i64 = c.query_row(
                    "SELECT COUNT(*) FROM ecs_task_definitions WHERE status = 'DELETE_IN_PROGRESS'",
                    [],
                    |r| r.get(0),
                )?;
                Ok::<_, EcsError>(n > 0)
            })
            .await?;
        if in_progress {
            self.store.write(|tx| td::purge_deleted(tx).map(|_| ())).await?;
        }
        Ok(())
    }
}

enum Job {
    Start,
    Stop,
}

/// Why [`TaskController::modify`] rolled back.
enum Unwritten {
    Unchanged,
    Gone,
    Failed(EcsError),
}

impl From<berth_store::StoreError> for Unwritten {
    fn from(e: berth_store::StoreError) -> Unwritten {
        Unwritten::Failed(EcsError::Store(e))
    }
}

impl From<EcsError> for Unwritten {
    fn from(e: EcsError) -> Unwritten {
        Unwritten::Failed(e)
    }
}

/// The row of a task whose containers are stopped and removed.
fn finish_stop(r: &mut TaskRow, now: i64, exits: &HashMap<String, (Option<i64>, Option<String>)>) {
    r.last_status = tasks::STOPPED.into();
    r.desired_status = tasks::STOPPED.into();
    r.stopped_at = Some(now);
    r.stopping_at.get_or_insert(now);
    r.runtime["executionStoppedAt"] = json!(now);
    for c in r.containers.as_array_mut().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        c["lastStatus"] = json!(tasks::STOPPED);
        if let Some((exit, reason)) = exits.get(&name) {
            if c.get("exitCode").is_none() {
                if let Some(code) = exit {
                    c["exitCode"] = json!(code);
                }
            }
            if let Some(reason) = reason {
                c["reason"] = json!(reason);
            }
        }
    }
}

/// Whether every container of the task exists on the engine.
fn all_created(row: &TaskRow, existing: &[ContainerSummary]) -> bool {
    let names: HashSet<&str> =
        existing.iter().filter_map(|c| c.labels.get(LABEL_CONTAINER).map(String::as_str)).collect();
    row.containers.as_array().into_iter().flatten().all(|c| c["name"].as_str().is_some_and(|n| names.contains(n)))
}

fn stop_timeout(cd: &ContainerDefinition) -> Duration {
    cd.stop_timeout.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(DEFAULT_STOP_TIMEOUT)
}

/// The engine's reason for a failed pull, without the runtime's own wrapping.
fn pull_reason(e: &RuntimeError) -> String {
    match e {
        RuntimeError::Pull { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Containers in an order where each comes after those it depends on (definition order
/// otherwise); registration refused cycles.
fn start_order(spec: &TaskDefinitionSpec) -> Vec<&ContainerDefinition> {
    let mut out: Vec<&ContainerDefinition> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    while out.len() < spec.container_definitions.len() {
        let before = out.len();
        for cd in &spec.container_definitions {
            if placed.contains(cd.name.as_str()) {
                continue;
            }
            let ready = cd.depends_on.iter().flatten().all(|d| placed.contains(d.container_name.as_str()));
            if ready {
                placed.insert(&cd.name);
                out.push(cd);
            }
        }
        if out.len() == before {
            // A cycle (should not pass registration): the rest in definition order.
            out.extend(spec.container_definitions.iter().filter(|c| !placed.contains(c.name.as_str())));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(containers: Value) -> TaskDefinitionSpec {
        let defs: Vec<Value> = containers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut d = json!({ "cpu": 0, "portMappings": [], "essential": true, "environment": [],
                                    "mountPoints": [], "volumesFrom": [], "image": "x" });
                d.as_object_mut().unwrap().extend(c.as_object().unwrap().clone());
                d
            })
            .collect();
        serde_json::from_value(json!({ "containerDefinitions": defs, "networkMode": "awsvpc", "volumes": [],
                                       "compatibilities": [] }))
        .unwrap()
    }

    #[test]
    fn containers_start_after_what_they_depend_on() {
        let s = spec(json!([
            { "name": "c", "dependsOn": [{ "containerName": "b", "condition": "HEALTHY" }] },
            { "name": "b", "dependsOn": [{ "containerName": "a", "condition": "SUCCESS" }] },
            { "name": "a" },
            { "name": "d" },
        ]));
        let order: Vec<&str> = start_order(&s).iter().map(|c| c.name.as_str()).collect();
        assert_eq!(order, ["a", "d", "b", "c"]);
    }

    #[test]
    fn a_finished_stop_records_exit_codes_once() {
        let mut row = TaskRow {
            task_arn: "t".into(),
            task_id: "id".into(),
            cluster: "c".into(),
            task_definition_arn: "td".into(),
            family: "f".into(),
            revision: 1,
            last_status: tasks::DEPROVISIONING.into(),
            desired_status: tasks::STOPPED.into(),
            launch_type: "EC2".into(),
            started_by: None,
            group: None,
            created_at: 1,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            health_status: "UNKNOWN".into(),
            overrides: json!({}),
            tags: Vec::new(),
            containers: json!([{ "name": "a", "exitCode": 3 }, { "name": "b" }]),
            attachments: json!([]),
            runtime: json!({}),
            version: 1,
        };
        let exits = HashMap::from([("a".to_string(), (Some(137), None)), ("b".to_string(), (Some(143), None))]);
        finish_stop(&mut row, 50, &exits);
        assert_eq!(row.last_status, tasks::STOPPED);
        assert_eq!((row.stopped_at, row.stopping_at), (Some(50), Some(50)));
        // The code it exited with on its own stays; the one the stop caused is recorded.
        assert_eq!(row.containers[0]["exitCode"], 3);
        assert_eq!(row.containers[1]["exitCode"], 143);
        assert_eq!(row.containers[1]["lastStatus"], tasks::STOPPED);
    }
}
