//! The ECS API (clusters, task definitions, tags) through the whole server: real signed awsJson
//! requests, a real SQLite file. Tasks do not exist yet at this stage, so the tests that need some
//! (cluster counts, `ClusterContainsTasksException`, revisions kept while a task uses them) write
//! rows into `ecs_tasks` with `berth_ecs::tasks::TaskRow`, as `RunTask` will.

use berth_ecs::tasks::TaskRow;
use berth_server::client::{ApiClient, ApiResponse};
use berth_server::testing::TestServer;
use berth_store::rusqlite::Connection;
use serde_json::{json, Value};

const TARGET: &str = "AmazonEC2ContainerServiceV20141113";
const ARN_PREFIX: &str = "arn:aws:ecs:us-east-1:000000000000";
const ROOT_ARN: &str = "arn:aws:iam::000000000000:root";

async fn ecs(c: &ApiClient, op: &str, body: Value) -> ApiResponse {
    c.json("ecs", &format!("{TARGET}.{op}"), &body).await.expect("request")
}

fn ok(r: ApiResponse) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("a JSON body")
}

/// Asserts an error answer with `code`; returns its message.
fn err(r: ApiResponse, code: &str) -> String {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.text()));
    assert_eq!(body["__type"], code, "{body}");
    assert_eq!(r.status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{body}");
    message
}

/// A connection to the server's database, to write the task rows `RunTask` will write.
fn db(t: &TestServer) -> Connection {
    let conn = Connection::open(t.data_dir().join("state.db")).expect("open state.db");
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    conn
}

fn task(cluster: &str, id: &str, task_definition_arn: &str, last_status: &str, launch_type: &str) -> TaskRow {
    let (family, revision) = task_definition_arn.rsplit_once('/').unwrap().1.rsplit_once(':').unwrap();
    TaskRow {
        task_arn: format!("{ARN_PREFIX}:task/{cluster}/{id}"),
        task_id: id.into(),
        cluster: cluster.into(),
        task_definition_arn: task_definition_arn.into(),
        family: family.into(),
        revision: revision.parse().unwrap(),
        last_status: last_status.into(),
        desired_status: "RUNNING".into(),
        launch_type: launch_type.into(),
        started_by: None,
        group: Some(format!("family:{family}")),
        created_at: 1_700_000_000_000,
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        stop_code: None,
        stopped_reason: None,
        health_status: "UNKNOWN".into(),
        overrides: json!({}),
        tags: Vec::new(),
        containers: json!([]),
        attachments: json!([]),
        runtime: json!({}),
        version: 1,
    }
}

fn web_definition(family: &str) -> Value {
    json!({
        "family": family,
        "containerDefinitions": [{ "name": "web", "image": "localhost:4566/web:1", "memory": 128,
                                   "portMappings": [{ "containerPort": 8080 }] }],
    })
}

async fn register(c: &ApiClient, body: Value) -> Value {
    ok(ecs(c, "RegisterTaskDefinition", body).await)["taskDefinition"].clone()
}

/// An IAM user with `policy` inline; a client signed with its key.
async fn user(t: &TestServer, name: &str, policy: &str) -> ApiClient {
    t.user_client(name, Some(policy)).await
}

#[tokio::test]
async fn ecs_clusters_are_created_described_listed_updated_and_deleted() {
    let t = TestServer::start().await;
    let c = &t.client;

    // Without a name: the cluster named default, with ECS's shape.
    let default = ok(ecs(c, "CreateCluster", json!({})).await)["cluster"].clone();
    assert_eq!(default["clusterName"], "default");
    assert_eq!(default["clusterArn"], format!("{ARN_PREFIX}:cluster/default"));
    assert_eq!(default["status"], "ACTIVE");
    for count in ["registeredContainerInstancesCount", "runningTasksCount", "pendingTasksCount", "activeServicesCount"]
    {
        assert_eq!(default[count], 0, "{count}");
    }
    assert_eq!(default["settings"], json!([{ "name": "containerInsights", "value": "disabled" }]));
    assert_eq!(default["tags"], json!([]));
    assert_eq!(default["capacityProviders"], json!([]));

    let prod = ok(ecs(
        c,
        "CreateCluster",
        json!({
            "clusterName": "prod",
            "tags": [{ "key": "team", "value": "platform" }],
            "settings": [{ "name": "containerInsights", "value": "enabled" }],
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": [{ "capacityProvider": "FARGATE", "weight": 1, "base": 1 }],
        }),
    )
    .await)["cluster"]
        .clone();
    assert_eq!(prod["tags"], json!([{ "key": "team", "value": "platform" }]));
    assert_eq!(prod["settings"], json!([{ "name": "containerInsights", "value": "enabled" }]));
    assert_eq!(prod["capacityProviders"], json!(["FARGATE", "FARGATE_SPOT"]));
    assert_eq!(
        prod["defaultCapacityProviderStrategy"],
        json!([{ "capacityProvider": "FARGATE", "weight": 1, "base": 1 }])
    );
    // Creating an ACTIVE cluster again answers with it, unchanged.
    let again = ok(ecs(c, "CreateCluster", json!({ "clusterName": "prod", "settings": [] })).await)["cluster"].clone();
    assert_eq!(again, prod);

    // What CreateCluster refuses.
    for bad in [
        json!({ "clusterName": "has space" }),
        json!({ "clusterName": "x".repeat(256) }),
        json!({ "clusterName": "c", "settings": [{ "name": "containerInsights", "value": "maybe" }] }),
        json!({ "clusterName": "c", "capacityProviders": ["my-asg-provider"] }),
        json!({ "clusterName": "c", "tags": [{ "key": "aws:owner", "value": "x" }] }),
        json!({ "clusterName": "c", "serviceConnectDefaults": { "namespace": "ns" } }),
    ] {
        err(ecs(c, "CreateCluster", bad.clone()).await, "InvalidParameterException");
    }
    ok(ecs(c, "CreateCluster", json!({ "clusterName": "staging" })).await);

    // DescribeClusters: by name or ARN, unknown ones as failures, extra members on request.
    let d = ok(ecs(
        c,
        "DescribeClusters",
        json!({ "clusters": ["prod", format!("{ARN_PREFIX}:cluster/default"), "nope", "bad name"],
                "include": ["TAGS", "SETTINGS", "STATISTICS"] }),
    )
    .await);
    let clusters = d["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2);
    assert_eq!(clusters[0]["clusterName"], "prod");
    assert_eq!(clusters[0]["tags"], json!([{ "key": "team", "value": "platform" }]));
    assert_eq!(clusters[0]["settings"][0]["value"], "enabled");
    let stats = clusters[0]["statistics"].as_array().unwrap();
    assert!(stats.iter().any(|s| s["name"] == "runningFargateTasksCount" && s["value"] == "0"), "{stats:?}");
    assert_eq!(clusters[1]["clusterName"], "default");
    assert_eq!(
        d["failures"],
        json!([{ "arn": format!("{ARN_PREFIX}:cluster/nope"), "reason": "MISSING" },
               { "arn": format!("{ARN_PREFIX}:cluster/bad name"), "reason": "MISSING" }])
    );
    // Without include: no settings, empty tags and statistics. Without clusters: default.
    let plain = ok(ecs(c, "DescribeClusters", json!({})).await);
    assert_eq!(plain["clusters"][0]["clusterName"], "default");
    assert!(plain["clusters"][0].get("settings").is_none());
    assert_eq!(plain["clusters"][0]["statistics"], json!([]));
    err(ecs(c, "DescribeClusters", json!({ "include": ["EVERYTHING"] })).await, "InvalidParameterException");

    // ListClusters pages through the ACTIVE clusters by name.
    let p1 = ok(ecs(c, "ListClusters", json!({ "maxResults": 2 })).await);
    assert_eq!(
        p1["clusterArns"],
        json!([format!("{ARN_PREFIX}:cluster/default"), format!("{ARN_PREFIX}:cluster/prod")])
    );
    let token = p1["nextToken"].as_str().unwrap().to_string();
    let p2 = ok(ecs(c, "ListClusters", json!({ "maxResults": 2, "nextToken": token })).await);
    assert_eq!(p2["clusterArns"], json!([format!("{ARN_PREFIX}:cluster/staging")]));
    assert!(p2.get("nextToken").is_none());
    err(ecs(c, "ListClusters", json!({ "nextToken": "garbage" })).await, "InvalidParameterException");
    err(ecs(c, "ListClusters", json!({ "maxResults": 0 })).await, "InvalidParameterException");
    err(ecs(c, "ListTaskDefinitions", json!({ "nextToken": token })).await, "InvalidParameterException");

    // UpdateClusterSettings.
    let updated = ok(ecs(
        c,
        "UpdateClusterSettings",
        json!({ "cluster": "prod", "settings": [{ "name": "containerInsights", "value": "enhanced" }] }),
    )
    .await);
    assert_eq!(updated["cluster"]["settings"], json!([{ "name": "containerInsights", "value": "enhanced" }]));
    assert_eq!(
        err(
            ecs(
                c,
                "UpdateClusterSettings",
                json!({ "cluster": "nope", "settings": [{ "name": "containerInsights", "value": "enabled" }] })
            )
            .await,
            "ClusterNotFoundException"
        ),
        "Cluster not found."
    );
    err(
        ecs(c, "UpdateClusterSettings", json!({ "cluster": "prod", "settings": [] })).await,
        "InvalidParameterException",
    );

    // DeleteCluster: INACTIVE, still described, no longer listed; a create makes it ACTIVE again.
    let deleted = ok(ecs(c, "DeleteCluster", json!({ "cluster": format!("{ARN_PREFIX}:cluster/staging") })).await);
    assert_eq!(deleted["cluster"]["status"], "INACTIVE");
    let d = ok(ecs(c, "DescribeClusters", json!({ "clusters": ["staging"] })).await);
    assert_eq!(d["clusters"][0]["status"], "INACTIVE");
    let listed = ok(ecs(c, "ListClusters", json!({})).await);
    assert_eq!(listed["clusterArns"].as_array().unwrap().len(), 2);
    assert_eq!(ok(ecs(c, "DeleteCluster", json!({ "cluster": "staging" })).await)["cluster"]["status"], "INACTIVE");
    err(
        ecs(
            c,
            "UpdateClusterSettings",
            json!({ "cluster": "staging", "settings": [{ "name": "containerInsights", "value": "enabled" }] }),
        )
        .await,
        "ClusterNotFoundException",
    );
    err(ecs(c, "DeleteCluster", json!({ "cluster": "nope" })).await, "ClusterNotFoundException");
    err(ecs(c, "DeleteCluster", json!({})).await, "InvalidParameterException");
    let back = ok(ecs(c, "CreateCluster", json!({ "clusterName": "staging" })).await);
    assert_eq!(back["cluster"]["status"], "ACTIVE");

    // Everything is still there after a restart.
    let t = t.restart().await;
    let d =
        ok(ecs(&t.client, "DescribeClusters", json!({ "clusters": ["prod", "staging"], "include": ["TAGS"] })).await);
    assert_eq!(d["clusters"][0]["tags"], json!([{ "key": "team", "value": "platform" }]));
    assert_eq!(d["clusters"][1]["status"], "ACTIVE");
    t.shutdown().await;
}

#[tokio::test]
async fn cluster_task_counts_come_from_the_tasks_table_and_active_tasks_keep_a_cluster() {
    let t = TestServer::start().await;
    let c = &t.client;
    ok(ecs(c, "CreateCluster", json!({ "clusterName": "busy" })).await);
    let def = register(c, web_definition("web")).await;
    let arn = def["taskDefinitionArn"].as_str().unwrap().to_string();
    {
        let conn = db(&t);
        task("busy", "t1", &arn, "RUNNING", "EC2").insert(&conn).unwrap();
        task("busy", "t2", &arn, "RUNNING", "FARGATE").insert(&conn).unwrap();
        task("busy", "t3", &arn, "PROVISIONING", "FARGATE").insert(&conn).unwrap();
        task("busy", "t4", &arn, "STOPPED", "EC2").insert(&conn).unwrap();
        task("elsewhere", "t5", &arn, "RUNNING", "EC2").insert(&conn).unwrap();
    }
    let d = ok(ecs(c, "DescribeClusters", json!({ "clusters": ["busy"], "include": ["STATISTICS"] })).await);
    let busy = &d["clusters"][0];
    assert_eq!(busy["runningTasksCount"], 2);
    assert_eq!(busy["pendingTasksCount"], 1);
    let stat = |name: &str| {
        busy["statistics"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["value"].clone()
    };
    assert_eq!(stat("runningEC2TasksCount"), "1");
    assert_eq!(stat("runningFargateTasksCount"), "1");
    assert_eq!(stat("pendingFargateTasksCount"), "1");

    assert_eq!(
        err(ecs(c, "DeleteCluster", json!({ "cluster": "busy" })).await, "ClusterContainsTasksException"),
        "The Cluster cannot be deleted while Tasks are active."
    );
    db(&t).execute("UPDATE ecs_tasks SET last_status = 'STOPPED' WHERE cluster = 'busy'", []).unwrap();
    let deleted = ok(ecs(c, "DeleteCluster", json!({ "cluster": "busy" })).await);
    assert_eq!(deleted["cluster"]["status"], "INACTIVE");
    assert_eq!(deleted["cluster"]["runningTasksCount"], 0);
    t.shutdown().await;
}

#[tokio::test]
async fn task_definitions_are_registered_in_revisions_and_normalized_as_ecs_returns_them() {
    let t = TestServer::start().await;
    let c = &t.client;
    let first = ok(ecs(
        c,
        "RegisterTaskDefinition",
        json!({
            "family": "web",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "0.25 vCPU",
            "memory": "0.5GB",
            "taskRoleArn": "app-task",
            "executionRoleArn": "arn:aws:iam::000000000000:role/ecsTaskExecutionRole",
            "tags": [{ "key": "app", "value": "web" }],
            "containerDefinitions": [
                {
                    "name": "web",
                    "image": "localhost:4566/web:1",
                    "portMappings": [{ "containerPort": 8080, "name": "http", "appProtocol": "http" }],
                    "environment": [{ "name": "MODE", "value": "prod" }],
                    "secrets": [{ "name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:000000000000:secret:db" }],
                    "command": ["/bin/busybox", "httpd", "-f"],
                    "dependsOn": [{ "containerName": "init", "condition": "SUCCESS" }],
                    "healthCheck": { "command": ["CMD-SHELL", "wget -q -O- localhost:8080"], "startPeriod": 10 },
                    "logConfiguration": { "logDriver": "awslogs",
                                          "options": { "awslogs-group": "/ecs/web", "awslogs-region": "us-east-1" } },
                    "ulimits": [{ "name": "nofile", "softLimit": 1024, "hardLimit": 4096 }],
                    "stopTimeout": 10,
                    "readonlyRootFilesystem": true,
                    "user": "1000",
                    "workingDirectory": "/srv",
                },
                { "name": "init", "image": "localhost:4566/init:1", "essential": false, "entryPoint": ["/bin/busybox"] },
            ],
        }),
    )
    .await);
    let td = &first["taskDefinition"];
    assert_eq!(td["taskDefinitionArn"], format!("{ARN_PREFIX}:task-definition/web:1"));
    assert_eq!(td["family"], "web");
    assert_eq!(td["revision"], 1);
    assert_eq!(td["status"], "ACTIVE");
    assert_eq!(td["cpu"], "256");
    assert_eq!(td["memory"], "512");
    assert_eq!(td["networkMode"], "awsvpc");
    assert_eq!(td["requiresCompatibilities"], json!(["FARGATE"]));
    assert_eq!(td["compatibilities"], json!(["EC2", "FARGATE"]));
    assert_eq!(td["taskRoleArn"], "arn:aws:iam::000000000000:role/app-task");
    assert_eq!(td["registeredBy"], ROOT_ARN);
    assert!(td["registeredAt"].as_f64().unwrap() > 1.6e9);
    assert_eq!(td["volumes"], json!([]));
    assert_eq!(td["placementConstraints"], json!([]));
    let web = &td["containerDefinitions"][0];
    assert_eq!(web["cpu"], 0);
    assert_eq!(web["essential"], true);
    assert_eq!(
        web["portMappings"],
        json!([{ "containerPort": 8080, "hostPort": 8080, "protocol": "tcp", "name": "http", "appProtocol": "http" }])
    );
    assert_eq!(
        web["healthCheck"],
        json!({ "command": ["CMD-SHELL", "wget -q -O- localhost:8080"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 10 })
    );
    assert_eq!(web["secrets"][0]["valueFrom"], "arn:aws:secretsmanager:us-east-1:000000000000:secret:db");
    assert_eq!(web["mountPoints"], json!([]));
    assert_eq!(td["containerDefinitions"][1]["essential"], false);
    assert_eq!(first["tags"], json!([{ "key": "app", "value": "web" }]));

    // Revisions count up per family; describe by family (latest ACTIVE), family:revision or ARN.
    let second = register(c, web_definition("web")).await;
    assert_eq!(second["revision"], 2);
    assert_eq!(second["networkMode"], "bridge");
    assert_eq!(second["compatibilities"], json!(["EC2", "EXTERNAL"]));
    assert_eq!(second["containerDefinitions"][0]["portMappings"][0]["hostPort"], 0);
    let by_family = ok(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web" })).await);
    assert_eq!(by_family["taskDefinition"]["revision"], 2);
    assert!(by_family.get("tags").is_none());
    let by_revision =
        ok(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:1", "include": ["TAGS"] })).await);
    assert_eq!(by_revision["taskDefinition"], *td);
    assert_eq!(by_revision["tags"], json!([{ "key": "app", "value": "web" }]));
    let by_arn = ok(ecs(
        c,
        "DescribeTaskDefinition",
        json!({ "taskDefinition": format!("{ARN_PREFIX}:task-definition/web:2") }),
    )
    .await);
    assert_eq!(by_arn["taskDefinition"], second);
    for missing in ["web:9", "nope", "arn:aws:ecs:eu-west-1:000000000000:task-definition/web:1"] {
        assert_eq!(
            err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": missing })).await, "ClientException"),
            "Unable to describe task definition."
        );
    }
    assert_eq!(
        err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:x" })).await, "ClientException"),
        "Invalid revision number. Number: x"
    );

    // What RegisterTaskDefinition refuses, in ECS's words where ECS has them.
    let refused = |body: Value| async move { err(ecs(c, "RegisterTaskDefinition", body).await, "ClientException") };
    assert_eq!(
        refused(json!({ "family": "m", "containerDefinitions": [{ "name": "w", "image": "x" }] })).await,
        "Invalid setting for container 'w'. At least one of 'memory' or 'memoryReservation' must be specified."
    );
    assert_eq!(
        refused(json!({ "family": "m", "networkMode": "awsvpc", "containerDefinitions": [
            { "name": "w", "image": "x", "memory": 64, "portMappings": [{ "containerPort": 80, "hostPort": 81 }] }] }))
        .await,
        "When networkMode=awsvpc, the host ports and container ports in port mappings must match."
    );
    assert!(refused(json!({ "family": "m", "containerDefinitions": [
        { "name": "w", "image": "x", "memory": 64, "environmentFiles": [{ "type": "s3", "value": "arn:aws:s3:::b/e.env" }] }] }))
    .await
    .contains("environmentFiles"));
    assert!(refused(json!({ "family": "m", "memory": "256", "containerDefinitions": [
        { "name": "a", "image": "x", "dependsOn": [{ "containerName": "b", "condition": "START" }] },
        { "name": "b", "image": "x", "dependsOn": [{ "containerName": "a", "condition": "START" }] }] }))
    .await
    .contains("circular dependency"));
    assert_eq!(
        refused(json!({ "family": "m", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
                        "containerDefinitions": [{ "name": "w", "image": "x", "memory": 64 }] }))
        .await,
        "Fargate requires that 'cpu' be defined at the task level."
    );
    assert_eq!(refused(json!({ "family": "m", "containerDefinitions": [] })).await, "Container list cannot be empty.");
    err(ecs(c, "RegisterTaskDefinition", json!({ "containerDefinitions": [] })).await, "InvalidParameterException");
    err(
        ecs(
            c,
            "RegisterTaskDefinition",
            json!({ "family": "m", "containerDefinitions": [{ "name": "w", "memory": "lots" }] }),
        )
        .await,
        "SerializationException",
    );
    // Nothing refused left a revision behind.
    err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "m" })).await, "ClientException");
    t.shutdown().await;
}

#[tokio::test]
async fn task_definitions_are_listed_deregistered_and_deleted() {
    let t = TestServer::start().await;
    let c = &t.client;
    for family in ["web", "web", "web", "web-api", "worker"] {
        register(c, web_definition(family)).await;
    }
    let arn = |f: &str, r: u32| format!("{ARN_PREFIX}:task-definition/{f}:{r}");
    let all = ok(ecs(c, "ListTaskDefinitions", json!({})).await);
    assert_eq!(
        all["taskDefinitionArns"],
        json!([arn("web", 1), arn("web", 2), arn("web", 3), arn("web-api", 1), arn("worker", 1)])
    );
    let desc = ok(ecs(c, "ListTaskDefinitions", json!({ "sort": "DESC", "familyPrefix": "web" })).await);
    assert_eq!(desc["taskDefinitionArns"], json!([arn("web-api", 1), arn("web", 3), arn("web", 2), arn("web", 1)]));
    // Paging one at a time walks the same list.
    let mut walked = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "maxResults": 1, "sort": "DESC" });
        if let Some(tk) = &token {
            body["nextToken"] = json!(tk);
        }
        let page = ok(ecs(c, "ListTaskDefinitions", body).await);
        walked.extend(page["taskDefinitionArns"].as_array().unwrap().iter().cloned());
        match page["nextToken"].as_str() {
            Some(tk) => token = Some(tk.to_string()),
            None => break,
        }
    }
    assert_eq!(walked.len(), 5);
    assert_eq!(walked[0], json!(arn("worker", 1)));
    err(ecs(c, "ListTaskDefinitions", json!({ "status": "GONE" })).await, "InvalidParameterException");
    err(ecs(c, "ListTaskDefinitions", json!({ "sort": "SIDEWAYS" })).await, "InvalidParameterException");
    // A token of one sort order does not continue the other.
    let asc_token = ok(ecs(c, "ListTaskDefinitions", json!({ "maxResults": 1 })).await)["nextToken"].clone();
    err(
        ecs(c, "ListTaskDefinitions", json!({ "sort": "DESC", "nextToken": asc_token })).await,
        "InvalidParameterException",
    );

    // Deregister: INACTIVE with a time; a family alone is refused.
    let inactive =
        ok(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": "web:1" })).await)["taskDefinition"].clone();
    assert_eq!(inactive["status"], "INACTIVE");
    assert!(inactive["deregisteredAt"].as_f64().unwrap() >= inactive["registeredAt"].as_f64().unwrap());
    let again = ok(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": arn("web", 1) })).await);
    assert_eq!(again["taskDefinition"], inactive);
    assert_eq!(
        err(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": "web" })).await, "ClientException"),
        "Revision is missing."
    );
    assert_eq!(
        err(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": "web:99" })).await, "ClientException"),
        "The specified task definition does not exist."
    );
    for r in [2, 3] {
        ok(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": format!("web:{r}") })).await);
    }
    ok(ecs(c, "DeregisterTaskDefinition", json!({ "taskDefinition": "worker:1" })).await);
    // The family has no ACTIVE revision left: describing it by family finds nothing.
    err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web" })).await, "ClientException");
    let listed = ok(ecs(c, "ListTaskDefinitions", json!({ "status": "INACTIVE" })).await);
    assert_eq!(listed["taskDefinitionArns"], json!([arn("web", 1), arn("web", 2), arn("web", 3), arn("worker", 1)]));
    let families = |status: Option<&str>| {
        let mut body = json!({ "familyPrefix": "w" });
        if let Some(s) = status {
            body["status"] = json!(s);
        }
        async move { ok(ecs(c, "ListTaskDefinitionFamilies", body).await)["families"].clone() }
    };
    assert_eq!(families(None).await, json!(["web", "web-api", "worker"]));
    assert_eq!(families(Some("ACTIVE")).await, json!(["web-api"]));
    assert_eq!(families(Some("INACTIVE")).await, json!(["web", "worker"]));
    let page = ok(ecs(c, "ListTaskDefinitionFamilies", json!({ "maxResults": 2 })).await);
    assert_eq!(page["families"], json!(["web", "web-api"]));
    let page =
        ok(ecs(c, "ListTaskDefinitionFamilies", json!({ "maxResults": 2, "nextToken": page["nextToken"] })).await);
    assert_eq!(page["families"], json!(["worker"]));

    // A running task keeps the revision it uses DELETE_IN_PROGRESS until it stops.
    ok(ecs(c, "CreateCluster", json!({})).await);
    task("default", "t1", &arn("web", 2), "RUNNING", "EC2").insert(&db(&t)).unwrap();

    // Delete: only INACTIVE revisions, the others are failures.
    let out = ok(ecs(
        c,
        "DeleteTaskDefinitions",
        json!({ "taskDefinitions": ["web:1", arn("web", 2), "web-api:1", "nope:1", "web", "web:x"] }),
    )
    .await);
    let deleted = out["taskDefinitions"].as_array().unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(deleted.iter().all(|d| d["status"] == "DELETE_IN_PROGRESS" && d["deleteRequestedAt"].is_number()));
    let failures = out["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert_eq!(failures[0]["arn"], arn("web-api", 1));
    assert_eq!(failures[0]["reason"], "ACTIVE");
    assert_eq!(
        failures[1],
        json!({ "arn": arn("nope", 1), "reason": "MISSING", "detail": "The specified task definition does not exist." })
    );
    // web:1 is gone; web:2 stays describable while its task runs.
    err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:1" })).await, "ClientException");
    let kept = ok(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:2" })).await);
    assert_eq!(kept["taskDefinition"]["status"], "DELETE_IN_PROGRESS");
    let listed = ok(ecs(c, "ListTaskDefinitions", json!({ "status": "DELETE_IN_PROGRESS" })).await);
    assert_eq!(listed["taskDefinitionArns"], json!([arn("web", 2)]));
    {
        let conn = db(&t);
        conn.execute("UPDATE ecs_tasks SET last_status = 'STOPPED'", []).unwrap();
        assert_eq!(berth_ecs::task_definition::purge_deleted(&conn).unwrap(), 1);
    }
    err(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:2" })).await, "ClientException");
    // Revision numbers are never reused, even after a delete and a restart.
    let t = t.restart().await;
    assert_eq!(register(&t.client, web_definition("web")).await["revision"], 4);
    err(ecs(&t.client, "DeleteTaskDefinitions", json!({ "taskDefinitions": [] })).await, "InvalidParameterException");
    t.shutdown().await;
}

#[tokio::test]
async fn ecs_resources_are_tagged_by_arn() {
    let t = TestServer::start().await;
    let c = &t.client;
    let cluster =
        ok(ecs(c, "CreateCluster", json!({ "clusterName": "tagged" })).await)["cluster"]["clusterArn"].clone();
    let td = register(c, web_definition("web")).await["taskDefinitionArn"].clone();
    for arn in [&cluster, &td] {
        ok(ecs(
            c,
            "TagResource",
            json!({ "resourceArn": arn, "tags": [{ "key": "a", "value": "1" }, { "key": "b", "value": "2" }] }),
        )
        .await);
        ok(ecs(c, "TagResource", json!({ "resourceArn": arn, "tags": [{ "key": "b", "value": "3" }] })).await);
        let tags = ok(ecs(c, "ListTagsForResource", json!({ "resourceArn": arn })).await);
        assert_eq!(tags["tags"], json!([{ "key": "a", "value": "1" }, { "key": "b", "value": "3" }]));
        ok(ecs(c, "UntagResource", json!({ "resourceArn": arn, "tagKeys": ["a", "zz"] })).await);
        let tags = ok(ecs(c, "ListTagsForResource", json!({ "resourceArn": arn })).await);
        assert_eq!(tags["tags"], json!([{ "key": "b", "value": "3" }]));
        let many: Vec<Value> = (0..50).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect();
        err(ecs(c, "TagResource", json!({ "resourceArn": arn, "tags": many })).await, "InvalidParameterException");
        err(
            ecs(c, "TagResource", json!({ "resourceArn": arn, "tags": [{ "key": "aws:x", "value": "v" }] })).await,
            "InvalidParameterException",
        );
        err(ecs(c, "TagResource", json!({ "resourceArn": arn })).await, "InvalidParameterException");
    }
    let d = ok(ecs(c, "DescribeTaskDefinition", json!({ "taskDefinition": "web:1", "include": ["TAGS"] })).await);
    assert_eq!(d["tags"], json!([{ "key": "b", "value": "3" }]));

    // Tasks keep their tags in their row.
    let task_arn = format!("{ARN_PREFIX}:task/tagged/t1");
    task("tagged", "t1", td.as_str().unwrap(), "RUNNING", "EC2").insert(&db(&t)).unwrap();
    ok(ecs(c, "TagResource", json!({ "resourceArn": task_arn, "tags": [{ "key": "job", "value": "nightly" }] })).await);
    let row = berth_ecs::tasks::get(&db(&t), &task_arn).unwrap().unwrap();
    assert_eq!(row.tags, vec![berth_ecs::Tag { key: "job".into(), value: "nightly".into() }]);
    assert_eq!(row.version, 2);
    ok(ecs(c, "UntagResource", json!({ "resourceArn": task_arn, "tagKeys": ["job"] })).await);
    assert_eq!(ok(ecs(c, "ListTagsForResource", json!({ "resourceArn": task_arn })).await)["tags"], json!([]));

    err(
        ecs(c, "ListTagsForResource", json!({ "resourceArn": format!("{ARN_PREFIX}:cluster/none") })).await,
        "ClusterNotFoundException",
    );
    err(
        ecs(c, "ListTagsForResource", json!({ "resourceArn": format!("{ARN_PREFIX}:task-definition/web:9") })).await,
        "ResourceNotFoundException",
    );
    err(
        ecs(c, "ListTagsForResource", json!({ "resourceArn": format!("{ARN_PREFIX}:task/tagged/none") })).await,
        "ResourceNotFoundException",
    );
    for bad in
        ["not-an-arn", "arn:aws:ecr:us-east-1:000000000000:repository/x", format!("{ARN_PREFIX}:widget/x").as_str()]
    {
        err(ecs(c, "ListTagsForResource", json!({ "resourceArn": bad })).await, "InvalidParameterException");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn ecs_actions_are_authorized_on_the_resources_ecs_names() {
    let t = TestServer::start().await;
    let c = &t.client;
    for name in ["allowed", "other"] {
        ok(ecs(c, "CreateCluster", json!({ "clusterName": name })).await);
    }
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"ecs:DescribeClusters","Resource":"{ARN_PREFIX}:cluster/allowed"}},
            {{"Effect":"Allow","Action":["ecs:RegisterTaskDefinition","ecs:DeregisterTaskDefinition"],"Resource":"*"}},
            {{"Effect":"Allow","Action":"ecs:DeleteTaskDefinitions","Resource":"{ARN_PREFIX}:task-definition/mine:*"}}
        ]}}"#
    );
    let viewer = user(&t, "viewer", &policy).await;

    let d = ok(ecs(&viewer, "DescribeClusters", json!({ "clusters": ["allowed"] })).await);
    assert_eq!(d["clusters"][0]["clusterName"], "allowed");
    assert_eq!(
        err(ecs(&viewer, "DescribeClusters", json!({ "clusters": ["other"] })).await, "AccessDeniedException"),
        format!(
            "User: arn:aws:iam::000000000000:user/viewer is not authorized to perform: ecs:DescribeClusters on \
             resource: {ARN_PREFIX}:cluster/other"
        )
    );
    // Every cluster named must be allowed, not only the first; by ARN as by name.
    err(ecs(&viewer, "DescribeClusters", json!({ "clusters": ["allowed", "other"] })).await, "AccessDeniedException");
    ok(ecs(&viewer, "DescribeClusters", json!({ "clusters": [format!("{ARN_PREFIX}:cluster/allowed"), "allowed"] }))
        .await);
    // No cluster named is the default cluster.
    err(ecs(&viewer, "DescribeClusters", json!({})).await, "AccessDeniedException");
    err(ecs(&viewer, "ListClusters", json!({})).await, "AccessDeniedException");
    err(ecs(&viewer, "DeleteCluster", json!({ "cluster": "allowed" })).await, "AccessDeniedException");

    // RegisterTaskDefinition has no resource: allowed on *, and the registrant is recorded.
    let mine = register(&viewer, web_definition("mine")).await;
    assert_eq!(mine["registeredBy"], "arn:aws:iam::000000000000:user/viewer");
    register(c, web_definition("theirs")).await;
    for family in ["mine", "theirs"] {
        ok(ecs(&viewer, "DeregisterTaskDefinition", json!({ "taskDefinition": format!("{family}:1") })).await);
    }
    err(ecs(&viewer, "DescribeTaskDefinition", json!({ "taskDefinition": "mine:1" })).await, "AccessDeniedException");
    // DeleteTaskDefinitions: each revision named must be allowed.
    err(
        ecs(&viewer, "DeleteTaskDefinitions", json!({ "taskDefinitions": ["mine:1", "theirs:1"] })).await,
        "AccessDeniedException",
    );
    let out = ok(ecs(&viewer, "DeleteTaskDefinitions", json!({ "taskDefinitions": ["mine:1"] })).await);
    assert_eq!(out["taskDefinitions"][0]["status"], "DELETE_IN_PROGRESS");
    t.shutdown().await;
}
