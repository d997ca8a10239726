//! The `berth` binary as a process: SIGKILL in the middle of acknowledged writes loses none of
//! them; SIGTERM exits cleanly; a second server on the same data dir is refused; `berth env`;
//! `berth demo`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_aws::sigv4::SigningCredentials;
use berth_server::client::ApiClient;

const KEY_ID: &str = "AKIATESTPROCESS00001";
const SECRET: &str = "testsecrettestsecrettestsecrettestsecret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(data_dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("BERTH_ROOT_ACCESS_KEY_ID", KEY_ID)
        .env("BERTH_ROOT_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth server")
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if s.write_all(b"GET /_berth/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.is_ok() {
                let mut out = String::new();
                if s.read_to_string(&mut out).await.is_ok() && out.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("berth server on port {port} did not become ready");
}

fn client(port: u16) -> ApiClient {
    let creds =
        SigningCredentials { access_key_id: KEY_ID.into(), secret_access_key: SECRET.into(), session_token: None };
    ApiClient::new(&format!("http://127.0.0.1:{port}"), creds, "us-east-1").unwrap()
}

async fn all_user_names(c: &ApiClient) -> Vec<String> {
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut params = vec![("MaxItems", "1000".to_string())];
        if let Some(m) = &marker {
            params.push(("Marker", m.clone()));
        }
        let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.query("iam", "ListUsers", "2010-05-08", &p).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        for part in text.split("<UserName>").skip(1) {
            names.push(part.split("</UserName>").next().unwrap().to_string());
        }
        marker = r.xml_value("Marker");
        if marker.is_none() {
            return names;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_server(dir.path(), port);
    wait_ready(port).await;

    // Four writers create users as fast as they can; each records what the server acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let acked = acked.clone();
        let c = client(port);
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-u{i}");
                match c.query("iam", "CreateUser", "2010-05-08", &[("UserName", &name)]).await {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().push(name),
                    Ok(r) => panic!("unexpected answer {}: {}", r.status, r.text()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Let the writes run, then kill the server without warning.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().unwrap().len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL the server");
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200, "only {} writes were acknowledged before the kill", acked.len());

    let port = free_port();
    let mut child = spawn_server(dir.path(), port);
    wait_ready(port).await;
    let present: std::collections::HashSet<String> = all_user_names(&client(port)).await.into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes were lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(present.len() <= acked.len() + 4, "at most one unacknowledged write per writer may have landed");
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM failed");
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_a_second_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_server(dir.path(), port);
    wait_ready(port).await;

    let second = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another berth server is already using the data directory"), "{stderr}");

    let env = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["env", "--data-dir"])
        .arg(dir.path())
        .env_remove("BERTH_ROOT_ACCESS_KEY_ID")
        .output()
        .unwrap();
    // The server was given its key through the environment, so none was written to the data dir.
    assert!(!env.status.success());

    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[test]
fn env_prints_the_exports_for_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("BERTH_ROOT_ACCESS_KEY_ID")
        .env_remove("BERTH_ROOT_SECRET_ACCESS_KEY")
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_ready(port));
    let out = Command::new(env!("CARGO_BIN_EXE_berth")).args(["env", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("export AWS_ENDPOINT_URL=http://127.0.0.1:{port}\n")), "{text}");
    assert!(text.contains("export AWS_ACCESS_KEY_ID=AKIA"), "{text}");
    assert!(text.contains("export AWS_DEFAULT_REGION=us-east-1\n"), "{text}");
    let secret_line = text.lines().find(|l| l.starts_with("export AWS_SECRET_ACCESS_KEY=")).unwrap();
    assert_eq!(secret_line.len() - "export AWS_SECRET_ACCESS_KEY=".len(), 40);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("root-credentials.json")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}

/// SIGTERM right after the first answer (as a supervisor or a benchmark does) always ends in a
/// graceful exit: the signal handlers are in place before the server serves.
#[tokio::test]
async fn sigterm_right_after_the_first_answer_always_exits_cleanly() {
    for _ in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = spawn_server(dir.path(), port);
        wait_ready(port).await;
        sigterm(&child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("berth ignored SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(status.success(), "exit status after SIGTERM: {status:?}");
    }
}

/// Runs `berth demo` as a user would; its stdout on success.
fn run_demo(extra: &[&std::ffi::OsStr]) -> String {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("demo")
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("BERTH_ROOT_ACCESS_KEY_ID")
        .env_remove("BERTH_ROOT_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "berth demo exited with {:?}\n{stdout}\n{stderr}", out.status);
    // The demo takes well under 2 s; the bound leaves room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(20), "berth demo took {:?}", started.elapsed());
    assert!(!stdout.contains('✗'), "a step failed:\n{stdout}");
    stdout
}

#[test]
fn demo_assumes_the_deploy_role_with_an_oidc_token_and_refuses_another_branch() {
    let out = run_demo(&[]);
    assert!(
        out.contains(
            "stand-in for GitHub's token service (token.actions.githubusercontent.com cannot be reached from here)"
        ),
        "{out}"
    );
    assert!(
        out.contains("trust policy matched sub repo:acme/shop:ref:refs/heads/main"),
        "AssumeRoleWithWebIdentity did not verify the main branch's token:\n{out}"
    );
    // The session's identity, from GetCallerIdentity signed with the ASIA… key.
    let identity = out.lines().skip_while(|l| !l.contains("✓ who am I now")).nth(1).unwrap_or_default();
    assert!(identity.contains("arn:aws:sts::000000000000:assumed-role/deploy/GitHubActions"), "{out}");
    assert!(
        out.contains(
            "AccessDenied: User: arn:aws:sts::000000000000:assumed-role/deploy/GitHubActions is not authorized to perform: iam:PutRolePolicy on resource: arn:aws:iam::000000000000:role/deploy"
        ),
        "{out}"
    );
    let refusal = out.lines().skip_while(|l| !l.contains("✓ a token for refs/heads/feature is refused")).nth(1);
    assert!(
        refusal.is_some_and(|l| l.contains("AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity")),
        "the feature branch's token was not refused:\n{out}"
    );
    assert!(out.contains("✓ stop the issuer and berth gracefully"), "{out}");
}

#[test]
fn demo_runs_again_on_the_data_dir_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let args = [std::ffi::OsStr::new("--data-dir"), dir.path().as_os_str()];
    run_demo(&args);
    let again = run_demo(&args);
    assert!(again.contains("role/deploy (kept from an earlier run; trust policy replaced)"), "{again}");
    assert!(again.contains("arn:aws:sts::000000000000:assumed-role/deploy/GitHubActions"), "{again}");
}
