"""Without -d, carpd-py detaches only once it is ready, so that `rcctl start` sees a failure.

Real processes: the installed `carpd-py` console script on the simulated host (harness.py),
started without -d, exactly as rc.subr(8) runs it. The parent must exit 0 only once
everything that can fail at start has been done (the control socket answers at once), and 1
with the reason on stderr when something failed; the daemon it leaves runs in its own
session with stdin, stdout and stderr on /dev/null.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from carpd_py.sim.harness import Harness, console_script, wait_until

DEADLINE = 60.0  # seconds any one command may take


def daemons_of(config: Path) -> list[psutil.Process]:
    """The carpd-py processes started with this config file."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid"]):
        cmdline: list[str] = list(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and str(config) in cmdline:
            found.append(proc)
    # A command the daemon is spawning carries its argv between fork and exec: not a daemon.
    pids = {p.pid for p in found}
    return [p for p in found if p.info["ppid"] not in pids]


def stop_all(config: Path) -> None:
    for proc in daemons_of(config):
        try:
            proc.terminate()
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()
        except psutil.Error:
            pass


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "pair")
    # syslog on a socket nobody listens on: lines are dropped, never printed. A generous
    # command deadline: the first host read runs a simulated ifconfig on a busy machine.
    h.configure(
        "A",
        log={"socket": str(tmp_path / "no-syslog.sock")},
        platform={"command_timeout": 10.0},
    )
    yield h
    stop_all(h.nodes["A"].config_path)


def start(h: Harness) -> subprocess.CompletedProcess[str]:
    """carpd-py -f FILE, without -d, as rc.subr runs it; returns once the parent exits."""
    return subprocess.run(
        [console_script("carpd-py"), "-f", str(h.nodes["A"].config_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,  # both pipes: the run ends only once the child let go of them
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_taken_metrics_port_fails_the_start_with_the_reason(pair: Harness) -> None:
    with taken_port() as sock:
        listen = f"127.0.0.1:{sock.getsockname()[1]}"
        pair.configure("A", metrics={"listen": listen})
        done = start(pair)
    assert done.returncode == 1
    assert done.stdout == ""
    reason = f"cannot listen for metrics on {listen}: Address already in use"
    assert done.stderr == f"carpd-py: {reason}\n"
    assert daemons_of(pair.nodes["A"].config_path) == []
    assert not pair.nodes["A"].socket_path.exists()  # the control socket went with it


def test_the_parent_exits_0_only_once_the_control_socket_answers(pair: Harness) -> None:
    with taken_port() as sock:  # a free port: bound, then let go
        port = sock.getsockname()[1]
    pair.configure("A", metrics={"listen": f"127.0.0.1:{port}"})
    done = start(pair)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # The moment the parent is gone, carpctl gets an answer: no waiting, no retry.
    status = pair.carpctl("A", "status", "--json")
    assert status.returncode == 0, status.stderr
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # and the metrics listener is there

    [daemon] = daemons_of(pair.nodes["A"].config_path)
    assert daemon.pid != os.getpid()
    assert os.getsid(daemon.pid) == daemon.pid  # its own session, no controlling terminal
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{daemon.pid}/fd/{fd}") == os.devnull
    assert daemon.cwd() == "/"

    daemon.send_signal(signal.SIGTERM)
    daemon.wait(15)  # not our child: its status goes to init
    assert not pair.nodes["A"].socket_path.exists()


def test_a_second_daemon_on_the_same_socket_fails_with_the_reason(pair: Harness) -> None:
    node = pair.nodes["A"]
    assert start(pair).returncode == 0
    (first,) = daemons_of(node.config_path)
    # The same config: the state file's lock stops it first, naming the holder.
    second = start(pair)
    assert second.returncode == 1
    assert second.stderr == (
        f"carpd-py: another carpd-py (pid {first.pid}) holds the state file {node.state_path} "
        f"(lock {node.state_path}.lock); stop it first\n"
    )
    # Another state file but the same socket: the socket check stops it.
    pair.configure("A", state_file=str(node.root / "other.json"))
    third = start(pair)
    assert third.returncode == 1
    assert third.stderr == (
        "carpd-py: cannot open the control socket: another carpd-py is running on "
        f"{node.socket_path}\n"
    )
    assert daemons_of(node.config_path) == [first]  # the first one runs on
    assert pair.carpctl("A", "status").returncode == 0


def test_a_host_that_cannot_be_read_fails_the_start(pair: Harness) -> None:
    pair.world.set_fault("A", garbage=True)
    done = start(pair)
    assert done.returncode == 1
    assert done.stderr.startswith("carpd-py: cannot read the host: "), done.stderr
    assert daemons_of(pair.nodes["A"].config_path) == []


def test_with_dash_d_it_stays_in_the_foreground(pair: Harness) -> None:
    proc = pair.start("A")  # the harness runs carpd-py -d
    wait_until(pair.nodes["A"].socket_path.exists, 20, "control socket")
    assert proc.poll() is None
    assert [p.pid for p in daemons_of(pair.nodes["A"].config_path)] == [proc.pid]
    assert pair.stop("A") == 0


# detach() itself, in a child Python: the words the parent can get, and the silence.
CHILD = """
import os, sys, time
from carpd_py.detach import detach
startup = detach({timeout})
if isinstance(startup, int):
    sys.exit(startup)
{child}
"""


def run_child(child: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(timeout=timeout, child=textwrap.dedent(child))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def test_a_child_that_dies_without_a_word_fails_the_start() -> None:
    done = run_child("os._exit(3)")
    assert (done.returncode, done.stderr) == (
        1,
        "carpd-py: it exited with status 3 during start-up, without a word\n",
    )
    killed = run_child("os.kill(os.getpid(), 9)")
    assert killed.stderr == "carpd-py: it was killed by SIGKILL during start-up, without a word\n"


def test_a_child_that_is_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    mark = tmp_path / "pid"
    done = run_child(f"open({str(mark)!r}, 'w').write(str(os.getpid())); time.sleep(60)", 1.0)
    assert (done.returncode, done.stderr) == (1, "carpd-py: not ready within 1s; stopped it\n")
    pid = int(mark.read_text())
    wait_until(lambda: not psutil.pid_exists(pid), 10, "the child is gone")


def test_an_interrupted_wait_stops_the_child(tmp_path: Path) -> None:
    mark = tmp_path / "pid"
    code = CHILD.format(
        timeout=30.0, child=f"open({str(mark)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: mark.exists() and mark.read_text() != "", 10, "the child runs")
    parent.send_signal(signal.SIGINT)  # ^C reaches the parent; the child has its own session
    _, stderr = parent.communicate(timeout=DEADLINE)
    assert (parent.returncode, stderr) == (
        130,
        "carpd-py: interrupted before it was ready; stopped it\n",
    )
    pid = int(mark.read_text())
    wait_until(lambda: not psutil.pid_exists(pid), 10, "the child is gone")


def test_a_failed_start_returns_only_once_the_child_is_gone(tmp_path: Path) -> None:
    mark = tmp_path / "gone"
    # The child lets go of the captured pipes first, so run_child waits for the parent alone.
    done = run_child(
        "null = os.open(os.devnull, os.O_RDWR); os.dup2(null, 1); os.dup2(null, 2)\n"
        f"startup.failed('no luck'); time.sleep(0.5); open({str(mark)!r}, 'w')"
    )
    assert (done.returncode, done.stderr) == (1, "carpd-py: no luck\n")
    assert mark.exists()  # written by the child on its way out, before the parent returned


def test_only_the_first_word_counts() -> None:
    done = run_child("startup.ready(); startup.failed('too late'); time.sleep(0.2)")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    failed = run_child("startup.failed('no luck'); startup.ready()")
    assert (failed.returncode, failed.stderr) == (1, "carpd-py: no luck\n")
