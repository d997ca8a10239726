"""Helpers for berth's compatibility tests: running a real `berth server`, the aws CLI, and raw
HTTP requests signed with botocore's own SigV4 signer (so the wire bytes are what AWS clients send).

Used by conftest.py (fixtures) and by the test modules (raw requests and response parsing).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping
from unittest import mock

import boto3
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

# Fixed root credentials given to the shared server through BERTH_ROOT_* (as CI would).
ROOT_ACCESS_KEY_ID = "AKIABERTHCOMPAT00001"
ROOT_SECRET_ACCESS_KEY = "compatTestSecret/0123456789+abcdefghijkl"
ACCOUNT_ID = "000000000000"
REGION = "us-east-1"
STS_VERSION = "2011-06-15"
STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
BODY_LIMIT = 16 * 1024 * 1024

assert len(ROOT_ACCESS_KEY_ID) == 20 and len(ROOT_SECRET_ACCESS_KEY) == 40

# The aws CLI installed next to the interpreter running the tests (.venv/bin/aws).
AWS_CLI = str(Path(sys.executable).parent / "aws")


def clean_environ() -> dict[str, str]:
    """The process environment without anything that would point AWS clients elsewhere
    (the developer's own AWS_* variables, profiles and config files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BERTH_"))}
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_PAGER"] = ""
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def utcnow_naive() -> datetime.datetime:
    """Now in UTC without tzinfo: the form botocore's signer uses."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# --------------------------------------------------------------------------------------------
# HTTP


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def request_id(self) -> str | None:
        return self.header("x-amzn-RequestId")

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def query_error(self) -> dict[str, str]:
        """Fields of an awsQuery `<ErrorResponse>` body; fails if the body is not one."""
        return parse_query_error(self.body)

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, headers={self.headers}, body={self.body[:2000]!r})"


def http_request(method: str, url: str, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 30) -> HttpResponse:
    """One request through urllib; 4xx/5xx are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return HttpResponse(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_find(elem: ET.Element, *path: str) -> ET.Element | None:
    """Namespace-agnostic child lookup: xml_find(root, 'Error', 'Code')."""
    cur = elem
    for name in path:
        nxt = None
        for child in cur:
            if strip_ns(child.tag) == name:
                nxt = child
                break
        if nxt is None:
            return None
        cur = nxt
    return cur


def xml_text(elem: ET.Element, *path: str) -> str | None:
    found = xml_find(elem, *path)
    return None if found is None else (found.text or "")


def parse_query_error(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert strip_ns(root.tag) == "ErrorResponse", f"not an awsQuery ErrorResponse: {body[:500]!r}"
    error = xml_find(root, "Error")
    assert error is not None, f"ErrorResponse without <Error>: {body[:500]!r}"
    return {
        "Type": xml_text(error, "Type"),
        "Code": xml_text(error, "Code"),
        "Message": xml_text(error, "Message"),
        "RequestId": xml_text(root, "RequestId"),
    }


# --------------------------------------------------------------------------------------------
# SigV4 signing with botocore


def sign(method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None, *,
         service: str, access_key: str, secret_key: str, region: str = REGION,
         at: datetime.datetime | None = None) -> dict[str, str]:
    """Headers (including Authorization and X-Amz-Date) for a request signed by botocore's SigV4Auth.
    `at` (naive UTC) signs as if the clock read that time."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = SigV4Auth(Credentials(access_key, secret_key), service, region)
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
            signer.add_auth(request)
    return dict(request.headers.items())


def form_body(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    import urllib.parse
    return urllib.parse.urlencode(list(params.items()) if isinstance(params, Mapping) else list(params)).encode()


# --------------------------------------------------------------------------------------------
# Raw socket HTTP, for requests urllib cannot make (a body the server refuses part-way).


def raw_http_exchange(host: str, port: int, head: bytes, body_chunks: Iterable[bytes],
                      timeout: float = 30) -> HttpResponse:
    """Send `head` (request line + headers + blank line), then stream `body_chunks` from a
    background thread while reading the response, so a server that answers (e.g. 413) and
    closes before reading the whole body is still heard."""
    sock = socket.create_connection((host, port), timeout=timeout)
    send_error: list[BaseException] = []

    def sender() -> None:
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError as err:  # the server stopped reading: expected for refused bodies
            send_error.append(err)

    try:
        sock.sendall(head)
        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete response within {timeout}s; got {buf[:500]!r}")
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            buf += data
            response = _try_parse_response(buf, eof=not data)
            if response is not None:
                return response
            if not data:
                raise ConnectionError(f"connection closed before a complete response; got {buf[:500]!r}")
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def _try_parse_response(buf: bytes, eof: bool) -> HttpResponse | None:
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = buf[end + 4:]
        if 100 <= status < 200:  # interim response (100 Continue): skip it
            buf = rest
            continue
        if "content-length" in headers:
            n = int(headers["content-length"])
            return HttpResponse(status, headers, rest[:n]) if len(rest) >= n else None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, pos = b"", 0
            while True:
                line_end = rest.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(rest[pos:line_end].split(b";")[0], 16)
                if size == 0:
                    return HttpResponse(status, headers, body)
                if len(rest) < line_end + 2 + size + 2:
                    return None
                body += rest[line_end + 2:line_end + 2 + size]
                pos = line_end + 2 + size + 2
        return HttpResponse(status, headers, rest) if eof else None


# --------------------------------------------------------------------------------------------
# The aws CLI


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        assert self.returncode == 0, f"aws {' '.join(self.args)} failed ({self.returncode}): {self.stderr}"
        return json.loads(self.stdout) if self.stdout.strip() else None


def run_aws_cli(args: list[str], env: Mapping[str, str], timeout: float = 60) -> CliResult:
    if not os.access(AWS_CLI, os.X_OK):
        raise RuntimeError(f"aws CLI not found at {AWS_CLI}: run the tests with the venv's python (./scripts/test.sh)")
    proc = subprocess.run([AWS_CLI, *args, "--output", "json"], env=dict(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------------------------
# The server


@dataclass
class BerthServer:
    """A real `berth server` process on a free loopback port with its own data dir."""

    bin: str
    data_dir: Path
    log_dir: Path
    root_credentials: tuple[str, str] | None = None  # given through BERTH_ROOT_*; else generated
    port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = 0
    _clients: dict = field(default_factory=dict)
    access_key: str = ""
    secret_key: str = ""

    # -- process --------------------------------------------------------------------------

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.listen}"

    def server_env(self) -> dict[str, str]:
        env = clean_environ()
        if self.root_credentials is not None:
            env["BERTH_ROOT_ACCESS_KEY_ID"], env["BERTH_ROOT_SECRET_ACCESS_KEY"] = self.root_credentials
        return env

    def spawn(self, port: int) -> tuple[subprocess.Popen, Path]:
        """Start a `berth server` process on `port` with this data dir, without waiting for it."""
        self.starts += 1
        log = self.log_dir / f"server-{port}-{self.starts}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [self.bin, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(self.data_dir)],
                env=self.server_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return proc, log

    def start(self, timeout: float = 30) -> None:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.port = free_port()
        self.proc, self.log = self.spawn(self.port)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"berth server exited with {self.proc.returncode} before it was healthy:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_berth/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"berth server not healthy within {timeout}s:\n{self.output()}")
            time.sleep(0.05)
        if self.root_credentials is not None:
            self.access_key, self.secret_key = self.root_credentials
        else:
            exports = self.env_exports()
            self.access_key, self.secret_key = exports["AWS_ACCESS_KEY_ID"], exports["AWS_SECRET_ACCESS_KEY"]
        self._clients.clear()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Ask the server to shut down with `sig`; returns its exit code (kills it after `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"berth server did not exit within {timeout}s of {signal.Signals(sig).name}:\n{self.output()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except (AttributeError, OSError):
            return ""

    # -- berth env ------------------------------------------------------------------------

    def berth_env_raw(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.bin, "env", "--data-dir", str(self.data_dir), "--listen", self.listen, *extra],
                              env=self.server_env(), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)

    def env_exports(self, with_listen: bool = True) -> dict[str, str]:
        """What `berth env --data-dir DIR [--listen ADDR]` exports, as evaluated by bash."""
        script = 'eval "$("$0" env --data-dir "$1" ${2:+--listen "$2"})" && env -0'
        env = {k: v for k, v in self.server_env().items() if not k.startswith("AWS_")}
        listen = self.listen if with_listen else ""
        proc = subprocess.run(["bash", "-c", script, self.bin, str(self.data_dir), listen],
                              env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"berth env failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        out = {}
        for item in proc.stdout.split(b"\0"):
            name, sep, value = item.decode(errors="replace").partition("=")
            if sep and name.startswith("AWS_"):
                out[name] = value
        return out

    # -- clients --------------------------------------------------------------------------

    def client(self, service: str, access_key: str | None = None, secret_key: str | None = None,
               session_token: str | None = None, **config):
        """A boto3 client for this server (retries off, so every error is the server's first answer)."""
        key = (service, access_key, secret_key, session_token, tuple(sorted(config.items())))
        if key not in self._clients:
            session = boto3.session.Session(
                aws_access_key_id=access_key or self.access_key,
                aws_secret_access_key=secret_key or self.secret_key,
                aws_session_token=session_token,
                region_name=REGION)
            cfg = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                         **config)
            self._clients[key] = session.client(service, endpoint_url=self.endpoint, config=cfg)
        return self._clients[key]

    def cli_env(self, access_key: str | None = None, secret_key: str | None = None) -> dict[str, str]:
        env = clean_environ()
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
        })
        return env

    def aws(self, *args: str, access_key: str | None = None, secret_key: str | None = None) -> CliResult:
        """Run the aws CLI (`--output json`) against this server."""
        return run_aws_cli(list(args), self.cli_env(access_key, secret_key))

    # -- raw requests ---------------------------------------------------------------------

    def signed(self, method: str = "POST", path: str = "/", body: bytes = b"",
               headers: Mapping[str, str] | None = None, *, service: str = "sts",
               access_key: str | None = None, secret_key: str | None = None,
               at: datetime.datetime | None = None) -> HttpResponse:
        """A raw request signed with botocore's SigV4Auth, sent with urllib."""
        url = self.endpoint + path
        hdrs = {"Content-Type": FORM_CONTENT_TYPE, **(headers or {})}
        signed_headers = sign(method, url, body, hdrs, service=service,
                              access_key=access_key or self.access_key,
                              secret_key=secret_key or self.secret_key, at=at)
        return http_request(method, url, body if method != "GET" else None, signed_headers)

    def query(self, params: Mapping[str, str], **kw) -> HttpResponse:
        return self.signed("POST", "/", form_body(params), **kw)


def shell_quote(args: Iterable[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
