"""Timestamped ifconfig/sysctl: what the daemon ran, and when, to the microsecond.

`install_recorders(world, directory, node, log)` writes `ifconfig` and `sysctl` executables that
behave exactly like the simulator's own (`World.install_bin`): the same interpreter flags, the
same `run_tool` call, so the same start-up cost. They add one thing: when the tool is done, one
line is appended to `log` (O_APPEND, one write(2), so concurrent runs never interleave):

    START END PID TOOL ARGV... EXIT

START is `time.time()` as soon as the interpreter runs the script (after the Python start-up,
which the simulator pays and a C ifconfig on OpenBSD does not: `start_latency()` measures it),
END after the tool has printed its answer. The tool runs in the same process (no extra exec):
a recorder that exec'd the simulator's script would pay a second interpreter start per command.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import carpd_py
from carpd_py.sim.world import World

_SCRIPT = '''#!{python} -IS
"""Recording `{tool}` of simulated node {node} (carpd-py bench): see bench/recorder.py."""
import time
_start = time.time()
import os
import sys
sys.path.insert(0, {root!r})
from carpd_py.sim.cli import run_tool
_code = run_tool({tool!r}, {state!r}, {node!r}, sys.argv[1:])
_line = "%.6f\\t%.6f\\t%d\\t%s\\t%s\\t%d\\n" % (
    _start, time.time(), os.getpid(), {tool!r}, " ".join(sys.argv[1:]), _code
)
_fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(_fd, _line.encode())
os.close(_fd)
sys.stdout.flush()
sys.stderr.flush()
os._exit(_code)  # as the simulator's own script: no interpreter teardown
'''


@dataclass(frozen=True)
class Call:
    """One run of a recorded tool."""

    start: float
    end: float
    pid: int
    tool: str  # "ifconfig" or "sysctl"
    args: tuple[str, ...]
    code: int

    @property
    def is_set(self) -> bool:
        """A command that changes something (advskew, carpnodes, carpdemote)."""
        return self.tool == "ifconfig" and any(
            a in ("advskew", "carpnodes", "carpdemote", "-carpdemote") for a in self.args
        )

    @property
    def is_read(self) -> bool:
        return not self.is_set

    @property
    def is_full_read(self) -> bool:
        """The plain `ifconfig` that reads every interface: one per poll."""
        return self.tool == "ifconfig" and not self.args

    def advskew(self) -> int | None:
        """The value of `ifconfig carpN advskew S`, else None."""
        if self.tool == "ifconfig" and len(self.args) == 3 and self.args[1] == "advskew":
            return int(self.args[2])
        return None


def install_recorders(world: World, directory: Path, node: str, log: Path) -> tuple[str, str]:
    """Write recording `ifconfig` and `sysctl` for `node` into `directory`; their paths."""
    world.read().node(node)  # KeyError for a node that does not exist
    directory.mkdir(parents=True, exist_ok=True)
    root = str(Path(carpd_py.__file__).resolve().parent.parent)
    paths = []
    for tool in ("ifconfig", "sysctl"):
        path = directory / tool
        text = _SCRIPT.format(
            python=sys.executable,
            tool=tool,
            node=node,
            state=str(world.path),
            root=root,
            log=str(log),
        )
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
        paths.append(str(path))
    return paths[0], paths[1]


class CallLog:
    """Reads the recorders' log incrementally (it only grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls: list[Call] = []
        self._offset = 0

    def refresh(self) -> list[Call]:
        """Read the lines appended since the last call; return the new calls."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        self._offset += end
        new = [parse_line(line) for line in data[:end].decode().splitlines() if line]
        self.calls.extend(new)
        return new

    def since(self, t: float) -> Iterator[Call]:
        return (c for c in self.calls if c.start >= t)

    def wait_for(
        self, predicate: Callable[[Call], bool], after: float, timeout: float, step: float = 0.01
    ) -> Call:
        """The first call started at or after `after` that matches; wait for it to be logged."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            found = [c for c in self.since(after) if predicate(c)]
            if found:
                return min(found, key=lambda c: c.start)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching command within {timeout:g}s")
            time.sleep(step)


def parse_line(line: str) -> Call:
    start, end, pid, tool, args, code = line.split("\t")
    return Call(float(start), float(end), int(pid), tool, tuple(args.split()), int(code))


def start_latency(program: str, args: Sequence[str], log: Path, runs: int = 20) -> float:
    """Median seconds from the spawn of a recorder to its first line of Python (the simulated
    executable's interpreter start, which OpenBSD's C ifconfig does not pay)."""
    calls = CallLog(log)
    calls.refresh()
    gaps = []
    for _ in range(runs):
        before = time.time()
        subprocess.run([program, *args], capture_output=True, check=False)
        new = calls.refresh()
        if new:
            gaps.append(new[-1].start - before)
    return statistics.median(gaps) if gaps else float("nan")
