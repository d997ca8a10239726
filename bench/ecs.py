"""Task start-up (issue 5): time from RunTask to RUNNING and to the first answered HTTP request on
the task's address, beside `docker run` of the same image to its first answered request, in the
same run; then 50 tasks at once.

Run through ./bench/ecs.sh (installs what is missing, builds berth in release mode). The image is
built FROM scratch out of the static busybox (`busybox httpd`), pushed to berth's registry, and run
as an `awsvpc` task (berth pulls it by digest with the execution role's registry credentials). The
`docker run` peer runs the same image, already pulled, on the same kind of user-defined network.
Rounds are interleaved; medians are reported. Writes section 6 of bench/RESULTS.md between the
`ecs-bench` markers.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import boto3

BEGIN = "<!-- ecs-bench:begin -->"
END = "<!-- ecs-bench:end -->"
KEY, SECRET = "AKIABENCHECS00000000", "bench-secret-bench-secret-bench-secret-00"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
PULL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], "Resource": "*"}]})


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*argv: str, input: bytes | None = None, env=None) -> str:
    p = subprocess.run(list(argv), capture_output=True, input=input, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode()


def first_answer(ip: str, port: int, deadline: float) -> float:
    """Polls ip:port until an HTTP GET answers; returns the monotonic time it did."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1."):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{ip}:{port} did not answer in time")


class Berth:
    def __init__(self, binary: str, work: Path):
        self.port = free_port()
        self.data = work / "berth-data"
        self.data.mkdir(parents=True)
        self.log = open(work / "berth.log", "wb")
        env = dict(os.environ, BERTH_ROOT_ACCESS_KEY_ID=KEY, BERTH_ROOT_SECRET_ACCESS_KEY=SECRET, RUST_LOG="warn")
        self.proc = subprocess.Popen([binary, "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data),
                                      "--task-endpoint", "off"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_berth/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        kw = dict(endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key=SECRET)
        self.ecr, self.ecs, self.iam = boto3.client("ecr", **kw), boto3.client("ecs", **kw), boto3.client("iam", **kw)
        self.host = f"localhost:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def wait_task(ecs, arn: str, status: str, deadline: float) -> dict:
    while time.monotonic() < deadline:
        t = ecs.describe_tasks(cluster="bench", tasks=[arn])["tasks"][0]
        if t["lastStatus"] == status:
            return t
        if t["lastStatus"] == "STOPPED":
            raise RuntimeError(f"task stopped: {t.get('stoppedReason')}")
        time.sleep(0.005)
    raise RuntimeError(f"task {arn} not {status} in time")


def task_ip(t: dict) -> str:
    for a in t.get("attachments", []):
        for d in a.get("details", []):
            if d["name"] == "privateIPv4Address":
                return d["value"]
    return t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--many", type=int, default=50)
    ap.add_argument("--command", default="./bench/ecs.sh")
    ap.add_argument("--berth-note", default="")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tag = uuid.uuid4().hex[:8]
    busybox = next(p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p))
    ctx = out / "image"
    ctx.mkdir()
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "index.html").write_text("bench\n")
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n'
                                    'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n')
    local = f"berth-bench-web:{tag}"
    run("docker", "build", "-q", "-t", local, str(ctx), env=dict(os.environ, DOCKER_BUILDKIT="0"))

    berth = Berth(args.berth, out)
    docker_config = out / "docker-config"
    denv = dict(os.environ, DOCKER_CONFIG=str(docker_config))
    net = f"berth-bench-peer-{tag}"
    results: dict[str, list[float]] = {"runtask_running": [], "runtask_answer": [], "docker_answer": []}
    many: dict = {}
    try:
        berth.ecr.create_repository(repositoryName="bench/web")
        pw = base64.b64decode(berth.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]).decode().split(":", 1)[1]
        run("docker", "login", "-u", "AWS", "--password-stdin", berth.host, input=pw.encode(), env=denv)
        remote = f"{berth.host}/bench/web:1"
        run("docker", "tag", local, remote)
        run("docker", "push", remote, env=denv)
        role = berth.iam.create_role(RoleName="bench-exec", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
        berth.iam.put_role_policy(RoleName="bench-exec", PolicyName="pull", PolicyDocument=PULL)
        berth.ecs.create_cluster(clusterName="bench")
        berth.ecs.register_task_definition(
            family="bench-web", networkMode="awsvpc", executionRoleArn=role, cpu="256", memory="512",
            containerDefinitions=[{"name": "web", "image": remote, "essential": True, "portMappings": [{"containerPort": 8080}]}])
        run("docker", "network", "create", "--label", "berth-bench=1", net)
        for r in range(args.rounds):
            # berth: RunTask → RUNNING → first answer.
            t0 = time.monotonic()
            arn = berth.ecs.run_task(cluster="bench", taskDefinition="bench-web", launchType="EC2",
                                     networkConfiguration={"awsvpcConfiguration": {"subnets": ["bench"]}})["tasks"][0]["taskArn"]
            t = wait_task(berth.ecs, arn, "RUNNING", t0 + 60)
            t_running = time.monotonic()
            t_answer = first_answer(task_ip(t), 8080, t0 + 60)
            results["runtask_running"].append((t_running - t0) * 1000)
            results["runtask_answer"].append((t_answer - t0) * 1000)
            berth.ecs.stop_task(cluster="bench", task=arn, reason="bench round done")
            wait_task(berth.ecs, arn, "STOPPED", time.monotonic() + 60)
            # docker run of the same image (already local) to its first answer.
            name = f"berth-bench-peer-{tag}-{r}"
            t0 = time.monotonic()
            cid = run("docker", "run", "-d", "--name", name, "--network", net, "--label", "berth-bench=1", local).strip()
            ip = run("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cid).strip()
            t_answer = first_answer(ip, 8080, t0 + 60)
            results["docker_answer"].append((t_answer - t0) * 1000)
            run("docker", "rm", "-f", cid)
            log(f"round {r + 1}: RunTask→RUNNING {results['runtask_running'][-1]:.0f} ms, →answer {results['runtask_answer'][-1]:.0f} ms; docker run→answer {results['docker_answer'][-1]:.0f} ms")

        # Many at once: RunTask count ≤ 10 per call, as ECS allows.
        t0 = time.monotonic()
        arns: list[str] = []
        while len(arns) < args.many:
            n = min(10, args.many - len(arns))
            arns += [t["taskArn"] for t in berth.ecs.run_task(cluster="bench", taskDefinition="bench-web", count=n, launchType="EC2",
                                                              networkConfiguration={"awsvpcConfiguration": {"subnets": ["bench"]}})["tasks"]]
        deadline = t0 + 600
        running: set[str] = set()
        while len(running) < len(arns) and time.monotonic() < deadline:
            for i in range(0, len(arns), 100):
                for t in berth.ecs.describe_tasks(cluster="bench", tasks=arns[i:i + 100])["tasks"]:
                    if t["lastStatus"] == "RUNNING":
                        running.add(t["taskArn"])
                    elif t["lastStatus"] == "STOPPED":
                        raise RuntimeError(f"a task stopped: {t.get('stoppedReason')}")
            time.sleep(0.05)
        many = {"tasks": len(arns), "running": len(running), "seconds": time.monotonic() - t0}
        log(f"{len(running)}/{len(arns)} tasks RUNNING after {many['seconds']:.1f} s")
        for a in arns:
            berth.ecs.stop_task(cluster="bench", task=a)
        # Wait for berth to stop and remove them before berth itself stops.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = [t["lastStatus"] for i in range(0, len(arns), 100)
                        for t in berth.ecs.describe_tasks(cluster="bench", tasks=arns[i:i + 100])["tasks"]]
            if all(s == "STOPPED" for s in statuses):
                break
            time.sleep(0.2)
    finally:
        berth.stop()
        # Whatever berth did not get to remove (an error above): its containers carry its data dir.
        left = run("docker", "ps", "-aq", "--filter", f"label=berth.ecs.owner={berth.data}").split()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        subprocess.run(["docker", "rm", "-f", *run("docker", "ps", "-aq", "--filter", "label=berth-bench=1").split()], capture_output=True)
        subprocess.run(["docker", "network", "rm", net, "berth-ecs-bench"], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", local, f"{berth.host}/bench/web:1"], capture_output=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    limit = 1.2 * med["docker_answer"] + 50
    ok_answer = med["runtask_answer"] <= limit
    ok_many = many.get("running") == many.get("tasks")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    raw = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    section = "\n".join([
        BEGIN,
        "## 6. Task start-up (issue 5)",
        "",
        f"- date: {now}; command: `{args.command}`; {args.rounds} interleaved rounds, median shown",
        f"- berth: `{args.berth}` {args.berth_note}".rstrip(),
        "- task: one `awsvpc` container, `busybox httpd` FROM scratch, pulled by berth from its own registry by digest with the execution role's credentials (already in Docker's image store after the first round, as on an ECS instance)",
        "- peer: `docker run -d` of the same local image on a user-defined network, to its first answered request",
        "- target: RunTask → first answer ≤ 1.2 × docker run → first answer + 50 ms",
        "",
        "| measurement | median | raw (ms) |",
        "|---|---:|---|",
        f"| RunTask → RUNNING | {med['runtask_running']:.0f} ms | {raw(results['runtask_running'])} |",
        f"| RunTask → first HTTP answer on the task IP | {med['runtask_answer']:.0f} ms | {raw(results['runtask_answer'])} |",
        f"| docker run → first HTTP answer | {med['docker_answer']:.0f} ms | {raw(results['docker_answer'])} |",
        "",
        f"RunTask → answer {med['runtask_answer']:.0f} ms against the limit {limit:.0f} ms: **{'PASS' if ok_answer else 'FAIL'}**. "
        f"{args.many} tasks at once: {many.get('running', 0)}/{many.get('tasks', 0)} RUNNING after {many.get('seconds', 0):.1f} s: **{'PASS' if ok_many else 'FAIL'}**.",
        END,
    ])
    (out / "ecs.json").write_text(json.dumps({"results": results, "many": many}, indent=2))
    path = Path(args.results)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)
    sys.exit(0 if ok_answer and ok_many else 3)


if __name__ == "__main__":
    main()
