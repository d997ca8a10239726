//! The fixture: a connected runtime, a test image of its own, unique names and the guard that
//! removes everything the test created.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_runtime::{ContainerInfo, ContainerSpec, DockerRuntime, LogLine, LogOptions, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The label every test resource carries; its value is the test's id.
pub const TEST_LABEL: &str = "berth.runtime-test";
pub const BUSYBOX: &str = "/bin/busybox";
/// What the test image's web root serves.
pub const INDEX: &str = "hello from a berth-runtime test\n";

/// One test's world: the runtime (as ECS will hold it), its id, its image and its guard.
pub struct Fixture {
    pub rt: Arc<dyn Runtime>,
    /// Unique to this test: in names, tags and the value of [`TEST_LABEL`].
    pub id: String,
    /// The test image's tag (busybox with its applets in /bin, /www/index.html).
    pub image: String,
    pub cleanup: Cleanup,
}

impl Fixture {
    /// Connects to Docker and builds this test's image; fails (never skips) without Docker.
    pub async fn new(name: &str) -> Fixture {
        require_tools();
        let rt: Arc<dyn Runtime> = Arc::new(DockerRuntime::connect().await.unwrap_or_else(|e| {
            panic!("these tests need a running Docker Engine (Debian: apt-get install docker.io; dockerd &): {e}")
        }));
        let id = unique(name);
        let cleanup = Cleanup { id: id.clone(), images: Mutex::new(Vec::new()) };
        let image = format!("berth-runtime-test:{id}");
        cleanup.images.lock().unwrap().push(image.clone());
        build_image(&image, &id);
        Fixture { rt, id, image, cleanup }
    }

    /// A unique container or network name for this test.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }

    /// A spec on this test's image, labelled as this test's.
    pub fn spec(&self, what: &str, command: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: self.name(what),
            image: self.image.clone(),
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            labels: self.labels(),
            ..Default::default()
        }
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_LABEL.to_string(), self.id.clone())])
    }

    /// Creates and starts; returns the id.
    pub async fn run(&self, spec: &ContainerSpec) -> String {
        let id = self.rt.create_container(spec).await.unwrap_or_else(|e| panic!("create {}: {e}", spec.name));
        self.rt.start_container(&id).await.unwrap_or_else(|e| panic!("start {}: {e}", spec.name));
        id
    }

    /// Polls inspect until `done` holds (at most `within`); returns the last state.
    pub async fn wait_until(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&ContainerInfo) -> bool,
    ) -> ContainerInfo {
        let deadline = Instant::now() + within;
        loop {
            let info = self.rt.inspect_container(id).await.expect("inspect");
            if done(&info) {
                return info;
            }
            assert!(Instant::now() < deadline, "container {id} not {what} after {within:?}: {info:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_exited(&self, id: &str, within: Duration) -> ContainerInfo {
        self.wait_until(id, within, "exited", |i| i.status.is_finished()).await
    }

    /// All of a container's output so far.
    pub async fn logs(&self, id: &str) -> Vec<LogLine> {
        let mut rx = self.rt.container_logs(id, &LogOptions::default());
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line.expect("a log line"));
        }
        lines
    }
}

/// Removes, when dropped (also when a test panics), every container, network and image that
/// carries this test's label, and the image tags it was told of.
pub struct Cleanup {
    id: String,
    pub images: Mutex<Vec<String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={TEST_LABEL}={}", self.id);
        let containers = lines(&docker(&["ps", "-aq", "--filter", &filter]));
        if !containers.is_empty() {
            docker(&[&["rm", "-f", "-v"][..], &containers.iter().map(String::as_str).collect::<Vec<_>>()].concat());
        }
        let networks = lines(&docker(&["network", "ls", "-q", "--filter", &filter]));
        for n in &networks {
            docker(&["network", "rm", n]);
        }
        let mut images = self.images.lock().map(|i| i.clone()).unwrap_or_default();
        images.extend(lines(&docker(&["images", "-q", "--filter", &filter])));
        for image in &images {
            docker(&["rmi", "-f", image]);
        }
    }
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Runs the docker CLI (for what the port does not do: build, push, login, the cleanup).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("run the docker CLI")
}

/// Runs the docker CLI and asserts it succeeded.
pub fn docker_ok(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("docker");
    cmd.args(args).envs(env.iter().copied());
    let out = match stdin {
        None => cmd.output().expect("run the docker CLI"),
        Some(input) => {
            use std::io::Write as _;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run the docker CLI");
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
            child.wait_with_output().expect("wait for the docker CLI")
        }
    };
    assert!(
        out.status.success(),
        "docker {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_tools() {
    if Command::new("docker").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        panic!("these tests need the docker CLI: apt-get install docker.io (./scripts/test.sh does it as root)");
    }
    if !Path::new(BUSYBOX).exists() {
        panic!("these tests build their image from {BUSYBOX}: apt-get install busybox-static");
    }
}

/// `<name>-<pid>-<time>-<n>`: unique across parallel tests and repeated runs.
pub fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("brt-{name}-{}-{nanos:x}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// `docker build` (classic builder) of FROM scratch + busybox with its applets linked into /bin
/// (so `/bin/sh` exists for CMD-SHELL), a web root, and the test's label.
fn build_image(tag: &str, id: &str) {
    let dir = tempfile::tempdir().expect("a build context");
    std::fs::copy(BUSYBOX, dir.path().join("busybox")).expect("copy busybox");
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY index.html /www/index.html\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let label = format!("{TEST_LABEL}={id}");
    let context = dir.path().to_str().unwrap();
    // No shared build cache: another test's cleanup would remove intermediate images this build
    // was about to reuse. One build at a time in this process, to go easy on the daemon.
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let args = ["build", "-q", "--no-cache", "--force-rm", "--label", &label, "-t", tag, context];
    docker_ok(&args, &[("DOCKER_BUILDKIT", "0")], None);
}

/// GET / from `addr`, retrying while the server comes up (at most 15 s); returns the response.
pub async fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").await?;
            let mut body = Vec::new();
            s.read_to_end(&mut body).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).into_owned())
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(response)) if !response.is_empty() => return response,
            other if Instant::now() > deadline => panic!("no HTTP answer from {addr}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
