//! User-defined networks: idempotent, race-free creation, fixed addresses, the host-side bridge,
//! removal; and what connecting to no daemon says.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_runtime::{ContainerStatus, DockerRuntime, NetworkInfo, NetworkMode, NetworkSpec, Runtime, RuntimeError};

use crate::support::{docker_ok, http_get, Fixture, INDEX, TEST_LABEL};

/// Creates a network with a /24 of its own: candidates are tried until one does not overlap
/// another network's (other tests run at the same time).
async fn network_with_subnet(f: &Fixture, name: &str) -> (NetworkInfo, [u8; 3]) {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() ^ std::process::id();
    for attempt in 0..64u32 {
        let n = seed.wrapping_add(attempt.wrapping_mul(2_654_435_761));
        let prefix = [172, 20 + (n % 12) as u8, (n >> 8) as u8];
        let subnet = format!("{}.{}.{}.0/24", prefix[0], prefix[1], prefix[2]);
        let spec = NetworkSpec { name: name.to_string(), labels: f.labels(), subnet: Some(subnet) };
        match f.rt.ensure_network(&spec).await {
            Ok(info) => return (info, prefix),
            Err(RuntimeError::Refused { message, .. }) if message.contains("overlaps") => continue,
            Err(e) => panic!("create network {name}: {e}"),
        }
    }
    panic!("no free /24 found for {name}");
}

#[tokio::test]
async fn a_network_is_ensured_once_and_gives_a_fixed_address() {
    let f = Fixture::new("fixed").await;
    let name = f.name("net");
    let (net, prefix) = network_with_subnet(&f, &name).await;
    let subnet = format!("{}.{}.{}.0/24", prefix[0], prefix[1], prefix[2]);
    assert_eq!(net.name, name);
    assert_eq!(net.subnet.as_deref(), Some(subnet.as_str()));
    assert_eq!(net.gateway, Some(Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 1)));
    assert_eq!(net.bridge_interface, format!("br-{}", &net.id[..12]));
    assert_eq!(net.labels.get(TEST_LABEL), Some(&f.id));
    // The host side of the network: the bridge interface exists, with the gateway's address.
    assert!(Path::new("/sys/class/net").join(&net.bridge_interface).exists(), "{net:?}");

    // Ensured again: the same network.
    let spec = NetworkSpec { name: name.clone(), labels: f.labels(), subnet: Some(subnet.clone()) };
    assert_eq!(f.rt.ensure_network(&spec).await.expect("ensure again").id, net.id);
    let without_subnet = NetworkSpec { subnet: None, ..spec.clone() };
    assert_eq!(f.rt.ensure_network(&without_subnet).await.expect("ensure without a subnet").id, net.id);
    let other_subnet = NetworkSpec { subnet: Some("172.19.255.0/24".to_string()), ..spec.clone() };
    assert!(matches!(f.rt.ensure_network(&other_subnet).await, Err(RuntimeError::NetworkConflict { .. })));

    // A container at a fixed address answers there.
    let ip = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], 77);
    let mut web = f.spec("web", &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    web.network = NetworkMode::Network { name: name.clone(), ipv4: Some(ip), aliases: vec![] };
    let id = f.run(&web).await;
    let info = f.wait_until(&id, Duration::from_secs(10), "running", |i| i.status == ContainerStatus::Running).await;
    assert_eq!(info.networks[&name].ipv4, Some(ip));
    assert!(http_get(&format!("{ip}:8080")).await.ends_with(INDEX));

    // Not removable while a container is attached; then removable, twice.
    assert!(matches!(f.rt.remove_network(&name).await, Err(RuntimeError::NetworkInUse { .. })));
    f.rt.remove_container(&id).await.expect("remove container");
    f.rt.remove_network(&name).await.expect("remove network");
    f.rt.remove_network(&name).await.expect("remove a removed network");
    assert!(!Path::new("/sys/class/net").join(&net.bridge_interface).exists());

    // A container on a network that is not there.
    let mut lost = f.spec("lost", &["true"]);
    lost.network = NetworkMode::Network { name: name.clone(), ipv4: None, aliases: vec![] };
    // (Docker 20.10 creates it and refuses to start it; later engines refuse to create it.)
    let outcome = match f.rt.create_container(&lost).await {
        Ok(id) => f.rt.start_container(&id).await,
        Err(e) => Err(e),
    };
    assert!(matches!(&outcome, Err(RuntimeError::NetworkNotFound { name: n }) if *n == name), "{outcome:?}");
}

#[tokio::test]
async fn two_runtimes_racing_to_ensure_a_network_end_with_one() {
    let f = Fixture::new("race").await;
    // Two connections, as two processes would have: they do not share the driver's lock.
    let other = DockerRuntime::connect().await.expect("a second connection");
    for round in 0..3 {
        let spec = NetworkSpec { name: f.name(&format!("net{round}")), labels: f.labels(), subnet: None };
        let (a, b) = tokio::join!(f.rt.ensure_network(&spec), other.ensure_network(&spec));
        let (a, b) = (a.expect("ensure"), b.expect("ensure"));
        assert_eq!(a.id, b.id, "round {round}");
        let listed =
            docker_ok(&["network", "ls", "-q", "--no-trunc", "--filter", &format!("name={}", spec.name)], &[], None);
        let ids = listed.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>();
        assert_eq!(ids, vec![a.id.as_str()], "round {round}: one network of that name");
    }
}

#[tokio::test]
async fn connecting_where_no_daemon_listens_says_so() {
    for host in ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"] {
        match DockerRuntime::connect_to(host).await {
            Err(e @ RuntimeError::Unavailable { .. }) => {
                assert!(e.is_unavailable());
                let message = e.to_string();
                assert!(message.contains("no Docker daemon answers") && message.contains(host), "{message}");
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    // And with one, the version is negotiated down to the daemon's.
    let rt = DockerRuntime::connect().await.expect("these tests need a running Docker Engine");
    let daemon = docker_ok(&["version", "--format", "{{.Server.APIVersion}}"], &[], None);
    assert_eq!(rt.api_version(), daemon.trim());
}
