"""The channel to the peer's carpd-py: UDP, authenticated, replay-safe, size-bounded. Shell.

One datagram is one message: a JSON document (UTF-8) followed by its HMAC-SHA256 tag (32
bytes) over the whole document, keyed with the shared secret of `[peer] key_file`. At most
MAX_MESSAGE bytes in all. The document:

    {"carpd-py": 1,            protocol version; a higher one is refused ("version")
     "session": "9f0c...",     random per daemon start (64 bits, hex)
     "started": 1764650000.1,  wall-clock time that session started
     "seq": 17,                1, 2, 3, ... within the session
     "heard": {"session": "51ab...", "seq": 12}, or null: the peer's last message this node
                               had accepted when the round this view reports began
     "node": "fw1", "version": "0.2.0",
     "view": {...},            this node's view (see `pairing.view_document`)
     "verify": {...},          optional: this node's report for `carpctl verify` (see
                               `verifier.section`), absent until its checks have run
     ...}                      optional sections; unknown keys are ignored, so a later
                               version can add its own

A receiver accepts a message only if its tag is right, it is not its own session (a message
reflected back), and it is newer than the last accepted: a higher seq in the current session,
or a new session that started later (the peer restarted) or that arrives while the current
one is silent (older than `timeout`). Anything else is counted by why ("size", "auth",
"format", "version", "self", "replay"), logged at most once a minute per why, and dropped.

Optional sections never cost the message. A sender drops a section that would take the
message past MAX_MESSAGE; a receiver checks each section it knows (`Channel.sections`) and
drops one that fails the check, keeping the rest of the message. Either is counted by
(section, why: "size" or "format") and logged at most once a minute.

Several paths: one socket per `listen` entry, and every message goes to every `addresses`
entry: the peer is heard if any path delivers. The sockets are bound at start-up (`bind`,
before trio runs, so that a bind failure is reported before anything else); sending never
blocks (UDP, non-blocking; a failure is counted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import stat
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from . import __version__
from .config import PeerConfig
from .logsetup import Log

PROTOCOL = 1
TAG = 32
MAX_MESSAGE = 16384  # bytes, tag included: a view of 64 vhids and a few checks is ~6 KiB
KEY_MIN, KEY_MAX = 16, 4096
LOG_EVERY = 60.0  # seconds between two log lines about rejected messages of one kind
REJECTS = ("size", "auth", "format", "version", "self", "replay")
HEADER = frozenset({"carpd-py", "session", "started", "seq", "heard", "node", "version", "view"})


class KeyFileError(Exception):
    """The key file cannot be used; the message says why and what to do."""


def load_key(path: str) -> bytes:
    """The shared secret: the file's bytes without surrounding white space. The file must be
    a regular file readable by its owner only (0600 or stricter), 16 to 4096 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open the key file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: the key file is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"{path}: the key file must not be readable by others: mode {mode:04o}, "
                "want 0600 (chmod 600)"
            )
        data = os.read(fd, KEY_MAX + 1024)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    finally:
        os.close(fd)
    key = data.strip()
    if not KEY_MIN <= len(key) <= KEY_MAX:
        raise KeyFileError(
            f"{path}: the key must be {KEY_MIN} to {KEY_MAX} bytes, not {len(key)} "
            "(e.g. openssl rand -hex 32 > FILE)"
        )
    return key


# --- the codec: pure ------------------------------------------------------------------------


class Rejected(Exception):
    def __init__(self, why: str, detail: str = "") -> None:
        super().__init__(detail or why)
        self.why = why


def seal(key: bytes, document: Mapping[str, Any]) -> bytes:
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return body + hmac.new(key, body, hashlib.sha256).digest()


def unseal(key: bytes, data: bytes) -> dict[str, Any]:
    """The document in a datagram, or Rejected (why: size, auth, format, version)."""
    if len(data) > MAX_MESSAGE or len(data) <= TAG:
        raise Rejected("size", f"{len(data)} bytes")
    body, tag = data[:-TAG], data[-TAG:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), tag):
        raise Rejected("auth", "the HMAC does not match: a different key_file?")
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Rejected("format", "not a JSON document") from None
    if not isinstance(doc, dict):
        raise Rejected("format", "not a JSON object")
    version = doc.get("carpd-py")
    if not isinstance(version, int) or isinstance(version, bool):
        raise Rejected("format", "no protocol version")
    if version > PROTOCOL:
        raise Rejected("version", f"protocol {version}, this carpd-py speaks {PROTOCOL}")
    if not (
        _is_text(doc.get("session"))
        and _is_count(doc.get("seq"))
        and _is_number(doc.get("started"))
        and (doc.get("heard") is None or _is_heard(doc.get("heard")))
        and isinstance(doc.get("view"), dict)
    ):
        raise Rejected("format", "session, seq, started, heard or view missing or wrong")
    return doc


def _is_heard(v: Any) -> bool:
    return isinstance(v, dict) and _is_text(v.get("session")) and _is_count(v.get("seq"))


def _no_constant(name: str) -> None:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 64


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- freshness and replay: a small state machine, pure --------------------------------------


@dataclass(frozen=True)
class Heard:
    """The last message accepted from the peer."""

    document: dict[str, Any]
    at: float  # trio/monotonic time it arrived
    view: Any = None  # the view, as the `parse` callable of the channel read it

    @property
    def session(self) -> str:
        return str(self.document["session"])

    @property
    def seq(self) -> int:
        return int(self.document["seq"])


def admit(
    doc: Mapping[str, Any], last: Heard | None, me: str, old: frozenset[str], stale: bool
) -> str | None:
    """None if `doc` (authentic) is newer than `last`; else why not ("self", "replay")."""
    if doc["session"] == me:
        return "self"
    if last is None:
        return "replay" if doc["session"] in old else None
    if doc["session"] == last.session:
        return None if doc["seq"] > last.seq else "replay"
    if doc["session"] in old:
        return "replay"
    if doc["started"] > last.document["started"] or stale:
        return None
    return "replay"


# --- the channel ---------------------------------------------------------------------------


def _now() -> float:
    """trio's clock in trio (a MockClock in tests), the monotonic clock outside."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


def _address(text: str) -> tuple[str, int, socket.AddressFamily]:
    """ "10.0.0.1:9724" or "[fe80::1%em1]:9724" -> (host, port, family)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port), socket.AF_INET6
    host, _, port = text.rpartition(":")
    return host, int(port), socket.AF_INET


class Channel:
    def __init__(
        self,
        config: PeerConfig,
        key: bytes,
        log: Log,
        *,
        parse: Callable[[Any], Any] = lambda view: view,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.parse = parse  # the view document into what the pair rule takes; ValueError
        self.key = key
        self.log = log
        self.session = secrets.token_hex(8)
        self.started = wall()
        self.seq = 0
        self.last: Heard | None = None
        self.old_sessions: deque[str] = deque(maxlen=32)
        self.rejected: Counter[str] = Counter()
        self.last_reject: float | None = None  # time of the last rejected message
        self.send_errors = 0
        # optional section -> its check (the section in, the section or ValueError out)
        self.sections: dict[str, Callable[[Any], Any]] = {}
        self.dropped_sections: Counter[tuple[str, str]] = Counter()  # (section, why)
        self._logged: dict[str, float] = {}
        self._since_logged: Counter[str] = Counter()
        self.sockets: list[socket.socket] = []
        self.targets = [_address(a) for a in config.addresses]

    # --- start-up (before trio) ----------------------------------------------------------

    def bind(self) -> None:
        """Bind one socket per `listen` entry; OSError names the address that failed."""
        for entry in self.config.listen:
            host, port, family = _address(entry)
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setblocking(False)
                sock.bind(socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4])
            except OSError as exc:
                sock.close()
                self.close()
                raise OSError(exc.errno, f"peer.listen {entry}: {exc.strerror}") from None
            self.sockets.append(sock)

    @property
    def ports(self) -> list[int]:
        return [int(s.getsockname()[1]) for s in self.sockets]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []

    # --- sending -------------------------------------------------------------------------

    def send(self, view: Mapping[str, Any], heard: Heard | None, **sections: Any) -> int:
        """Send one message on every path; returns its seq. Never blocks. An optional
        section that would take the message past MAX_MESSAGE is left out (the last first),
        counted and logged: the view always goes."""
        clash = HEADER.intersection(sections)
        if clash:
            raise ValueError(f"not an optional section: {sorted(clash)}")
        self.seq += 1
        doc: dict[str, Any] = {
            "carpd-py": PROTOCOL,
            "session": self.session,
            "started": self.started,
            "seq": self.seq,
            "heard": None if heard is None else {"session": heard.session, "seq": heard.seq},
            "node": socket.gethostname()[:64],
            "version": __version__,
            "view": dict(view),
            **sections,
        }
        data = seal(self.key, doc)
        for name in reversed(list(sections)):
            if len(data) <= MAX_MESSAGE:
                break
            detail = f"{len(data)} bytes with it, more than {MAX_MESSAGE}: sent without it"
            del doc[name]
            data = seal(self.key, doc)
            self._drop_section(name, "size", detail, _now())
        for host, port, family in self.targets:
            sock = next((s for s in self.sockets if s.family == family), None)
            if sock is None:
                continue
            try:
                sock.sendto(data, (host, port))
            except OSError:  # unreachable, no buffer space: the next round sends again
                self.send_errors += 1
        return self.seq

    # --- receiving -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for sock in self.sockets:
                nursery.start_soon(self._receive, trio.socket.from_stdlib_socket(sock))
            task_status.started()

    async def _receive(self, sock: trio.socket.SocketType) -> None:
        while True:
            try:
                data, _ = await sock.recvfrom(MAX_MESSAGE + 1)
            except OSError:  # ICMP port unreachable reported on the socket, and friends
                await trio.sleep(0.01)
                continue
            self.receive(data, trio.current_time())

    def receive(self, data: bytes, now: float) -> bool:
        """Take one datagram; True if it was accepted."""
        try:
            doc = unseal(self.key, data)
            view = self.parse(doc["view"])
        except (ValueError, TypeError, KeyError) as exc:
            self._reject("format", f"view: {exc}", now)
            return False
        except Rejected as exc:
            self._reject(exc.why, str(exc), now)
            return False
        why = admit(doc, self.last, self.session, frozenset(self.old_sessions), self.stale(now))
        if why is not None:
            self._reject(why, f"session {doc['session']} seq {doc['seq']}", now)
            return False
        self._check_sections(doc, now)
        if self.last is not None and self.last.session != doc["session"]:
            self.old_sessions.append(self.last.session)
            self.log.notice("peer restarted", node=doc.get("node"), session=doc["session"])
        self.last = Heard(doc, now, view)
        return True

    def _check_sections(self, doc: dict[str, Any], now: float) -> None:
        """Leave out (and count) each known optional section that fails its check."""
        for name, check in self.sections.items():
            if name not in doc:
                continue
            try:
                doc[name] = check(doc[name])
            except Exception as exc:  # network input: whatever is wrong with
                # the section, the rest of the message stands)
                del doc[name]
                self._drop_section(name, "format", f"ignored: {exc}", now)

    def _drop_section(self, name: str, why: str, detail: str, now: float) -> None:
        self.dropped_sections[name, why] += 1
        key = f"section {name} {why}"
        self._since_logged[key] += 1
        when = self._logged.get(key)
        if when is None or now - when >= LOG_EVERY:
            self.log.warning("peer message section dropped", section=name, why=why,
                             detail=detail, count=self._since_logged[key])  # fmt: skip
            self._logged[key] = now
            self._since_logged[key] = 0

    def _reject(self, why: str, detail: str, now: float) -> None:
        self.rejected[why] += 1
        self.last_reject = now
        self._since_logged[why] += 1
        when = self._logged.get(why)
        if when is None or now - when >= LOG_EVERY:
            self.log.warning(
                "peer message dropped", why=why, detail=detail, count=self._since_logged[why]
            )
            self._logged[why] = now
            self._since_logged[why] = 0

    # --- what the pair rule needs ----------------------------------------------------------

    def stale(self, now: float) -> bool:
        return self.last is None or now - self.last.at > self.config.timeout

    def state(self, now: float) -> str:
        """ "up": a valid message within `timeout`; "rejected": none, but bad ones arrive
        (a wrong key, most likely); "unknown": nothing at all."""
        if not self.stale(now):
            return "up"
        if self.last_reject is not None and now - self.last_reject <= self.config.timeout:
            return "rejected"
        return "unknown"

    def age(self, now: float) -> float | None:
        return None if self.last is None else max(0.0, now - self.last.at)
