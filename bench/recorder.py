"""Timestamped ifconfig/sysctl: what the daemon ran, and when, to the microsecond.

`install_recorders(world, directory, node, log)` writes `ifconfig` and `sysctl` executables that
behave exactly like the simulator's own (`World.install_bin`): the same interpreter flags, the
same `run_tool` call, so the same start-up cost. They add one thing: when the tool is done, one
line is appended to `log` (O_APPEND, one write(2), so concurrent runs never interleave):

    START END PID TOOL ARGV... EXIT EXEC

EXEC is the moment the daemon's exec reached the command: the recorder is a small C program
(bench/front.c, compiled once per run with `cc`) that reads the wall clock first thing, puts it
in $CARPD_BENCH_EXEC and execs the recording script `NAME.py` beside it. START is
`time.time()` as soon as the interpreter runs that script (after the Python start-up, which
the simulator pays and a C ifconfig on OpenBSD does not: `start_latency()` measures it), END
after the tool has printed (and flushed) its answer; the script then appends its line and
leaves with `os._exit`, without the interpreter's teardown, so END is about when the daemon
sees the command end (EOF, exit). The tool runs in the same process as the script (no
further exec). The front adds one execve of a small static program (`front_cost()`, about
half a millisecond), which the command's EXEC does not include (the clock is read after it).

Without a C compiler the script is installed as the command itself, as before, and EXEC is
"nan": `Call.exec_time` is then START less the interpreter start measured by
`start_latency()`.
"""

from __future__ import annotations

import math
import shutil
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
sys.stdout.flush()  # the answer written before END is read
sys.stderr.flush()
_line = "%.6f\\t%.6f\\t%d\\t%s\\t%s\\t%d\\t%s\\n" % (
    _start, time.time(), os.getpid(), {tool!r}, " ".join(sys.argv[1:]), _code,
    os.environ.get("CARPD_BENCH_EXEC", "nan"),
)
_fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(_fd, _line.encode())
os.close(_fd)
os._exit(_code)  # no interpreter teardown: END is (within a write) when the process exits
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
    exec_time: float = math.nan  # the daemon's exec reached the front (nan: no front)

    def launched(self, lead: float = 0.0) -> float:
        """When the daemon exec'd the command: the front's clock, else START less `lead`
        (the interpreter start, `start_latency()`)."""
        return self.start - lead if math.isnan(self.exec_time) else self.exec_time

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


FRONT_SOURCE = Path(__file__).resolve().parent / "front.c"


def build_front(directory: Path) -> Path | None:
    """Compile bench/front.c into `directory` (static if the libc allows); None without cc."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "front"
    if out.exists():
        return out
    for flags in (["-static"], []):
        done = subprocess.run(
            [compiler, "-O2", *flags, "-o", str(out), str(FRONT_SOURCE)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return out
    return None


def install_recorders(
    world: World, directory: Path, node: str, log: Path, *, front: bool = True
) -> tuple[str, str]:
    """Write recording `ifconfig` and `sysctl` for `node` into `directory`; their paths.

    With `front` (and a C compiler), each command is bench/front.c's program, which stamps
    the exec time and runs `NAME.py`, the recording script; else the script itself."""
    world.read().node(node)  # KeyError for a node that does not exist
    directory.mkdir(parents=True, exist_ok=True)
    root = str(Path(carpd_py.__file__).resolve().parent.parent)
    binary = build_front(directory.parent / "front") if front else None
    paths = []
    for tool in ("ifconfig", "sysctl"):
        path = directory / tool
        script = path.with_name(f"{tool}.py") if binary is not None else path
        text = _SCRIPT.format(
            python=sys.executable,
            tool=tool,
            node=node,
            state=str(world.path),
            root=root,
            log=str(log),
        )
        script.write_text(text, encoding="utf-8")
        script.chmod(0o755)
        if binary is not None:
            shutil.copyfile(binary, path)
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
    start, end, pid, tool, args, code, *rest = line.split("\t")
    launched = float(rest[0]) if rest else math.nan
    return Call(float(start), float(end), int(pid), tool, tuple(args.split()), int(code), launched)


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


def exec_latency(log: Path) -> float:
    """Median seconds from the front's clock (the exec) to the script's first line, over the
    calls logged so far: the simulated tool's interpreter start, as the daemon's commands
    paid it (nan without the front)."""
    calls = CallLog(log)
    calls.refresh()
    gaps = [c.start - c.exec_time for c in calls.calls if not math.isnan(c.exec_time)]
    return statistics.median(gaps) if gaps else math.nan


def front_cost(directory: Path, runs: int = 50) -> float:
    """What the front adds to a command: median spawn-to-exit of the front exec'ing /bin/true
    (as `NAME.py`) less that of a script exec'ing /bin/true directly (nan without cc)."""
    binary = build_front(directory / "front")
    true = shutil.which("true")
    if binary is None or true is None:
        return math.nan
    direct = directory / "direct"
    fronted = directory / "fronted"
    for path in (direct, fronted.with_name("fronted.py")):
        path.write_text(f"#!{true}\n", encoding="utf-8")
        path.chmod(0o755)
    shutil.copyfile(binary, fronted)
    fronted.chmod(0o755)

    def wall(argv: list[str]) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(argv, check=False)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return wall([str(fronted)]) - wall([str(direct)])
