"""The ECS API (clusters, task definitions, tags) with boto3 and the aws CLI: botocore parses the
answers (timestamps become datetimes, error codes become ClientError) and its paginators walk the
lists. Tasks do not run yet at this stage: these tests need no docker.
"""

from __future__ import annotations

import datetime
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from berthcompat import ACCOUNT_ID, REGION

ARN_PREFIX = f"arn:aws:ecs:{REGION}:{ACCOUNT_ID}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def message_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Message"]


def web_container(**extra) -> dict:
    return {"name": "web", "image": "localhost:4566/web:1", "memory": 128,
            "portMappings": [{"containerPort": 8080}], **extra}


def recent(t: datetime.datetime) -> bool:
    return abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) < 120


def test_ecs_api_clusters(berth):
    ecs = berth.client("ecs")
    name = unique("prod")
    created = ecs.create_cluster(
        clusterName=name, tags=[{"key": "team", "value": "platform"}],
        settings=[{"name": "containerInsights", "value": "enabled"}],
        capacityProviders=["FARGATE"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])["cluster"]
    assert created["clusterArn"] == f"{ARN_PREFIX}:cluster/{name}"
    assert created["clusterName"] == name
    assert created["status"] == "ACTIVE"
    assert created["runningTasksCount"] == 0 and created["pendingTasksCount"] == 0
    assert created["registeredContainerInstancesCount"] == 0 and created["activeServicesCount"] == 0
    assert created["tags"] == [{"key": "team", "value": "platform"}]
    assert created["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert created["capacityProviders"] == ["FARGATE"]
    assert created["defaultCapacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    # Idempotent for an ACTIVE cluster.
    assert ecs.create_cluster(clusterName=name)["cluster"] == created
    # The unnamed cluster is "default".
    assert ecs.create_cluster()["cluster"]["clusterName"] == "default"

    for bad in [{"clusterName": "no spaces"},
                {"clusterName": unique("c"), "settings": [{"name": "containerInsights", "value": "sometimes"}]},
                {"clusterName": unique("c"), "capacityProviders": ["my-asg"]}]:
        with pytest.raises(ClientError) as e:
            ecs.create_cluster(**bad)
        assert code_of(e) == "InvalidParameterException", bad

    missing = unique("missing")
    out = ecs.describe_clusters(clusters=[name, missing], include=["TAGS", "SETTINGS", "STATISTICS"])
    [c] = out["clusters"]
    assert c["clusterName"] == name
    assert c["tags"] == [{"key": "team", "value": "platform"}]
    assert c["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert {"name": "runningFargateTasksCount", "value": "0"} in c["statistics"]
    assert out["failures"] == [{"arn": f"{ARN_PREFIX}:cluster/{missing}", "reason": "MISSING"}]
    assert ecs.describe_clusters()["clusters"][0]["clusterName"] == "default"

    updated = ecs.update_cluster_settings(cluster=f"{ARN_PREFIX}:cluster/{name}",
                                          settings=[{"name": "containerInsights", "value": "disabled"}])["cluster"]
    assert updated["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    with pytest.raises(ClientError) as e:
        ecs.update_cluster_settings(cluster=missing, settings=[{"name": "containerInsights", "value": "enabled"}])
    assert code_of(e) == "ClusterNotFoundException"
    assert message_of(e) == "Cluster not found."

    # The paginator walks every ACTIVE cluster, two at a time.
    more = [ecs.create_cluster(clusterName=unique("page"))["cluster"]["clusterArn"] for _ in range(3)]
    pages = list(ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 2}))
    assert all(len(p["clusterArns"]) <= 2 for p in pages)
    arns = [a for p in pages for a in p["clusterArns"]]
    assert len(arns) == len(set(arns))
    assert set(more) | {created["clusterArn"]} <= set(arns)
    with pytest.raises(ClientError) as e:
        ecs.list_clusters(nextToken="garbage")
    assert code_of(e) == "InvalidParameterException"

    deleted = ecs.delete_cluster(cluster=more[0])["cluster"]
    assert deleted["status"] == "INACTIVE"
    assert ecs.describe_clusters(clusters=[more[0]])["clusters"][0]["status"] == "INACTIVE"
    assert more[0] not in [a for p in ecs.get_paginator("list_clusters").paginate() for a in p["clusterArns"]]
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster=missing)
    assert code_of(e) == "ClusterNotFoundException"


def test_ecs_api_task_definitions(berth):
    ecs = berth.client("ecs")
    family = unique("web")
    out = ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1 vCPU", memory="2 GB",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/ecsTaskExecutionRole", taskRoleArn="app",
        tags=[{"key": "app", "value": "web"}],
        volumes=[{"name": "scratch"}],
        containerDefinitions=[
            web_container(
                memory=512,
                environment=[{"name": "MODE", "value": "prod"}],
                secrets=[{"name": "DB_PASSWORD",
                          "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/db/password"}],
                healthCheck={"command": ["CMD", "/bin/busybox", "wget", "-q", "-O-", "localhost:8080"],
                             "interval": 10},
                dependsOn=[{"containerName": "migrate", "condition": "SUCCESS"}],
                mountPoints=[{"sourceVolume": "scratch", "containerPath": "/tmp"}],
                logConfiguration={"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/web", "awslogs-region": REGION, "awslogs-stream-prefix": "web"}},
                stopTimeout=20),
            {"name": "migrate", "image": "localhost:4566/web:1", "essential": False,
             "command": ["/bin/busybox", "true"]},
        ])
    td = out["taskDefinition"]
    assert out["tags"] == [{"key": "app", "value": "web"}]
    assert td["taskDefinitionArn"] == f"{ARN_PREFIX}:task-definition/{family}:1"
    assert (td["family"], td["revision"], td["status"]) == (family, 1, "ACTIVE")
    assert (td["cpu"], td["memory"]) == ("1024", "2048")
    assert set(td["compatibilities"]) == {"EC2", "FARGATE"}
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/app"
    assert td["registeredBy"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
    assert isinstance(td["registeredAt"], datetime.datetime) and recent(td["registeredAt"])
    web = td["containerDefinitions"][0]
    assert web["essential"] is True and web["cpu"] == 0
    assert web["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert web["healthCheck"]["interval"] == 10 and web["healthCheck"]["timeout"] == 5
    assert web["healthCheck"]["retries"] == 3
    assert web["mountPoints"] == [{"sourceVolume": "scratch", "containerPath": "/tmp"}]
    assert td["volumes"] == [{"name": "scratch"}]

    second = ecs.register_task_definition(family=family, containerDefinitions=[web_container()])["taskDefinition"]
    assert second["revision"] == 2
    assert second["networkMode"] == "bridge"
    assert second["containerDefinitions"][0]["portMappings"][0]["hostPort"] == 0
    assert ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["revision"] == 2
    described = ecs.describe_task_definition(taskDefinition=f"{family}:1", include=["TAGS"])
    assert described["taskDefinition"] == td
    assert described["tags"] == [{"key": "app", "value": "web"}]

    # ECS's errors, as ClientError.
    for bad, message in [
        ({"family": family, "containerDefinitions": [{"name": "w", "image": "x"}]},
         "Invalid setting for container 'w'. At least one of 'memory' or 'memoryReservation' must be specified."),
        ({"family": family, "networkMode": "awsvpc",
          "containerDefinitions": [web_container(portMappings=[{"containerPort": 80, "hostPort": 8080}])]},
         "When networkMode=awsvpc, the host ports and container ports in port mappings must match."),
        ({"family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256",
          "memory": "4096", "containerDefinitions": [web_container()]},
         "No Fargate configuration exists for given values"),
        ({"family": "bad family", "containerDefinitions": [web_container()]}, "Family contains invalid characters."),
        ({"family": family, "containerDefinitions": [web_container(essential=False)]},
         "Task definition doesn't have any essential container."),
        ({"family": family, "containerDefinitions": [web_container(
            environmentFiles=[{"type": "s3", "value": "arn:aws:s3:::bucket/app.env"}])]}, "environmentFiles"),
        ({"family": family, "containerDefinitions": [web_container(
            dependsOn=[{"containerName": "ghost", "condition": "START"}])]},
         "Cannot depend on container 'ghost' because it does not exist"),
    ]:
        with pytest.raises(ClientError) as e:
            ecs.register_task_definition(**bad)
        assert code_of(e) == "ClientException", bad
        assert message in message_of(e), (bad, message_of(e))
    for missing in [f"{family}:9", unique("nope")]:
        with pytest.raises(ClientError) as e:
            ecs.describe_task_definition(taskDefinition=missing)
        assert code_of(e) == "ClientException"
        assert message_of(e) == "Unable to describe task definition."

    # Lists and their paginators.
    other = f"{family}-api"
    ecs.register_task_definition(family=other, containerDefinitions=[web_container()])
    pages = list(ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=family, PaginationConfig={"PageSize": 1}))
    assert len(pages) == 3
    assert [a for p in pages for a in p["taskDefinitionArns"]] == [
        f"{ARN_PREFIX}:task-definition/{family}:1", f"{ARN_PREFIX}:task-definition/{family}:2",
        f"{ARN_PREFIX}:task-definition/{other}:1"]
    newest_first = ecs.list_task_definitions(familyPrefix=family, sort="DESC")["taskDefinitionArns"]
    assert newest_first[0] == f"{ARN_PREFIX}:task-definition/{other}:1"
    families = [f for p in ecs.get_paginator("list_task_definition_families").paginate(
        familyPrefix=family, PaginationConfig={"PageSize": 1}) for f in p["families"]]
    assert families == [family, other]

    # Deregister, then delete; ACTIVE revisions are failures, not deleted.
    dereg = ecs.deregister_task_definition(taskDefinition=f"{family}:1")["taskDefinition"]
    assert dereg["status"] == "INACTIVE" and isinstance(dereg["deregisteredAt"], datetime.datetime)
    with pytest.raises(ClientError) as e:
        ecs.deregister_task_definition(taskDefinition=family)
    assert code_of(e) == "ClientException"
    assert ecs.list_task_definitions(familyPrefix=family, status="INACTIVE")["taskDefinitionArns"] == [
        f"{ARN_PREFIX}:task-definition/{family}:1"]
    out = ecs.delete_task_definitions(taskDefinitions=[f"{family}:1", f"{family}:2"])
    [gone] = out["taskDefinitions"]
    assert gone["status"] == "DELETE_IN_PROGRESS" and isinstance(gone["deleteRequestedAt"], datetime.datetime)
    assert [(f["arn"], f["reason"]) for f in out["failures"]] == [
        (f"{ARN_PREFIX}:task-definition/{family}:2", "ACTIVE")]
    with pytest.raises(ClientError) as e:
        ecs.describe_task_definition(taskDefinition=f"{family}:1")
    assert code_of(e) == "ClientException"
    # The revision number is not reused.
    assert ecs.register_task_definition(family=family, containerDefinitions=[web_container()])[
        "taskDefinition"]["revision"] == 3


def test_ecs_api_tags(berth):
    ecs = berth.client("ecs")
    cluster = ecs.create_cluster(clusterName=unique("tagged"))["cluster"]["clusterArn"]
    td = ecs.register_task_definition(family=unique("tagged"),
                                      containerDefinitions=[web_container()])["taskDefinition"]["taskDefinitionArn"]
    for arn in (cluster, td):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "b", "value": "3"}])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
            {"key": "a", "value": "1"}, {"key": "b", "value": "3"}]
        ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "3"}]
        with pytest.raises(ClientError) as e:
            ecs.tag_resource(resourceArn=arn, tags=[{"key": "aws:reserved", "value": "x"}])
        assert code_of(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn=f"{ARN_PREFIX}:cluster/{unique('none')}")
    assert code_of(e) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn=f"{ARN_PREFIX}:task-definition/{unique('none')}:1")
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")
    assert code_of(e) == "InvalidParameterException"


def test_ecs_api_describe_clusters_is_authorized_per_cluster(berth):
    ecs = berth.client("ecs")
    iam = berth.client("iam")
    allowed, other = unique("allowed"), unique("other")
    for name in (allowed, other):
        ecs.create_cluster(clusterName=name)
    user = unique("viewer")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="view", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecs:DescribeClusters",
                       "Resource": f"{ARN_PREFIX}:cluster/{allowed}"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    theirs = berth.client("ecs", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])

    assert theirs.describe_clusters(clusters=[allowed])["clusters"][0]["clusterName"] == allowed
    for clusters in ([other], [allowed, other]):
        with pytest.raises(ClientError) as e:
            theirs.describe_clusters(clusters=clusters)
        assert code_of(e) == "AccessDeniedException"
    assert message_of(e) == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/{user} is not authorized to perform: ecs:DescribeClusters "
        f"on resource: {ARN_PREFIX}:cluster/{other}")
    with pytest.raises(ClientError) as e:
        theirs.list_clusters()
    assert code_of(e) == "AccessDeniedException"


def test_ecs_api_cli_register_task_definition_and_describe_clusters(berth, tmp_path):
    family = unique("cli")
    definition = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/ecsTaskExecutionRole",
        "containerDefinitions": [{
            "name": "web", "image": "localhost:4566/web:1", "essential": True,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": f"/ecs/{family}", "awslogs-region": REGION, "awslogs-stream-prefix": "ecs"}},
        }],
    }
    path = tmp_path / "task-definition.json"
    path.write_text(json.dumps(definition))
    registered = berth.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}").json()
    td = registered["taskDefinition"]
    assert td["taskDefinitionArn"] == f"{ARN_PREFIX}:task-definition/{family}:1"
    assert td["containerDefinitions"][0]["portMappings"] == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]

    # The pipeline pattern: describe, drop the read-only members, register the result again.
    described = berth.aws("ecs", "describe-task-definition", "--task-definition", family).json()["taskDefinition"]
    for key in ("taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
                "registeredAt", "registeredBy", "deregisteredAt"):
        described.pop(key, None)
    described["containerDefinitions"][0]["image"] = "localhost:4566/web:2"
    path.write_text(json.dumps(described))
    again = berth.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}").json()
    assert again["taskDefinition"]["revision"] == 2
    assert again["taskDefinition"]["containerDefinitions"][0]["image"] == "localhost:4566/web:2"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**definition, "cpu": "3 potatoes"}))
    failed = berth.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{bad}")
    assert failed.returncode != 0
    assert "ClientException" in failed.stderr and "Invalid 'cpu' setting for task." in failed.stderr

    name = unique("cli")
    berth.aws("ecs", "create-cluster", "--cluster-name", name).json()
    out = berth.aws("ecs", "describe-clusters", "--clusters", name, "--include", "SETTINGS").json()
    [c] = out["clusters"]
    assert c["clusterArn"] == f"{ARN_PREFIX}:cluster/{name}"
    assert c["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert out["failures"] == []
