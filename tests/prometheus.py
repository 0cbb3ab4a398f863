"""A real Prometheus server for tests (Debian's `prometheus` package): start, query, stop.

Outside CI a missing binary skips the test; in CI (CI=true) it fails it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"{name} is missing: CI must install the Debian package prometheus")
        pytest.skip(f"{name} is not installed (Debian package prometheus)")
    return path


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(port: int, path: str, **params: str) -> Any:
    """The `data` of one Prometheus HTTP API call; None while it does not answer."""
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            document = json.load(response)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    assert document["status"] == "success", document
    return document["data"]


def poll(fn: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:g}s")
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class Prometheus:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, q: str) -> list[Any] | None:
        """The result vector of an instant query; None while empty or not answering."""
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
        data = api(self.port, "/api/v1/query", query=q)
        return data["result"] or None if data is not None else None

    def alert(self, name: str) -> dict[str, Any] | None:
        for alert in (api(self.port, "/api/v1/alerts") or {}).get("alerts", []):
            if alert["labels"]["alertname"] == name:
                return dict(alert)
        return None


@contextmanager
def running_prometheus(
    work: Path, targets: Sequence[str], rules: Path | None = None
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` ("127.0.0.1:PORT") every second as job carpd-py."""
    binary = tool("prometheus")
    port = free_port()
    config = work / "prometheus.yml"
    rule_files = f"rule_files:\n  - {json.dumps(str(rules))}\n" if rules else ""
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        + rule_files
        + "scrape_configs:\n  - job_name: carpd-py\n    static_configs:\n"
        + f"      - targets: {json.dumps(list(targets))}\n"
    )
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Prometheus(port, proc, log_path)
    finally:
        stop_process(proc)
