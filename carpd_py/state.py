"""The durable state file: carpd-py's memory across restarts, crashes and SIGKILL.

Written atomically and durably (temp file in the same directory, fsync, rename, fsync of the
directory) before every change carpd-py makes to the host, so a baseline is never lost.
The JSON form is versioned and readable by people:

    {"version": 1, "boot_time": 1764036000.0,
     "demoted": true, "since": 1764036100.5, "reasons": ["sync"], "maintenance": false,
     "vhids": [{"interface": "carp0", "vhid": 10, "baseline": 0, "target": 240, "seen": 240,
                "sent": null}],
     "refused": [], "share": 0, "share_target": 0, "share_pending": 0,
     "share_counter_before": null}
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .decide import Memory, VhidRecord, vhid_map

VERSION = 1


class StateError(Exception):
    """The state file exists but cannot be used; the message says why."""


@dataclass(frozen=True)
class Loaded:
    memory: Memory
    boot_time: float | None  # the boot the memory was written in; None: a fresh file
    note: str | None = None  # something the operator must hear about (a file set aside)


def to_json(memory: Memory, boot_time: float) -> dict[str, Any]:
    return {
        "version": VERSION,
        "boot_time": boot_time,
        "demoted": memory.demoted,
        "since": memory.since,
        "reasons": list(memory.reasons),
        "maintenance": memory.maintenance,
        "vhids": [
            {
                "interface": i,
                "vhid": v,
                "baseline": r.baseline,
                "target": r.target,
                "seen": r.seen,
                "sent": r.sent,
            }
            for (i, v), r in sorted(memory.vhids.items())
        ],
        "refused": [{"interface": i, "vhid": v} for i, v in sorted(memory.refused)],
        "share": memory.share,
        "share_target": memory.share_target,
        "share_pending": memory.share_pending,
        "share_counter_before": memory.share_counter_before,
    }


def _opt_int(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise StateError(f"{key}: expected an integer, got {value!r}")
    return value


def _int(doc: dict[str, Any], key: str) -> int:
    value = _opt_int(doc, key)
    if value is None:
        raise StateError(f"{key}: missing")
    return value


def _vhid(doc: dict[str, Any]) -> int:
    value = _int(doc, "vhid")
    if not 1 <= value <= 255:
        raise StateError(f"vhid: {value} is not in 1..255")
    return value


def _advskew(doc: dict[str, Any], key: str, *, required: bool = True) -> int | None:
    value = _opt_int(doc, key)
    if value is None:
        if required:
            raise StateError(f"{key}: missing")
        return None
    if not 0 <= value <= 254:
        raise StateError(f"{key}: advskew {value} is not in 0..254")
    return value


def from_json(doc: Any) -> tuple[Memory, float | None]:
    """The memory in a parsed state document; StateError when it is not one of ours."""
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise StateError(f"not a version {VERSION} carpd-py state document")
    try:
        vhids: dict[tuple[str, int], VhidRecord] = {}
        for v in doc.get("vhids", []):
            key = (str(v["interface"]), _vhid(v))
            vhids[key] = VhidRecord(
                _int(v, "baseline"), _int(v, "target"), _opt_int(v, "seen"), _opt_int(v, "sent")
            )
            for name in ("baseline", "target", "seen", "sent"):
                _advskew(v, name, required=name in ("baseline", "target"))
        refused = doc.get("refused", [])
        since = doc.get("since")
        boot = doc.get("boot_time")
        memory = Memory(
            demoted=bool(doc.get("demoted", False)),
            since=float(since) if since is not None else None,
            reasons=tuple(str(r) for r in doc.get("reasons", [])),
            maintenance=bool(doc.get("maintenance", False)),
            vhids=vhid_map(vhids),
            refused=frozenset((str(r["interface"]), _vhid(r)) for r in refused),
            share=_opt_int(doc, "share") or 0,
            share_target=_opt_int(doc, "share_target") or 0,
            share_pending=_opt_int(doc, "share_pending") or 0,
            share_counter_before=_opt_int(doc, "share_counter_before"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"malformed: {exc!r}") from None
    return memory, float(boot) if boot is not None else None


MAX_SIZE = 4 * 1024 * 1024  # bytes; a state file with every possible vhid is a few hundred KiB


class StatePathError(StateError):
    """The state_file path names something that can never be a state file (a directory):
    a configuration error, not a bad file to set aside."""


def check_path(path: str) -> str | None:
    """A problem with the state_file path itself, for `carpd-py -n` and the start-up."""
    if os.path.isdir(path):
        return f"state_file: {path} is a directory; it must name a file"
    return None


def _read(path: str) -> bytes | None:
    """The bytes of the state file; None when there is none. StatePathError for a
    directory; StateError for anything that is not a readable regular file of a sane size
    (opened without blocking: a FIFO must not hang the start-up)."""
    problem = check_path(path)
    if problem is not None:
        raise StatePathError(problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise StatePathError(f"state_file: {path} is a directory; it must name a file")
        if not stat.S_ISREG(st.st_mode):
            raise StateError("not a regular file")
        if st.st_size > MAX_SIZE:
            raise StateError(f"too large ({st.st_size} bytes, at most {MAX_SIZE})")
        chunks = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_SIZE:
                raise StateError(f"too large (more than {MAX_SIZE} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise StateError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def load(path: str) -> Loaded:
    """Read the state file. Missing: a fresh memory. Unusable: set aside, fresh memory, note.

    Setting a bad file aside (never overwriting it) keeps whatever it held for the operator;
    a fresh memory is safe because an advskew found at or above the demoted value with no
    record is refused, never adopted as a baseline. Whatever the file holds (bytes that are
    not UTF-8, JSON nested past the parser's depth, a FIFO, a device), it is set aside: only a
    directory at the path raises (StatePathError), as a configuration error.
    """
    try:
        data = _read(path)
        if data is None:
            return Loaded(Memory(), None)
        memory, boot = from_json(json.loads(data.decode("utf-8")))
        return Loaded(memory, boot)
    except StatePathError:
        raise
    except (ValueError, StateError, RecursionError, MemoryError) as exc:
        why = str(exc) if isinstance(exc, StateError) else _short(exc)
    aside = f"{path}.bad-{int(time.time())}"
    try:
        os.replace(path, aside)
    except OSError as exc:
        return Loaded(
            Memory(),
            None,
            f"state file {path} unusable ({why}); cannot move it aside "
            f"({exc.strerror or exc}): it is replaced at the first write",
        )
    return Loaded(Memory(), None, f"state file {path} unusable ({why}); moved to {aside}")


def _short(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large to parse"
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def save(path: str, memory: Memory, boot_time: float) -> None:
    """Write atomically and durably: after this returns, a crash cannot lose the memory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = json.dumps(to_json(memory, boot_time), indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
