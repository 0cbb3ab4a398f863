"""Logging: structlog events as one grep-able line, to syslog(3)'s socket or to stderr.

On syslog the line is `carpd_py[PID]: event key=value ...` with no timestamp (syslogd adds
it). What an operator must see (demote, restore, role change, maintenance, adopted hand
change, command failure) is logged at NOTICE or above, so that the default /etc/syslog.conf
puts it in /var/log/messages. Records of other libraries go through the same formatter.

syslog(3) is spoken by a handler of our own rather than logging.handlers' SysLogHandler:
the same bytes, without importing logging.handlers (0.2 MB resident for one class).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")


class _Logger(logging.Logger):
    """A stdlib logger with notice(), so that structlog can proxy to it."""

    def notice(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(NOTICE):
            self._log(NOTICE, msg, args, **kwargs)


def _logger_factory(*args: Any) -> logging.Logger:
    """Loggers of our own class (structlog's LoggerFactory would make its own)."""
    previous = logging.getLoggerClass()
    logging.setLoggerClass(_Logger)
    try:
        return logging.getLogger(str(args[0]) if args else IDENT)
    finally:
        logging.setLoggerClass(previous)


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": NOTICE,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
IDENT = "carpd_py"


def _quote(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(v) for v in value)
    elif value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def render(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    """`event key=value key=value`: the event first, then the rest in the order given."""
    event = str(event_dict.pop("event", ""))
    for noise in ("level", "logger", "timestamp", "_record", "_from_structlog"):
        event_dict.pop(noise, None)
    exc = event_dict.pop("exc_info", None)
    parts = [event, *(f"{k}={_quote(v)}" for k, v in event_dict.items())]
    line = " ".join(p for p in parts if p)
    if exc:
        error = exc[1] if isinstance(exc, tuple) else sys.exc_info()[1]
        line += f" exc={_quote(repr(error))}"
    return line


# syslog(3)'s facility and priority codes (sys/syslog.h).
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
              **{f"local{n}": 16 + n for n in range(8)}}  # fmt: skip
PRIORITIES = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5, "INFO": 6, "DEBUG": 7}


class _SyslogHandler(logging.Handler):
    """syslog(3) over its Unix socket: `<PRI>ident line` and a NUL, as logging.handlers'
    SysLogHandler sends it (a datagram socket, else a stream). Like it (Python >= 3.11) and
    openlog(3), it starts without syslogd and connects at the first line. When a send fails
    (syslogd restarted) it reconnects and sends once more; a line that still cannot go is
    dropped, as syslog(3) drops it: never a traceback on stderr (a detached daemon's stderr
    is /dev/null)."""

    def __init__(self, address: str, facility: int, ident: str) -> None:
        super().__init__()
        self.address = address
        self.facility = facility
        self.ident = ident
        self.socket: socket.socket | None = None
        with contextlib.suppress(OSError):  # as openlog(3): syslogd may come later
            self.socket = self._connect()

    def _connect(self) -> socket.socket:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_UNIX, kind)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                if kind == socket.SOCK_STREAM:
                    raise
            else:
                return sock
        raise AssertionError("unreachable")

    def _send(self, data: bytes) -> None:
        if self.socket is None:
            self.socket = self._connect()
        self.socket.send(data)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            priority = (self.facility << 3) | PRIORITIES.get(record.levelname, 4)
            data = f"<{priority}>{self.ident}{self.format(record)}\0".encode()
            try:
                self._send(data)
            except OSError:  # syslogd restarted, or not there yet: connect again, once
                if self.socket is not None:
                    self.socket.close()
                    self.socket = None
                self._send(data)
        except Exception:  # noqa: S110 - syslogd is away: the line is dropped, as syslog(3) does
            pass

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        super().close()


class Log:
    """The daemon's logger: structlog underneath, with notice() added."""

    def __init__(self, name: str = IDENT) -> None:
        self._log = structlog.stdlib.get_logger(name)

    def bind(self, **kw: Any) -> Log:
        new = Log.__new__(Log)
        new._log = self._log.bind(**kw)
        return new

    def debug(self, event: str, **kw: Any) -> None:
        self._log.debug(event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._log.info(event, **kw)

    def notice(self, event: str, **kw: Any) -> None:
        self._log._proxy_to_logger("notice", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._log.warning(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._log.error(event, **kw)


class _ConsoleFormatter(logging.Formatter):
    """For -d: `HH:MM:SS level   event key=value`."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")
        self.inner = _plain_formatter()

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, self.datefmt)
        return f"{when} {record.levelname.lower():<7} {self.inner.format(record)}"


def _plain_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, render],
        foreign_pre_chain=[structlog.stdlib.add_log_level],
    )


def setup(
    level: str = "info",
    *,
    foreground: bool = False,
    syslog_socket: str = "/dev/log",
    facility: str = "daemon",
    stream: TextIO | None = None,
) -> str | None:
    """Configure logging once for the process. Returns a problem to report, or None.

    If the syslog socket cannot be reached, logs go to stderr and the problem is returned.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=_logger_factory,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(LEVELS.get(level, logging.INFO))
    problem = None
    handler: logging.Handler
    if not foreground:
        try:
            ident = f"{IDENT}[{os.getpid()}]: "
            handler = _SyslogHandler(syslog_socket, FACILITIES[facility], ident)
            handler.setFormatter(_plain_formatter())
            root.addHandler(handler)
            return None
        except (OSError, KeyError) as exc:
            problem = f"cannot log to syslog socket {syslog_socket}: {exc}; logging to stderr"
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_ConsoleFormatter())
    root.addHandler(handler)
    return problem
