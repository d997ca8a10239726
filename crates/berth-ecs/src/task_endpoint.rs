//! The task endpoint: what the ECS agent serves to containers at `169.254.170.2`.
//!
//! - `GET /v2/credentials/<id>`: the task role's credentials, for the AWS SDKs' container
//!   credential provider (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`). The id is a random secret
//!   given only to the task's containers; the session is STS's, for `ecs-tasks.amazonaws.com`,
//!   named after the task id, and renewed when less than 15 minutes of it remain.
//! - `GET /v4/<id>`, `/v4/<id>/task`, `/v4/<id>/stats`, `/v4/<id>/task/stats`: task metadata v4
//!   (`ECS_CONTAINER_METADATA_URI_V4`), from the task as the controller last recorded it.
//!
//! An unknown id, or one of a task that has stopped, gets the agent's error shape with a 400. The
//! ids live in `ecs_task_endpoint_ids`, written with the task by `RunTask`.
//!
//! The address is added to the host's loopback interface (`ip addr add 169.254.170.2/32 dev lo`, done
//! by [`ensure_link_local_address`] when berth may): containers on any Docker network reach it
//! through their default route, as on an ECS container instance.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use berth_aws::time::{SharedClock, Timestamp};
use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::EcsError;
use crate::ports::{RoleCredentials, RoleSessions};
use crate::tasks::{self, TaskRow};

/// Where the agent endpoint lives on an ECS container instance.
pub const LINK_LOCAL_ADDRESS: &str = "169.254.170.2";

/// Credentials are renewed when less than this much of their session remains (seconds).
const RENEW_BEFORE_SECS: i64 = 15 * 60;

/// The endpoint's state: the store it reads tasks from, STS for role sessions, and the sessions
/// handed out so far (by credentials id).
pub struct TaskEndpoint {
    store: Store,
    sessions: Arc<dyn RoleSessions>,
    clock: SharedClock,
    region: String,
    cache: Mutex<HashMap<String, RoleCredentials>>,
}

/// What an id names.
#[derive(Clone, Debug)]
struct EndpointId {
    kind: String,
    task: TaskRow,
    role_arn: Option<String>,
    container_name: Option<String>,
}

impl TaskEndpoint {
    pub fn new(store: Store, sessions: Arc<dyn RoleSessions>, clock: SharedClock, region: &str) -> Arc<TaskEndpoint> {
        Arc::new(TaskEndpoint { store, sessions, clock, region: region.to_string(), cache: Mutex::new(HashMap::new()) })
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_system(self.clock.now())
    }

    /// Serves on `listener` until `stop` turns true.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let http = hyper::server::conn::http1::Builder::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    };
                    let this = self.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let this = this.clone();
                        async move { Ok::<_, Infallible>(this.handle(req).await) }
                    });
                    let conn = http.serve_connection(TokioIo::new(stream), svc);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "task endpoint connection closed with an error");
                        }
                    });
                }
                _ = stop.changed() => {
                    if *stop.borrow() {
                        break;
                    }
                }
            }
        }
    }

    /// Answers one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error(StatusCode::METHOD_NOT_ALLOWED, "InvalidRequest", "only GET is served");
        }
        let path = req.uri().path().trim_end_matches('/').to_string();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let result = match parts.as_slice() {
            ["v2", "credentials", id] => self.credentials(id).await,
            ["v4", id] => self.metadata(id, Metadata::Container).await,
            ["v4", id, "task"] => self.metadata(id, Metadata::Task).await,
            ["v4", id, "stats"] => self.metadata(id, Metadata::ContainerStats).await,
            ["v4", id, "task", "stats"] => self.metadata(id, Metadata::TaskStats).await,
            _ => Err(EndpointError::NotFound),
        };
        match result {
            Ok(v) => {
                let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
                resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp
            }
            Err(EndpointError::NotFound) => error(StatusCode::NOT_FOUND, "NotFound", "no such endpoint"),
            Err(EndpointError::InvalidId(what)) => error(StatusCode::BAD_REQUEST, "InvalidIdInRequest", &what),
            Err(EndpointError::Stopped(what)) => error(StatusCode::BAD_REQUEST, "InvalidIdInRequest", &what),
            Err(EndpointError::Denied(what)) => {
                error(StatusCode::INTERNAL_SERVER_ERROR, "CredentialsUnavailable", &what)
            }
            Err(EndpointError::Store(e)) => {
                tracing::error!(error = %e, "task endpoint could not read its state");
                error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "berth could not read the task")
            }
        }
    }

    async fn lookup(&self, id: &str) -> Result<EndpointId, EndpointError> {
        // Ids are random and long; anything else is not worth a query.
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(EndpointError::InvalidId(format!("Unable to find the resource identified by {id}")));
        }
        let id_owned = id.to_string();
        let found = self
            .store
            .read(move |c| -> Result<Option<EndpointId>, EcsError> {
                let row: Option<(String, String, Option<String>, Option<String>)> = c
                    .query_row(
                        "SELECT kind, task_arn, role_arn, container_name FROM ecs_task_endpoint_ids WHERE id = ?1",
                        params![id_owned],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((kind, task_arn, role_arn, container_name)) = row else { return Ok(None) };
                let Some(task) = tasks::get(c, &task_arn)? else { return Ok(None) };
                Ok(Some(EndpointId { kind, task, role_arn, container_name }))
            })
            .await
            .map_err(EndpointError::Store)?;
        found.ok_or_else(|| EndpointError::InvalidId(format!("Unable to find the resource identified by {id}")))
    }

    async fn credentials(&self, id: &str) -> Result<Value, EndpointError> {
        let found = self.lookup(id).await?;
        let (Some(role_arn), "credentials") = (found.role_arn.as_deref(), found.kind.as_str()) else {
            return Err(EndpointError::InvalidId(format!("Unable to find the credentials identified by {id}")));
        };
        if found.task.last_status == tasks::STOPPED {
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
            return Err(EndpointError::Stopped(format!("The task {} has stopped", found.task.task_arn)));
        }
        let now = self.now();
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        let creds = match cached {
            Some(c) if c.expiration.0 - now.0 > RENEW_BEFORE_SECS && c.role_arn == role_arn => c,
            _ => {
                let c = self
                    .sessions
                    .assume(role_arn, &found.task.task_arn, &found.task.task_id)
                    .await
                    .map_err(EndpointError::Denied)?;
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), c.clone());
                c
            }
        };
        Ok(json!({
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key.expose(),
            "Token": creds.session_token.expose(),
            "Expiration": creds.expiration.iso8601(),
            "RoleArn": creds.role_arn,
        }))
    }

    async fn metadata(&self, id: &str, what: Metadata) -> Result<Value, EndpointError> {
        let found = self.lookup(id).await?;
        if found.kind != "metadata" {
            return Err(EndpointError::InvalidId(format!("Unable to find the container identified by {id}")));
        }
        let task = &found.task;
        let containers: Vec<Value> = task.containers.as_array().cloned().unwrap_or_default();
        let this = containers
            .iter()
            .find(|c| c["name"].as_str() == found.container_name.as_deref())
            .cloned()
            .unwrap_or(Value::Null);
        match what {
            Metadata::Container => Ok(container_metadata(&this)),
            Metadata::Task => Ok(self.task_metadata(task, &containers)),
            // Stats come from the runtime; until the controller records them, the last sample is empty.
            Metadata::ContainerStats => Ok(task.runtime["stats"][found.container_name.unwrap_or_default()].clone()),
            Metadata::TaskStats => Ok(task.runtime["stats"].clone()),
        }
    }

    fn task_metadata(&self, task: &TaskRow, containers: &[Value]) -> Value {
        let cluster_arn = task.task_arn.split(":task/").next().map(|p| format!("{p}:cluster/{}", task.cluster));
        json!({
            "Cluster": cluster_arn,
            "TaskARN": task.task_arn,
            "Family": task.family,
            "Revision": task.revision.to_string(),
            "DesiredStatus": task.desired_status,
            "KnownStatus": task.last_status,
            "Containers": containers.iter().map(container_metadata).collect::<Vec<_>>(),
            "PullStartedAt": task.runtime["pullStartedAt"],
            "PullStoppedAt": task.runtime["pullStoppedAt"],
            "AvailabilityZone": format!("{}a", self.region),
            "LaunchType": task.launch_type,
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Metadata {
    Container,
    Task,
    ContainerStats,
    TaskStats,
}

/// A container's v4 metadata, from its ECS `Container` shape as the task records it.
fn container_metadata(c: &Value) -> Value {
    let ips: Vec<Value> =
        c["networkInterfaces"].as_array().into_iter().flatten().map(|n| n["privateIpv4Address"].clone()).collect();
    json!({
        "DockerId": c["runtimeId"],
        "Name": c["name"],
        "Image": c["image"],
        "ImageID": c["imageDigest"],
        "KnownStatus": c["lastStatus"],
        "ExitCode": c["exitCode"],
        "Health": { "status": c["healthStatus"] },
        "Type": "NORMAL",
        "Networks": [{ "IPv4Addresses": ips }],
    })
}

#[derive(Debug)]
enum EndpointError {
    NotFound,
    InvalidId(String),
    Stopped(String),
    Denied(String),
    Store(EcsError),
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "code": code, "message": message, "HTTPErrorCode": status.as_u16() });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Adds 169.254.170.2/32 to the loopback interface if it is not there yet, with `ip` (needs root
/// or CAP_NET_ADMIN). Returns whether the address is in place.
pub fn ensure_link_local_address() -> bool {
    let present = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).contains(LINK_LOCAL_ADDRESS);
    match std::process::Command::new("ip").args(["-4", "addr", "show", "dev", "lo"]).output() {
        Ok(out) if present(&out) => return true,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot run `ip` to add {LINK_LOCAL_ADDRESS} to lo");
            return false;
        }
    }
    let added = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{LINK_LOCAL_ADDRESS}/32"), "dev", "lo"])
        .output();
    match added {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::warn!(
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "cannot add {LINK_LOCAL_ADDRESS}/32 to lo (run berth as root, or add it yourself): tasks get no credentials or metadata"
            );
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot run `ip`");
            false
        }
    }
}

/// Binds the endpoint's listener: `169.254.170.2:80` by default.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
