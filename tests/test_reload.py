"""Reading the config: `-n` on what is not a regular file, a reload off the trio loop under a
deadline, and a huge or broken config sent by SIGHUP while the SYNC link fails (issue 9, item 7).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from carpd_py import daemon as daemon_module
from carpd_py.config import Config, ConfigError, parse_config
from carpd_py.daemon import RELOAD_DEADLINE, Daemon
from carpd_py.sim.harness import Harness, console_script, wait_until

from .fakes import RecordingLog

WAIT = 20.0  # seconds; generous: the daemons poll every 0.2 s


def limit_memory() -> None:  # pragma: no cover (runs in the child)
    # Today's code reads /dev/zero until MemoryError: never let that take the machine's memory.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def check(path: str) -> subprocess.CompletedProcess[str]:
    argv = [console_script("carpd-py"), "-n", "-f", path]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, check=False, preexec_fn=limit_memory
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "cannot read: a FIFO, not a regular file"),
        ("/dev/zero", "cannot read: a character device, not a regular file"),
        ("directory", "cannot read: Is a directory"),
    ],
)
def test_check_of_what_is_not_a_regular_file_exits_1_at_once(
    tmp_path: Path, kind: str, message: str
) -> None:
    if kind == "fifo":
        path = str(tmp_path / "carpd-py.conf")
        os.mkfifo(path)  # nobody ever writes: a read would wait forever
    elif kind == "directory":
        path = str(tmp_path)
    else:
        path = kind
    done = check(path)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"{path}: {message}\n")


def test_check_prints_at_most_50_problems_then_how_many_more(tmp_path: Path) -> None:
    path = tmp_path / "carpd-py.conf"
    path.write_text("".join(f"bogus{i} = 1\n" for i in range(5000)))
    done = check(str(path))
    lines = done.stderr.splitlines()
    assert done.returncode == 1
    assert len(lines) == 51
    assert lines[0] == f"{path}: bogus0: unknown key"
    assert lines[-1] == f"{path}: and 4950 more problems"


# --- the reload runs in a thread, under a deadline ------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    path = tmp_path / "carpd-py.conf"
    path.write_text("")
    config = replace(parse_config("", str(path)), state_file=str(tmp_path / "state.json"))
    return Daemon(config, RecordingLog())


async def test_a_slow_parse_never_stops_the_loop(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    waited: list[bool] = []

    def slow_load(path: str) -> Config:
        waited.append(release.wait(10))  # set by a trio task: only if the loop runs meanwhile
        return parse_config("interval = 2.0\n", path)

    monkeypatch.setattr(daemon_module, "load_config", slow_load)
    ticks = 0

    async def loop_goes_on() -> None:
        nonlocal ticks
        for _ in range(3):
            await trio.sleep(0.01)
            ticks += 1
        release.set()

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop_goes_on)
            new, problems = await daemon.check_reload()
    assert (ticks, waited, problems) == (3, [True], [])
    assert new is not None
    assert new.interval == 2.0


async def test_a_parse_past_the_deadline_keeps_the_old_config(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    release = threading.Event()

    def stuck(path: str) -> Config:
        release.wait(30)
        raise ConfigError([f"{path}: too late"])

    monkeypatch.setattr(daemon_module, "load_config", stuck)
    start = trio.current_time()
    try:
        new, problems = await daemon.check_reload()
    finally:
        release.set()
    assert new is None
    assert problems == [f"{daemon.config.path}: cannot check: not done within {RELOAD_DEADLINE:g}s"]
    assert trio.current_time() - start == pytest.approx(RELOAD_DEADLINE)


# --- end to end: SIGHUP with a huge or broken config while the SYNC link fails ----------------


def test_a_huge_or_broken_config_by_sighup_is_refused_and_the_node_still_demotes(
    pair: Harness,
) -> None:
    pair.start("A")
    node = pair.nodes["A"]
    assert node.process is not None
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    good = node.config_path.read_text()

    # 5,000 unknown keys: refused, the problems logged once, capped at 50 and a count.
    node.config_path.write_text(good + "".join(f"bogus{i} = 1\n" for i in range(5000)))
    node.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "and 4950 more problems" in node.log(), WAIT, "the capped problems")
    assert node.log().count("reload failed") == 51

    # 30,000 targets (about 480 KB): refused at once as too large, while the SYNC link fails.
    targets = ", ".join(f'"10.{i // 65536}.{i // 256 % 256}.{i % 256}"' for i in range(30000))
    node.config_path.write_text(good + f'\n[[upstream]]\nname = "isp"\ntargets = [{targets}]\n')
    node.process.send_signal(signal.SIGHUP)
    pair.world.set_link("A", "em2", up=False)
    wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
    wait_until(lambda: "too large" in node.log(), WAIT, "the refusal")
    assert "at most 131072" in node.log()
    assert "configuration reloaded" not in node.log()
    assert node.process.poll() is None
