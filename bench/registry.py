"""Registry throughput (issue 4): push and pull of an image with one 512 MiB layer of random data
with skopeo, against berth and against Debian's `docker-registry` (the distribution's reference
registry), beside copying the same bytes between two directories on the same disk (the limit).

Run through ./bench/registry.sh, which installs what is missing and builds berth. Every round uses
fresh random bytes (a registry that already has a blob, or a client cache that remembers where a blob
lives, would skip the upload). Rounds are interleaved (berth, registry, disk) so that drift in the
machine's speed hits all three alike; the median of the rounds is reported.

Writes its section of bench/RESULTS.md between the `registry-bench` markers (the rest of the file
is left as ./bench/run.sh wrote it) and raw numbers to bench/out/registry.json.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

MIB = 1024 * 1024
BEGIN = "<!-- registry-bench:begin -->"
END = "<!-- registry-bench:end -->"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # answering (401 is an answer)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def make_layout(root: Path, size: int, seed: bytes) -> Path:
    """An OCI image layout with one layer of `size` random bytes; returns its directory."""
    layout = root / "layout"
    if layout.exists():
        shutil.rmtree(layout)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    h = hashlib.sha256()
    tmp = blobs / "layer.tmp"
    with open(tmp, "wb") as f:
        written = 0
        while written < size:
            chunk = os.urandom(min(8 * MIB, size - written))
            h.update(chunk)
            f.write(chunk)
            written += len(chunk)
    layer = h.hexdigest()
    tmp.rename(blobs / layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]},
                         "config": {"Labels": {"seed": seed.hex()}}}).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    (blobs / config_digest).write_bytes(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config_digest}", "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{layer}", "size": size}],
    }).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{manifest_digest}",
                       "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "img"}}],
    }))
    return layout


def timed(argv: list[str], env=None) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def disk_copy(src: Path, dst_dir: Path) -> float:
    """Copy one file into another directory with 1 MiB buffers and fsync: the disk's limit for
    what a registry does with a pushed (or pulled) blob."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / "copy"
    t0 = time.monotonic()
    with open(src, "rb") as i, open(dst, "wb") as o:
        while True:
            b = i.read(MIB)
            if not b:
                break
            o.write(b)
        o.flush()
        os.fsync(o.fileno())
    elapsed = time.monotonic() - t0
    dst.unlink()
    return elapsed


class Berth:
    name = "berth"

    def __init__(self, binary: str, work: Path):
        self.port = free_port()
        self.data = work / "berth-data"
        self.data.mkdir(parents=True)
        self.log = open(work / "berth.log", "wb")
        env = dict(os.environ, BERTH_ROOT_ACCESS_KEY_ID="AKIABENCHREGISTRY000", BERTH_ROOT_SECRET_ACCESS_KEY="bench-secret-bench-secret-bench-secret-00", RUST_LOG="warn")
        self.proc = subprocess.Popen([binary, "server", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/_berth/health")
        self.ecr = boto3.client("ecr", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                                aws_access_key_id="AKIABENCHREGISTRY000",
                                aws_secret_access_key="bench-secret-bench-secret-bench-secret-00")
        token = self.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        self.creds = base64.b64decode(token).decode()
        self.host = f"localhost:{self.port}"

    def repo(self, name: str) -> str:
        self.ecr.create_repository(repositoryName=name)
        return f"{self.host}/{name}"

    def push_args(self) -> list[str]:
        return ["--dest-tls-verify=false", "--dest-creds", self.creds]

    def pull_args(self) -> list[str]:
        return ["--src-tls-verify=false", "--src-creds", self.creds]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class ReferenceRegistry:
    name = "docker-registry"

    def __init__(self, binary: str, work: Path):
        self.port = free_port()
        root = work / "registry-data"
        root.mkdir(parents=True)
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self.log = open(work / "docker-registry.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{self.port}/v2/")
        self.host = f"localhost:{self.port}"

    def repo(self, name: str) -> str:
        return f"{self.host}/{name}"

    def push_args(self) -> list[str]:
        return ["--dest-tls-verify=false"]

    def pull_args(self) -> list[str]:
        return ["--src-tls-verify=false"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--registry", required=True, help="the docker-registry binary")
    ap.add_argument("--skopeo", default="skopeo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--command", default="./bench/registry.sh")
    ap.add_argument("--berth-note", default="")
    args = ap.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    size = args.size_mib * MIB
    # skopeo keeps a blob-location cache; a private HOME keeps runs independent of each other.
    env = dict(os.environ, HOME=str(out / "home"))
    (out / "home").mkdir()

    berth = Berth(args.berth, out)
    reference = ReferenceRegistry(args.registry, out)
    results: dict[str, dict[str, list[float]]] = {"berth": {"push": [], "pull": []},
                                                  "docker-registry": {"push": [], "pull": []},
                                                  "disk": {"copy": []}}
    try:
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: {args.size_mib} MiB of fresh random bytes")
            layout = make_layout(out, size, os.urandom(16))
            layer = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
            for server in (berth, reference):
                dest = server.repo(f"bench/r{r}")
                t = timed([args.skopeo, "copy", "--quiet", *server.push_args(), f"oci:{layout}:img", f"docker://{dest}:img"], env)
                results[server.name]["push"].append(t)
                pulled = out / f"pulled-{server.name}"
                t = timed([args.skopeo, "copy", "--quiet", *server.pull_args(), f"docker://{dest}:img", f"dir:{pulled}"], env)
                results[server.name]["pull"].append(t)
                got = max(pulled.iterdir(), key=lambda p: p.stat().st_size)
                if got.stat().st_size != size:
                    raise RuntimeError(f"{server.name}: pulled layer has {got.stat().st_size} bytes, expected {size}")
                shutil.rmtree(pulled)
                log(f"  {server.name}: push {results[server.name]['push'][-1]:.2f} s, pull {t:.2f} s")
            results["disk"]["copy"].append(disk_copy(layer, out / "disk-copy"))
            log(f"  disk copy: {results['disk']['copy'][-1]:.2f} s")
    finally:
        berth.stop()
        reference.stop()

    mib_s = lambda secs: args.size_mib / statistics.median(secs)
    disk = mib_s(results["disk"]["copy"])
    rows = []
    verdicts = []
    for op in ("push", "pull"):
        b = mib_s(results["berth"][op])
        ref = mib_s(results["docker-registry"][op])
        ok_disk = b >= 0.5 * disk
        ok_ref = b >= ref
        verdicts.append(ok_disk and ok_ref)
        rows.append(f"| {op} | {b:.0f} MiB/s | {ref:.0f} MiB/s | {disk:.0f} MiB/s | {b / disk:.2f}× {'PASS' if ok_disk else 'FAIL'} | {b / ref:.2f}× {'PASS' if ok_ref else 'FAIL'} |")
    skopeo_version = subprocess.run([args.skopeo, "--version"], capture_output=True, text=True).stdout.strip()
    reg_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "docker-registry"], capture_output=True, text=True).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    raw = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    section = "\n".join([
        BEGIN,
        "## 5. Registry throughput (issue 4)",
        "",
        f"- date: {now}; command: `{args.command}`; {args.rounds} interleaved rounds, median shown",
        f"- berth: `{args.berth}` {args.berth_note}".rstrip(),
        f"- peer: Debian `docker-registry` {reg_version} (filesystem storage on the same disk, no auth); client: {skopeo_version}",
        f"- image: one layer of {args.size_mib} MiB of fresh random bytes per round (OCI layout on disk → registry → `dir:` on disk); berth verifies and fsyncs every blob and checks the Basic ECR token and IAM on every request",
        "- disk limit: the same layer copied to another directory on the same disk with 1 MiB buffers and an fsync",
        "- target: berth ≥ 0.5× the disk limit and ≥ the reference registry, for push and for pull",
        "",
        "| operation | berth | docker-registry | disk copy | berth / disk | berth / docker-registry |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Raw seconds — berth push: {raw(results['berth']['push'])}; berth pull: {raw(results['berth']['pull'])}; "
        f"docker-registry push: {raw(results['docker-registry']['push'])}; docker-registry pull: {raw(results['docker-registry']['pull'])}; "
        f"disk copy: {raw(results['disk']['copy'])}.",
        END,
    ])
    (out / "registry.json").write_text(json.dumps(results, indent=2))
    path = Path(args.results)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)
    sys.exit(0 if all(verdicts) else 3)


if __name__ == "__main__":
    main()
