//! ECS tasks on the real Docker Engine: RunTask → the task controller pulls from berth's registry
//! as the execution role, creates and starts containers, and the API reports what Docker does.
//! These tests need a Docker Engine and the docker CLI; they fail (never skip) without them.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_server::client::{ApiClient, ApiResponse};
use berth_server::testing::TestServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TARGET: &str = "AmazonEC2ContainerServiceV20141113";
const INDEX: &str = "hello from a berth ECS task\n";

async fn call(c: &ApiClient, service: &str, target: &str, body: Value) -> Value {
    let r: ApiResponse = c.json(service, target, &body).await.expect("request");
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    serde_json::from_slice(&r.body).expect("a JSON body")
}

async fn ecs(c: &ApiClient, op: &str, body: Value) -> Value {
    call(c, "ecs", &format!("{TARGET}.{op}"), body).await
}

async fn ecs_err(c: &ApiClient, op: &str, body: Value) -> (u16, Value) {
    let r = c.json("ecs", &format!("{TARGET}.{op}"), &body).await.expect("request");
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

async fn iam(c: &ApiClient, action: &str, params: &[(&str, &str)]) {
    let r = c.query("iam", action, "2010-05-08", params).await.expect("IAM request");
    assert_eq!(r.status, 200, "{action}: {}", r.text());
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("run the docker CLI (apt-get install docker.io)")
}

fn docker_ok(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut cmd = Command::new("docker");
    cmd.args(args).envs(env.iter().copied());
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run the docker CLI (apt-get install docker.io)");
    let input = stdin.unwrap_or_default().to_string();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait for the docker CLI");
    assert!(
        out.status.success(),
        "docker {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("bt-{name}-{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes what a test made on the engine: the cluster's containers and network, the images.
struct Cleanup {
    cluster: String,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=berth.ecs.cluster={}", self.cluster);
        let containers = lines(&docker(&["ps", "-aq", "--filter", &filter]));
        if !containers.is_empty() {
            docker(&[&["rm", "-f", "-v"][..], &containers.iter().map(String::as_str).collect::<Vec<_>>()].concat());
        }
        docker(&["network", "rm", &format!("berth-ecs-{}", self.cluster)]);
        for image in &self.images {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// Builds FROM scratch + busybox (applets in /bin, a web root) and pushes it to berth's registry
/// as `<host>/<repository>:v1`; returns the pushed reference and its digest.
async fn push_test_image(t: &TestServer, repository: &str, cleanup: &mut Cleanup) -> (String, String) {
    assert!(std::path::Path::new("/bin/busybox").exists(), "these tests need /bin/busybox (busybox-static)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY index.html /www/index.html\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let host = t.server.registry_host.clone();
    let tagged = format!("{host}/{repository}:v1");
    cleanup.images.push(tagged.clone());
    let build = ["build", "-q", "--no-cache", "--force-rm", "-t", &tagged, dir.path().to_str().unwrap()];
    docker_ok(&build, &[("DOCKER_BUILDKIT", "0")], None);

    ecs_like_ecr(t, "CreateRepository", json!({ "repositoryName": repository })).await;
    let password = berth_server::testing::ecr_password(&t.client).await;
    let config = tempfile::tempdir().unwrap();
    let env = [("DOCKER_CONFIG", config.path().to_str().unwrap())];
    docker_ok(&["login", "-u", "AWS", "--password-stdin", &host], &env, Some(&password));
    let pushed = docker_ok(&["push", &tagged], &env, None);
    let digest = pushed.split_whitespace().skip_while(|w| *w != "digest:").nth(1).expect("a digest").to_string();
    // Gone locally: the task's pull must fetch it from berth, as the execution role.
    docker_ok(&["rmi", &tagged], &[], None);
    cleanup.images.push(format!("{host}/{repository}@{digest}"));
    (tagged, digest)
}

async fn ecs_like_ecr(t: &TestServer, op: &str, body: Value) -> Value {
    call(&t.client, "ecr", &format!("AmazonEC2ContainerRegistry_V20150921.{op}"), body).await
}

/// An execution role ECS tasks may assume, allowed to pull from ECR.
async fn execution_role(t: &TestServer, name: &str) -> String {
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam(&t.client, "CreateRole", &[("RoleName", name), ("AssumeRolePolicyDocument", trust)]).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage"],"Resource":"*"}]}"#;
    iam(&t.client, "PutRolePolicy", &[("RoleName", name), ("PolicyName", "pull"), ("PolicyDocument", policy)]).await;
    format!("arn:aws:iam::000000000000:role/{name}")
}

async fn describe(c: &ApiClient, cluster: &str, arn: &str) -> Value {
    let out = ecs(c, "DescribeTasks", json!({ "cluster": cluster, "tasks": [arn], "include": ["TAGS"] })).await;
    assert_eq!(out["failures"], json!([]), "{out}");
    out["tasks"][0].clone()
}

/// Polls DescribeTasks until `lastStatus` is `status` (at most `within`).
async fn wait_status(c: &ApiClient, cluster: &str, arn: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let task = describe(c, cluster, arn).await;
        if task["lastStatus"] == status {
            return task;
        }
        assert!(Instant::now() < deadline, "task not {status} after {within:?}: {task:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn run(c: &ApiClient, cluster: &str, td: &str) -> String {
    let out = ecs(
        c,
        "RunTask",
        json!({ "cluster": cluster, "taskDefinition": td, "startedBy": "berth-test", "tags": [{"key": "k", "value": "v"}] }),
    )
    .await;
    assert_eq!(out["failures"], json!([]), "{out}");
    let task = &out["tasks"][0];
    assert_eq!(task["lastStatus"], "PROVISIONING", "{task}");
    assert_eq!(task["desiredStatus"], "RUNNING", "{task}");
    assert_eq!(task["containers"][0]["lastStatus"], "PENDING", "{task}");
    task["taskArn"].as_str().expect("a task ARN").to_string()
}

async fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"GET /index.html HTTP/1.0\r\nHost: test\r\n\r\n").await?;
            let mut body = Vec::new();
            s.read_to_end(&mut body).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(r)) if !r.is_empty() => return r,
            other if Instant::now() > deadline => panic!("no HTTP answer from {addr}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn task_containers(task_arn: &str) -> Vec<String> {
    lines(&docker(&["ps", "-aq", "--filter", &format!("label=berth.ecs.task={task_arn}")]))
}

// Multi-threaded: the docker CLI blocks a thread while berth (in-process) answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_on_docker_stop_and_survive_a_restart() {
    let t = TestServer::start().await;
    let cluster = unique("c");
    let mut cleanup = Cleanup { cluster: cluster.clone(), images: Vec::new() };
    let repository = format!("ecs-tasks/{}", cluster.to_lowercase());
    let (image, digest) = push_test_image(&t, &repository, &mut cleanup).await;
    let role = execution_role(&t, &format!("exec-{}", std::process::id())).await;
    ecs(&t.client, "CreateCluster", json!({ "clusterName": cluster })).await;

    let container = |name: &str, image: &str, command: Value| json!({ "name": name, "image": image, "memory": 64, "essential": true, "command": command, "stopTimeout": 2 });
    let web = |family: &str, image: &str| {
        json!({
            "family": family,
            "networkMode": "awsvpc",
            "executionRoleArn": role,
            "containerDefinitions": [container("web", image, json!(["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]))],
        })
    };
    ecs(&t.client, "RegisterTaskDefinition", web("web", &image)).await;

    // RunTask answers at once; the controller pulls (as the execution role) and starts.
    let arn = run(&t.client, &cluster, "web").await;
    let task = wait_status(&t.client, &cluster, &arn, "RUNNING", Duration::from_secs(90)).await;
    assert_eq!(task["containers"][0]["lastStatus"], "RUNNING", "{task:#}");
    assert_eq!(task["containers"][0]["imageDigest"], digest.as_str(), "{task:#}");
    assert_eq!(task["tags"], json!([{"key": "k", "value": "v"}]));
    assert!(task["startedAt"].is_number() && task["pullStartedAt"].is_number() && task["pullStoppedAt"].is_number());
    let details = task["attachments"][0]["details"].as_array().expect("an ENI attachment").clone();
    let ip = details.iter().find(|d| d["name"] == "privateIPv4Address").expect("an address")["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"], ip.as_str());
    let answer = http_get(&format!("{ip}:8080")).await;
    assert!(answer.contains(INDEX), "{answer}");
    let ids = task_containers(&arn);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let env = docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &ids[0]], &[], None);
    assert!(env.contains("ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/"), "{env}");
    assert!(env.contains("AWS_REGION=us-east-1"), "{env}");
    let network = docker_ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", &ids[0]], &[], None);
    assert!(network.contains(&format!("berth-ecs-{cluster}")), "{network}");

    let listed = ecs(&t.client, "ListTasks", json!({ "cluster": cluster, "family": "web" })).await;
    assert_eq!(listed["taskArns"], json!([arn]));

    // A container that exits 3: the task stops, EssentialContainerExited, exit code recorded.
    let exiter = json!({
        "family": "exiter",
        "networkMode": "bridge",
        "executionRoleArn": role,
        "containerDefinitions": [container("main", &image, json!(["/bin/sh", "-c", "sleep 1; exit 3"]))],
    });
    ecs(&t.client, "RegisterTaskDefinition", exiter).await;
    let exit_arn = run(&t.client, &cluster, "exiter").await;
    let stopped = wait_status(&t.client, &cluster, &exit_arn, "STOPPED", Duration::from_secs(90)).await;
    assert_eq!(stopped["stopCode"], "EssentialContainerExited", "{stopped:#}");
    assert_eq!(stopped["stoppedReason"], "Essential container in task exited", "{stopped:#}");
    assert_eq!(stopped["containers"][0]["exitCode"], 3, "{stopped:#}");
    assert!(stopped["stoppedAt"].is_number());
    assert!(task_containers(&exit_arn).is_empty(), "the stopped task's containers are removed");

    // A tag that is not in the repository: CannotPullContainerError.
    ecs(&t.client, "RegisterTaskDefinition", web("missing", &image.replace(":v1", ":nope"))).await;
    let missing_arn = run(&t.client, &cluster, "missing").await;
    let stopped = wait_status(&t.client, &cluster, &missing_arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stopCode"], "TaskFailedToStart", "{stopped:#}");
    let reason = stopped["stoppedReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError: "), "{stopped:#}");

    // A restart of berth adopts the running container: same container, still RUNNING, no duplicate.
    let before = ids[0].clone();
    let t = t.restart().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let task = describe(&t.client, &cluster, &arn).await;
    assert_eq!(task["lastStatus"], "RUNNING", "{task:#}");
    let runtime_id = task["containers"][0]["runtimeId"].as_str().unwrap_or_default();
    assert!(runtime_id.starts_with(&before), "{before} is not {task:#}");
    assert_eq!(task_containers(&arn), vec![before.clone()], "one container, the same");

    // StopTask: UserInitiated, the reason given, the container stopped and removed.
    let out = ecs(&t.client, "StopTask", json!({ "cluster": cluster, "task": arn, "reason": "enough" })).await;
    assert_eq!(out["task"]["desiredStatus"], "STOPPED", "{out:#}");
    let stopped = wait_status(&t.client, &cluster, &arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stopCode"], "UserInitiated", "{stopped:#}");
    assert_eq!(stopped["stoppedReason"], "enough", "{stopped:#}");
    assert!(stopped["stoppingAt"].is_number() && stopped["stoppedAt"].is_number());
    assert!(task_containers(&arn).is_empty(), "the task's container is removed");
    let listed = ecs(&t.client, "ListTasks", json!({ "cluster": cluster, "desiredStatus": "STOPPED" })).await;
    assert_eq!(listed["taskArns"].as_array().map(Vec::len), Some(3), "{listed}");
    let listed = ecs(&t.client, "ListTasks", json!({ "cluster": cluster })).await;
    assert_eq!(listed["taskArns"], json!([]));
    t.shutdown().await;
}

#[tokio::test]
async fn task_api_validates_and_reports_missing_tasks() {
    let t = TestServer::start().await;
    let cluster = unique("v");
    let (status, body) = ecs_err(&t.client, "RunTask", json!({ "cluster": cluster, "taskDefinition": "x" })).await;
    assert_eq!((status, body["__type"].as_str()), (400, Some("ClusterNotFoundException")), "{body}");
    ecs(&t.client, "CreateCluster", json!({ "clusterName": cluster })).await;
    let (_, body) = ecs_err(&t.client, "RunTask", json!({ "cluster": cluster, "taskDefinition": "nope" })).await;
    assert_eq!(body["__type"], "ClientException", "{body}");
    let def = json!({ "family": "v", "containerDefinitions": [{ "name": "a", "image": "localhost:1/absent:x", "memory": 32 }] });
    ecs(&t.client, "RegisterTaskDefinition", def).await;
    let (_, body) =
        ecs_err(&t.client, "RunTask", json!({ "cluster": cluster, "taskDefinition": "v", "count": 11 })).await;
    assert_eq!(body["__type"], "InvalidParameterException", "{body}");
    let overrides = json!({ "containerOverrides": [{ "name": "zzz", "command": ["x"] }] });
    let (_, body) =
        ecs_err(&t.client, "RunTask", json!({ "cluster": cluster, "taskDefinition": "v", "overrides": overrides }))
            .await;
    assert_eq!(body["__type"], "InvalidParameterException", "{body}");
    let (_, body) = ecs_err(&t.client, "StopTask", json!({ "cluster": cluster, "task": "0123" })).await;
    assert_eq!(body["__type"], "InvalidParameterException", "{body}");
    let out = ecs(&t.client, "DescribeTasks", json!({ "cluster": cluster, "tasks": ["abc"] })).await;
    assert_eq!(out["tasks"], json!([]));
    assert_eq!(out["failures"][0]["reason"], "MISSING");
    assert_eq!(out["failures"][0]["arn"], format!("arn:aws:ecs:us-east-1:000000000000:task/{cluster}/abc"));

    // count 3 with group and startedBy; paginated ListTasks; one metadata id per container.
    let out = ecs(
        &t.client,
        "RunTask",
        json!({ "cluster": cluster, "taskDefinition": "v:1", "count": 3, "startedBy": "me", "group": "g" }),
    )
    .await;
    let tasks = out["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0]["group"], "g");
    assert_eq!(tasks[0]["containers"][0]["memory"], "32");
    let page = ecs(&t.client, "ListTasks", json!({ "cluster": cluster, "startedBy": "me", "maxResults": 2 })).await;
    assert_eq!(page["taskArns"].as_array().unwrap().len(), 2);
    let token = page["nextToken"].as_str().expect("a token");
    let page = ecs(&t.client, "ListTasks", json!({ "cluster": cluster, "startedBy": "me", "nextToken": token })).await;
    assert_eq!(page["taskArns"].as_array().unwrap().len(), 1);
    // Nothing answers at localhost:1: the tasks stop with CannotPullContainerError.
    let arn = tasks[0]["taskArn"].as_str().unwrap();
    let stopped = wait_status(&t.client, &cluster, arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stopCode"], "TaskFailedToStart", "{stopped:#}");

    // An execution role ECS tasks may not assume: the task cannot get registry auth.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let name = format!("notecs-{}", std::process::id());
    iam(&t.client, "CreateRole", &[("RoleName", &name), ("AssumeRolePolicyDocument", trust)]).await;
    let def = json!({ "family": "refused", "executionRoleArn": format!("arn:aws:iam::000000000000:role/{name}"),
                      "containerDefinitions": [{ "name": "a", "image": "localhost:1/absent:x", "memory": 32 }] });
    ecs(&t.client, "RegisterTaskDefinition", def).await;
    let arn = run(&t.client, &cluster, "refused").await;
    let stopped = wait_status(&t.client, &cluster, &arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stopCode"], "TaskFailedToStart", "{stopped:#}");
    let reason = stopped["stoppedReason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("ResourceInitializationError: unable to pull secrets or registry auth: "), "{reason}");
    t.shutdown().await;
}

/// `dependsOn` (SUCCESS, HEALTHY) gates container starts, health checks feed the task's health,
/// and the task role's credentials are served at the URI the container is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_health_and_task_credentials() {
    let t = TestServer::start_with_config(|c| c.task_endpoint = Some("127.0.0.1:0".parse().unwrap())).await;
    let endpoint = t.server.task_endpoint.expect("a task endpoint");
    let cluster = unique("h");
    let mut cleanup = Cleanup { cluster: cluster.clone(), images: Vec::new() };
    let repository = format!("ecs-tasks/{}", cluster.to_lowercase());
    let (image, _) = push_test_image(&t, &repository, &mut cleanup).await;
    let role = execution_role(&t, &format!("exech-{}", std::process::id())).await;
    ecs(&t.client, "CreateCluster", json!({ "clusterName": cluster })).await;
    let def = json!({
        "family": "deps",
        "networkMode": "bridge",
        "executionRoleArn": role,
        "taskRoleArn": role,
        "containerDefinitions": [
            { "name": "side", "image": image, "memory": 32, "stopTimeout": 2,
              "command": ["/bin/sleep", "3600"],
              "dependsOn": [{ "containerName": "web", "condition": "HEALTHY" }] },
            { "name": "web", "image": image, "memory": 32, "stopTimeout": 2,
              "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
              "portMappings": [{ "containerPort": 8080 }],
              "healthCheck": { "command": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/index.html || exit 1"],
                               "interval": 5, "timeout": 2, "retries": 2 },
              "dependsOn": [{ "containerName": "init", "condition": "SUCCESS" }] },
            { "name": "init", "image": image, "memory": 32, "essential": false,
              "command": ["/bin/sh", "-c", "exit 0"] },
        ],
    });
    ecs(&t.client, "RegisterTaskDefinition", def).await;
    let arn = run(&t.client, &cluster, "deps").await;
    let task = wait_status(&t.client, &cluster, &arn, "RUNNING", Duration::from_secs(90)).await;
    let container = |task: &Value, name: &str| {
        task["containers"].as_array().unwrap().iter().find(|c| c["name"] == name).expect("a container").clone()
    };
    assert_eq!(container(&task, "init")["lastStatus"], "STOPPED", "{task:#}");
    assert_eq!(container(&task, "init")["exitCode"], 0, "{task:#}");
    assert_eq!(container(&task, "side")["lastStatus"], "RUNNING", "{task:#}");
    // bridge: the container port is published on an ephemeral host port.
    let binding = container(&task, "web")["networkBindings"][0].clone();
    assert_eq!(binding["containerPort"], 8080, "{task:#}");
    let host_port = binding["hostPort"].as_u64().expect("a host port");
    assert!(http_get(&format!("127.0.0.1:{host_port}")).await.contains(INDEX));
    // side started only once web was healthy; the task is HEALTHY once the controller sees it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        let task = describe(&t.client, &cluster, &arn).await;
        if task["healthStatus"] == "HEALTHY" {
            break task;
        }
        assert!(Instant::now() < deadline, "not HEALTHY: {task:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(container(&task, "web")["healthStatus"], "HEALTHY", "{task:#}");
    let started = |name: &str| {
        let id = container(&task, name)["runtimeId"].as_str().unwrap().to_string();
        docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", &id], &[], None).trim().to_string()
    };
    assert!(started("side") > started("web"), "side started before web was healthy");

    // The credentials URI the container got answers with the task role's session.
    let web_id = container(&task, "web")["runtimeId"].as_str().unwrap().to_string();
    let env = docker_ok(&["inspect", "-f", "{{json .Config.Env}}", &web_id], &[], None);
    let env: Vec<String> = serde_json::from_str(&env).unwrap();
    let uri = env
        .iter()
        .find_map(|e| e.strip_prefix("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="))
        .expect("a credentials URI")
        .to_string();
    let mut s = TcpStream::connect(endpoint).await.unwrap();
    s.write_all(format!("GET {uri} HTTP/1.0\r\nHost: 169.254.170.2\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"AccessKeyId\":\"ASIA") && answer.contains(&role), "{answer}");

    ecs(&t.client, "StopTask", json!({ "cluster": cluster, "task": arn })).await;
    let stopped = wait_status(&t.client, &cluster, &arn, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stoppedReason"], "Task stopped by user");
    assert!(task_containers(&arn).is_empty());
    t.shutdown().await;
}

fn revision(t: &TestServer) -> i64 {
    let conn = berth_store::rusqlite::Connection::open(t.data_dir().join("state.db")).expect("open state.db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("SELECT revision FROM _berth_revision WHERE id = 1", [], |r| r.get(0)).unwrap()
}

/// A stopped task stays describable for an hour, then it and its endpoint ids are gone; an idle
/// controller writes nothing (each commit would wake it again).
#[tokio::test]
async fn stopped_tasks_expire_and_an_idle_controller_does_not_write() {
    let clock = std::sync::Arc::new(berth_aws::time::ManualClock::new(SystemTime::now()));
    let t = TestServer::start_with_clock(clock.clone()).await;
    let cluster = unique("x");
    let _cleanup = Cleanup { cluster: cluster.clone(), images: Vec::new() };
    ecs(&t.client, "CreateCluster", json!({ "clusterName": cluster })).await;
    let def = json!({ "family": "gone", "containerDefinitions": [{ "name": "a", "image": "localhost:1/absent:x", "memory": 32 }] });
    ecs(&t.client, "RegisterTaskDefinition", def).await;
    let arn = run(&t.client, &cluster, "gone").await;
    let stopped = wait_status(&t.client, &cluster, &arn, "STOPPED", Duration::from_secs(60)).await;
    assert!(stopped["stoppedReason"].as_str().unwrap().starts_with("CannotPullContainerError: "), "{stopped:#}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = revision(&t);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(revision(&t), before, "the controller wrote while nothing changed");

    clock.advance(Duration::from_secs(30 * 60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(describe(&t.client, &cluster, &arn).await["lastStatus"], "STOPPED", "kept for an hour");
    clock.advance(Duration::from_secs(31 * 60));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ecs(&t.client, "DescribeTasks", json!({ "cluster": cluster, "tasks": [arn] })).await;
        if out["failures"][0]["reason"] == "MISSING" {
            break;
        }
        assert!(Instant::now() < deadline, "the stopped task is still there: {out:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let conn = berth_store::rusqlite::Connection::open(t.data_dir().join("state.db")).unwrap();
    let ids: i64 =
        conn.query_row("SELECT COUNT(*) FROM ecs_task_endpoint_ids WHERE task_arn = ?1", [&arn], |r| r.get(0)).unwrap();
    assert_eq!(ids, 0);
    t.shutdown().await;
}

/// `awsvpc`: the containers of a task share one address and reach each other on localhost, also
/// when the first container is an init container that has exited before the others start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awsvpc_containers_share_localhost_after_an_init_container() {
    let t = TestServer::start().await;
    let cluster = unique("n");
    let mut cleanup = Cleanup { cluster: cluster.clone(), images: Vec::new() };
    let repository = format!("ecs-tasks/{}", cluster.to_lowercase());
    let (image, _) = push_test_image(&t, &repository, &mut cleanup).await;
    let role = execution_role(&t, &format!("execn-{}", std::process::id())).await;
    ecs(&t.client, "CreateCluster", json!({ "clusterName": cluster })).await;
    let fetch = "until wget -q -O /www/got http://127.0.0.1:8080/index.html; do sleep 0.2; done; exec sleep 3600";
    let def = json!({
        "family": "pod",
        "networkMode": "awsvpc",
        "executionRoleArn": role,
        "containerDefinitions": [
            { "name": "init", "image": image, "memory": 32, "essential": false, "command": ["/bin/true"] },
            { "name": "web", "image": image, "memory": 32, "stopTimeout": 2,
              "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
              "dependsOn": [{ "containerName": "init", "condition": "SUCCESS" }] },
            { "name": "side", "image": image, "memory": 32, "stopTimeout": 2,
              "command": ["/bin/sh", "-c", fetch],
              "dependsOn": [{ "containerName": "web", "condition": "START" }] },
        ],
    });
    ecs(&t.client, "RegisterTaskDefinition", def).await;
    let arn = run(&t.client, &cluster, "pod").await;
    let task = wait_status(&t.client, &cluster, &arn, "RUNNING", Duration::from_secs(90)).await;
    let details = task["attachments"][0]["details"].as_array().expect("an ENI attachment").clone();
    let ip = details.iter().find(|d| d["name"] == "privateIPv4Address").unwrap()["value"].as_str().unwrap().to_string();
    assert!(!ip.is_empty(), "{task:#}");
    assert!(http_get(&format!("{ip}:8080")).await.contains(INDEX));
    let side = task["containers"].as_array().unwrap().iter().find(|c| c["name"] == "side").unwrap().clone();
    assert_eq!(side["networkInterfaces"][0]["privateIpv4Address"], ip.as_str(), "{task:#}");
    let side_id = side["runtimeId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = docker(&["exec", &side_id, "/bin/cat", "/www/got"]);
        if String::from_utf8_lossy(&got.stdout).contains(INDEX) {
            break;
        }
        assert!(Instant::now() < deadline, "side never reached web on localhost");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ecs(&t.client, "StopTask", json!({ "cluster": cluster, "task": arn })).await;
    wait_status(&t.client, &cluster, &arn, "STOPPED", Duration::from_secs(60)).await;
    assert!(task_containers(&arn).is_empty());
    t.shutdown().await;
}
