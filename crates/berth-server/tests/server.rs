//! The whole server in-process: real sockets, a real SQLite file in a temp dir.

use std::time::Duration;

use berth_aws::sigv4::{self, SigningCredentials};
use berth_aws::time::Timestamp;
use berth_server::testing::TestServer;
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn get_caller_identity_answers_for_the_root_key() {
    let t = TestServer::start().await;
    let resp = t.client.query("sts", "GetCallerIdentity", "2011-06-15", &[]).await.unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.xml_value("Account").as_deref(), Some("000000000000"));
    assert_eq!(resp.xml_value("Arn").as_deref(), Some("arn:aws:iam::000000000000:root"));
    assert_eq!(resp.xml_value("UserId").as_deref(), Some("000000000000"));
    let rid = resp.request_id().unwrap().to_string();
    assert_eq!(resp.xml_value("RequestId"), Some(rid));
    assert!(resp.text().starts_with("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"));
    t.shutdown().await;
}

#[tokio::test]
async fn health_needs_no_signature_but_the_api_does() {
    let t = TestServer::start().await;
    let mut s = TcpStream::connect(t.server.local_addr).await.unwrap();
    s.write_all(b"GET /_berth/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    let mut s = TcpStream::connect(t.server.local_addr).await.unwrap();
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("<Code>MissingAuthenticationToken</Code>"), "{out}");
    assert!(out.to_ascii_lowercase().contains("x-amzn-requestid:"), "{out}");
    t.shutdown().await;
}

#[tokio::test]
async fn iam_users_survive_a_restart_and_the_root_key_stays_the_same() {
    let t = TestServer::start().await;
    let key = t.server.root.access_key_id.clone();
    for name in ["carol", "Bob", "alice"] {
        let r = t.client.query("iam", "CreateUser", "2010-05-08", &[("UserName", name)]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let dup = t.client.query("iam", "CreateUser", "2010-05-08", &[("UserName", "BOB")]).await.unwrap();
    assert_eq!(dup.status, 409);
    assert_eq!(dup.xml_value("Code").as_deref(), Some("EntityAlreadyExists"));

    let t = t.restart().await;
    assert_eq!(t.server.root.access_key_id, key);
    let page1 = t.client.query("iam", "ListUsers", "2010-05-08", &[("MaxItems", "2")]).await.unwrap();
    let text = page1.text();
    assert!(text.find("<UserName>alice</UserName>").unwrap() < text.find("<UserName>Bob</UserName>").unwrap());
    assert!(!text.contains("carol"));
    assert_eq!(page1.xml_value("IsTruncated").as_deref(), Some("true"));
    let marker = page1.xml_value("Marker").unwrap();
    let page2 =
        t.client.query("iam", "ListUsers", "2010-05-08", &[("MaxItems", "2"), ("Marker", &marker)]).await.unwrap();
    assert!(page2.text().contains("<UserName>carol</UserName>"));
    assert_eq!(page2.xml_value("IsTruncated").as_deref(), Some("false"));
    t.shutdown().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let t = TestServer::start().await;
    let config = berth_server::Config::new("127.0.0.1:0", Some(t.data_dir().to_path_buf()), None, None).unwrap();
    let err = berth_server::start(config).await.err().expect("second start must fail");
    assert!(err.to_string().contains("already using the data directory"), "{err}");
    t.shutdown().await;
}

/// A request whose body is still arriving when shutdown begins is answered in full, and new
/// connections are refused once shutdown has begun.
#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let t = TestServer::start().await;
    let addr = t.server.local_addr;
    let body = b"Action=CreateUser&Version=2010-05-08&UserName=inflight";
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&addr.to_string()).unwrap());
    headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    let creds = SigningCredentials {
        access_key_id: t.server.root.access_key_id.clone(),
        secret_access_key: t.server.root.secret_access_key.expose().to_string(),
        session_token: None,
    };
    let now = Timestamp::from_system(std::time::SystemTime::now());
    sigv4::sign("POST", "/", "", &mut headers, body, &creds, "us-east-1", "iam", now);
    let mut head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let dir = tempfile::tempdir().unwrap();
    let data_dir = t.data_dir().to_path_buf();
    let TestServer { server, .. } = t;
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!shutdown.is_finished(), "shutdown must wait for the in-flight request");
    assert!(TcpStream::connect(addr).await.is_err(), "no new connections during shutdown");

    s.write_all(&body[10..]).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("<UserName>inflight</UserName>"), "{out}");
    tokio::time::timeout(Duration::from_secs(5), shutdown).await.unwrap().unwrap();
    drop(dir);

    // The acknowledged write is there after a restart.
    let config = berth_server::Config::new("127.0.0.1:0", Some(data_dir.clone()), None, None).unwrap();
    let server = berth_server::start(config).await.unwrap();
    let client = berth_server::testing::root_client(&server);
    let r = client.query("iam", "GetUser", "2010-05-08", &[("UserName", "inflight")]).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    server.shutdown().await;
}

#[path = "server/ecr.rs"]
mod ecr;
#[path = "server/ecs.rs"]
mod ecs;
#[path = "server/ecs_tasks.rs"]
mod ecs_tasks;
#[path = "server/iam.rs"]
mod iam;
#[path = "server/registry.rs"]
mod registry;

#[path = "server/task_endpoint.rs"]
mod task_endpoint;
