//! The event stream: start, health status, die and destroy of labelled containers, live and replayed.

use std::time::{Duration, SystemTime};

use berth_runtime::{ContainerEvent, ContainerEventKind, EventFilter, HealthCheck, HealthStatus, LabelFilter};
use tokio::sync::mpsc;

use crate::support::{Fixture, TEST_LABEL};

/// Receives events until one satisfies `last` (at most 30 s).
async fn until(
    rx: &mut mpsc::Receiver<Result<ContainerEvent, berth_runtime::RuntimeError>>,
    last: impl Fn(&ContainerEvent) -> bool,
) -> Vec<ContainerEvent> {
    let mut seen = Vec::new();
    let read = async {
        while let Some(event) = rx.recv().await {
            let event = event.expect("an event");
            let done = last(&event);
            seen.push(event);
            if done {
                return;
            }
        }
        panic!("the event stream ended");
    };
    if tokio::time::timeout(Duration::from_secs(30), read).await.is_err() {
        panic!("the awaited event did not come; seen: {seen:#?}");
    }
    seen
}

#[tokio::test]
async fn events_report_start_health_and_die_of_the_labelled_containers_only() {
    let f = Fixture::new("events").await;
    let before = SystemTime::now();
    let filter = EventFilter {
        labels: vec![LabelFilter::equals(TEST_LABEL, f.id.clone()), LabelFilter::equals("berth.events", "watched")],
        since: None,
    };
    let mut rx = f.rt.events(&filter);

    let mut watched = f.spec("watched", &["sh", "-c", "sleep 3; exit 5"]);
    watched.labels.insert("berth.events".to_string(), "watched".to_string());
    watched.healthcheck = Some(HealthCheck {
        test: vec!["CMD".to_string(), "true".to_string()],
        interval: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
        retries: 1,
        start_period: Duration::ZERO,
    });
    // Same test, not watched: its events must not arrive.
    let other = f.run(&f.spec("other", &["sh", "-c", "exit 0"])).await;
    let id = f.run(&watched).await;

    let seen = until(&mut rx, |e| matches!(e.kind, ContainerEventKind::Die { .. })).await;
    assert!(seen.iter().all(|e| e.id == id), "events of other containers: {seen:#?}");
    let kinds = seen.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();
    assert_eq!(kinds.first(), Some(&ContainerEventKind::Start), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&ContainerEventKind::Die { exit_code: Some(5) }), "{kinds:?}");
    assert!(kinds.contains(&ContainerEventKind::HealthStatus(HealthStatus::Healthy)), "{kinds:?}");
    let die = seen.last().unwrap();
    assert_eq!(die.attributes.get("name"), Some(&f.name("watched")));
    assert_eq!(die.attributes.get("berth.events").map(String::as_str), Some("watched"));
    assert!(die.time >= seen[0].time && seen[0].time >= before - Duration::from_secs(1), "{seen:#?}");

    f.rt.remove_container(&id).await.expect("remove");
    let seen = until(&mut rx, |e| e.kind == ContainerEventKind::Destroy).await;
    assert!(seen.iter().all(|e| e.id == id), "{seen:#?}");
    f.rt.remove_container(&other).await.expect("remove");

    // A late subscriber replays from `since` (a controller catching up after a restart).
    let mut replay = f.rt.events(&EventFilter { since: Some(before), ..filter });
    let seen = until(&mut replay, |e| e.kind == ContainerEventKind::Destroy).await;
    let kinds = seen.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();
    assert_eq!(kinds.first(), Some(&ContainerEventKind::Start), "{kinds:?}");
    assert!(kinds.contains(&ContainerEventKind::Die { exit_code: Some(5) }), "{kinds:?}");
}
