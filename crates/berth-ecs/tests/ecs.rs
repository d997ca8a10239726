//! berth-ecs over a real store: the tables and queries the task controller builds on (the API
//! itself is tested through the whole server in `berth-server/tests/server/ecs.rs`).

use berth_aws::AwsContext;
use berth_ecs::task_definition::{self as td, TaskDefinition};
use berth_ecs::tasks::{self, TaskRow};
use berth_ecs::{EcsError, Tag};
use berth_store::Store;
use serde_json::json;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.migrate("ecs", berth_ecs::schema::MIGRATIONS).unwrap();
    (dir, store)
}

fn row(id: &str, cluster: &str, td_arn: &str, last_status: &str, launch_type: &str) -> TaskRow {
    TaskRow {
        task_arn: format!("arn:aws:ecs:us-east-1:000000000000:task/{cluster}/{id}"),
        task_id: id.into(),
        cluster: cluster.into(),
        task_definition_arn: td_arn.into(),
        family: "web".into(),
        revision: 1,
        last_status: last_status.into(),
        desired_status: "RUNNING".into(),
        launch_type: launch_type.into(),
        started_by: Some("ci".into()),
        group: Some("family:web".into()),
        created_at: 1_700_000_000_123,
        started_at: Some(1_700_000_001_000),
        stopping_at: None,
        stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        health_status: "HEALTHY".into(),
        overrides: json!({ "containerOverrides": [{ "name": "web", "command": ["serve"] }] }),
        tags: vec![Tag { key: "k".into(), value: "v".into() }],
        containers: json!([{ "name": "web", "lastStatus": "RUNNING" }]),
        attachments: json!([]),
        runtime: json!({ "containers": { "web": "abc123" } }),
        version: 1,
    }
}

#[tokio::test]
async fn task_rows_round_trip_and_are_counted_by_cluster_launch_type_and_status() {
    let (_dir, store) = store();
    let td_arn = "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1";
    let rows = vec![
        row("a", "prod", td_arn, "RUNNING", "EC2"),
        row("b", "prod", td_arn, "RUNNING", "FARGATE"),
        row("c", "prod", td_arn, "PENDING", "FARGATE"),
        row("d", "prod", td_arn, "STOPPING", "EC2"),
        row("e", "prod", td_arn, "STOPPED", "EC2"),
        row("f", "dev", td_arn, "RUNNING", "EC2"),
    ];
    let written = rows.clone();
    store
        .write(move |tx| {
            for r in &written {
                r.insert(tx)?;
            }
            Ok::<_, EcsError>(())
        })
        .await
        .unwrap();
    let (back, counts, dev) = store
        .read(|conn| {
            let back = tasks::get(conn, "arn:aws:ecs:us-east-1:000000000000:task/prod/a")?;
            Ok::<_, EcsError>((back, tasks::count_by_status(conn, "prod")?, tasks::count_by_status(conn, "dev")?))
        })
        .await
        .unwrap();
    assert_eq!(back.as_ref(), Some(&rows[0]));
    assert_eq!(counts.running(), 2);
    assert_eq!(counts.pending(), 1);
    assert_eq!(counts.running_with("FARGATE"), 1);
    assert_eq!(counts.pending_with("EC2"), 0);
    assert_eq!(counts.not_stopped(), 4);
    assert_eq!(dev.running(), 1);
    let none = store.read(|conn| tasks::count_by_status(conn, "nothing")).await.unwrap();
    assert_eq!(none, tasks::TaskCounts::default());
    // A task id is unique.
    let dup = row("a", "other", td_arn, "RUNNING", "EC2");
    let err = store.write(move |tx| dup.insert(tx)).await.unwrap_err();
    assert!(matches!(err, EcsError::Store(_)), "{err:?}");
}

#[tokio::test]
async fn deleted_revisions_stay_until_no_unstopped_task_uses_them() {
    let (_dir, store) = store();
    let aws = AwsContext::default();
    let input = serde_json::from_value(json!({
        "family": "web",
        "containerDefinitions": [{ "name": "web", "image": "x", "memory": 64 }],
    }))
    .unwrap();
    let (family, spec, _) = td::validate(input, &aws).unwrap();
    let arns = store
        .write(move |tx| {
            let mut arns = Vec::new();
            for _ in 0..2 {
                let revision = td::next_revision(tx, &family)?;
                let def = TaskDefinition {
                    arn: td::arn(&aws, &family, revision),
                    family: family.clone(),
                    revision,
                    status: td::DELETE_IN_PROGRESS.into(),
                    registered_at: 0,
                    registered_by: "arn:aws:iam::000000000000:root".into(),
                    deregistered_at: Some(1),
                    delete_requested_at: Some(2),
                    spec: spec.clone(),
                };
                td::insert(tx, &def)?;
                arns.push(def.arn);
            }
            row("t", "prod", &arns[1], "RUNNING", "EC2").insert(tx)?;
            Ok::<_, EcsError>(arns)
        })
        .await
        .unwrap();
    let purged = store.write(|tx| td::purge_deleted(tx)).await.unwrap();
    assert_eq!(purged, 1);
    let (first, second, in_use) = store
        .read({
            let arn = arns[1].clone();
            move |conn| {
                Ok::<_, EcsError>((
                    td::get(conn, "web", 1)?,
                    td::get(conn, "web", 2)?,
                    tasks::task_definition_in_use(conn, &arn)?,
                ))
            }
        })
        .await
        .unwrap();
    assert!(first.is_none());
    let second = second.unwrap();
    assert_eq!(second.spec.container_definitions[0].memory, Some(64));
    assert!(in_use);
    store
        .write(|tx| {
            tx.execute("UPDATE ecs_tasks SET last_status = 'STOPPED'", [])?;
            td::purge_deleted(tx)
        })
        .await
        .unwrap();
    assert!(store.read(|conn| td::get(conn, "web", 2)).await.unwrap().is_none());
    // The family keeps counting.
    assert_eq!(store.write(|tx| td::next_revision(tx, "web")).await.unwrap(), 3);
}
