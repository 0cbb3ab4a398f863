"""The state file: JSON, read under a shared lock, changed under an exclusive one.

`STATE.lock` beside the state file is the lock (fcntl.flock, so it is per open file and dies
with the process). A change is written to a temporary file in the same directory, fsynced and
renamed over the state file, so a reader never sees half a file. The event log is a separate
append-only file, `STATE.events` (one JSON object a line), so that reads of the interfaces do
not parse the history; and what each node prints is kept in `STATE.NODE.printed` (see
printed.py), so that a read-only ifconfig or sysctl loads only its own node's few strings,
without the lock (`read_printed`). That file is a cache, rewritten at every change from the
state file: it is written with `marshal` (the interpreter's own, already loaded: the read path
imports neither json, which costs re and enum, nor contextlib nor fcntl). The executables and
whoever changes the world run the same interpreter.
`STATE.commands` (append-only, one JSON object a line) records each command the executables ran
on the write path, with the wall-clock time it was applied (for the lab benchmark).
"""

from __future__ import annotations

import marshal
import os

from .errors import Exit

TYPE_CHECKING = False  # the read path of the executables imports no more than this: printed.py
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from typing import Any

    from .events import SimCommand, SimEvent
    from .state import WorldState


class _Locked:
    """flock on the lock file while the block runs (a class: contextlib is not imported; nor
    is fcntl until a lock is taken, which the read-only executables never do)."""

    __slots__ = ("exclusive", "fd", "path")

    def __init__(self, path: str, *, exclusive: bool) -> None:
        self.path = path
        self.exclusive = exclusive
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl  # noqa: PLC0415

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the descriptor releases the lock


class Store:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.lock_path = self.path + ".lock"
        self.events_path = self.path + ".events"
        self.commands_path = self.path + ".commands"

    def _locked(self, *, exclusive: bool) -> _Locked:
        return _Locked(self.lock_path, exclusive=exclusive)

    def _load_raw(self) -> dict[str, Any]:
        import json  # noqa: PLC0415 (not on the read path)

        try:
            with open(self.path, "rb") as f:
                data: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: no such simulated world") from None
        return data

    def _load(self) -> WorldState:
        from .state import WorldState  # noqa: PLC0415 (not on the read path)

        return WorldState.from_json(self._load_raw())

    def printed_path(self, node: str) -> str:
        return f"{self.path}.{node}.printed"

    def _replace(self, path: str, data: bytes) -> None:
        """Write a temporary file beside `path`, fsync it, rename it over `path`."""
        head, tail = os.path.split(path)
        tmp = os.path.join(head, f".{tail}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _write(self, state: WorldState) -> None:
        import json  # noqa: PLC0415 (not on the read path)

        from .printed import printed_node  # noqa: PLC0415

        due = None if state.due is None else state.wall_time(state.due)
        for name, node in state.nodes.items():
            data = printed_node(node)
            data["due"] = due  # the wall-clock time at which this output may be stale
            self._replace(self.printed_path(name), marshal.dumps(data))
        self._replace(self.path, json.dumps(state.to_json(), separators=(",", ":")).encode())

    def _append_events(self, events: list[SimEvent]) -> None:
        if not events:
            return
        import json  # noqa: PLC0415 (not on the read path)

        lines = "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in events)
        fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, lines.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_printed(self, node: str) -> dict[str, Any]:
        """What one node prints (see printed.py); KeyError for a node the world lacks.

        Without the lock: the file is replaced by rename, so this reads the whole snapshot
        of the last transaction that committed, never half of one, and does not queue behind
        one under way (as an ioctl answers with the state before a change it races)."""
        try:
            with open(self.printed_path(node), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"{self.path}: no such simulated world") from None
            raise KeyError(node) from None
        try:
            data = marshal.loads(raw)  # noqa: S302 (our own cache, written beside the world)
        except (EOFError, ValueError, TypeError):
            data = None
        if not isinstance(data, dict):
            raise ValueError(f"{self.printed_path(node)}: not what this simulator writes")  # noqa: TRY004
        return data

    def read(self) -> WorldState:
        """A consistent copy of the world, for reading only."""
        with self._locked(exclusive=False):
            return self._load()

    def transaction(self) -> AbstractContextManager[tuple[WorldState, list[SimEvent]]]:
        """Read, let the caller change the world and add events, write it all back.

        The write happens even when the body raises `Exit` (a command that failed half way:
        what its earlier ioctls did stays done, as on the real system); any other exception
        discards the change.
        """
        from contextlib import contextmanager  # noqa: PLC0415 (not on the read path)

        return contextmanager(self._transaction)()

    def _transaction(self) -> Iterator[tuple[WorldState, list[SimEvent]]]:
        from . import rtemit  # noqa: PLC0415 (not on the read path)

        with self._locked(exclusive=True):
            state = self._load()
            before = rtemit.snapshot(state)
            events: list[SimEvent] = []
            try:
                yield state, events
            except Exit:
                self._append_events(events)
                self._write(state)
                rtemit.deliver(before, rtemit.snapshot(state), state)
                raise
            self._append_events(events)
            self._write(state)
            rtemit.deliver(before, rtemit.snapshot(state), state)

    def create(self, state: WorldState, events: list[SimEvent]) -> None:
        """Write a new world, replacing any old one and its event log."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with self._locked(exclusive=True):
            for log in (self.events_path, self.commands_path):
                with open(log, "wb"):
                    pass  # a new, empty log
            head, tail = os.path.split(self.path)
            for name in os.listdir(head or "."):  # the printed files of an older world
                if name.startswith(f"{tail}.") and name.endswith(".printed"):
                    os.unlink(os.path.join(head, name))
            self._append_events(events)
            self._write(state)

    def events(self) -> list[SimEvent]:
        import json  # noqa: PLC0415 (not on the read path)

        from .events import SimEvent  # noqa: PLC0415

        with self._locked(exclusive=False):
            try:
                with open(self.events_path, "rb") as f:
                    return [SimEvent.from_json(json.loads(line)) for line in f if line.strip()]
            except FileNotFoundError:
                return []

    def events_from(self, offset: int) -> tuple[list[SimEvent], int]:
        """Whole lines of the event log after byte `offset`, and where they end."""
        import json  # noqa: PLC0415 (not on the read path)

        from .events import SimEvent  # noqa: PLC0415

        with self._locked(exclusive=False):
            try:
                with open(self.events_path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                return [], offset
        end = data.rfind(b"\n") + 1
        lines = data[:end].splitlines()
        return [
            SimEvent.from_json(json.loads(line)) for line in lines if line.strip()
        ], offset + end

    def log_command(self, when: float, node: str, argv: list[str], code: int) -> None:
        """Append one line to `STATE.commands` (O_APPEND: whole lines, no lock, no fsync)."""
        import json  # noqa: PLC0415 (not on the read path)

        line = json.dumps(
            {"time": when, "node": node, "argv": argv, "code": code}, separators=(",", ":")
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(self.commands_path, flags, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def commands(self) -> list[SimCommand]:
        import json  # noqa: PLC0415 (not on the read path)

        from .events import SimCommand  # noqa: PLC0415

        try:
            with open(self.commands_path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(SimCommand.from_json(json.loads(line)))
            except ValueError:
                continue  # a line being written right now
        return out
