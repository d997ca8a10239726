//! The task endpoint (what containers reach at 169.254.170.2), served here on a free loopback
//! port: task-role credentials minted by STS for `ecs-tasks.amazonaws.com`, usable at once against
//! berth's API, and task metadata v4. The task rows are written into the server's database as
//! `RunTask` writes them.

use berth_aws::sigv4::SigningCredentials;
use berth_ecs::tasks::TaskRow;
use berth_server::testing::TestServer;
use berth_store::rusqlite::{params, Connection};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACCOUNT: &str = "000000000000";
const TRUST_ECS_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const TRUST_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn db(t: &TestServer) -> Connection {
    let conn = Connection::open(t.data_dir().join("state.db")).expect("open state.db");
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn
}

fn task(id: &str, last_status: &str) -> TaskRow {
    TaskRow {
        task_arn: format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/default/{id}"),
        task_id: id.into(),
        cluster: "default".into(),
        task_definition_arn: format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/app:1"),
        family: "app".into(),
        revision: 1,
        last_status: last_status.into(),
        desired_status: "RUNNING".into(),
        launch_type: "EC2".into(),
        started_by: None,
        group: Some("family:app".into()),
        created_at: 1_700_000_000_000,
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        health_status: "UNKNOWN".into(),
        overrides: json!({}),
        tags: Vec::new(),
        containers: json!([{ "name": "web", "image": "localhost/web:1", "lastStatus": last_status,
                             "runtimeId": "c0ffee", "networkInterfaces": [{ "privateIpv4Address": "10.1.2.3" }] }]),
        attachments: json!([]),
        runtime: json!({}),
        version: 1,
    }
}

fn add_ids(conn: &Connection, task_arn: &str, credentials: Option<(&str, &str)>, metadata: &str) {
    if let Some((id, role)) = credentials {
        conn.execute(
            "INSERT INTO ecs_task_endpoint_ids (id, kind, task_arn, role_arn) VALUES (?1, 'credentials', ?2, ?3)",
            params![id, task_arn, role],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO ecs_task_endpoint_ids (id, kind, task_arn, container_name) VALUES (?1, 'metadata', ?2, 'web')",
        params![metadata, task_arn],
    )
    .unwrap();
}

/// GET on the endpoint with a raw HTTP/1.1 exchange: (status, JSON body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to the task endpoint");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 169.254.170.2\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn create_role(t: &TestServer, name: &str, trust: &str) -> String {
    let r = t
        .client
        .query("iam", "CreateRole", "2010-05-08", &[("RoleName", name), ("AssumeRolePolicyDocument", trust)])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

#[tokio::test]
async fn containers_get_their_task_role_credentials_and_metadata() {
    let t = TestServer::start_with_config(|c| c.task_endpoint = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = t.server.task_endpoint.expect("the task endpoint listens");
    let role = create_role(&t, "app-task", TRUST_ECS_TASKS).await;
    let untrusting = create_role(&t, "ec2-only", TRUST_EC2).await;
    let conn = db(&t);
    let running = task("aaaa1111bbbb2222", "RUNNING");
    running.insert(&conn).unwrap();
    add_ids(&conn, &running.task_arn, Some(("cred-0123456789abcdef0123456789abcdef", &role)), "meta-0123456789abcdef");
    let other = task("cccc3333dddd4444", "RUNNING");
    other.insert(&conn).unwrap();
    add_ids(
        &conn,
        &other.task_arn,
        Some(("cred-untrusted-0123456789abcdef01234", &untrusting)),
        "meta-other-0123456789",
    );

    // The SDK's container provider: GET $AWS_CONTAINER_CREDENTIALS_RELATIVE_URI.
    let (status, creds) = get(addr, "/v2/credentials/cred-0123456789abcdef0123456789abcdef").await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["RoleArn"], role.as_str());
    let key = creds["AccessKeyId"].as_str().unwrap();
    assert!(key.starts_with("ASIA"), "{creds}");
    assert!(creds["Expiration"].as_str().unwrap().ends_with('Z'));
    // The same session again, not a new one per request.
    let (_, again) = get(addr, "/v2/credentials/cred-0123456789abcdef0123456789abcdef").await;
    assert_eq!(again["AccessKeyId"], key);

    // The credentials work against berth: the task is its role's session, named after the task id.
    let task_client = t.client_with(SigningCredentials {
        access_key_id: key.to_string(),
        secret_access_key: creds["SecretAccessKey"].as_str().unwrap().to_string(),
        session_token: Some(creds["Token"].as_str().unwrap().to_string()),
    });
    let who = task_client.query("sts", "GetCallerIdentity", "2011-06-15", &[]).await.unwrap();
    assert_eq!(who.status, 200, "{}", who.text());
    assert_eq!(
        who.xml_value("Arn").as_deref(),
        Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-task/aaaa1111bbbb2222").as_str())
    );

    // Metadata v4: the container and its task.
    let (status, container) = get(addr, "/v4/meta-0123456789abcdef").await;
    assert_eq!(status, 200, "{container}");
    assert_eq!(container["Name"], "web");
    assert_eq!(container["DockerId"], "c0ffee");
    assert_eq!(container["Networks"][0]["IPv4Addresses"][0], "10.1.2.3");
    let (status, meta) = get(addr, "/v4/meta-0123456789abcdef/task").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["TaskARN"], running.task_arn.as_str());
    assert_eq!(meta["Cluster"], format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/default").as_str());
    assert_eq!(meta["Family"], "app");
    assert_eq!(meta["Revision"], "1");

    // Refusals: an unknown id, a metadata id used for credentials, a role that does not trust
    // ecs-tasks, and a task that has stopped.
    assert_eq!(get(addr, "/v2/credentials/nope-0123456789").await.0, 400);
    assert_eq!(get(addr, "/v2/credentials/meta-0123456789abcdef").await.0, 400);
    let (status, refused) = get(addr, "/v2/credentials/cred-untrusted-0123456789abcdef01234").await;
    assert_eq!(status, 500, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("ecs-tasks.amazonaws.com"), "{refused}");
    conn.execute("UPDATE ecs_tasks SET last_status = 'STOPPED' WHERE task_arn = ?1", [&running.task_arn]).unwrap();
    assert_eq!(get(addr, "/v2/credentials/cred-0123456789abcdef0123456789abcdef").await.0, 400);
    assert_eq!(get(addr, "/nothing/here").await.0, 404);
    t.shutdown().await;
}
