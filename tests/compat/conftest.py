"""Fixtures for berth's compatibility tests.

The tests drive a real `berth server` process ($BERTH_BIN, built by ./scripts/test.sh) with real
AWS clients: boto3 in-process and the aws CLI (v1) from the same virtualenv.

Fixtures:
- `berth`: one server for the whole session, root credentials fixed through BERTH_ROOT_* (as CI
  would set them). It must shut down cleanly: SIGTERM, exit code 0 within 10 s.
- `berth_factory`: makes more servers (own data dir, generated root key) for restart tests; each
  is killed at the end of its test if the test left it running.
"""

from __future__ import annotations

import os
import signal

import pytest

from berthcompat import AWS_CLI, ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, BerthServer

# Nothing from the developer's own AWS setup may leak into in-process boto3 clients.
for _name in [n for n in os.environ if n.startswith("AWS_")]:
    del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _berth_bin() -> str:
    path = os.environ.get("BERTH_BIN")
    if not path:
        raise pytest.UsageError(
            "BERTH_BIN is not set: point it at the berth binary (BERTH_BIN=target/debug/berth) "
            "or run ./scripts/test.sh, which builds it and sets it")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise pytest.UsageError(f"BERTH_BIN={path} is not an executable file")
    return os.path.abspath(path)


def pytest_configure(config):
    _berth_bin()
    if not os.access(AWS_CLI, os.X_OK):
        raise pytest.UsageError(f"the aws CLI is not installed next to this Python ({AWS_CLI}); "
                                "run the tests with .venv/bin/python (./scripts/test.sh sets it up)")


@pytest.fixture(scope="session")
def berth_bin() -> str:
    return _berth_bin()


@pytest.fixture(scope="session")
def berth(berth_bin, tmp_path_factory):
    """The shared server. Yields a BerthServer: .endpoint, .access_key, .secret_key, .data_dir,
    .client(service), .aws(*args), .signed(...), .query(params)."""
    base = tmp_path_factory.mktemp("berth-shared")
    server = BerthServer(bin=berth_bin, data_dir=base / "data", log_dir=base,
                         root_credentials=(ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY))
    server.data_dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            code = server.stop(signal.SIGTERM, timeout=10)
            assert code == 0, f"berth server exited with {code} after SIGTERM:\n{server.output()}"
        else:
            pytest.fail(f"berth server died during the tests (exit {server.proc.returncode}):\n{server.output()}")


@pytest.fixture
def berth_factory(berth_bin, tmp_path):
    """Make extra servers: berth_factory(name) -> unstarted BerthServer with a fresh data dir and
    no root override (berth generates and stores the root key)."""
    made: list[BerthServer] = []

    def make(name: str = "extra", root_credentials=None) -> BerthServer:
        base = tmp_path / name
        base.mkdir()
        # The data dir does not exist yet: berth creates it, as it would under XDG_DATA_HOME.
        server = BerthServer(bin=berth_bin, data_dir=base / "data", log_dir=base,
                             root_credentials=root_credentials)
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()
