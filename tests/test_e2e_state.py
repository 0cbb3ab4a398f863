"""End to end: the state file under real faults, with real carpd-py processes (issue 9).

A full disk (a tmpfs with a size limit, filled up) and a read-only one (the tmpfs remounted
read-only) need root and mount(8); they are skipped without them, except in CI (CI=true),
where that is a failure. The rest needs nothing but the simulated pair.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from carpd_py.sim.harness import Harness, console_script, wait_until

from .prometheus import free_port

WAIT = 20.0
IN_CI = os.environ.get("CI") == "true"


def carpd(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    argv = [console_script("carpd-py"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own, unmounted afterwards."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("needs root to mount a tmpfs (CI=true: a missing privilege is a failure)")
        pytest.skip("needs root to mount a tmpfs")
    where = tmp_path / "db"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def scrape_port(port: int, name: str) -> float:
    """One sample of the daemon's metrics endpoint."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in the metrics")


def fill(directory: Path) -> Path:
    """Write a file until the file system is full (ENOSPC); return it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f, pytest.raises(OSError) as full:  # noqa: PT012
        while True:
            f.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_state_file_that_cannot_be_written_holds_back_the_demotion_never_the_daemon(
    pair: Harness, tiny_fs: Path, fault: str
) -> None:
    state_file = tiny_fs / "state.json"
    pair.configure("A", state_file=str(state_file))
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    wait_until(state_file.exists, WAIT, "the state file is written")
    if fault == "full":
        filler = fill(tiny_fs)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)

    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: "cannot write the state file" in node.log(), WAIT, "the error is logged")
    line = next(ln for ln in node.log().splitlines() if "cannot write the state file" in ln)
    assert "error   cannot write the state file; holding back" in line
    assert f"file={state_file}" in line
    assert "waiting=" in line
    assert "demote (sync)" in line
    doc = json.loads(pair.carpctl("A", "status", "--json").stdout)
    assert doc["demoted"] is False  # nothing changed that could not be recorded first
    assert pair.advskews("A") == {"carp0": 0, "carp1": 0}
    assert node.process is not None
    assert node.process.poll() is None

    if fault == "full":
        filler.unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    saved = json.loads(state_file.read_text())
    assert saved["demoted"] is True
    assert {v["baseline"] for v in saved["vhids"]} == {0}
    assert "state file written again" in node.log()
    pair.world.set_link("A", "em2", up=True)
    wait_until(lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}, WAIT, "A restored")


def test_the_write_errors_are_counted_in_the_metrics(pair: Harness, tiny_fs: Path) -> None:
    state_file = tiny_fs / "state.json"
    pair.configure("A", state_file=str(state_file), metrics={"listen": f"127.0.0.1:{free_port()}"})
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "metrics url=" in node.log(), WAIT, "metrics")
    port = int(node.log().split("metrics url=http://127.0.0.1:")[1].split("/")[0])
    assert scrape_port(port, "carpd_state_write_errors_total") == 0
    fill(tiny_fs)
    pair.world.set_link("A", "em2", up=False)
    wait_until(
        lambda: scrape_port(port, "carpd_state_write_errors_total") >= 3, WAIT, "errors counted"
    )


def libfaketime() -> str:
    for path in (
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ):
        if os.path.exists(path):
            return path
    if IN_CI:
        pytest.fail("libfaketime is missing: CI must install the Debian package faketime")
    pytest.skip("libfaketime is not installed (Debian package faketime)")


@pytest.mark.parametrize("jump", ["+3600", "-3600"])
def test_a_wall_clock_jump_on_a_real_daemon_leaves_the_hold_down_alone(
    pair: Harness, tmp_path: Path, jump: str
) -> None:
    # libfaketime moves the wall clock of the daemon (and of what it runs) while it runs;
    # the monotonic clock stays real, as the kernel's does when the time is set.
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = dict(
        os.environ,
        LD_PRELOAD=libfaketime(),
        FAKETIME_TIMESTAMP_FILE=str(offset),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    node = pair.nodes["A"]
    pair.configure("A", demote={"hold_down": 8.0})
    argv = [console_script("carpd-py"), "-d", "-f", str(node.config_path)]
    with open(node.log_path, "ab") as log:
        node.process = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    demoted_at = time.monotonic()
    offset.write_text(jump + "\n")  # an hour forward or back, at once
    pair.world.set_link("A", "em2", up=True)
    restored = lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}  # noqa: E731
    waited = wait_until(restored, WAIT, "A restored")
    assert time.monotonic() - demoted_at >= 7.5, f"restored {waited:.1f}s after the jump"
    line = next(ln for ln in node.log().splitlines() if "restoring baselines" in ln)
    demoted_for = float(line.split("demoted_for=")[1].split()[0])
    assert 8.0 <= demoted_for < 8.0 + WAIT


def test_a_state_file_deleted_while_running_is_written_back(pair: Harness) -> None:
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    node.state_path.unlink()
    wait_until(node.state_path.exists, WAIT, "the state file is written back")
    saved = json.loads(node.state_path.read_text())
    assert saved["demoted"] is True
    assert {v["baseline"] for v in saved["vhids"]} == {0}
    wait_until(lambda: "state file missing; written back from memory" in node.log(), WAIT, "logged")


def test_a_second_daemon_on_the_same_state_file_exits_at_once_naming_the_holder(
    pair: Harness,
) -> None:
    first = pair.start("A")
    node = pair.nodes["A"]
    wait_until(node.socket_path.exists, WAIT, "control socket")
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    node.socket_path.unlink()  # the way the two daemons of issue 9 came to run
    second = carpd("-d", "-f", str(node.config_path))
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    assert f"another carpd-py (pid {first.pid}) holds the state file {node.state_path}" in (
        second.stderr
    )
    assert not node.socket_path.exists()  # the second never got as far as the socket
    assert first.poll() is None
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    assert "changed by hand" not in node.log()


def test_the_lock_goes_with_the_process(pair: Harness) -> None:
    pair.start("A")
    node = pair.nodes["A"]
    wait_until(lambda: "notice  started" in node.log(), WAIT, "started")
    assert pair.stop("A", 9) == -9  # SIGKILL: the kernel drops the lock with the process
    again = pair.start("A")
    try:
        wait_until(lambda: node.log().count("notice  started") == 2, WAIT, "started again")
    except TimeoutError:
        raise AssertionError(f"exit {again.poll()}; log:\n{node.log()}") from None


def test_invalid_utf8_in_the_state_file_is_set_aside_and_the_daemon_runs(
    pair: Harness,
) -> None:
    node = pair.nodes["A"]
    node.root.mkdir(parents=True, exist_ok=True)
    node.state_path.write_bytes(b'{"version": 1, "demoted": true, "reasons": ["\xff"]}\n')
    pair.world.ifconfig("A", "carp1", "advskew", "240")  # left demoted by the lost state
    pair.start("A")
    wait_until(lambda: "looks demoted already" in node.log(), WAIT, "carp1 refused")
    assert "state file set aside" in node.log()
    assert len(list(node.root.glob("state.json.bad-*"))) == 1
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A")["carp0"] == 240, WAIT, "carp0 demoted")
    assert node.process is not None
    assert node.process.poll() is None


def test_a_directory_at_the_state_file_path_is_a_configuration_error(pair: Harness) -> None:
    node = pair.nodes["A"]
    pair.configure("A")
    node.state_path.mkdir()
    message = f"state_file: {node.state_path} is a directory; it must name a file"
    check = carpd("-n", "-f", str(node.config_path))
    assert check.returncode == 1
    assert message in check.stderr
    run = carpd("-d", "-f", str(node.config_path))
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr
