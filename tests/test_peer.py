"""The channel to the peer (peer.py): the key file, the codec, replay, and real UDP sockets
on 127.0.0.1 (port 0, a deadline on every wait)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from carpd_py import daemon
from carpd_py.config import PeerConfig
from carpd_py.peer import (
    MAX_MESSAGE,
    PROTOCOL,
    Channel,
    Heard,
    KeyFileError,
    Rejected,
    admit,
    load_key,
    seal,
    unseal,
)

from .fakes import RecordingLog

KEY = b"0123456789abcdef0123456789abcdef"
DEADLINE = 10.0


def doc(
    session: str = "s1", seq: int = 1, started: float = 100.0, **more: object
) -> dict[str, Any]:
    return {"carpd-py": PROTOCOL, "session": session, "started": started, "seq": seq,
            "heard": None, "view": {}, **more}  # fmt: skip


# --- the key file ----------------------------------------------------------------------------


def write_key(path: Path, data: bytes = KEY + b"\n", mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_key_file_0600_is_read_without_its_newline(tmp_path: Path) -> None:
    assert load_key(str(write_key(tmp_path / "k"))) == KEY


@pytest.mark.parametrize(
    ("mode", "data", "message"),
    [
        (0o644, KEY, "mode 0644, want 0600"),
        (0o640, KEY, "mode 0640, want 0600"),
        (0o600, b"short\n", "must be 16 to 4096 bytes, not 5"),
        (0o600, b"", "not 0"),
    ],
)
def test_a_bad_key_file_is_refused_with_why(
    tmp_path: Path, mode: int, data: bytes, message: str
) -> None:
    path = write_key(tmp_path / "k", data, mode)
    with pytest.raises(KeyFileError, match=message):
        load_key(str(path))


def test_a_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open the key file: No such file"):
        load_key(str(tmp_path / "nope"))


def config_text(key: Path) -> str:
    return (
        f'state_file = "/tmp/x.json"\n[peer]\nlisten = ["127.0.0.1:9724"]\n'
        f'addresses = ["127.0.0.2:9724"]\nkey_file = "{key}"\n'
    )


@pytest.mark.parametrize(("mode", "ok"), [(0o600, True), (0o644, False), (None, False)])
def test_carpd_py_n_checks_the_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int | None, ok: bool
) -> None:
    key = tmp_path / "carpd-py.key"
    if mode is not None:
        write_key(key, mode=mode)
    conf = tmp_path / "carpd-py.conf"
    conf.write_text(config_text(key))
    assert daemon.main(["-n", "-f", str(conf)]) == (0 if ok else 1)
    out, err = capsys.readouterr()
    if ok:
        assert out == "configuration OK\n"
    else:
        assert err.startswith(f"{conf}: peer.key_file: {key}: ")


# --- the codec --------------------------------------------------------------------------------


def test_sealed_messages_open_with_the_same_key_only() -> None:
    data = seal(KEY, doc())
    assert unseal(KEY, data) == doc()
    with pytest.raises(Rejected) as exc:
        unseal(b"another key, also long enough", data)
    assert exc.value.why == "auth"


def test_any_change_to_a_message_breaks_its_tag() -> None:
    data = bytearray(seal(KEY, doc()))
    for i in range(0, len(data), 7):
        changed = bytearray(data)
        changed[i] ^= 0x01
        with pytest.raises(Rejected) as exc:
            unseal(KEY, bytes(changed))
        assert exc.value.why == "auth"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "format"),
        (b"[1, 2]", "format"),
        (json.dumps({"carpd-py": PROTOCOL + 1}).encode(), "version"),
        (json.dumps({"carpd-py": PROTOCOL, "session": "s"}).encode(), "format"),
        (json.dumps({**doc(), "seq": -1}).encode(), "format"),
        (json.dumps({**doc(), "started": "x"}).encode(), "format"),
        (b'{"carpd-py": 1, "started": NaN}', "format"),
    ],
)
def test_authentic_but_malformed_messages_are_rejected(body: bytes, why: str) -> None:
    data = body + hmac.new(KEY, body, hashlib.sha256).digest()
    with pytest.raises(Rejected) as exc:
        unseal(KEY, data)
    assert exc.value.why == why


def test_messages_are_bounded_in_size() -> None:
    big = seal(KEY, doc(view={"pad": "x" * MAX_MESSAGE}))
    with pytest.raises(Rejected) as exc:
        unseal(KEY, big)
    assert exc.value.why == "size"
    with pytest.raises(Rejected):
        unseal(KEY, b"tiny")


def test_unknown_sections_are_ignored_for_later_versions() -> None:
    message = doc(verify={"pfctl": "ok"})
    assert unseal(KEY, seal(KEY, message))["verify"] == {"pfctl": "ok"}


# --- replay -----------------------------------------------------------------------------------


def heard(d: dict[str, Any]) -> Heard:
    return Heard(d, 0.0)


def test_replay_rules() -> None:
    last = heard(doc("s1", 5, started=100.0))
    none: frozenset[str] = frozenset()
    assert admit(doc("s1", 6), last, "me", none, False) is None
    assert admit(doc("s1", 5), last, "me", none, False) == "replay"  # a duplicate
    assert admit(doc("s1", 4), last, "me", none, False) == "replay"  # an old one
    assert admit(doc("me", 9), last, "me", none, False) == "self"  # reflected back
    # the peer restarted: a new session that started later
    assert admit(doc("s2", 1, started=200.0), last, "me", none, False) is None
    # a recorded message of an earlier run, replayed while the peer is alive
    assert admit(doc("s0", 99, started=50.0), last, "me", none, False) == "replay"
    # ... its clock went back at a restart: accepted once the current session is silent
    assert admit(doc("s3", 1, started=50.0), last, "me", none, True) is None
    # sessions that were replaced are never taken back
    assert admit(doc("s0", 100, started=500.0), last, "me", frozenset({"s0"}), True) == "replay"


# --- real UDP ---------------------------------------------------------------------------------


def pair_of_channels(
    key_b: bytes = KEY, paths: int = 1, timeout: float = 3.0
) -> tuple[Channel, Channel, RecordingLog]:
    log = RecordingLog()
    a = Channel(PeerConfig(("127.0.0.1:0",) * 1, ("127.0.0.1:9",), timeout=timeout), KEY, log)
    b = Channel(PeerConfig(("127.0.0.1:0",) * 1, ("127.0.0.1:9",), timeout=timeout), key_b, log)
    a.bind()
    b.bind()
    if paths > 1:  # b listens on a second socket too; a sends to both
        extra = Channel(PeerConfig(("127.0.0.1:0",), ("127.0.0.1:9",)), key_b, log)
        extra.bind()
        b.sockets += extra.sockets
    a.targets = [("127.0.0.1", p, socket.AF_INET) for p in b.ports]
    b.targets = [("127.0.0.1", p, socket.AF_INET) for p in a.ports]
    return a, b, log


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition of the channels under a deadline (`what` names it in a failure)."""
    with trio.fail_after(DEADLINE):
        while not predicate():  # noqa: ASYNC110 (the channels set plain attributes)
            await trio.sleep(0.01)


async def test_two_channels_hear_each_other_over_udp() -> None:
    a, b, _ = pair_of_channels()
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        assert b.state(trio.current_time()) == "unknown"
        a.send({"x": 1}, None)
        await until(lambda: b.last is not None, "b hears a")
        assert b.last is not None
        assert b.last.document["view"] == {"x": 1}
        assert b.last.session == a.session
        assert b.state(trio.current_time()) == "up"
        b.send({"y": 2}, b.last)
        await until(lambda: a.last is not None, "a hears b")
        assert a.last is not None
        assert a.last.document["heard"] == {"session": a.session, "seq": 1}
        for _ in range(3):
            a.send({"x": 2}, None)
        await until(lambda: b.last is not None and b.last.seq == 4, "b hears every message")
        nursery.cancel_scope.cancel()
    a.close()
    b.close()


async def test_the_peer_is_heard_if_any_path_delivers() -> None:
    a, b, _ = pair_of_channels(paths=2)
    a.targets.insert(0, ("127.0.0.1", 9, socket.AF_INET))  # a path that delivers nothing
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        a.send({"x": 1}, None)
        await until(lambda: b.last is not None, "b hears a")
        # the same message came on both paths: the second copy is a duplicate, dropped
        await until(lambda: b.rejected["replay"] == 1, "the copy is dropped")
        nursery.cancel_scope.cancel()
    a.close()
    b.close()


async def test_a_wrong_key_is_rejected_counted_and_logged_rate_limited() -> None:
    a, b, log = pair_of_channels(key_b=b"a different key of the right size", timeout=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        for _ in range(5):
            a.send({"x": 1}, None)
        await until(lambda: b.rejected["auth"] == 5, "five rejected")
        assert b.last is None
        assert b.state(trio.current_time()) == "rejected"
        assert log.events("warning") == ["peer message dropped"]  # once, not five times
        await trio.sleep(0.6)
        assert b.state(trio.current_time()) == "unknown"
        nursery.cancel_scope.cancel()
    a.close()
    b.close()


async def test_garbage_and_oversized_datagrams_are_dropped_never_a_crash() -> None:
    a, b, _ = pair_of_channels()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with trio.open_nursery() as nursery:
        await nursery.start(b.run)
        for data in (b"", b"x", os.urandom(100), os.urandom(MAX_MESSAGE + 500)):
            raw.sendto(data, ("127.0.0.1", b.ports[0]))
        a.send({"x": 1}, None)  # and a good one still gets through
        await until(lambda: b.last is not None, "b hears a")
        await until(lambda: sum(b.rejected.values()) == 4, "four dropped")
        assert b.rejected["size"] >= 3
        nursery.cancel_scope.cancel()
    raw.close()
    a.close()
    b.close()


def test_a_section_too_large_is_left_out_and_the_view_still_goes() -> None:
    a, b, log = pair_of_channels()
    a.send({"x": 1}, None, verify={"pad": "x" * MAX_MESSAGE})
    a.send({"x": 2}, None, verify={"pad": "x" * MAX_MESSAGE})
    a.send({"x": 3}, None, verify={"small": 1})
    got = []
    b.sockets[0].settimeout(DEADLINE)
    for _ in range(3):
        data = b.sockets[0].recv(MAX_MESSAGE + 1)
        assert len(data) <= MAX_MESSAGE
        got.append(unseal(KEY, data))
    assert [d["view"]["x"] for d in got] == [1, 2, 3]
    assert [d.get("verify") for d in got] == [None, None, {"small": 1}]
    assert a.dropped_sections == {("verify", "size"): 2}
    assert log.events("warning") == ["peer message section dropped"]  # rate-limited
    assert "more than 16384: sent without it" in log.lines[0][2]["detail"]
    with pytest.raises(ValueError, match="not an optional section"):
        a.send({}, None, session="forged")
    a.close()
    b.close()


def test_a_bad_section_from_the_peer_is_dropped_the_message_kept() -> None:
    """The receiver checks each optional section it knows; a bad one is counted and logged
    (rate-limited), the view it came with is taken, and a check that breaks is no crash."""
    log = RecordingLog()
    b = Channel(PeerConfig(("127.0.0.1:0",), ("127.0.0.1:9",)), KEY, log)

    def check(data: Any) -> Any:
        if data == "boom":
            raise RuntimeError("a bug in the check")
        if not isinstance(data, dict):
            raise ValueError("not an object")  # noqa: TRY004
        return data

    b.sections["verify"] = check
    assert b.receive(seal(KEY, doc("s1", 1, verify=[1, 2])), 1.0)
    assert b.last is not None
    assert "verify" not in b.last.document
    assert b.last.document["view"] == {}
    assert b.receive(seal(KEY, doc("s1", 2, verify="boom")), 2.0)
    assert b.receive(seal(KEY, doc("s1", 3, verify={"node": "B"})), 3.0)
    assert b.last.document["verify"] == {"node": "B"}
    assert b.receive(seal(KEY, doc("s1", 4, other=[1])), 4.0)  # unknown: left as it came
    assert b.dropped_sections == {("verify", "format"): 2}
    assert b.rejected == {}
    assert log.events("warning") == ["peer message section dropped"]
    assert log.lines[0][2]["detail"] == "ignored: not an object"


def test_a_port_in_use_is_reported_at_bind_with_the_key() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    channel = Channel(PeerConfig((f"127.0.0.1:{port}",), ("127.0.0.1:9",)), KEY, RecordingLog())
    with pytest.raises(OSError, match=f"peer.listen 127.0.0.1:{port}: Address already in use"):
        channel.bind()
    taken.close()


def test_the_daemon_refuses_to_start_with_a_bad_key_file(tmp_path: Path) -> None:
    key = write_key(tmp_path / "carpd-py.key", mode=0o644)
    conf = tmp_path / "carpd-py.conf"
    conf.write_text(config_text(key).replace("/tmp/x.json", str(tmp_path / "state.json")))
    script = Path(sys.executable).parent / "carpd-py"
    done = subprocess.run(
        [str(script), "-d", "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "error   cannot start error=" in done.stderr
    assert "mode 0644, want 0600" in done.stderr
    assert "Traceback" not in done.stderr
