//! Containers: networking modes, exit codes, health, stopping and signals, labels, limits, logs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use berth_runtime::{
    ContainerStatus, HealthCheck, HealthStatus, LabelFilter, LogOptions, NetworkMode, NetworkSpec, OutputStream,
    PortMapping, PortProtocol, Resources, RuntimeError, Ulimit,
};

use crate::support::{docker_ok, http_get, Fixture, INDEX, TEST_LABEL};

const HTTPD: &[&str] = &["httpd", "-f", "-p", "8080", "-h", "/www"];

#[tokio::test]
async fn a_web_container_on_a_user_network_answers_on_its_own_address() {
    let f = Fixture::new("web").await;
    let net =
        f.rt.ensure_network(&NetworkSpec { name: f.name("net"), labels: f.labels(), subnet: None })
            .await
            .expect("ensure network");
    let mut spec = f.spec("web", HTTPD);
    spec.network = NetworkMode::Network { name: net.name.clone(), ipv4: None, aliases: vec!["web".to_string()] };
    spec.env = vec![("GREETING".to_string(), "hi".to_string())];
    spec.hostname = Some("webhost".to_string());
    let id = f.run(&spec).await;

    let info = f.wait_until(&id, Duration::from_secs(10), "running", |i| i.status == ContainerStatus::Running).await;
    assert_eq!(info.name, spec.name);
    assert_eq!(info.image, f.image);
    assert!(info.image_id.starts_with("sha256:"), "{}", info.image_id);
    assert_eq!(info.labels.get(TEST_LABEL), Some(&f.id));
    assert_eq!(info.exit_code, None);
    assert!(info.started_at.is_some() && info.finished_at.is_none(), "{info:?}");
    assert_eq!(info.health, HealthStatus::None);
    assert_eq!(info.networks.len(), 1, "{info:?}");
    let attachment = &info.networks[&net.name];
    assert_eq!(attachment.network_id, net.id);
    assert_eq!(attachment.gateway, net.gateway);
    let ip = attachment.ipv4.expect("an address on the network");

    let response = http_get(&format!("{ip}:8080")).await;
    assert!(response.starts_with("HTTP/1.0 200 OK") || response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(INDEX), "{response}");

    // The containers of one task share its address: a second container in the first one's
    // network namespace reaches the web server on localhost.
    let mut sidecar = f.spec("sidecar", &["sh", "-c", "wget -q -O - http://127.0.0.1:8080/ && hostname"]);
    sidecar.network = NetworkMode::Container(id.clone());
    let side = f.run(&sidecar).await;
    let done = f.wait_exited(&side, Duration::from_secs(15)).await;
    let out = f.logs(&side).await.into_iter().map(|l| l.message).collect::<Vec<_>>();
    assert_eq!(done.exit_code, Some(0), "{out:?}");
    assert_eq!(out, vec![INDEX.trim_end().to_string(), "webhost".to_string()]);

    // A hostname in another container's namespace is refused before Docker sees it.
    let mut bad = f.spec("bad", &["true"]);
    bad.network = NetworkMode::Container(id.clone());
    bad.hostname = Some("x".to_string());
    assert!(matches!(f.rt.create_container(&bad).await, Err(RuntimeError::InvalidSpec { .. })));

    f.rt.stop_container(&id, Duration::from_secs(5)).await.expect("stop");
    f.rt.remove_container(&id).await.expect("remove");
    f.rt.remove_container(&side).await.expect("remove");
    assert!(matches!(f.rt.inspect_container(&id).await, Err(RuntimeError::ContainerNotFound { .. })));
    // Removing again is not an error: a controller may repeat itself.
    f.rt.remove_container(&id).await.expect("remove again");
    f.rt.remove_network(&net.name).await.expect("remove network");
}

#[tokio::test]
async fn bridge_mode_publishes_an_ephemeral_host_port() {
    let f = Fixture::new("bridge").await;
    let mut spec = f.spec("web", HTTPD);
    spec.network = NetworkMode::Bridge {
        ports: vec![PortMapping { container_port: 8080, host_port: None, protocol: PortProtocol::Tcp }],
    };
    let id = f.run(&spec).await;
    let info = f.wait_until(&id, Duration::from_secs(10), "running", |i| i.status == ContainerStatus::Running).await;
    let published = info
        .ports
        .iter()
        .find(|p| p.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .unwrap_or_else(|| panic!("no port published on 0.0.0.0: {:?}", info.ports));
    assert_eq!((published.container_port, published.protocol), (8080, PortProtocol::Tcp));
    assert!(published.host_port > 0);
    assert!(info.networks.contains_key("bridge"), "{:?}", info.networks);

    let response = http_get(&format!("127.0.0.1:{}", published.host_port)).await;
    assert!(response.contains(" 200 OK"), "{response}");
    assert!(response.ends_with(INDEX), "{response}");
}

#[tokio::test]
async fn an_exit_code_is_reported_once_the_container_has_exited() {
    let f = Fixture::new("exit").await;
    let id = f.run(&f.spec("three", &["sh", "-c", "echo bye; exit 3"])).await;
    let info = f.wait_exited(&id, Duration::from_secs(15)).await;
    assert_eq!(info.status, ContainerStatus::Exited);
    assert_eq!(info.exit_code, Some(3));
    assert!(!info.oom_killed);
    let (started, finished) = (info.started_at.expect("started"), info.finished_at.expect("finished"));
    // (Docker may record the end a hair before the start of a process this quick.)
    let apart = finished.duration_since(started).or_else(|e| Ok::<_, ()>(e.duration())).unwrap();
    assert!(apart < Duration::from_secs(10), "{info:?}");

    // A command that is not there: the start fails with Docker's reason.
    let missing = f.rt.create_container(&f.spec("missing", &["/no/such/binary"])).await.expect("create");
    match f.rt.start_container(&missing).await {
        Err(RuntimeError::Refused { message, .. }) => assert!(message.contains("/no/such/binary"), "{message}"),
        other => panic!("start of a missing binary: {other:?}"),
    }
    let info = f.rt.inspect_container(&missing).await.expect("inspect");
    assert!(info.error.as_deref().is_some_and(|e| e.contains("/no/such/binary")), "{info:?}");

    // Names are unique: a second container of the same name is refused.
    assert!(matches!(
        f.rt.create_container(&f.spec("three", &["true"])).await,
        Err(RuntimeError::NameInUse { name }) if name == f.name("three")
    ));
    // An image that is not there.
    let mut spec = f.spec("noimage", &["true"]);
    spec.image = format!("{}-absent", f.image);
    assert!(matches!(f.rt.create_container(&spec).await, Err(RuntimeError::ImageNotFound { .. })));
}

#[tokio::test]
async fn health_checks_make_containers_healthy_or_unhealthy() {
    let f = Fixture::new("health").await;
    let check = |test: &[&str]| HealthCheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
        retries: 2,
        start_period: Duration::ZERO,
    };
    let mut good = f.spec("good", &["sleep", "1000"]);
    good.healthcheck = Some(check(&["CMD", "/bin/true"]));
    let mut bad = f.spec("bad", &["sleep", "1000"]);
    bad.healthcheck = Some(check(&["CMD-SHELL", "test -e /ready || exit 1"]));
    let (good, bad) = (f.run(&good).await, f.run(&bad).await);

    let starting = f.rt.inspect_container(&bad).await.expect("inspect");
    assert!(matches!(starting.health, HealthStatus::Starting | HealthStatus::Unhealthy), "{starting:?}");
    let info = f.wait_until(&good, Duration::from_secs(20), "healthy", |i| i.health != HealthStatus::Starting).await;
    assert_eq!(info.health, HealthStatus::Healthy);
    let info = f.wait_until(&bad, Duration::from_secs(20), "unhealthy", |i| i.health != HealthStatus::Starting).await;
    assert_eq!(info.health, HealthStatus::Unhealthy);
    assert_eq!(info.status, ContainerStatus::Running, "unhealthy is not stopped");

    // A malformed test is refused before Docker sees it.
    let mut malformed = f.spec("malformed", &["true"]);
    malformed.healthcheck = Some(check(&["curl", "-f", "http://localhost/"]));
    assert!(matches!(f.rt.create_container(&malformed).await, Err(RuntimeError::InvalidSpec { .. })));
}

#[tokio::test]
async fn stop_sends_the_stop_signal_then_sigkill_after_the_timeout() {
    let f = Fixture::new("stop").await;
    let stubborn = f.run(&f.spec("stubborn", &["sh", "-c", "trap '' TERM; sleep 1000"])).await;
    let polite = f.run(&f.spec("polite", &["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 1; done"])).await;
    let mut custom = f.spec("custom", &["sh", "-c", "trap 'exit 43' USR1; while true; do sleep 1; done"]);
    custom.stop_signal = Some("SIGUSR1".to_string());
    let custom = f.run(&custom).await;
    let signalled =
        f.run(&f.spec("signalled", &["sh", "-c", "trap 'exit 10' USR2; while true; do sleep 1; done"])).await;
    for id in [&stubborn, &polite, &custom, &signalled] {
        f.wait_until(id, Duration::from_secs(10), "running", |i| i.status == ContainerStatus::Running).await;
    }
    // Let the shells install their traps.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rt = &f.rt;
    let timed = |id: String, timeout: Duration| async move {
        let start = Instant::now();
        rt.stop_container(&id, timeout).await.expect("stop");
        start.elapsed()
    };
    let (stubborn_took, polite_took, custom_took) = tokio::join!(
        timed(stubborn.clone(), Duration::from_secs(2)),
        timed(polite.clone(), Duration::from_secs(20)),
        timed(custom.clone(), Duration::from_secs(20)),
    );

    // SIGTERM ignored: SIGKILL after the 2 s timeout.
    let info = f.rt.inspect_container(&stubborn).await.expect("inspect");
    assert_eq!(info.exit_code, Some(137), "{info:?}");
    assert!(
        stubborn_took >= Duration::from_millis(1900) && stubborn_took < Duration::from_secs(8),
        "{stubborn_took:?}"
    );
    // SIGTERM honoured: the trap's exit code, well before the timeout.
    let info = f.rt.inspect_container(&polite).await.expect("inspect");
    assert_eq!(info.exit_code, Some(42), "{info:?}");
    assert!(polite_took < Duration::from_secs(6), "{polite_took:?}");
    // The container's own stop signal.
    let info = f.rt.inspect_container(&custom).await.expect("inspect");
    assert_eq!(info.exit_code, Some(43), "{info:?}");
    assert!(custom_took < Duration::from_secs(6), "{custom_took:?}");
    // Stopping a stopped container is not an error.
    f.rt.stop_container(&polite, Duration::from_secs(1)).await.expect("stop again");

    // kill with a named signal.
    f.rt.kill_container(&signalled, "SIGUSR2").await.expect("kill");
    let info = f.wait_exited(&signalled, Duration::from_secs(10)).await;
    assert_eq!(info.exit_code, Some(10), "{info:?}");
    assert!(matches!(f.rt.kill_container(&signalled, "SIGKILL").await, Err(RuntimeError::NotRunning { .. })));
    assert!(matches!(
        f.rt.stop_container(&format!("{}-absent", f.id), Duration::from_secs(1)).await,
        Err(RuntimeError::ContainerNotFound { .. })
    ));
}

#[tokio::test]
async fn containers_are_listed_by_label_running_or_not() {
    let f = Fixture::new("list").await;
    let group = format!("{TEST_LABEL}.group");
    let mut ids = Vec::new();
    for (what, value, start) in [("a1", "a", true), ("a2", "a", false), ("b1", "b", true)] {
        let mut spec = f.spec(what, &["sleep", "1000"]);
        spec.labels.insert(group.clone(), value.to_string());
        spec.labels.insert("berth.container-name".to_string(), what.to_string());
        let id = f.rt.create_container(&spec).await.expect("create");
        if start {
            f.rt.start_container(&id).await.expect("start");
        }
        ids.push(id);
    }
    // Another test's containers (and anyone else's) are not in it: the test's own label is too.
    let mine = LabelFilter::equals(TEST_LABEL, f.id.clone());

    let a = f.rt.list_containers(&[mine.clone(), LabelFilter::equals(&group, "a")]).await.expect("list");
    let mut found = a.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    found.sort();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(found, want);
    let a2 = a.iter().find(|c| c.id == ids[1]).unwrap();
    assert_eq!(a2.status, ContainerStatus::Created);
    assert_eq!(a2.name, f.name("a2"));
    assert_eq!(a2.image, f.image);
    assert_eq!(a2.labels.get("berth.container-name").map(String::as_str), Some("a2"));
    assert_eq!(a2.labels.get(&group).map(String::as_str), Some("a"));
    assert_eq!(a.iter().find(|c| c.id == ids[0]).unwrap().status, ContainerStatus::Running);

    let all = f.rt.list_containers(&[mine.clone(), LabelFilter::has(&group)]).await.expect("list");
    assert_eq!(all.len(), 3);
    let none = f.rt.list_containers(&[mine, LabelFilter::equals(&group, "c")]).await.expect("list");
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn limits_are_applied_and_output_comes_back() {
    let f = Fixture::new("limits").await;
    // cgroup v2 names the limit memory.max, v1 memory/memory.limit_in_bytes.
    let script = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
                  ulimit -n; echo to-stderr >&2; touch /rootfs-write 2>&1 | grep -o Read-only; \
                  grep -c berth-extra /etc/hosts; pwd; id -u; echo \"$GREETING\"";
    let mut spec = f.spec("limited", &["sh", "-c", script]);
    spec.resources = Resources {
        cpu_shares: Some(512),
        nano_cpus: Some(500_000_000),
        memory_bytes: Some(64 * 1024 * 1024),
        memory_reservation_bytes: Some(32 * 1024 * 1024),
    };
    spec.ulimits = vec![Ulimit { name: "nofile".to_string(), soft: 1000, hard: 2000 }];
    spec.readonly_root_filesystem = true;
    spec.extra_hosts = vec![("berth-extra".to_string(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))];
    spec.working_dir = Some("/www".to_string());
    spec.user = Some("1234".to_string());
    spec.env = vec![("GREETING".to_string(), "first".to_string()), ("GREETING".to_string(), "hello env".to_string())];
    let id = f.run(&spec).await;
    let info = f.wait_exited(&id, Duration::from_secs(15)).await;
    assert_eq!(info.exit_code, Some(0), "{info:?}");
    assert_eq!(info.resources, spec.resources);
    // The engine's own view, through the CLI.
    let host_config = docker_ok(
        &["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuShares}}", &id],
        &[],
        None,
    );
    assert_eq!(host_config.trim(), "67108864 33554432 512");

    let lines = f.logs(&id).await;
    let stdout =
        lines.iter().filter(|l| l.stream == OutputStream::Stdout).map(|l| l.message.as_str()).collect::<Vec<_>>();
    let stderr =
        lines.iter().filter(|l| l.stream == OutputStream::Stderr).map(|l| l.message.as_str()).collect::<Vec<_>>();
    // The kernel applies the limit: the cgroup says 64 MiB.
    assert_eq!(stdout, vec!["67108864", "1000", "Read-only", "1", "/www", "1234", "hello env"], "{lines:?}");
    assert_eq!(stderr, vec!["to-stderr"]);
    assert!(lines.iter().all(|l| l.timestamp.is_some()), "{lines:?}");

    // The last line only.
    let mut rx = f.rt.container_logs(&id, &LogOptions { tail: Some(1), stderr: false, ..Default::default() });
    assert_eq!(rx.recv().await.expect("a line").expect("no error").message, "hello env");
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn logs_follow_a_running_container_until_it_stops_and_stats_sample_it() {
    let f = Fixture::new("follow").await;
    // Long enough (4 s) to be sampled while it runs.
    let mut spec = f.spec("ticker", &["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done"]);
    spec.resources.memory_bytes = Some(128 * 1024 * 1024);
    let id = f.run(&spec).await;
    let stats = f.rt.container_stats(&id).await.expect("stats");
    assert_eq!(stats.memory_limit_bytes, 128 * 1024 * 1024, "{stats:?}");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert!(stats.cpu_total_ns > 0 && stats.system_cpu_ns > 0 && stats.online_cpus > 0, "{stats:?}");
    assert!(stats.cpu_percent() >= 0.0);
    assert!(stats.raw["memory_stats"]["limit"].as_u64() == Some(128 * 1024 * 1024), "{}", stats.raw);

    let mut rx = f.rt.container_logs(&id, &LogOptions { follow: true, ..Default::default() });
    let mut got = Vec::new();
    let read = async {
        while let Some(line) = rx.recv().await {
            got.push(line.expect("a line").message);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read).await.expect("the stream ends when the container stops");
    assert_eq!(got, (1..=8).map(|i| format!("tick {i}")).collect::<Vec<_>>());

    let mut rx = f.rt.container_logs(&format!("{}-absent", f.id), &LogOptions::default());
    assert!(matches!(rx.recv().await, Some(Err(RuntimeError::ContainerNotFound { .. }))));
    assert!(matches!(
        f.rt.container_stats(&format!("{}-absent", f.id)).await,
        Err(RuntimeError::ContainerNotFound { .. })
    ));
}
