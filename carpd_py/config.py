"""/etc/carpd-py.conf: TOML into frozen dataclasses, with every problem reported at once.

The key names are the user-facing contract (see carpd-py.conf(5) and etc/carpd-py.conf).
Pure: `parse_config` takes text and returns a Config or raises ConfigError; only
`load_config` touches the file system.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DemoteMethod = Literal["advskew", "carpdemote"]
ProbeMethod = Literal["icmp", "tcp", "exec", "relayd"]

DEFAULT_PATH = "/etc/carpd-py.conf"

# Limits that keep reading a config cheap whatever the file holds (carpd-py.conf(5), LIMITS).
MAX_FILE_SIZE = 128 * 1024  # bytes
MAX_INTERFACES = 1024  # demote.interfaces
MAX_GROUPS = 64  # [[upstream]] tables
MAX_TARGETS = 256  # upstream.targets of one group
MAX_PATHS = 8  # peer.listen, peer.addresses: one per path between the nodes
MAX_TARGETS_TOTAL = 1024  # upstream.targets of all groups together
MAX_ARGV = 256  # words of upstream.command and of each hook
MAX_PROBLEMS = 50  # problems listed; then "and N more problems"


@dataclass(frozen=True)
class DemoteConfig:
    method: DemoteMethod = "advskew"
    advskew: int = 240
    carpdemote: int = 50
    group: str = "carp"
    interfaces: tuple[str, ...] = ()  # empty: every carp interface present
    hold_down: float = 10.0


@dataclass(frozen=True)
class SyncConfig:
    interface: str = "pfsync0"
    peer: str | None = None
    timeout: float = 1.0
    fall: int = 3
    rise: int = 3


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    method: ProbeMethod = "icmp"
    targets: tuple[str, ...] = ()
    port: int | None = None
    command: tuple[str, ...] = ()
    relay: str | None = None  # method "relayd": the relay (or redirect) whose hosts count
    table: str | None = None  # method "relayd": or the table whose hosts count
    min_up: int = 1
    timeout: float = 1.0
    fall: int = 3
    rise: int = 5


@dataclass(frozen=True)
class VerifyConfig:
    """The handbook's checks (`carpctl verify`), run by the daemon every `interval` seconds."""

    interval: float = 60.0  # 0 turns the daemon's checks off (`carpctl verify` still works)
    states_tolerance: float = 0.2  # state counts within this fraction of the larger are "close"
    relayd_conf: str = "/etc/relayd.conf"  # where the relays' `listen on` lines are read
    name: str = ""  # this node's name in the reports; "" is the host name


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9723"  # "" turns the endpoint off


@dataclass(frozen=True)
class LogConfig:
    facility: str = "daemon"
    level: str = "info"
    socket: str = "/dev/log"


@dataclass(frozen=True)
class ControlConfig:
    socket: str = "/var/run/carpd-py.sock"


@dataclass(frozen=True)
class PlatformConfig:
    ifconfig: str = "/sbin/ifconfig"
    sysctl: str = "/sbin/sysctl"
    pfctl: str = "/sbin/pfctl"
    relayctl: str = "/usr/sbin/relayctl"
    command_timeout: float = 2.0  # deadline for one ifconfig/sysctl run
    sysctl_interval: float = 30.0  # how often the daemon re-reads net.inet.carp
    resync_interval: float = 10.0  # with the routing socket: read the whole host this often
    route_socket: str = ""  # "": the kernel's routing socket (OpenBSD); a path: a Unix socket


@dataclass(frozen=True)
class HooksConfig:
    on_demote: tuple[str, ...] = ()
    on_restore: tuple[str, ...] = ()
    on_role_change: tuple[str, ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True)
class PeerConfig:
    """The channel to the other node's carpd-py (peer.py); absent: this node decides alone."""

    listen: tuple[str, ...]  # where this node receives, one per path: "IP:PORT"
    addresses: tuple[str, ...]  # the peer's carpd-py, one per path
    key_file: str = "/etc/carpd-py.key"  # shared secret, mode 0600
    timeout: float = 3.0  # no valid message for this long: the peer is unknown


@dataclass(frozen=True)
class Config:
    interval: float = 1.0
    state_file: str = "/var/db/carpd-py/state.json"
    restore_on_exit: bool = False
    demote: DemoteConfig = field(default_factory=DemoteConfig)
    sync: SyncConfig | None = None
    upstream: tuple[UpstreamConfig, ...] = ()
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    peer: PeerConfig | None = None
    path: str = DEFAULT_PATH  # where it was read from, for messages


class ConfigError(Exception):
    """Every problem found in one config, each already formatted for the user:
    `FILE:LINE: message` for TOML syntax, `FILE: key.path: message` for the rest."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _capped(file: str, problems: list[str], more: int = 0) -> list[str]:
    """The first MAX_PROBLEMS problems, then one line that counts the rest."""
    more += max(len(problems) - MAX_PROBLEMS, 0)
    return problems[:MAX_PROBLEMS] + ([f"{file}: and {more} more problems"] if more else [])


# --- loader and validator below (parse_config, load_config) ---

LOG_LEVELS: Mapping[str, int] = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3}
"""log.level, lowest first, with its syslog(3) priority: debug LOG_DEBUG (7), info LOG_INFO (6),
notice LOG_NOTICE (5), warning LOG_WARNING (4), error LOG_ERR (3). A level logs itself and
everything more severe. In Python logging terms: DEBUG, INFO, 25 (between INFO and WARNING),
WARNING, ERROR."""

# syslog(3) facilities a daemon may log to on OpenBSD; "kern" is reserved for the kernel.
LOG_FACILITIES = ("daemon", "user", "auth", "authpriv", "cron", "ftp", "lpr", "mail", "news",
                  "syslog", "uucp", *(f"local{n}" for n in range(8)))  # fmt: skip

Check = Callable[[Any], Any]  # returns the value to store, or raises _Bad
_INVALID: Any = object()  # stands in for a value that failed its check


class _Bad(Exception):
    """A value failed its check: (key path suffix, message) pairs, e.g. ("[1]", "...")."""

    def __init__(self, message: str = "", found: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.found = found if found is not None else [("", message)]


def _show(value: object) -> str:
    """A value as the user wrote it (roughly), for `..., not VALUE`; always one short line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a huge integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    return "a table" if isinstance(value, dict) else "a date/time"


def _join(path: str, key: str) -> str:
    shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
    return f"{path}.{shown}" if path else shown


# --- checkers: one per kind of value ---


def _is(want: str, ok: Callable[[Any], bool], convert: Check = lambda v: v) -> Check:
    """A checker: values where `ok` holds pass (converted); others get "must be WANT, not V"."""

    def check(v: Any) -> Any:
        if not ok(v):
            raise _Bad(f"must be {want}, not {_show(v)}")
        return convert(v)

    return check


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(lo: int, hi: int | None = None) -> Check:
    want = f"an integer from {lo} to {hi}" if hi is not None else f"an integer of at least {lo}"
    top = float("inf") if hi is None else hi
    return _is(want, lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= top)


def _number(lo: float, hi: float, *, above: bool = False) -> Check:
    """A float in lo..hi, or in (lo, hi] with `above`; an int is fine too, nan never passes."""
    if above:
        return _is(f"a number above {lo:g} and at most {hi:g}",
                   lambda v: _is_number(v) and lo < v <= hi, float)  # fmt: skip
    return _is(f"a number from {lo:g} to {hi:g}", lambda v: _is_number(v) and lo <= v <= hi, float)


def _string(pattern: str, want: str, max_len: int = 1000) -> Check:
    regex = re.compile(pattern)
    return _is(want, lambda v: isinstance(v, str) and len(v) <= max_len and _matches(regex, v))


def _matches(regex: re.Pattern[str], v: str) -> bool:
    return regex.fullmatch(v) is not None


def _choice(*options: str) -> Check:
    want = "one of " + ", ".join(json.dumps(o) for o in options)
    return _is(want, lambda v: isinstance(v, str) and v in options)


_boolean = _is("true or false", lambda v: isinstance(v, bool))


def _ip(v: Any) -> str:
    """An IPv4/IPv6 literal, in canonical form (never a host name: no DNS on a failover path)."""
    if not isinstance(v, str):
        raise _Bad(f"must be an IPv4 or IPv6 address, not {_show(v)}")
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise _Bad(f"{_show(v)} is not an IPv4 or IPv6 address") from None


def _too_many(v: list[Any], most: int) -> _Bad | None:
    if len(v) <= most:
        return None
    return _Bad(f"must have at most {most} entries, not {len(v)}")


def _array(item: Check, *, most: int, unique: bool = False) -> Check:
    """An array of at most `most` items, each checked (and, with `unique`, no value twice:
    a set of the values seen, so the check is linear)."""

    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list):
            raise _Bad(f"must be an array, not {_show(v)}")
        if (too_many := _too_many(v, most)) is not None:
            raise too_many
        out: list[Any] = []
        seen: set[Any] = set()
        found: list[tuple[str, str]] = []
        for i, x in enumerate(v):
            try:
                value = item(x)
            except _Bad as bad:
                found += [(f"[{i}]{sub}", message) for sub, message in bad.found]
                continue
            if unique and value in seen:
                found.append((f"[{i}]", f"{_show(value)} is listed twice"))
            seen.add(value)
            out.append(value)
        if found:
            raise _Bad(found=found)
        return tuple(out)

    return check


_ABSPATH = _string(r"/[^\x00]*", "an absolute path")
_WORD = _string(r"[^\x00]*", "a string")


def _argv(v: Any) -> tuple[str, ...]:
    """An argv: an array of strings, empty or with an absolute path first (no shell, no PATH)."""
    argv: tuple[str, ...] = _array(_WORD, most=MAX_ARGV)(v)
    if argv and not argv[0].startswith("/"):
        raise _Bad(found=[("[0]", f"must be an absolute path, not {_show(argv[0])}")])
    return argv


_LISTEN = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")


def _is_listen(v: Any) -> bool:
    """Empty (off), or HOST:PORT with an IPv4 literal or localhost, or [IPv6]:PORT."""
    m = _LISTEN.fullmatch(v) if isinstance(v, str) else None
    if m is None or not 1 <= int(m["port"]) <= 65535:
        return bool(v == "")
    if m["host"] == "localhost":
        return True
    try:
        address = ipaddress.ip_address(m["v6"] if m["v6"] is not None else m["host"])
    except ValueError:
        return False
    return address.version == (6 if m["v6"] is not None else 4)


_endpoint = _is("HOST:PORT (HOST an IP address, [brackets] around IPv6, PORT from 1 to 65535)",
                lambda v: v != "" and _is_listen(v) and not v.startswith("localhost:"))  # fmt: skip
_listen = _is('"" or HOST:PORT (HOST an IP address or localhost, [brackets] around IPv6, '
              "PORT from 1 to 65535)", _is_listen)  # fmt: skip


# --- the schema: key -> checker, a nested table, or an array of tables ---


@dataclass(frozen=True)
class _Table:
    cls: type[Any]  # built with the checked values; absent keys take the dataclass defaults
    keys: Mapping[str, Node]


@dataclass(frozen=True)
class _Array:
    table: _Table
    most: int  # tables at most


Node = Check | _Table | _Array

_TIMEOUT = _number(0, 60, above=True)
_COUNT = _integer(1, 100)  # fall, rise
_SCHEMA = _Table(Config, {
    "interval": _number(0.1, 60),
    "state_file": _ABSPATH,
    "restore_on_exit": _boolean,
    "demote": _Table(DemoteConfig, {
        "method": _choice("advskew", "carpdemote"),
        "advskew": _integer(1, 254),
        "carpdemote": _integer(1, 128),
        # ifconfig(8): at most 15 characters, must not end with a digit.
        "group": _string(r"[A-Za-z0-9_]*[A-Za-z_]",
                         "a group name (up to 15 letters, digits, _; not ending in a digit)", 15),
        "interfaces": _array(_string(r"carp(?:0|[1-9][0-9]*)", "a carp interface like carp0", 15),
                             most=MAX_INTERFACES, unique=True),
        "hold_down": _number(0, 86400),
    }),
    "sync": _Table(SyncConfig, {
        "interface": _string(r"[a-z]+(?:0|[1-9][0-9]*)", "an interface name like pfsync0", 15),
        "peer": _ip,
        "timeout": _TIMEOUT,
        "fall": _COUNT,
        "rise": _COUNT,
    }),
    "upstream": _Array(_Table(UpstreamConfig, {
        "name": _string(r"[A-Za-z0-9_.-]+",
                        'a name of up to 64 letters, digits, "_", "." or "-"', 64),
        "method": _choice("icmp", "tcp", "exec", "relayd"),
        "targets": _array(_ip, most=MAX_TARGETS, unique=True),
        "port": _integer(1, 65535),
        "command": _argv,
        "relay": _string(r"[^\x00\s]+", "a relay name as in relayd.conf", 64),
        "table": _string(r"[^\x00\s<>]+", "a table name as in relayd.conf", 64),
        "min_up": _integer(1),
        "timeout": _TIMEOUT,
        "fall": _COUNT,
        "rise": _COUNT,
    }), MAX_GROUPS),
    "verify": _Table(VerifyConfig, {
        "interval": _number(0, 86400),
        "states_tolerance": _number(0, 1),
        "relayd_conf": _ABSPATH,
        "name": _string(r"[A-Za-z0-9_.-]*", 'a name of letters, digits, "_", "." or "-"', 64),
    }),
    "metrics": _Table(MetricsConfig, {"listen": _listen}),
    "log": _Table(LogConfig, {
        "facility": _choice(*LOG_FACILITIES),
        "level": _choice(*LOG_LEVELS),
        "socket": _ABSPATH,
    }),
    "control": _Table(ControlConfig, {"socket": _ABSPATH}),
    "platform": _Table(PlatformConfig, {
        "ifconfig": _ABSPATH,
        "sysctl": _ABSPATH,
        "pfctl": _ABSPATH,
        "relayctl": _ABSPATH,
        "command_timeout": _TIMEOUT,
        "sysctl_interval": _number(0.1, 86400),
        "resync_interval": _number(0.1, 86400),
        "route_socket": _string(r"(?:/[^\x00]*)?", '"" or an absolute path', 100),
    }),
    "peer": _Table(PeerConfig, {
        "listen": _array(_endpoint, most=MAX_PATHS, unique=True),
        "addresses": _array(_endpoint, most=MAX_PATHS, unique=True),
        "key_file": _ABSPATH,
        "timeout": _number(0, 3600, above=True),
    }),
    "hooks": _Table(HooksConfig, {
        "on_demote": _argv,
        "on_restore": _argv,
        "on_role_change": _argv,
        "timeout": _number(0, 3600, above=True),
    }),
})  # fmt: skip

# Upstream keys that only make sense with some probe methods; required with those.
_METHOD_KEYS = {"targets": ("icmp", "tcp"), "port": ("tcp",), "command": ("exec",),
                "relay": ("relayd",), "table": ("relayd",)}  # fmt: skip
_ONE_OF = {"relayd": ("relay", "table")}  # exactly one of these with the method


class _Problems(list[str]):
    """The problems found: the first MAX_PROBLEMS kept, the others only counted."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file
        self.more = 0

    def add(self, key: str, message: str) -> None:
        if len(self) < MAX_PROBLEMS:
            self.append(f"{self.file}: {key}: {message}")
        else:
            self.more += 1


def _walk(raw: Any, node: Node, path: str, out: _Problems) -> Any:
    """Check `raw` against `node`: plain values for tables and arrays, _INVALID where bad."""
    if isinstance(node, _Array):
        if not isinstance(raw, list):
            out.add(path, f"must be an array of tables, not {_show(raw)}")
            return _INVALID
        if (too_many := _too_many(raw, node.most)) is not None:
            out.add(path, str(too_many))
            return _INVALID
        return tuple(_walk(item, node.table, f"{path}[{i}]", out) for i, item in enumerate(raw))
    if isinstance(node, _Table):
        if not isinstance(raw, dict):
            out.add(path, f"must be a table, not {_show(raw)}")
            return _INVALID
        values: dict[str, Any] = {}
        for key, value in raw.items():
            child = node.keys.get(key)
            if child is None:
                out.add(_join(path, key), "unknown key")
            else:
                values[key] = _walk(value, child, _join(path, key), out)
        return values
    try:
        return node(raw)
    except _Bad as bad:
        for sub, message in bad.found:
            out.add(path + sub, message)
        return _INVALID


def _check_upstream(values: dict[str, Any], out: _Problems) -> None:
    """Names present and unique; keys that go with the method; min_up within the targets."""
    names: dict[str, int] = {}
    groups = values.get("upstream", ())
    total = sum(
        len(up["targets"])
        for up in (() if groups is _INVALID else groups)
        if up is not _INVALID and up.get("targets", _INVALID) is not _INVALID
    )
    if total > MAX_TARGETS_TOTAL:
        out.add("upstream", f"at most {MAX_TARGETS_TOTAL} targets in all groups together, "
                f"not {total}")  # fmt: skip
    for i, up in enumerate(() if groups is _INVALID else groups):
        if up is _INVALID:
            continue
        name = up.get("name")
        if name is None:
            out.add(f"upstream[{i}].name", "required")
        elif name is not _INVALID and name in names:
            out.add(f"upstream[{i}].name", f"{_show(name)} is also upstream[{names[name]}].name")
        elif name is not _INVALID:
            names[name] = i
        method = up.get("method", "icmp")
        if method is _INVALID:
            continue
        either = _ONE_OF.get(method, ())
        if either and sum(up.get(k) is not None for k in either) != 1:
            out.add(f"upstream[{i}]", f'method "{method}" needs exactly one of relay or table')
        for key, methods in _METHOD_KEYS.items():
            given = up.get(key)
            if key in either:
                if method not in methods and key in up and given is not _INVALID:
                    out.add(f"upstream[{i}].{key}", f'only with method "relayd", not "{method}"')
                continue
            if method in methods and given in (None, ()):
                out.add(f"upstream[{i}].{key}", f'required with method "{method}"')
            elif method not in methods and key in up and given is not _INVALID:
                allowed = " or ".join(f'"{m}"' for m in methods)
                out.add(f"upstream[{i}].{key}", f'only with method {allowed}, not "{method}"')
        targets, min_up = up.get("targets", ()), up.get("min_up", 1)
        if method != "exec" and _INVALID not in (targets, min_up) and 0 < len(targets) < min_up:
            out.add(
                f"upstream[{i}].min_up",
                f"must be at most the number of targets ({len(targets)}), not {min_up}",
            )


def _check_sysctl_interval(values: dict[str, Any], out: _Problems) -> None:
    interval = values.get("interval", Config.interval)
    platform = values.get("platform", {})
    if _INVALID in (interval, platform) or platform.get("sysctl_interval") is _INVALID:
        return
    given = platform.get("sysctl_interval")
    value = PlatformConfig.sysctl_interval if given is None else given
    if value < interval:
        default = "" if given is not None else " (the default)"
        out.add(
            "platform.sysctl_interval",
            f"must be at least interval ({interval:g}), not {value:g}{default}",
        )


def _check_peer(values: dict[str, Any], out: _Problems) -> None:
    """listen and addresses given; timeout longer than interval (one message per interval)."""
    peer = values.get("peer")
    if peer is None or peer is _INVALID:
        return
    for key in ("listen", "addresses"):
        if peer.get(key) in (None, ()):
            out.add(f"peer.{key}", "required: at least one HOST:PORT")
    interval = values.get("interval", Config.interval)
    timeout = peer.get("timeout", PeerConfig.timeout)
    if _INVALID not in (interval, timeout) and timeout <= interval:
        default = "" if "timeout" in peer else " (the default)"
        out.add(
            "peer.timeout",
            f"must be longer than interval ({interval:g}), not {timeout:g}{default}",
        )


_CROSS_CHECKS = (_check_upstream, _check_sysctl_interval, _check_peer)


def _build(node: Node, value: Any) -> Any:
    if isinstance(node, _Array):
        return tuple(_build(node.table, item) for item in value)
    if isinstance(node, _Table):
        return node.cls(**{key: _build(node.keys[key], v) for key, v in value.items()})
    return value


def _syntax_error(message: str, text: str, path: str) -> str:
    """tomllib's "MESSAGE (at line 3, column 5)" as "PATH:3: MESSAGE (column 5)"."""
    m = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if m:
        return f"{path}:{m[1]}: {message[: m.start()]} (column {m[2]})"
    message = message.removesuffix(" (at end of document)")
    return f"{path}:{text.count(chr(10)) + 1}: {message} (at end of file)"


def parse_config(text: str, path: str) -> Config:
    """The Config in `text`, read from `path`; ConfigError lists every problem found."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_error(str(exc), text, path)]) from None
    except RecursionError:
        raise ConfigError([f"{path}: cannot parse: nested too deeply"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError([f"{path}: cannot parse: {exc}"]) from None
    out = _Problems(path)
    values = _walk(document, _SCHEMA, "", out)
    for check in _CROSS_CHECKS:
        check(values, out)
    if out:
        raise ConfigError(_capped(path, list(out), out.more))
    config: Config = _build(_SCHEMA, values)
    return replace(config, path=path)


_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip


def _read_regular(path: str) -> bytes:
    """The bytes of the regular file at `path`, at most MAX_FILE_SIZE. Opened without waiting
    (O_NONBLOCK: a FIFO never blocks) and checked with fstat before a byte is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for is_kind, k in _NOT_REGULAR if is_kind(st.st_mode)), "not a file")
            raise ConfigError([f"{path}: cannot read: {kind}, not a regular file"])
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_SIZE and (chunk := os.read(fd, MAX_FILE_SIZE + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_FILE_SIZE:
        size = max(size, st.st_size)
        raise ConfigError([f"{path}: too large: {size} bytes, at most {MAX_FILE_SIZE}"])
    return b"".join(chunks)


def load_config(path: str) -> Config:
    """Read and parse the config file at `path`; ConfigError if it cannot be read or is bad."""
    try:
        data = _read_regular(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read: {reason}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: not valid UTF-8"]) from None
    return parse_config(text, path)
