"""The control socket (carpd_py.control) and carpctl's client side, over real unix sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from carpd_py import carpctl, state
from carpd_py.config import Config
from carpd_py.control import (
    DEADLINE,
    IDLE,
    MAX_CLIENTS,
    MAX_REQUEST,
    ControlSocketError,
    RequestError,
    SupervisorControl,
    serve_control,
)
from carpd_py.status import format_status, status_document
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog
from .test_status import demoted_by_sync

LIMIT = 10  # seconds for any test that does I/O; the real work takes milliseconds


@dataclass
class FakeHandler:
    maintenance_on: bool = False
    reload_error: str | None = None
    crash: bool = False
    calls: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        self.calls.append("status")
        if self.crash:
            raise KeyError("bug")
        doc = status_document(demoted_by_sync())
        doc["maintenance"] = self.maintenance_on
        return doc

    def maintenance(self, on: bool) -> dict[str, Any]:
        self.calls.append(f"maintenance {'on' if on else 'off'}")
        changed = on != self.maintenance_on
        self.maintenance_on = on
        return {"maintenance": on, "changed": changed, "demoted": True}

    async def reload(self) -> dict[str, Any]:
        self.calls.append("reload")
        if self.reload_error is not None:
            raise RequestError(self.reload_error)
        return {"message": "reloaded /etc/carpd-py.conf"}

    def verify(self) -> dict[str, Any]:
        self.calls.append("verify")
        return {"local": None, "peer": None, "document": None}


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    """A socket path in tmp_path, or in a short directory if tmp_path is too long for one."""
    path = str(tmp_path / "ctl.sock")
    if len(path) < 100:
        yield path
        return
    short = tempfile.mkdtemp(prefix="carpctl-")
    try:
        yield os.path.join(short, "ctl.sock")
    finally:
        shutil.rmtree(short)


@asynccontextmanager
async def serving(path: str, handler: Any, **kw: Any) -> AsyncIterator[RecordingLog]:
    log = RecordingLog()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_control, path, handler, log=log, **kw))
        yield log
        nursery.cancel_scope.cancel()


async def carpctl_main(*argv: str) -> int:
    """The real `carpctl` in a thread, as a separate process would run it."""
    return await trio.to_thread.run_sync(carpctl.main, list(argv))


async def exchange(path: str, data: bytes) -> bytes:
    """Send raw bytes (and EOF if they are no whole line), return all that comes back."""
    stream = await trio.open_unix_socket(path)
    async with stream:
        await stream.send_all(data)
        if not data.endswith(b"\n"):
            await stream.send_eof()
        return await receive_all(stream)


async def receive_all(stream: trio.SocketStream) -> bytes:
    """Up to EOF. A server that closes with our bytes unread makes the kernel (Linux) report
    ECONNRESET once its answer is read: that is an end too."""
    out = bytearray()
    try:
        while chunk := await stream.receive_some():
            out += chunk
    except trio.BrokenResourceError:
        pass
    return bytes(out)


async def ask(path: str, data: bytes) -> dict[str, Any]:
    answer = await exchange(path, data)
    assert answer.endswith(b"\n")
    assert answer.count(b"\n") == 1
    result: dict[str, Any] = json.loads(answer)
    return result


def stale_socket(path: str) -> None:
    """A socket file nobody listens on, as a crashed daemon leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)


# --- round trips through carpctl -------------------------------------------------------


async def test_status_round_trip(sock_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    handler = FakeHandler()
    expected = status_document(demoted_by_sync())
    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler):
            capsys.readouterr()
            assert await carpctl_main("status", "-s", sock_path) == 0
            out = capsys.readouterr()
            assert out.out == format_status(expected)
            assert out.out.startswith("DEMOTED (sync) since 2025-11-25T02:01:40Z\n")
            assert out.err == ""

            assert await carpctl_main("-s", sock_path, "status", "--json") == 0
            assert json.loads(capsys.readouterr().out) == expected
    assert handler.calls == ["status", "status"]


async def test_socket_from_the_config_file(
    sock_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "carpd-py.conf"
    conf.write_text(f'[control]\nsocket = "{sock_path}"\n')
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler()):
            capsys.readouterr()
            assert await carpctl_main("status", "--json", "-f", str(conf)) == 0
            assert json.loads(capsys.readouterr().out)["demoted"] is True
            assert await carpctl_main("-f", str(conf), "reload") == 0
            assert capsys.readouterr().out == "reloaded /etc/carpd-py.conf\n"


async def test_maintenance_on_and_off(sock_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    handler = FakeHandler()
    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler):
            capsys.readouterr()
            assert await carpctl_main("maintenance", "on", "-s", sock_path) == 0
            assert capsys.readouterr().out == (
                "maintenance on: the node will be demoted at the next round and stays "
                "demoted until `carpctl maintenance off`, across restarts\n"
            )
            assert handler.status()["maintenance"] is True
            assert await carpctl_main("-s", sock_path, "maintenance", "on") == 0
            assert capsys.readouterr().out.startswith("maintenance on (it was already on): ")
            assert await carpctl_main("-s", sock_path, "maintenance", "off") == 0
            assert capsys.readouterr().out == (
                "maintenance off: the node is restored once no other reason holds, every "
                "check is up and the hold-down has passed\n"
            )
            assert handler.status()["maintenance"] is False
    assert handler.calls == [
        "maintenance on",
        "status",
        "maintenance on",
        "maintenance off",
        "status",
    ]


async def test_reload_and_its_refusal(sock_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    handler = FakeHandler()
    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler):
            capsys.readouterr()
            assert await carpctl_main("reload", "-s", sock_path) == 0
            assert capsys.readouterr().out == "reloaded /etc/carpd-py.conf\n"
            handler.reload_error = "/etc/carpd-py.conf: interval: must be a number from 0.1 to 60"
            assert await carpctl_main("reload", "-s", sock_path) == 1
            out = capsys.readouterr()
            assert out.out == ""
            assert out.err == (
                "carpctl: /etc/carpd-py.conf: interval: must be a number from 0.1 to 60\n"
            )


async def test_maintenance_with_a_real_supervisor_is_persisted(
    sock_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(state_file=str(tmp_path / "db" / "state.json"))
    sup = Supervisor(config, FakeHost.handbook(), FakeProber(), RecordingLog())

    async def reload() -> dict[str, Any]:
        return {"message": "reloaded"}

    control = SupervisorControl(sup, reload)
    with trio.fail_after(LIMIT):
        async with serving(sock_path, control):
            assert await carpctl_main("maintenance", "on", "-s", sock_path) == 0
            assert await carpctl_main("status", "--json", "-s", sock_path) == 0
    doc = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert doc["maintenance"] is True
    assert doc["demoted"] is False  # until the next round
    assert state.load(config.state_file).memory.maintenance is True
    again = Supervisor(config, FakeHost.handbook(), FakeProber(), RecordingLog())
    again.load()
    assert again.memory.maintenance is True  # survives a restart


def test_supervisor_control_cannot_save(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = Config(state_file=str(tmp_path / "file" / "state.json"))
    sup = Supervisor(config, FakeHost.handbook(), FakeProber(), RecordingLog())
    control = SupervisorControl(sup, FakeHandler().reload)
    with pytest.raises(RequestError, match=r"^cannot save the state file .*/file/state\.json: "):
        control.maintenance(True)
    assert sup.memory.maintenance is False


# --- the socket itself ------------------------------------------------------------------


async def test_socket_is_0600_and_removed_on_exit(
    sock_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    umask = os.umask(0o022)
    masks: list[int] = []
    real_umask = os.umask

    def spy(mask: int) -> int:
        masks.append(mask)
        return real_umask(mask)

    monkeypatch.setattr(os, "umask", spy)
    try:
        with trio.fail_after(LIMIT):
            async with serving(sock_path, FakeHandler()):
                st = os.lstat(sock_path)
                assert stat.S_ISSOCK(st.st_mode)
                assert stat.S_IMODE(st.st_mode) == 0o600
                assert st.st_uid == os.geteuid()
        assert not os.path.lexists(sock_path)
        # Created under umask 177 (so 0600 from the first instant, no chmod), then put back.
        assert masks == [0o177, 0o022]
    finally:
        real_umask(umask)


async def test_stale_socket_is_replaced(sock_path: str) -> None:
    stale_socket(sock_path)
    os.chmod(sock_path, 0o755)  # to tell it from ours (the inode number may be reused)
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler()):
            assert stat.S_IMODE(os.lstat(sock_path).st_mode) == 0o600
            assert (await ask(sock_path, b'{"cmd": "reload"}\n'))["ok"] is True
    assert not os.path.lexists(sock_path)


async def test_a_regular_file_is_refused_and_left_intact(sock_path: str) -> None:
    Path(sock_path).write_text("precious\n")
    with trio.fail_after(LIMIT), pytest.raises(ControlSocketError) as caught:
        await serve_control(sock_path, FakeHandler(), log=RecordingLog())
    assert str(caught.value) == f"{sock_path} exists and is not a socket: refusing to replace it"
    assert Path(sock_path).read_text() == "precious\n"


async def test_a_symlink_is_refused_and_left_intact(sock_path: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious\n")
    os.symlink(target, sock_path)
    with trio.fail_after(LIMIT), pytest.raises(ControlSocketError, match="is not a socket"):
        await serve_control(sock_path, FakeHandler(), log=RecordingLog())
    assert os.readlink(sock_path) == str(target)
    assert target.read_text() == "precious\n"


async def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "nowhere" / "ctl.sock")
    with trio.fail_after(LIMIT), pytest.raises(ControlSocketError) as caught:
        await serve_control(path, FakeHandler(), log=RecordingLog())
    assert str(caught.value) == (
        f"cannot create control socket {path}: no directory {tmp_path / 'nowhere'}"
    )


async def test_a_second_server_on_a_live_socket_is_refused(sock_path: str) -> None:
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler()):
            inode = os.lstat(sock_path).st_ino
            with pytest.raises(ControlSocketError) as caught:
                await serve_control(sock_path, FakeHandler(), log=RecordingLog())
            assert str(caught.value) == f"another carpd-py is running on {sock_path}"
            assert os.lstat(sock_path).st_ino == inode  # the first one's, untouched
            assert (await ask(sock_path, b'{"cmd": "status"}\n'))["ok"] is True


# --- the protocol -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"\n", "empty request"),
        (b"", "empty request"),
        (b"status\n", "request is not JSON"),
        (b"\xff\xfe\n", "request is not UTF-8"),
        (b"[" * 20000 + b"\n", "request is not JSON"),
        (b'["status"]\n', 'request must be a JSON object like {"cmd": "status"}'),
        (b"{}\n", 'request has no "cmd"'),
        (b'{"cmd": "fly"}\n', 'unknown command "fly" (status, maintenance, reload, verify)'),
        (b'{"cmd": ["x"]}\n', 'unknown command ["x"] (status, maintenance, reload, verify)'),
        (b'{"cmd": "maintenance"}\n', 'maintenance needs "on": true or false'),
        (b'{"cmd": "maintenance", "on": "yes"}\n', 'maintenance needs "on": true or false'),
        (b'{"cmd": "maintenance", "on": 1}\n', 'maintenance needs "on": true or false'),
    ],
)
async def test_malformed_requests_get_an_error(
    sock_path: str, request_bytes: bytes, error: str
) -> None:
    handler = FakeHandler()
    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler):
            assert await ask(sock_path, request_bytes) == {"ok": False, "error": error}
            assert (await ask(sock_path, b'{"cmd": "status"}\n'))["ok"] is True
    assert handler.calls == ["status"]


async def test_a_request_without_newline_and_extra_lines(sock_path: str) -> None:
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler()) as log:
            answer = await ask(sock_path, b'{"cmd": "maintenance", "on": true}')
            assert answer == {"ok": True, "maintenance": True, "changed": True, "demoted": True}
            second = b'{"cmd": "reload"}\n{"cmd": "maintenance", "on": false}\n'
            assert (await ask(sock_path, second))["message"] == "reloaded /etc/carpd-py.conf"
    assert log.lines == []


async def test_a_handler_bug_is_answered_and_logged(sock_path: str) -> None:
    handler = FakeHandler(crash=True)
    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler) as log:
            assert await ask(sock_path, b'{"cmd": "status"}\n') == {
                "ok": False,
                "error": "internal error: KeyError('bug')",
            }
            assert (await ask(sock_path, b'{"cmd": "reload"}\n'))["ok"] is True
    assert log.lines == [
        ("error", "control request failed", {"cmd": "status", "error": "KeyError('bug')"})
    ]


async def test_oversized_requests(sock_path: str) -> None:
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler()):
            # Exactly MAX_REQUEST bytes before the newline: fine.
            head = b'{"cmd": "reload", "pad": "'
            fits = head + b"x" * (MAX_REQUEST - len(head) - 2) + b'"}'
            assert len(fits) == MAX_REQUEST
            assert (await ask(sock_path, fits + b"\n"))["ok"] is True

            # One byte more, or a flood with no newline: refused after reading MAX_REQUEST + 1.
            for big in (fits + b" \n", b"x" * (4 * MAX_REQUEST)):
                stream = await trio.open_unix_socket(sock_path)
                async with stream, trio.open_nursery() as nursery:

                    async def flood(stream: trio.SocketStream = stream, big: bytes = big) -> None:
                        # The server stops reading and closes: a broken pipe here is expected.
                        with suppress(trio.BrokenResourceError):
                            await stream.send_all(big)

                    nursery.start_soon(flood)
                    answer = await receive_all(stream)
                assert json.loads(answer) == {
                    "ok": False,
                    "error": f"request too large (more than {MAX_REQUEST} bytes)",
                }


async def test_many_connections_at_once_and_one_too_many(sock_path: str) -> None:
    """MAX_CLIENTS connections open at once, each with half a request: all are served
    together; one more is told "busy" at once and closed, without a request."""
    handler = FakeHandler()
    answers: list[bytes] = []

    async def finish(stream: trio.SocketStream, n: int) -> None:
        async with stream:
            await stream.send_all(f"{n}}}\n".encode())
            answers.append(await receive_all(stream))

    with trio.fail_after(LIMIT):
        async with serving(sock_path, handler) as log:
            streams = []
            for _ in range(MAX_CLIENTS):
                stream = await trio.open_unix_socket(sock_path)
                await stream.send_all(b'{"cmd": "reload", "n": ')
                streams.append(stream)
            extra = await trio.open_unix_socket(sock_path)
            async with extra:
                assert json.loads(await receive_all(extra)) == {
                    "ok": False,
                    "error": f"busy: {MAX_CLIENTS} control connections open, try again",
                }
            async with trio.open_nursery() as nursery:
                for n, stream in enumerate(reversed(streams)):
                    nursery.start_soon(finish, stream, n)
            assert (await ask(sock_path, b'{"cmd": "status"}\n'))["ok"] is True  # room again
    assert len(answers) == MAX_CLIENTS
    assert all(json.loads(a)["ok"] for a in answers)
    assert handler.calls == ["reload"] * MAX_CLIENTS + ["status"]
    assert log.events("warning") == ["control socket: too many connections, refusing more"]


async def test_a_silent_client_is_dropped_when_idle_a_slow_one_at_the_deadline(
    sock_path: str, autojump_clock: trio.testing.MockClock
) -> None:
    """Pure trio on both ends (no thread), so the autojump clock only moves when every task
    waits: the silent client is dropped at exactly IDLE, the one that sends a byte a second
    at DEADLINE, the others are served at once."""
    with trio.fail_after(LIMIT + DEADLINE):
        async with serving(sock_path, FakeHandler()) as log:
            start = trio.current_time()
            silent = await trio.open_unix_socket(sock_path)
            dripping = await trio.open_unix_socket(sock_path)

            async def drip() -> None:
                for byte in b'{"cmd": "status"}':  # one byte a second, never the newline
                    try:
                        await dripping.send_all(bytes([byte]))
                    except trio.BrokenResourceError:  # dropped at the deadline
                        return
                    await trio.sleep(1)

            async with silent, dripping, trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                for _ in range(3):
                    assert (await ask(sock_path, b'{"cmd": "status"}\n'))["ok"] is True
                assert trio.current_time() == start  # served while the others hang on
                assert await receive_all(silent) == b""  # closed, with no answer
                assert trio.current_time() - start == pytest.approx(IDLE)
                assert await receive_all(dripping) == b""  # the deadline is per connection
                assert trio.current_time() - start == pytest.approx(DEADLINE)
                nursery.cancel_scope.cancel()
    assert log.events("debug") == [
        "control client dropped: idle",
        "control client dropped: no request within the deadline",
    ]


async def test_a_short_deadline(sock_path: str) -> None:
    with trio.fail_after(LIMIT):
        async with serving(sock_path, FakeHandler(), deadline=0.05):
            silent = await trio.open_unix_socket(sock_path)
            async with silent:
                with trio.fail_after(1):
                    assert await silent.receive_some() == b""


# --- carpctl's errors -------------------------------------------------------------------


def run_carpctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = carpctl.main(list(argv))
    out = capsys.readouterr()
    assert out.out == ""
    return code, out.err


def test_no_socket(sock_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("status", "-s", sock_path), ("-s", sock_path, "maintenance", "on")):
        assert run_carpctl(capsys, *argv) == (
            1,
            f"carpctl: carpd-py is not running (no socket at {sock_path})\n",
        )


def test_stale_socket(sock_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    stale_socket(sock_path)
    assert run_carpctl(capsys, "reload", "-s", sock_path) == (
        1,
        f"carpctl: carpd-py is not running (stale socket {sock_path})\n",
    )


def test_not_a_socket(sock_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path(sock_path).write_text("")
    message = f"carpctl: {sock_path} is not a carpd-py control socket\n"
    assert run_carpctl(capsys, "status", "-s", sock_path) == (1, message)
    assert run_carpctl(capsys, "status", "-s", str(tmp_path)) == (
        1,
        f"carpctl: {tmp_path} is not a carpd-py control socket\n",
    )


@contextmanager
def nobody() -> Iterator[None]:
    """Run as someone who may not open a root-owned 0600 socket."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_permission_denied(capsys: pytest.CaptureFixture[str]) -> None:
    # A directory anyone may enter (tmp_path's parents are 0700), a live socket in it.
    directory = tempfile.mkdtemp(prefix="carpctl-")
    try:
        os.chmod(directory, 0o711)
        path = os.path.join(directory, "ctl.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen()
            os.chmod(path, 0o600 if os.geteuid() == 0 else 0)
            with nobody():
                result = run_carpctl(capsys, "status", "-s", path)
        assert result == (1, f"carpctl: cannot open {path}: permission denied (run as root)\n")
    finally:
        shutil.rmtree(directory)


@asynccontextmanager
async def impostor(path: str, reply: bytes | None) -> AsyncIterator[None]:
    """Something else on a socket: answers `reply` to anything, or never answers (None)."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            if reply is None:
                await trio.sleep_forever()
            await stream.receive_some()
            await stream.send_all(reply)

    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, [trio.SocketListener(sock)])
        yield
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.0 400 Bad Request\r\n\r\n",
        b"",
        b'{"ok": true}',  # no newline: cut short
        b'["ok"]\n',
        b'{"hello": "world"}\n',
        b'{"ok": "yes"}\n',
        b'{"ok": false}\n',
    ],
)
async def test_an_answer_that_is_not_ours(
    sock_path: str, reply: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(LIMIT):
        async with impostor(sock_path, reply):
            capsys.readouterr()
            assert await carpctl_main("status", "-s", sock_path) == 1
    assert capsys.readouterr().err == f"carpctl: {sock_path} is not a carpd-py control socket\n"


async def test_no_answer_in_time(
    sock_path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(carpctl, "TIMEOUT", 0.2)
    with trio.fail_after(LIMIT):
        async with impostor(sock_path, None):
            capsys.readouterr()
            assert await carpctl_main("status", "-s", sock_path) == 1
    assert capsys.readouterr().err == (
        f"carpctl: no answer from carpd-py on {sock_path} within 0.2s\n"
    )


def test_a_full_listen_queue(
    sock_path: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung daemon whose queue is full: connect() says EAGAIN; carpctl waits, then says so."""
    monkeypatch.setattr(carpctl, "TIMEOUT", 0.2)
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        listener.bind(sock_path)
        listener.listen(0)
        for _ in range(100):
            queued = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            queued.setblocking(False)
            try:
                queued.connect(sock_path)
            except BlockingIOError:
                break
        else:
            pytest.skip("the listen queue never filled up")
        assert run_carpctl(capsys, "status", "-s", sock_path) == (
            1,
            f"carpctl: no answer from carpd-py on {sock_path} within 0.2s\n",
        )


async def test_a_status_carpctl_cannot_read(
    sock_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon of another version: the JSON still works, the table says so."""
    reply = json.dumps({"ok": True, "version": "9.0", "demoted": False}).encode() + b"\n"
    with trio.fail_after(LIMIT):
        async with impostor(sock_path, reply):
            capsys.readouterr()
            assert await carpctl_main("status", "-s", sock_path) == 1
            assert capsys.readouterr().err == (
                f"carpctl: cannot read the status of carpd-py 9.0 on {sock_path} (try --json)\n"
            )
            assert await carpctl_main("status", "--json", "-s", sock_path) == 0
            assert json.loads(capsys.readouterr().out) == {"version": "9.0", "demoted": False}


def test_a_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "carpd-py.conf"
    conf.write_text("[control]\nsocket = 5\n")
    code, err = run_carpctl(capsys, "status", "-f", str(conf))
    assert code == 1
    assert err == f"{conf}: control.socket: must be an absolute path, not 5\n"


def test_the_default_socket_comes_from_the_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(carpctl, "DEFAULT_PATH", "/nonexistent/carpd-py.conf")
    default = Config().control.socket
    if os.path.lexists(default):
        pytest.skip(f"{default} exists on this machine")
    assert run_carpctl(capsys, "status") == (
        1,
        f"carpctl: carpd-py is not running (no socket at {default})\n",
    )


def test_subcommands_need_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        carpctl.main(["maintenance", "maybe"])
    assert caught.value.code == 2
    assert "invalid choice: 'maybe'" in capsys.readouterr().err
