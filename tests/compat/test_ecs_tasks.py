"""ECS tasks with boto3 on a real Docker Engine: run_task, describe_tasks, list_tasks, stop_task and
the `tasks_running`/`tasks_stopped` waiters; a task survives `kill -9` of berth (its container is
adopted, not started again).

The test image is built FROM scratch with the static busybox and pushed to berth's registry; the
task pulls it as its execution role. Docker must be there: the tests fail loudly, never skip."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
INDEX = b"hello from a berth ECS task (compat)\n"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
PULL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
    "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage"], "Resource": "*"}]}
FAST = {"Delay": 1, "MaxAttempts": 120}


def run(*args: str, env=None, check: bool = True, timeout: float = 300, input: bytes | None = None):
    proc = subprocess.run(list(args), env=env, capture_output=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n"
                             f"stdout: {proc.stdout.decode(errors='replace')}\n"
                             f"stderr: {proc.stderr.decode(errors='replace')}")
    return proc


@pytest.fixture(scope="module")
def tools():
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed: apt-get install docker.io (./scripts/test.sh does it as root)")
    if BUSYBOX is None:
        pytest.fail("no static busybox to build test images from: apt-get install busybox-static")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True)
    if info.returncode != 0:
        pytest.fail("no Docker daemon answers: start one (dockerd &):\n" + info.stderr.decode(errors="replace"))


class World:
    """One server's ECS world: a pushed image, an execution role, a cluster; cleans the engine up."""

    def __init__(self, server, tmp: Path):
        self.server = server
        self.cluster = f"compat-{uuid.uuid4().hex[:10]}"
        self.images: list[str] = []
        self.env = dict(os.environ, DOCKER_CONFIG=str(tmp / "docker-config"))
        self.tmp = tmp

    def push_image(self) -> str:
        s = self.server
        name = f"ecs-compat/{self.cluster}"
        s.client("ecr").create_repository(repositoryName=name)
        host = f"localhost:{s.port}"
        image = f"{host}/{name}:v1"
        ctx = self.tmp / f"ctx-{uuid.uuid4().hex[:8]}"
        ctx.mkdir()
        shutil.copy(BUSYBOX, ctx / "busybox")
        (ctx / "index.html").write_bytes(INDEX)
        (ctx / "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            'COPY index.html /www/index.html\nCMD ["/bin/sh"]\n')
        run("docker", "build", "-q", "-t", image, str(ctx), env=dict(self.env, DOCKER_BUILDKIT="0"))
        self.images.append(image)
        pw = s.aws("ecr", "get-login-password")
        assert pw.returncode == 0, pw.stderr
        run("docker", "login", "-u", "AWS", "--password-stdin", host, env=self.env, input=pw.stdout.strip().encode())
        run("docker", "push", image, env=self.env)
        run("docker", "rmi", image, env=self.env)
        return image

    def role(self) -> str:
        iam = self.server.client("iam")
        name = f"exec-{self.cluster}"
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="pull", PolicyDocument=json.dumps(PULL))
        return arn

    def cleanup(self) -> None:
        ids = run("docker", "ps", "-aq", "--filter", f"label=berth.ecs.cluster={self.cluster}", check=False)
        ids = ids.stdout.decode().split()
        if ids:
            run("docker", "rm", "-f", "-v", *ids, check=False)
        run("docker", "network", "rm", f"berth-ecs-{self.cluster}", check=False)
        for image in self.images:
            run("docker", "rmi", "-f", image, check=False)
        # Images the tasks pulled by digest (untagged: removed by id).
        out = run("docker", "images", "--format", "{{.Repository}} {{.ID}}", check=False).stdout.decode()
        for line in out.splitlines():
            repository, _, image_id = line.partition(" ")
            if repository.endswith(f"ecs-compat/{self.cluster}"):
                run("docker", "rmi", "-f", image_id, check=False)


def register_web(ecs, image: str, role: str, family: str) -> str:
    td = ecs.register_task_definition(
        family=family, networkMode="awsvpc", executionRoleArn=role,
        containerDefinitions=[{"name": "web", "image": image, "memory": 64, "essential": True, "stopTimeout": 2,
                               "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]}])
    return td["taskDefinition"]["taskDefinitionArn"]


def private_ip(task) -> str:
    details = task["attachments"][0]["details"]
    return next(d["value"] for d in details if d["name"] == "privateIPv4Address")


def http_get(url: str, within: float = 15) -> bytes:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def task_containers(arn: str) -> list[str]:
    out = run("docker", "ps", "-aq", "--no-trunc", "--filter", f"label=berth.ecs.task={arn}").stdout.decode()
    return out.split()


def test_ecs_tasks_run_describe_list_stop_with_waiters(berth, tools, tmp_path):
    w = World(berth, tmp_path)
    try:
        ecs = berth.client("ecs")
        image = w.push_image()
        role = w.role()
        ecs.create_cluster(clusterName=w.cluster)
        td_arn = register_web(ecs, image, role, f"web-{w.cluster}")

        out = ecs.run_task(cluster=w.cluster, taskDefinition=td_arn, startedBy="compat",
                           tags=[{"key": "team", "value": "a"}],
                           overrides={"containerOverrides": [{"name": "web", "environment": [{"name": "X", "value": "1"}]}]})
        assert out["failures"] == []
        task = out["tasks"][0]
        arn = task["taskArn"]
        assert arn.startswith(f"arn:aws:ecs:us-east-1:000000000000:task/{w.cluster}/")
        assert task["lastStatus"] == "PROVISIONING" and task["desiredStatus"] == "RUNNING"
        assert task["group"] == f"family:web-{w.cluster}"

        ecs.get_waiter("tasks_running").wait(cluster=w.cluster, tasks=[arn], WaiterConfig=FAST)
        task = ecs.describe_tasks(cluster=w.cluster, tasks=[arn], include=["TAGS"])["tasks"][0]
        assert task["lastStatus"] == "RUNNING"
        assert task["tags"] == [{"key": "team", "value": "a"}]
        assert task["containers"][0]["imageDigest"].startswith("sha256:")
        assert http_get(f"http://{private_ip(task)}:8080/index.html") == INDEX
        [cid] = task_containers(arn)
        env = json.loads(run("docker", "inspect", "-f", "{{json .Config.Env}}", cid).stdout)
        assert "X=1" in env

        assert ecs.list_tasks(cluster=w.cluster)["taskArns"] == [arn]
        assert ecs.list_tasks(cluster=w.cluster, startedBy="someone-else")["taskArns"] == []
        paginated = [a for page in ecs.get_paginator("list_tasks").paginate(cluster=w.cluster) for a in page["taskArns"]]
        assert paginated == [arn]

        stopped = ecs.stop_task(cluster=w.cluster, task=arn, reason="compat done")["task"]
        assert stopped["desiredStatus"] == "STOPPED"
        ecs.get_waiter("tasks_stopped").wait(cluster=w.cluster, tasks=[arn], WaiterConfig=FAST)
        task = ecs.describe_tasks(cluster=w.cluster, tasks=[arn])["tasks"][0]
        assert task["stopCode"] == "UserInitiated" and task["stoppedReason"] == "compat done"
        assert task_containers(arn) == []
        assert ecs.list_tasks(cluster=w.cluster, desiredStatus="STOPPED")["taskArns"] == [arn]

        with pytest.raises(ClientError) as e:
            ecs.stop_task(cluster=w.cluster, task="0" * 32)
        assert e.value.response["Error"]["Code"] == "InvalidParameterException"
        missing = ecs.describe_tasks(cluster=w.cluster, tasks=["0" * 32])
        assert missing["tasks"] == [] and missing["failures"][0]["reason"] == "MISSING"
    finally:
        w.cleanup()


def test_ecs_tasks_survive_kill_9_and_are_adopted(berth_factory, tools, tmp_path):
    server = berth_factory("ecs-kill")
    server.start()
    w = World(server, tmp_path)
    try:
        ecs = server.client("ecs")
        image = w.push_image()
        role = w.role()
        ecs.create_cluster(clusterName=w.cluster)
        td_arn = register_web(ecs, image, role, "web")
        arn = ecs.run_task(cluster=w.cluster, taskDefinition=td_arn)["tasks"][0]["taskArn"]
        ecs.get_waiter("tasks_running").wait(cluster=w.cluster, tasks=[arn], WaiterConfig=FAST)
        [before] = task_containers(arn)

        server.kill()  # SIGKILL: the controller gets no chance to do anything
        server.start()
        ecs = server.client("ecs")
        time.sleep(5)  # a couple of controller passes
        task = ecs.describe_tasks(cluster=w.cluster, tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "RUNNING", task
        assert task["containers"][0]["runtimeId"] == before
        assert task_containers(arn) == [before]
        assert http_get(f"http://{private_ip(task)}:8080/index.html") == INDEX

        ecs.stop_task(cluster=w.cluster, task=arn)
        ecs.get_waiter("tasks_stopped").wait(cluster=w.cluster, tasks=[arn], WaiterConfig=FAST)
        task = ecs.describe_tasks(cluster=w.cluster, tasks=[arn])["tasks"][0]
        assert task["stoppedReason"] == "Task stopped by user"
        assert server.stop(signal.SIGTERM) == 0
    finally:
        w.cleanup()
