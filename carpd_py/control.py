"""The control socket: how `carpctl` talks to the running daemon.

A unix stream socket at `[control] socket`, mode 0600 from the moment it exists (bound under
umask 077), owned by the daemon's user. One JSON request line per connection, one JSON
response line, then close:

    {"cmd": "status"}                       -> {"ok": true, ...the status document...}
    {"cmd": "maintenance", "on": true}      -> {"ok": true, "maintenance": true, ...}
    {"cmd": "reload"}                       -> {"ok": true, ...}
    {"cmd": "verify"}                       -> {"ok": true, "local": REPORT, "peer": REPORT,
                                                "document": the last checks' document}
    anything else, or a handler's refusal   -> {"ok": false, "error": "..."}

A request is at most MAX_REQUEST bytes, a connection lives at most DEADLINE seconds and is
closed when it sends nothing for IDLE seconds, and at most MAX_CLIENTS are open at once (one
more is answered {"ok": false, "error": "busy: ..."} and closed at once): so a stuck or
hostile client never holds anything, and idle connections can never take the descriptors
the poll needs for its own commands and probes. Connections are served concurrently.
At start an existing socket that answers means another daemon: refuse. One that does not
answer is stale: remove it. Anything else at the path (a file, a symlink, a directory) is
never ours to remove: refuse. On exit the socket is removed if it is still the one we made.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .logsetup import Log
from .status import status_document
from .supervisor import Supervisor
from .verifier import Verifier
from .verify import summary as verify_summary

MAX_REQUEST = 64 * 1024  # bytes in one request line, newline excluded
DEADLINE = 5.0  # seconds one connection may take, from accept to close
IDLE = 2.0  # seconds a connection may send nothing before it is closed
MAX_CLIENTS = 16  # connections served at once; one more is told "busy" and closed
PROBE_TIMEOUT = 1.0  # seconds to see whether an existing socket answers
BACKLOG = 64  # connections waiting to be accepted; each is served in milliseconds
# accept() failures that mean "out of resources now", not "broken": wait and go on.
_ACCEPT_CAPACITY = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class ControlSocketError(Exception):
    """The control socket cannot be set up; the message says why, for the operator."""


class RequestError(Exception):
    """Raised by a handler to refuse a request: answered as {"ok": false, "error": message}."""


class ControlHandler(Protocol):
    """What the daemon does for each request. Each returns the body of the answer (merged
    into {"ok": true}); raising RequestError answers {"ok": false, "error": str(exc)}."""

    def status(self) -> dict[str, Any]: ...
    def maintenance(self, on: bool) -> dict[str, Any]: ...
    async def reload(self) -> dict[str, Any]: ...
    def verify(self) -> dict[str, Any]: ...


class SupervisorControl:
    """A ControlHandler over a Supervisor; `reload` is the daemon's (re-read the config and
    call `Supervisor.reconfigure`), raising RequestError when the new config is refused."""

    def __init__(
        self,
        supervisor: Supervisor,
        reload: Callable[[], Awaitable[dict[str, Any]]],
        verifier: Verifier | None = None,
    ) -> None:
        self.supervisor = supervisor
        self._reload = reload
        self.verifier = verifier

    def status(self) -> dict[str, Any]:
        doc = status_document(self.supervisor.status)
        last = self.verifier.last if self.verifier is not None else None
        doc["verify"] = None
        if last is not None:
            problems = verify_summary(last.document)
            doc["verify"] = {"result": last.document["result"], "problems": problems}
        return doc

    def verify(self) -> dict[str, Any]:
        if self.verifier is None:
            return {"local": None, "peer": None, "document": None}
        return self.verifier.answer()

    def maintenance(self, on: bool) -> dict[str, Any]:
        changed = self.supervisor.memory.maintenance != on
        try:
            self.supervisor.set_maintenance(on)
        except OSError as exc:
            where = self.supervisor.config.state_file
            raise RequestError(
                f"cannot save the state file {where}: {exc.strerror or exc}"
            ) from None
        return {"maintenance": on, "changed": changed, "demoted": self.supervisor.memory.demoted}

    async def reload(self) -> dict[str, Any]:
        return await self._reload()


# --- setting up and taking down the socket ----------------------------------------------


async def _answers(path: str) -> bool:
    """Whether something accepts connections on the unix socket at `path`."""
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        try:
            with trio.fail_after(PROBE_TIMEOUT):
                await probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except trio.TooSlowError:
            return True  # a listener that does not accept is still a listener
        except OSError as exc:
            raise ControlSocketError(f"cannot check {path}: {exc.strerror or exc}") from None
    return True


def _check_directory(path: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ControlSocketError(f"cannot create control socket {path}: no directory {directory}")


async def _clear(path: str) -> None:
    """Make room at `path`, or refuse: see the module docstring."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlSocketError(f"cannot check {path}: {exc.strerror or exc}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket: refusing to replace it")
    if await _answers(path):
        raise ControlSocketError(f"another carpd-py is running on {path}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ControlSocketError(
            f"cannot remove stale socket {path}: {exc.strerror or exc}"
        ) from None


def _bind(path: str) -> tuple[trio.socket.SocketType, tuple[int, int]]:
    """A listening socket at `path`, mode 0600 from the start; with its (st_dev, st_ino)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Synchronous on purpose: no other trio task may run (and, say, spawn a hook that
        # inherits the umask) while the umask is narrowed.
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        st = os.lstat(path)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ControlSocketError(
            f"cannot create control socket {path}: {exc.strerror or exc}"
        ) from None
    return trio.socket.from_stdlib_socket(sock), (st.st_dev, st.st_ino)


def _remove(path: str, ident: tuple[int, int]) -> None:
    """Remove the socket at `path` if it is still the one we made."""
    try:
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == ident:
            os.unlink(path)
    except OSError:
        pass


# --- one connection ----------------------------------------------------------------------


class _TooLarge(Exception):
    pass


class _Idle(Exception):
    pass


async def _receive_line(stream: trio.SocketStream, limit: int, idle: float) -> bytes:
    """The first line (without its newline), or what came before EOF; _TooLarge past limit,
    _Idle when nothing comes for `idle` seconds."""
    buf = bytearray()
    while True:
        chunk: bytes | None = None
        with trio.move_on_after(idle):
            chunk = await stream.receive_some(limit + 1 - len(buf))
        if chunk is None:
            raise _Idle
        if not chunk:
            return bytes(buf)
        start = len(buf)
        buf += chunk
        end = buf.find(b"\n", start)
        if end >= 0:
            return bytes(buf[:end])
        if len(buf) > limit:
            raise _TooLarge


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _show(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:36] + "..."


async def answer(line: bytes, handler: ControlHandler, log: Log) -> dict[str, Any]:
    """The answer to one request line; never raises for anything the client sent."""
    if not line.strip():
        return _error("empty request")
    try:
        request = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return _error("request is not UTF-8")
    except (ValueError, RecursionError):
        return _error("request is not JSON")
    if not isinstance(request, dict):
        return _error('request must be a JSON object like {"cmd": "status"}')
    cmd = request.get("cmd")
    try:
        if cmd == "status":
            result = handler.status()
        elif cmd == "maintenance":
            on = request.get("on")
            if not isinstance(on, bool):
                return _error('maintenance needs "on": true or false')
            result = handler.maintenance(on)
        elif cmd == "reload":
            result = await handler.reload()
        elif cmd == "verify":
            result = handler.verify()
        elif cmd is None:
            return _error('request has no "cmd"')
        else:
            return _error(f"unknown command {_show(cmd)} (status, maintenance, reload, verify)")
    except RequestError as exc:
        return _error(str(exc))
    except Exception as exc:  # a bug in the handler: answer, log, keep serving
        log.error("control request failed", cmd=cmd, error=repr(exc))
        return _error(f"internal error: {exc!r}")
    return {"ok": True, **result}


def _encode(response: dict[str, Any], log: Log) -> bytes:
    try:
        text = json.dumps(response, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        log.error("control answer is not JSON", error=repr(exc))
        text = json.dumps(_error("internal error: the answer is not JSON"))
    return text.encode() + b"\n"


@dataclass(frozen=True)
class _Limits:
    deadline: float
    idle: float
    max_request: int
    max_clients: int


async def _serve_one(
    stream: trio.SocketStream, handler: ControlHandler, limits: _Limits, log: Log
) -> None:
    async with stream:
        with trio.move_on_after(limits.deadline) as scope:
            try:
                try:
                    line = await _receive_line(stream, limits.max_request, limits.idle)
                except _TooLarge:
                    response = _error(f"request too large (more than {limits.max_request} bytes)")
                except _Idle:
                    log.debug("control client dropped: idle", idle=limits.idle)
                    return
                else:
                    response = await answer(line, handler, log)
                await stream.send_all(_encode(response, log))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away; nothing to do
        if scope.cancelled_caught:
            log.debug(
                "control client dropped: no request within the deadline", deadline=limits.deadline
            )


async def _refuse_busy(stream: trio.SocketStream, limits: _Limits) -> None:
    """One connection too many: say so (never waiting on the client) and close."""
    busy = _error(f"busy: {limits.max_clients} control connections open, try again")
    with trio.move_on_after(0.1):  # a fresh socket takes one line at once; never wait long
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(json.dumps(busy).encode() + b"\n")
    with trio.CancelScope(shield=True):
        await stream.aclose()


# --- the server ----------------------------------------------------------------------------


async def serve_control(
    path: str,
    handler: ControlHandler,
    *,
    deadline: float = DEADLINE,
    idle: float = IDLE,
    max_request: int = MAX_REQUEST,
    max_clients: int = MAX_CLIENTS,
    log: Log | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket at `path` until cancelled; started once it accepts.

    Raises ControlSocketError (before `started`) when the socket cannot be set up.
    """
    log = log if log is not None else Log()
    limits = _Limits(deadline, idle, max_request, max_clients)
    _check_directory(path)
    await _clear(path)
    sock, ident = _bind(path)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            starved = False  # out of descriptors or memory: logged once, until it passes
            busy = False  # MAX_CLIENTS open: logged once, until one is accepted again
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY:
                        raise
                    if not starved:
                        log.error("control socket: cannot accept", error=exc.strerror)
                    starved = True
                    await trio.sleep(0.1)
                    continue
                starved = False
                if len(nursery.child_tasks) >= limits.max_clients:
                    if not busy:
                        log.warning("control socket: too many connections, refusing more",
                                    open=limits.max_clients)  # fmt: skip
                    busy = True
                    await _refuse_busy(stream, limits)
                    continue
                busy = False
                nursery.start_soon(_serve_one, stream, handler, limits, log)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
            _remove(path, ident)
