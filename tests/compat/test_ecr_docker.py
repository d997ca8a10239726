"""ECR with the real clients: `docker` (login, build, push, pull, run) and `skopeo` (copy both ways,
inspect) against berth's registry, with the aws CLI and boto3 looking at the same images.

These tests need a running Docker Engine and skopeo (./scripts/test.sh installs and starts them as
root). Without them the tests fail: they are never skipped.

Images are built FROM scratch out of the static busybox on this machine: nothing is pulled from
Docker Hub.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from berthcompat import http_request

BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)


def run(*args: str, env=None, check: bool = True, timeout: float = 300, input: bytes | None = None):
    proc = subprocess.run(list(args), env=env, capture_output=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n"
                             f"stdout: {proc.stdout.decode(errors='replace')}\n"
                             f"stderr: {proc.stderr.decode(errors='replace')}")
    return proc


@pytest.fixture(scope="module")
def tools():
    """Docker and skopeo must be there: fail loudly, never skip."""
    for tool in ("docker", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run ./scripts/test.sh as root (it installs it), "
                        f"or apt-get install docker.io skopeo busybox-static")
    if BUSYBOX is None:
        pytest.fail("no static busybox to build test images from: apt-get install busybox-static")
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True)
    if info.returncode != 0:
        pytest.fail("no Docker daemon answers: start one (dockerd &), or run ./scripts/test.sh as root:\n"
                    + info.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def registry(berth, tools, tmp_path_factory):
    """Logs docker in to berth's registry with `aws ecr get-login-password`, in a private
    DOCKER_CONFIG. Yields (host, env for docker, password)."""
    host = f"localhost:{berth.port}"
    config = tmp_path_factory.mktemp("docker-config")
    env = dict(os.environ, DOCKER_CONFIG=str(config))
    pw = berth.aws("ecr", "get-login-password")
    assert pw.returncode == 0, pw.stderr
    password = pw.stdout.strip()
    login = run("docker", "login", "-u", "AWS", "--password-stdin", host, env=env, input=password.encode())
    assert b"Login Succeeded" in login.stdout
    yield host, env, password
    run("docker", "logout", host, env=env, check=False)


def build_image(tmp: Path, tag: str, env, layers: dict[str, bytes]) -> None:
    """docker build FROM scratch: busybox, then one layer per file."""
    ctx = tmp / f"ctx-{uuid.uuid4().hex[:8]}"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    lines = ["FROM scratch", "COPY busybox /bin/busybox"]
    for name, data in layers.items():
        (ctx / name).write_bytes(data)
        lines.append(f"COPY {name} /{name}")
    first = next(iter(layers))
    lines.append(f'CMD ["/bin/busybox", "cat", "/{first}"]')
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    run("docker", "build", "-q", "-t", tag, str(ctx), env=dict(env, DOCKER_BUILDKIT="0"))


def repo_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_docker_push_describe_pull_by_tag_and_digest_and_run(berth, registry, tmp_path):
    host, env, _ = registry
    ecr = berth.client("ecr")
    name = repo_name("team/web")
    repo = ecr.create_repository(repositoryName=name)["repository"]
    assert repo["repositoryUri"] == f"{host}/{name}"
    image = f"{repo['repositoryUri']}:v1"
    build_image(tmp_path, image, env, {"hello.txt": b"hello from berth\n", "data.bin": os.urandom(300_000)})

    push = run("docker", "push", image, env=env)
    assert b"digest: sha256:" in push.stdout

    described = berth.aws("ecr", "describe-images", "--repository-name", name)
    assert described.returncode == 0, described.stderr
    details = described.json()["imageDetails"]
    assert len(details) == 1
    detail = details[0]
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert detail["imageSizeInBytes"] > 300_000
    digest = detail["imageDigest"]
    assert f"digest: {digest}".encode() in push.stdout

    # Layers as the API sees them: every layer docker pushed is available.
    manifest = json.loads(ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
                          ["images"][0]["imageManifest"])
    layers = [l["digest"] for l in manifest["layers"]]
    assert len(layers) == 3
    avail = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=layers)
    assert [l["layerAvailability"] for l in avail["layers"]] == ["AVAILABLE"] * 3

    # Gone locally, back by tag, then by digest; and it runs.
    run("docker", "rmi", image, env=env)
    run("docker", "pull", image, env=env)
    out = run("docker", "run", "--rm", image, env=env)
    assert out.stdout == b"hello from berth\n"
    run("docker", "rmi", image, env=env)
    by_digest = f"{host}/{name}@{digest}"
    run("docker", "pull", by_digest, env=env)
    out = run("docker", "run", "--rm", by_digest, env=env)
    assert out.stdout == b"hello from berth\n"
    run("docker", "rmi", by_digest, env=env, check=False)


def test_immutable_tag_is_refused_by_docker_and_the_api(berth, registry, tmp_path):
    host, env, _ = registry
    ecr = berth.client("ecr")
    name = repo_name("immutable")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    image = f"{host}/{name}:release"
    build_image(tmp_path, image, env, {"v.txt": b"one\n"})
    run("docker", "push", image, env=env)

    # A different image under the same tag.
    build_image(tmp_path, image, env, {"v.txt": b"two\n"})
    second = run("docker", "push", image, env=env, check=False)
    assert second.returncode != 0
    assert b"tag invalid" in second.stderr.lower() or b"tag_invalid" in second.stderr.lower(), second.stderr
    assert b"cannot be overwritten because the repository is immutable" in second.stderr

    # The API says the same with its own error, and the tag still names the first image.
    other = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "release"}])["images"][0]
    changed = json.loads(other["imageManifest"])
    changed["annotations"] = {"x": "y"}
    with pytest.raises(ClientError) as err:
        ecr.put_image(repositoryName=name, imageManifest=json.dumps(changed), imageTag="release",
                      imageManifestMediaType=other["imageManifestMediaType"])
    assert err.value.response["Error"]["Code"] == "ImageTagAlreadyExistsException"
    run("docker", "rmi", image, env=env)
    run("docker", "pull", image, env=env)
    assert run("docker", "run", "--rm", image, env=env).stdout == b"one\n"
    run("docker", "rmi", image, env=env, check=False)


def test_skopeo_copies_a_multi_layer_image_both_ways_and_inspects_it(berth, registry, tmp_path):
    host, env, password = registry
    ecr = berth.client("ecr")
    name = repo_name("skopeo")
    ecr.create_repository(repositoryName=name)
    local = f"berth-skopeo-src:{uuid.uuid4().hex[:8]}"
    build_image(tmp_path, local, env, {"a.txt": b"layer a\n", "b.bin": os.urandom(200_000), "c.bin": os.urandom(50_000)})
    creds = f"AWS:{password}"

    # Out of the Docker daemon into an OCI layout, then into berth (OCI media types).
    layout = tmp_path / "layout"
    run("skopeo", "copy", f"docker-daemon:{local}", f"oci:{layout}:src", env=env)
    run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", creds,
        f"oci:{layout}:src", f"docker://{host}/{name}:oci")

    inspect = run("skopeo", "inspect", "--tls-verify=false", "--creds", creds, f"docker://{host}/{name}:oci")
    info = json.loads(inspect.stdout)
    assert info["Name"] == f"{host}/{name}"
    assert len(info["Layers"]) == 4
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds,
                         f"docker://{host}/{name}:oci").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    detail = ecr.describe_images(repositoryName=name)["imageDetails"][0]
    assert detail["imageManifestMediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert info["Digest"] == detail["imageDigest"]

    # And back out of berth into a directory, byte for byte the same layers.
    out = tmp_path / "out"
    run("skopeo", "copy", "--src-tls-verify=false", "--src-creds", creds, f"docker://{host}/{name}:oci", f"dir:{out}")
    copied = json.loads((out / "manifest.json").read_bytes())
    assert [l["digest"] for l in copied["layers"]] == info["Layers"]
    for layer in copied["layers"]:
        assert (out / layer["digest"].split(":", 1)[1]).stat().st_size == layer["size"]
    run("docker", "rmi", local, env=env, check=False)


def test_a_corrupted_upload_is_refused_and_anonymous_requests_are_challenged(berth, registry):
    host, _, password = registry
    ecr = berth.client("ecr")
    name = repo_name("corrupt")
    ecr.create_repository(repositoryName=name)
    base = f"{berth.endpoint}/v2/{name}/blobs/uploads/"

    anonymous = http_request("POST", base, b"")
    assert anonymous.status == 401
    assert anonymous.header("www-authenticate").startswith("Basic ")
    assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"

    auth = {"Authorization": "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode()}
    data = os.urandom(4096)
    wrong = "sha256:" + "0" * 64
    resp = http_request("POST", f"{base}?digest={wrong}", data,
                        headers={**auth, "Content-Type": "application/octet-stream"})
    assert resp.status == 400, resp
    assert resp.json()["errors"][0]["code"] == "DIGEST_INVALID"
    head = http_request("HEAD", f"{berth.endpoint}/v2/{name}/blobs/{wrong}", headers=auth)
    assert head.status == 404
    avail = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[wrong])
    assert avail["layers"] == []
    assert [(f["layerDigest"], f["failureCode"]) for f in avail["failures"]] == [(wrong, "MissingLayerDigest")]


def test_a_pushed_image_survives_kill_9_and_the_password_still_works(berth_factory, tools, tmp_path):
    """An acknowledged push is durable: SIGKILL right after `docker push`, start berth again on the
    same data dir, and the image pulls by digest and runs. The registry password, signed with the key
    in the data dir, is still accepted by the new process."""
    server = berth_factory("ecr-kill")
    server.start()
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker-config"))
    name = repo_name("durable")
    server.client("ecr").create_repository(repositoryName=name)
    pw = server.aws("ecr", "get-login-password")
    assert pw.returncode == 0, pw.stderr
    password = pw.stdout.strip()
    host = f"localhost:{server.port}"
    run("docker", "login", "-u", "AWS", "--password-stdin", host, env=env, input=password.encode())
    image = f"{host}/{name}:v1"
    build_image(tmp_path, image, env, {"kept.txt": b"still here\n", "blob.bin": os.urandom(100_000)})
    run("docker", "push", image, env=env)
    digest = server.client("ecr").describe_images(repositoryName=name)["imageDetails"][0]["imageDigest"]
    run("docker", "rmi", image, env=env)

    server.kill()  # SIGKILL: no shutdown work at all
    server.start()  # same data dir, new port
    host = f"localhost:{server.port}"
    run("docker", "login", "-u", "AWS", "--password-stdin", host, env=env, input=password.encode())
    by_digest = f"{host}/{name}@{digest}"
    run("docker", "pull", by_digest, env=env)
    assert run("docker", "run", "--rm", by_digest, env=env).stdout == b"still here\n"
    run("docker", "rmi", by_digest, env=env, check=False)
    assert server.stop(signal.SIGTERM) == 0
