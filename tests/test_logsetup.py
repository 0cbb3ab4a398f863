"""The log line and the syslog handler of logsetup.py (structlog's events, our own syslog(3)
handler instead of logging.handlers'): what syslogd receives, byte for byte."""

from __future__ import annotations

import io
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd_py.logsetup import FACILITIES, NOTICE, Log, _SyslogHandler, setup


@pytest.fixture
def syslogd(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "log.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()
    drop_handlers()


def drop_handlers() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def test_lines_reach_syslog_with_facility_priority_and_ident(
    syslogd: tuple[Path, socket.socket],
) -> None:
    path, sock = syslogd
    assert setup("info", syslog_socket=str(path), facility="local3") is None
    log = Log().bind(node="A")
    log.notice("demoted", reason="sync", interfaces=["carp0", "carp1"], note='a "b"')
    log.debug("not sent at info")
    log.error("failed", ok=False, took=0.25, none=None)
    logging.getLogger("trio").warning("a record of another library")
    ident = f"carpd_py[{os.getpid()}]: "
    got = [sock.recv(4096).decode() for _ in range(3)]
    assert got == [
        f'<157>{ident}demoted node=A reason=sync interfaces=carp0,carp1 note="a \\"b\\""\0',
        f"<155>{ident}failed node=A ok=no took=0.25 none=-\0",
        f"<156>{ident}a record of another library\0",
    ]
    assert FACILITIES["local3"] << 3 | 5 == 157


def test_syslogd_away_then_back_loses_only_the_lines_it_missed(tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    handler = _SyslogHandler(str(path), FACILITIES["daemon"], "x: ")  # no syslogd: no error
    record = logging.LogRecord("carpd_py", NOTICE, __file__, 1, "lost", None, None)
    record.levelname = "NOTICE"
    handler.emit(record)  # dropped, silently
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        record.msg = "back"
        handler.emit(record)
        assert sock.recv(4096) == b"<29>x: back\0"
    path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # syslogd restarted
        sock.bind(str(path))
        sock.settimeout(5)
        record.msg = "again"
        handler.emit(record)
        assert sock.recv(4096) == b"<29>x: again\0"
    handler.close()


def test_foreground_lines_on_stderr() -> None:
    stream = io.StringIO()
    try:
        assert setup("debug", foreground=True, stream=stream) is None
        Log().bind(a=1).debug("event", b="two words")
    finally:
        drop_handlers()
    line = stream.getvalue()
    assert line.endswith(' debug   event a=1 b="two words"\n'), line


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])
def test_the_bytes_are_those_of_logging_handlers_syslog_handler(
    syslogd: tuple[Path, socket.socket], level: int
) -> None:
    import logging.handlers  # noqa: PLC0415 - the reference only; the daemon never imports it

    path, sock = syslogd
    theirs = logging.handlers.SysLogHandler(str(path), facility="local3")
    theirs.ident = "x[1]: "
    ours = _SyslogHandler(str(path), FACILITIES["local3"], "x[1]: ")
    record = logging.LogRecord("carpd_py", level, __file__, 1, "é event k=v", None, None)
    try:
        for handler in (theirs, ours):
            handler.emit(record)
        assert sock.recv(4096) == sock.recv(4096)
    finally:
        theirs.close()
        ours.close()
