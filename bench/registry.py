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
import resource
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
import zlib
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
    # The layer is random bytes in a gzip stream of stored (level 0) blocks: clients copy a layer
    # that is already compressed as it is (an uncompressed one skopeo would gzip on the way, and
    # the benchmark would measure gzip), and random data does not compress anyway.
    h = hashlib.sha256()
    raw = hashlib.sha256()
    tmp = blobs / "layer.tmp"
    z = zlib.compressobj(level=0, wbits=31)
    with open(tmp, "wb") as f:
        written = 0
        while written < size:
            chunk = os.urandom(min(8 * MIB, size - written))
            raw.update(chunk)
            out = z.compress(chunk)
            h.update(out)
            f.write(out)
            written += len(chunk)
        out = z.flush()
        h.update(out)
        f.write(out)
    layer = h.hexdigest()
    layer_size = tmp.stat().st_size
    tmp.rename(blobs / layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [f"sha256:{raw.hexdigest()}"]},
                         "config": {"Labels": {"seed": seed.hex()}}}).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    (blobs / config_digest).write_bytes(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{config_digest}", "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{layer}", "size": layer_size}],
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


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Measured:
    """Wall time, and the CPU the client (children of this script) and the server used in it."""

    def __init__(self, server_pid: int | None):
        self.pid = server_pid

    def __enter__(self):
        # Start from a quiet disk: the previous step's dirty pages are written out first.
        os.sync()
        self.c0, self.s0 = children_cpu(), (server_cpu(self.pid) if self.pid else 0.0)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        self.client = children_cpu() - self.c0
        self.server = (server_cpu(self.pid) - self.s0) if self.pid else 0.0
        return False


def run(argv: list[str], env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def curl_push(server, repo: str, layer: Path, digest: str) -> None:
    """The thinnest client: POST an upload, PATCH the file streamed from disk, PUT with the digest."""
    auth = server.curl_auth()
    head = run(["curl", "-sS", "-i", "-X", "POST", *auth, f"http://127.0.0.1:{server.port}/v2/{repo}/blobs/uploads/"]).stdout.decode()
    location = next(l.split(":", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("location:"))
    if location.startswith("/"):
        location = f"http://127.0.0.1:{server.port}{location}"
    location = location.replace(f"localhost:{server.port}", f"127.0.0.1:{server.port}")
    patched = run(["curl", "-sS", "-i", "-X", "PATCH", *auth, "-H", "Content-Type: application/octet-stream", "-H", "Expect:",
                   "-T", str(layer), location]).stdout.decode()
    # The last status line counts (curl -T sends `Expect: 100-continue` first).
    status = [l.split(None, 2)[1] for l in patched.splitlines() if l.startswith("HTTP/")][-1]
    if status != "202":
        raise RuntimeError(f"{server.name}: PATCH answered {patched[:300]}")
    location = next(l.split(":", 1)[1].strip() for l in patched.splitlines() if l.lower().startswith("location:"))
    if location.startswith("/"):
        location = f"http://127.0.0.1:{server.port}{location}"
    location = location.replace(f"localhost:{server.port}", f"127.0.0.1:{server.port}")
    sep = "&" if "?" in location else "?"
    code = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", *auth,
                f"{location}{sep}digest={digest}"]).stdout.decode()
    if code != "201":
        raise RuntimeError(f"{server.name}: PUT answered {code}")


def curl_pull(server, repo: str, digest: str, dest: Path) -> None:
    run(["curl", "-sS", "-f", "-L", *server.curl_auth(), "-o", str(dest),
         f"http://127.0.0.1:{server.port}/v2/{repo}/blobs/{digest}"])
    fsync_file(dest)


def disk_copy(src: Path, dst_dir: Path) -> float:
    """Copy one file into another directory with 1 MiB buffers and an fsync: the disk's limit for
    what a registry does with a pushed (or pulled) blob."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / "copy"
    os.sync()
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

    def curl_auth(self) -> list[str]:
        return ["-u", self.creds]

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

    def curl_auth(self) -> list[str]:
        return []

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
    names = ("berth", "docker-registry")
    ops = ("skopeo push", "skopeo pull", "curl push", "curl pull")
    # results[server][op] = list of (wall, client cpu, server cpu)
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {n: {op: [] for op in ops} for n in names}
    disk: list[float] = []
    try:
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: {args.size_mib} MiB of fresh random bytes")
            layout = make_layout(out, size, os.urandom(16))
            layer = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
            digest = f"sha256:{layer.name}"
            for server in (berth, reference):
                pid = server.proc.pid
                dest = server.repo(f"bench/r{r}")
                with Measured(pid) as m:
                    run([args.skopeo, "copy", "--quiet", *server.push_args(), f"oci:{layout}:img", f"docker://{dest}:img"], env)
                results[server.name]["skopeo push"].append((m.wall, m.client, m.server))
                pulled = out / f"pulled-{server.name}"
                with Measured(pid) as m:
                    run([args.skopeo, "copy", "--quiet", *server.pull_args(), f"docker://{dest}:img", f"dir:{pulled}"], env)
                results[server.name]["skopeo pull"].append((m.wall, m.client, m.server))
                got = max(pulled.iterdir(), key=lambda p: p.stat().st_size)
                if got.name != layer.name or got.stat().st_size != layer.stat().st_size:
                    raise RuntimeError(f"{server.name}: pulled {got.name} ({got.stat().st_size} B), "
                                       f"expected {layer.name} ({layer.stat().st_size} B)")
                shutil.rmtree(pulled)
                # The same bytes with curl, into another repository (so nothing is already there).
                repo = f"bench/c{r}"
                server.repo(repo)
                with Measured(pid) as m:
                    curl_push(server, repo, layer, digest)
                results[server.name]["curl push"].append((m.wall, m.client, m.server))
                target = out / f"curl-{server.name}"
                with Measured(pid) as m:
                    curl_pull(server, repo, digest, target)
                results[server.name]["curl pull"].append((m.wall, m.client, m.server))
                if target.stat().st_size != layer.stat().st_size:
                    raise RuntimeError(f"{server.name}: curl pulled {target.stat().st_size} B")
                target.unlink()
                log("  " + server.name + ": " + ", ".join(f"{op} {results[server.name][op][-1][0]:.2f} s" for op in ops))
            disk.append(disk_copy(layer, out / "disk-copy"))
            log(f"  disk copy: {disk[-1]:.2f} s")
    finally:
        berth.stop()
        reference.stop()

    layer_mib = layer.stat().st_size / MIB
    med = lambda xs: statistics.median(xs)
    disk_rate = layer_mib / med(disk)
    rows = []
    verdicts = {}
    for op in ops:
        b = layer_mib / med([x[0] for x in results["berth"][op]])
        ref = layer_mib / med([x[0] for x in results["docker-registry"][op]])
        ok_disk, ok_ref = b >= 0.5 * disk_rate, b >= ref
        verdicts[op] = ok_disk and ok_ref
        cpu = lambda n, k: med([x[k] for x in results[n][op]])
        rows.append(
            f"| {op} | {b:.0f} MiB/s | {ref:.0f} MiB/s | {b / disk_rate:.2f}× {'PASS' if ok_disk else 'FAIL'} "
            f"| {b / ref:.2f}× {'PASS' if ok_ref else 'FAIL'} "
            f"| {cpu('berth', 1):.2f} / {cpu('berth', 2):.2f} | {cpu('docker-registry', 1):.2f} / {cpu('docker-registry', 2):.2f} |")
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
        f"- image: one layer of {args.size_mib} MiB of fresh random bytes per round, in a gzip stream of stored blocks so skopeo copies it as it is (OCI layout on disk → registry → `dir:` on disk); berth verifies and fsyncs every blob and checks the Basic ECR token and IAM on every request",
        f"- disk limit: the same layer copied to another directory on the same disk with 1 MiB buffers and an fsync: **{disk_rate:.0f} MiB/s** (median; raw seconds {raw(disk)})",
        "- clients: `skopeo copy` (OCI layout → registry, registry → `dir:`), and curl as the thinnest client (POST + PATCH streamed from the file + PUT with the digest; GET to a file, then fsync)",
        "- every step starts after a `sync`, so no step pays for the previous one's dirty pages",
        "- target: berth ≥ 0.5× the disk limit and ≥ the reference registry, for push and for pull",
        "",
        "| operation | berth | docker-registry | berth / disk limit | berth / docker-registry | CPU s client / berth | CPU s client / docker-registry |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Raw wall seconds: " + "; ".join(f"{n} {op}: {raw([x[0] for x in results[n][op]])}" for n in names for op in ops) + ".",
        END,
    ])
    (out / "registry.json").write_text(json.dumps({"results": results, "disk": disk}, indent=2))
    path = Path(args.results)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(section)
    sys.exit(0 if all(verdicts.values()) else 3)


if __name__ == "__main__":
    main()
