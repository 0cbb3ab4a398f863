"""carpd_py.config: the shipped config, defaults, every validation rule, and a fuzz."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from carpd_py.config import (
    Config,
    ConfigError,
    ControlConfig,
    DemoteConfig,
    HooksConfig,
    LogConfig,
    MetricsConfig,
    PeerConfig,
    PlatformConfig,
    SyncConfig,
    UpstreamConfig,
    VerifyConfig,
    _array,
    load_config,
    parse_config,
)

F = "carpd-py.conf"
ETC = Path(__file__).resolve().parent.parent / "etc" / "carpd-py.conf"
TABLES: dict[str, type[Any]] = {
    "demote": DemoteConfig,
    "sync": SyncConfig,
    "upstream": UpstreamConfig,
    "verify": VerifyConfig,
    "metrics": MetricsConfig,
    "log": LogConfig,
    "control": ControlConfig,
    "platform": PlatformConfig,
    "hooks": HooksConfig,
    "peer": PeerConfig,
}
ROOT_KEYS = ("interval", "state_file", "restore_on_exit")
ISP = '[[upstream]]\nname = "isp"\n'  # an upstream group to complete in a test


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, F)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the shipped config and the defaults ---


def test_shipped_config_is_node_a_of_the_handbook() -> None:
    assert load_config(str(ETC)) == Config(
        interval=1.0,
        state_file="/var/db/carpd-py/state.json",
        restore_on_exit=False,
        demote=DemoteConfig(
            method="advskew",
            advskew=240,
            carpdemote=50,
            group="carp",
            interfaces=(),
            hold_down=10.0,
        ),
        sync=SyncConfig(interface="pfsync0", peer="10.255.255.3", timeout=1.0, fall=3, rise=3),
        upstream=(
            UpstreamConfig(
                name="isp",
                method="icmp",
                targets=("203.0.113.6", "198.51.100.1"),
                port=None,
                command=(),
                min_up=1,
                timeout=1.0,
                fall=3,
                rise=5,
            ),
        ),
        metrics=MetricsConfig(listen="127.0.0.1:9723"),
        log=LogConfig(facility="daemon", level="info", socket="/dev/log"),
        control=ControlConfig(socket="/var/run/carpd-py.sock"),
        platform=PlatformConfig(
            ifconfig="/sbin/ifconfig",
            sysctl="/sbin/sysctl",
            command_timeout=2.0,
            sysctl_interval=30.0,
            resync_interval=10.0,
            route_socket="",
        ),
        hooks=HooksConfig(on_demote=(), on_restore=(), on_role_change=(), timeout=10.0),
        path=str(ETC),
    )


def _uncomment_peer(text: str) -> str:
    """The shipped config with its commented [peer] block turned on, as an admin would."""
    head, _, block = text.partition("\n# [peer]")
    lines = ("[peer]" + block).splitlines()
    return head + "\n" + "\n".join(line.removeprefix("# ") for line in lines) + "\n"


def test_shipped_config_leaves_the_pair_off_so_a_fresh_install_passes_n() -> None:
    """`carpd-py -n` refuses a missing key file; the example must pass -n on a fresh machine."""
    assert load_config(str(ETC)).peer is None
    assert "\n# [peer]" in ETC.read_text()


def test_shipped_peer_block_uncommented_is_the_handbook_pair() -> None:
    config = parse_config(_uncomment_peer(ETC.read_text()), F)
    assert config.peer == PeerConfig(
        listen=("10.10.10.2:9724",),
        addresses=("10.10.10.3:9724",),
        key_file="/etc/carpd-py.key",
        timeout=3.0,
    )


def test_shipped_config_shows_every_key() -> None:
    """Every dataclass field is a key of etc/carpd-py.conf, set or (port, command) commented."""
    document = tomllib.loads(_uncomment_peer(ETC.read_text()))
    shown = {key for key in document if key not in TABLES}
    for table in TABLES:
        section = document[table][0] if table == "upstream" else document[table]
        shown |= {f"{table}.{key}" for key in section}
    text = ETC.read_text()
    assert "\n# port = " in text
    assert "\n# command = [" in text
    assert "\n# relay = " in text
    assert "\n# table = " in text
    wanted = {f.name for f in dataclasses.fields(Config)} - {"path", *TABLES}
    for table, cls in TABLES.items():
        wanted |= {f"{table}.{f.name}" for f in dataclasses.fields(cls)}
    commented = {"upstream.port", "upstream.command", "upstream.relay", "upstream.table"}
    assert shown | commented == wanted


def test_empty_file_gives_the_defaults() -> None:
    assert parse_config("", F) == Config(path=F)
    assert parse_config("", F).sync is None


def test_empty_sync_table_turns_the_sync_check_on_with_defaults() -> None:
    assert parse_config("[sync]\n", F).sync == SyncConfig()


def test_values_are_converted() -> None:
    config = parse_config(
        "interval = 2\n"
        '[demote]\ninterfaces = ["carp1", "carp0"]\nhold_down = 0\n'
        '[hooks]\non_demote = ["/usr/local/bin/notify", "demote"]\n'
        '[[upstream]]\nname = "web"\nmethod = "tcp"\nport = 443\n'
        'targets = ["2001:DB8::0:1", "192.0.2.1"]\nmin_up = 2\n'
        '[[upstream]]\nname = "relayd"\nmethod = "exec"\n'
        'command = ["/usr/sbin/relayctl", "show", "summary"]\n',
        F,
    )
    assert isinstance(config.interval, float)
    assert config.interval == 2.0
    assert config.demote.interfaces == ("carp1", "carp0")
    assert config.demote.hold_down == 0.0
    assert config.hooks.on_demote == ("/usr/local/bin/notify", "demote")
    assert config.upstream == (
        UpstreamConfig(
            name="web", method="tcp", targets=("2001:db8::1", "192.0.2.1"), port=443, min_up=2
        ),
        UpstreamConfig(
            name="relayd", method="exec", command=("/usr/sbin/relayctl", "show", "summary")
        ),
    )


@pytest.mark.parametrize(
    "listen", ["", "localhost:9723", "0.0.0.0:1", "[::1]:9723", "[fe80::1%em1]:65535"]
)
def test_metrics_listen_accepted(listen: str) -> None:
    assert parse_config(f'[metrics]\nlisten = "{listen}"\n', F).metrics.listen == listen


@pytest.mark.parametrize("level", ["debug", "info", "notice", "warning", "error"])
def test_log_levels_accepted(level: str) -> None:
    assert parse_config(f'[log]\nlevel = "{level}"\n', F).log.level == level


# --- one case per rule: the config text and the exact problem lines ---

NUMBER = "must be a number from"
ABOVE = "must be a number above 0 and at most"
LISTEN = (
    'must be "" or HOST:PORT (HOST an IP address or localhost, [brackets] around IPv6, '
    "PORT from 1 to 65535), not "
)
FACILITIES = (
    '"daemon", "user", "auth", "authpriv", "cron", "ftp", "lpr", "mail", "news", "syslog", '
    '"uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"'
)
GROUP = "must be a group name (up to 15 letters, digits, _; not ending in a digit), not"
NAME = 'must be a name of up to 64 letters, digits, "_", "." or "-", not'

RULES: list[tuple[str, str, list[str]]] = [
    # unknown keys, at every level
    ("unknown-root", "bogus = 1", ["bogus: unknown key"]),
    ("unknown-table", "[nope]", ["nope: unknown key"]),
    ("unknown-sync", "[sync]\nbogus = 1", ["sync.bogus: unknown key"]),
    ("unknown-quoted", '"a b" = 1', ['"a b": unknown key']),
    ("unknown-path", 'path = "/x"', ["path: unknown key"]),
    ("unknown-upstream", ISP + 'targets = ["192.0.2.1"]\nbogus = 1',
     ["upstream[0].bogus: unknown key"]),
    # wrong types; bool is not an int
    ("type-string-number", 'interval = "1"', [f'interval: {NUMBER} 0.1 to 60, not "1"']),
    ("type-bool-number", "interval = true", [f"interval: {NUMBER} 0.1 to 60, not true"]),
    ("type-bool-int", "[demote]\nadvskew = true",
     ["demote.advskew: must be an integer from 1 to 254, not true"]),
    ("type-float-int", "[demote]\nadvskew = 240.0",
     ["demote.advskew: must be an integer from 1 to 254, not 240.0"]),
    ("type-bool", "restore_on_exit = 1", ["restore_on_exit: must be true or false, not 1"]),
    ("type-date", "state_file = 1979-05-27",
     ["state_file: must be an absolute path, not a date/time"]),
    ("type-table", "demote = 1", ["demote: must be a table, not 1"]),
    ("type-array-of-tables", "upstream = 1", ["upstream: must be an array of tables, not 1"]),
    ("type-array-item", "upstream = [1]", ["upstream[0]: must be a table, not 1"]),
    ("type-upstream-table", "[upstream]", ["upstream: must be an array of tables, not a table"]),
    ("type-array", '[demote]\ninterfaces = "carp0"',
     ['demote.interfaces: must be an array, not "carp0"']),
    # ranges
    ("interval-low", "interval = 0.05", [f"interval: {NUMBER} 0.1 to 60, not 0.05"]),
    ("interval-high", "interval = 61", [f"interval: {NUMBER} 0.1 to 60, not 61"]),
    ("interval-nan", "interval = nan", [f"interval: {NUMBER} 0.1 to 60, not nan"]),
    ("advskew-0", "[demote]\nadvskew = 0",
     ["demote.advskew: must be an integer from 1 to 254, not 0"]),
    ("advskew-255", "[demote]\nadvskew = 255",
     ["demote.advskew: must be an integer from 1 to 254, not 255"]),
    ("carpdemote-0", "[demote]\ncarpdemote = 0",
     ["demote.carpdemote: must be an integer from 1 to 128, not 0"]),
    ("carpdemote-129", "[demote]\ncarpdemote = 129",
     ["demote.carpdemote: must be an integer from 1 to 128, not 129"]),
    ("hold-down-negative", "[demote]\nhold_down = -1",
     [f"demote.hold_down: {NUMBER} 0 to 86400, not -1"]),
    ("hold-down-inf", "[demote]\nhold_down = inf",
     [f"demote.hold_down: {NUMBER} 0 to 86400, not inf"]),
    ("fall-0", "[sync]\nfall = 0", ["sync.fall: must be an integer from 1 to 100, not 0"]),
    ("rise-101", "[sync]\nrise = 101", ["sync.rise: must be an integer from 1 to 100, not 101"]),
    ("upstream-fall-0", ISP + 'targets = ["192.0.2.1"]\nfall = 0',
     ["upstream[0].fall: must be an integer from 1 to 100, not 0"]),
    ("sync-timeout-0", "[sync]\ntimeout = 0", [f"sync.timeout: {ABOVE} 60, not 0"]),
    ("upstream-timeout-61", ISP + 'targets = ["192.0.2.1"]\ntimeout = 60.5',
     [f"upstream[0].timeout: {ABOVE} 60, not 60.5"]),
    ("command-timeout-0", "[platform]\ncommand_timeout = 0",
     [f"platform.command_timeout: {ABOVE} 60, not 0"]),
    ("hooks-timeout", "[hooks]\ntimeout = 3601", [f"hooks.timeout: {ABOVE} 3600, not 3601"]),
    ("port-0", ISP + 'method = "tcp"\ntargets = ["192.0.2.1"]\nport = 0',
     ["upstream[0].port: must be an integer from 1 to 65535, not 0"]),
    ("port-65536", ISP + 'method = "tcp"\ntargets = ["192.0.2.1"]\nport = 65536',
     ["upstream[0].port: must be an integer from 1 to 65535, not 65536"]),
    ("min-up-0", ISP + 'targets = ["192.0.2.1"]\nmin_up = 0',
     ["upstream[0].min_up: must be an integer of at least 1, not 0"]),
    ("min-up-above-targets", ISP + 'targets = ["192.0.2.1", "192.0.2.2"]\nmin_up = 3',
     ["upstream[0].min_up: must be at most the number of targets (2), not 3"]),
    ("sysctl-interval", "[platform]\nsysctl_interval = 0.5",
     ["platform.sysctl_interval: must be at least interval (1), not 0.5"]),
    ("sysctl-interval-default", "interval = 45",
     ["platform.sysctl_interval: must be at least interval (45), not 30 (the default)"]),
    # choices
    ("demote-method", '[demote]\nmethod = "bogus"',
     ['demote.method: must be one of "advskew", "carpdemote", not "bogus"']),
    ("upstream-method", ISP + 'method = "udp"',
     ['upstream[0].method: must be one of "icmp", "tcp", "exec", "relayd", not "udp"']),
    ("log-facility", '[log]\nfacility = "kern"',
     [f'log.facility: must be one of {FACILITIES}, not "kern"']),
    ("log-level", '[log]\nlevel = "warn"',
     ['log.level: must be one of "debug", "info", "notice", "warning", "error", not "warn"']),
    # upstream names
    ("name-missing", '[[upstream]]\ntargets = ["192.0.2.1"]', ["upstream[0].name: required"]),
    ("name-empty", '[[upstream]]\nname = ""\ntargets = ["192.0.2.1"]',
     [f'upstream[0].name: {NAME} ""']),
    ("name-space", '[[upstream]]\nname = "my isp"\ntargets = ["192.0.2.1"]',
     [f'upstream[0].name: {NAME} "my isp"']),
    ("name-duplicate", (ISP + 'targets = ["192.0.2.1"]\n') * 2,
     ['upstream[1].name: "isp" is also upstream[0].name']),
    # keys that go with the probe method
    ("tcp-without-port", ISP + 'targets = ["192.0.2.1"]\n' + ISP.replace("isp", "web")
     + 'method = "tcp"\ntargets = ["192.0.2.1"]',
     ['upstream[1].port: required with method "tcp"']),
    ("port-with-icmp", ISP + 'targets = ["192.0.2.1"]\nport = 443',
     ['upstream[0].port: only with method "tcp", not "icmp"']),
    ("exec-without-command", ISP + 'method = "exec"',
     ['upstream[0].command: required with method "exec"']),
    ("exec-empty-command", ISP + 'method = "exec"\ncommand = []',
     ['upstream[0].command: required with method "exec"']),
    ("command-with-icmp", ISP + 'targets = ["192.0.2.1"]\ncommand = ["/bin/true"]',
     ['upstream[0].command: only with method "exec", not "icmp"']),
    ("command-relative", ISP + 'method = "exec"\ncommand = ["relayctl", "show"]',
     ['upstream[0].command[0]: must be an absolute path, not "relayctl"']),
    ("command-not-strings", ISP + 'method = "exec"\ncommand = ["/bin/x", 1]',
     ["upstream[0].command[1]: must be a string, not 1"]),
    ("targets-with-exec", ISP + 'method = "exec"\ncommand = ["/bin/true"]\ntargets = []',
     ['upstream[0].targets: only with method "icmp" or "tcp", not "exec"']),
    ("targets-missing", ISP, ['upstream[0].targets: required with method "icmp"']),
    ("targets-empty", ISP + 'method = "tcp"\nport = 443\ntargets = []',
     ['upstream[0].targets: required with method "tcp"']),
    # addresses: literals only
    ("target-hostname", ISP + 'targets = ["192.0.2.1", "foo"]',
     ['upstream[0].targets[1]: "foo" is not an IPv4 or IPv6 address']),
    ("target-cidr", ISP + 'targets = ["192.0.2.0/24"]',
     ['upstream[0].targets[0]: "192.0.2.0/24" is not an IPv4 or IPv6 address']),
    ("target-int", ISP + "targets = [1]",
     ["upstream[0].targets[0]: must be an IPv4 or IPv6 address, not 1"]),
    ("target-twice", ISP + 'targets = ["192.0.2.1", "192.0.2.1"]',
     ['upstream[0].targets[1]: "192.0.2.1" is listed twice']),
    ("sync-peer", '[sync]\npeer = "node-b"',
     ['sync.peer: "node-b" is not an IPv4 or IPv6 address']),
    # interface and group names
    ("sync-interface", '[sync]\ninterface = "pfsync"',
     ['sync.interface: must be an interface name like pfsync0, not "pfsync"']),
    ("sync-interface-upper", '[sync]\ninterface = "PFSYNC0"',
     ['sync.interface: must be an interface name like pfsync0, not "PFSYNC0"']),
    ("demote-interface-not-carp", '[demote]\ninterfaces = ["carp0", "em0"]',
     ['demote.interfaces[1]: must be a carp interface like carp0, not "em0"']),
    ("demote-interface-twice", '[demote]\ninterfaces = ["carp0", "carp1", "carp0"]',
     ['demote.interfaces[2]: "carp0" is listed twice']),
    ("group-ends-in-digit", '[demote]\ngroup = "carp1"', [f'demote.group: {GROUP} "carp1"']),
    ("group-dash", '[demote]\ngroup = "my-carp"', [f'demote.group: {GROUP} "my-carp"']),
    ("group-too-long", '[demote]\ngroup = "abcdefghijklmnop"',
     [f'demote.group: {GROUP} "abcdefghijklmnop"']),
    ("group-empty", '[demote]\ngroup = ""', [f'demote.group: {GROUP} ""']),
    # metrics.listen
    *[
        (f"listen-{value}", f'[metrics]\nlisten = "{value}"',
         [f'metrics.listen: {LISTEN}"{value}"'])
        for value in ["9723", "localhost:0", "::1:9723", "[127.0.0.1]:9723", "example.com:9723",
                      "127.0.0.1:65536", "127.0.0.1:", " 127.0.0.1:9723"]
    ],
    # absolute paths
    ("state-file", 'state_file = "state.json"',
     ['state_file: must be an absolute path, not "state.json"']),
    ("control-socket", '[control]\nsocket = "carpd.sock"',
     ['control.socket: must be an absolute path, not "carpd.sock"']),
    ("log-socket", '[log]\nsocket = "dev/log"',
     ['log.socket: must be an absolute path, not "dev/log"']),
    ("platform-ifconfig", '[platform]\nifconfig = "ifconfig"',
     ['platform.ifconfig: must be an absolute path, not "ifconfig"']),
    ("platform-sysctl", '[platform]\nsysctl = ""',
     ['platform.sysctl: must be an absolute path, not ""']),
    # hooks
    ("hook-string", '[hooks]\non_demote = "/bin/notify"',
     ['hooks.on_demote: must be an array, not "/bin/notify"']),
    ("hook-relative", '[hooks]\non_restore = ["notify", "restore"]',
     ['hooks.on_restore[0]: must be an absolute path, not "notify"']),
    ("hook-nul", '[hooks]\non_role_change = ["/bin/notify", "a\\u0000b"]',
     ['hooks.on_role_change[1]: must be a string, not "a\\u0000b"']),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule(text: str, expected: list[str]) -> None:
    assert problems(text + "\n") == [f"{F}: {line}" for line in expected]


def test_several_problems_are_reported_together() -> None:
    text = """\
interval = 0
bogus = true
[demote]
advskew = 255
interfaces = ["em0"]
[sync]
peer = "node-b"
[[upstream]]
name = "isp"
method = "tcp"
targets = ["203.0.113.6", "foo"]
[[upstream]]
name = "isp"
method = "exec"
[log]
level = "loud"
"""
    assert problems(text) == [
        f"{F}: interval: must be a number from 0.1 to 60, not 0",
        f"{F}: bogus: unknown key",
        f"{F}: demote.advskew: must be an integer from 1 to 254, not 255",
        f'{F}: demote.interfaces[0]: must be a carp interface like carp0, not "em0"',
        f'{F}: sync.peer: "node-b" is not an IPv4 or IPv6 address',
        f'{F}: upstream[0].targets[1]: "foo" is not an IPv4 or IPv6 address',
        f'{F}: log.level: must be one of "debug", "info", "notice", "warning", "error", not "loud"',
        f'{F}: upstream[0].port: required with method "tcp"',
        f'{F}: upstream[1].name: "isp" is also upstream[0].name',
        f'{F}: upstream[1].command: required with method "exec"',
    ]


# --- TOML syntax, unreadable files ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interval = 1.0\n[demote\n",
         "2: Expected ']' at the end of a table declaration (column 8)"),
        ("interval = 1.0\ninterval = 2.0\n", "2: Cannot overwrite a value (column 15)"),
        ("\n\ninterval = 1.0 2\n",
         "3: Expected newline or end of document after a statement (column 16)"),
        ("interval = [1,", "1: Invalid value (at end of file)"),
        ("\ninterval = [1,\n", "3: Invalid value (at end of file)"),
    ],
)  # fmt: skip
def test_toml_syntax_error_names_file_and_line(text: str, expected: str) -> None:
    assert problems(text) == [f"{F}:{expected}"]


def test_unparsable_toml_is_a_config_error() -> None:
    assert problems("interval = " + "[" * 10_000) == [f"{F}: cannot parse: nested too deeply"]
    assert problems("interval = " + "1" * 5000)[0].startswith(f"{F}: cannot parse: Exceeds the")


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "carpd-py.conf"
    path.write_text('[sync]\npeer = "10.255.255.3"\n')
    assert load_config(str(path)) == Config(sync=SyncConfig(peer="10.255.255.3"), path=str(path))


def test_load_config_reports_problems_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "carpd-py.conf"
    path.write_text("interval = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"{path}: interval: must be a number from 0.1 to 60, not 0"]


@pytest.mark.parametrize(
    ("name", "reason"), [("missing.conf", "No such file or directory"), ("", "Is a directory")]
)
def test_load_config_unreadable(tmp_path: Path, name: str, reason: str) -> None:
    path = str(tmp_path / name) if name else str(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read: {reason}"]


def test_load_config_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "carpd-py.conf"
    path.write_bytes(b"interval = 1.0\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"{path}:2: not valid UTF-8"]


def test_load_config_nul_in_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/etc/carpd\0.conf")
    assert info.value.problems == ["/etc/carpd\0.conf: cannot read: embedded null byte"]


# --- fuzz: whatever the input, a Config or a ConfigError, never a traceback ---


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return repr(x) if math.isfinite(x) else ("inf" if x > 0 else "-inf")


PLAUSIBLE = [
    "advskew", "carpdemote", "icmp", "tcp", "exec", "carp0", "carp", "pfsync0", "em0",
    "192.0.2.1", "::1", "isp", "127.0.0.1:9723", "", "daemon", "info", "/sbin/ifconfig",
]  # fmt: skip
SCALARS = st.one_of(
    st.text(max_size=12).map(toml_string),
    st.sampled_from(PLAUSIBLE).map(toml_string),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.sampled_from([0, 1, 2, 3, 60, 100, 128, 254, 255, 443, 65535]).map(str),
    st.floats().map(toml_float),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.sampled_from(["1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "1979-05-27T00:32:00"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.text(max_size=5), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{toml_string(k)} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)


def keys_of(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)] + ["bogus"]


@st.composite
def table_body(draw: st.DrawFn, cls: type[Any]) -> str:
    keys = draw(st.lists(st.sampled_from(keys_of(cls)), unique=True))
    return "".join(f"{toml_string(key)} = {draw(VALUES)}\n" for key in keys)


@st.composite
def documents(draw: st.DrawFn) -> str:
    root = draw(st.lists(st.sampled_from([*ROOT_KEYS, "bogus"]), unique=True))
    text = "".join(f"{toml_string(key)} = {draw(VALUES)}\n" for key in root)
    tables = ""
    for name, cls in TABLES.items():
        choice = draw(st.sampled_from(["absent", "table", "value"]))
        if choice == "value":  # the table's key holds a value instead
            text += f"{toml_string(name)} = {draw(VALUES)}\n"
        elif choice == "table" and name == "upstream":
            for _ in range(draw(st.integers(1, 3))):
                tables += f"[[upstream]]\n{draw(table_body(cls))}"
        elif choice == "table":
            tables += f"[{name}]\n{draw(table_body(cls))}"
    return text + tables


def parses_or_explains(text: str) -> Config | list[str]:
    try:
        return parse_config(text, F)
    except ConfigError as exc:
        found = exc.problems
    assert found
    assert all(p.startswith(F) and "\n" not in p for p in found)
    return found


@settings(max_examples=400, deadline=None)
@given(documents())
def test_fuzz_random_values_in_every_key(text: str) -> None:
    result = parses_or_explains(text)
    if isinstance(result, list):  # the generated TOML is valid: only FILE: key.path: problems
        assert all(p.startswith(f"{F}: ") for p in result), result


def kind_ok(annotation: Any, value: object) -> bool:
    """Whether a TOML value has the type a dataclass field calls for (not whether it is valid)."""
    if annotation is type(None):
        return False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(kind_ok(arg, value) for arg in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return isinstance(value, str)
    if typing.get_origin(annotation) is tuple:
        return isinstance(value, list)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(TABLES)), st.data())
def test_fuzz_a_wrong_type_is_named_by_its_key(table: str, data: st.DataObject) -> None:
    cls = TABLES[table]
    key = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]))
    value = data.draw(VALUES)
    header = "[[upstream]]" if table == "upstream" else f"[{table}]"
    result = parses_or_explains(f"{header}\n{toml_string(key)} = {value}\n")
    parsed = tomllib.loads(f"v = {value}")["v"]
    hint = typing.get_type_hints(cls)[key]
    where = f"{F}: {table}[0].{key}" if table == "upstream" else f"{F}: {table}.{key}"
    if not kind_ok(hint, parsed):
        assert isinstance(result, list)
        assert any(p.startswith((f"{where}:", f"{where}[")) for p in result), result


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text: str) -> None:
    parses_or_explains(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 80), VALUES)
def test_fuzz_the_shipped_config_with_one_value_changed(line: int, value: str) -> None:
    lines = ETC.read_text().splitlines()
    if line < len(lines) and " = " in lines[line]:
        key = lines[line].split(" = ", 1)[0]
        lines[line] = f"{key} = {value}"
    parses_or_explains("\n".join(lines))


def test_relayd_method_takes_a_relay_or_a_table() -> None:
    good = parse_config(ISP + 'method = "relayd"\nrelay = "www"\nmin_up = 2\n', F)
    assert (good.upstream[0].relay, good.upstream[0].table, good.upstream[0].min_up) == (
        "www", None, 2)  # fmt: skip
    assert parse_config(ISP + 'method = "relayd"\ntable = "web_backends"\n', F).upstream[0].table
    with pytest.raises(ConfigError) as neither:
        parse_config(ISP + 'method = "relayd"\n', F)
    assert neither.value.problems == [
        f'{F}: upstream[0]: method "relayd" needs exactly one of relay or table'
    ]
    with pytest.raises(ConfigError) as both:
        parse_config(ISP + 'method = "relayd"\nrelay = "www"\ntable = "t"\n', F)
    assert both.value.problems == [
        f'{F}: upstream[0]: method "relayd" needs exactly one of relay or table'
    ]
    with pytest.raises(ConfigError) as wrong:
        parse_config(ISP + 'targets = ["192.0.2.1"]\nrelay = "www"\n', F)
    assert wrong.value.problems == [
        f'{F}: upstream[0].relay: only with method "relayd", not "icmp"'
    ]


def test_verify_table() -> None:
    assert parse_config("", F).verify == VerifyConfig(60.0, 0.2, "/etc/relayd.conf", "")
    assert parse_config("[verify]\ninterval = 0\n", F).verify.interval == 0
    with pytest.raises(ConfigError) as bad:
        parse_config('[verify]\ninterval = -1\nrelayd_conf = "relayd.conf"\n', F)
    assert bad.value.problems == [
        f"{F}: verify.interval: must be a number from 0 to 86400, not -1",
        f'{F}: verify.relayd_conf: must be an absolute path, not "relayd.conf"',
    ]


# --- size limits, capped problems, files that are not regular files (issue 9, item 7) ---


def test_a_list_over_its_limit_is_refused_without_checking_each_item() -> None:
    targets = ", ".join(f'"10.{i // 65536}.{i // 256 % 256}.{i % 256}"' for i in range(30000))
    assert problems(f"{ISP}targets = [{targets}]\n") == [
        f"{F}: upstream[0].targets: must have at most 256 entries, not 30000"
    ]
    interfaces = ", ".join(f'"carp{i}"' for i in range(1025))
    assert problems(f"[demote]\ninterfaces = [{interfaces}]\n") == [
        f"{F}: demote.interfaces: must have at most 1024 entries, not 1025"
    ]
    command = ", ".join(['"/bin/true"'] + ['"x"'] * 256)
    assert problems(f"[hooks]\non_demote = [{command}]\n") == [
        f"{F}: hooks.on_demote: must have at most 256 entries, not 257"
    ]
    groups = "".join(f'[[upstream]]\nname = "g{i}"\nmethod = "exec"\ncommand = ["/bin/true"]\n'
                     for i in range(65))  # fmt: skip
    assert problems(groups) == [f"{F}: upstream: must have at most 64 entries, not 65"]


def test_the_limits_leave_room_well_above_the_benchmark() -> None:
    """256 carp interfaces and 64 upstream targets (make bench), and then some."""
    interfaces = ", ".join(f'"carp{i}"' for i in range(1024))
    icmp = ", ".join(f'"127.0.1.{i}"' for i in range(256))
    tcp = ", ".join(f'"127.0.2.{i}"' for i in range(256))
    config = parse_config(
        f"[demote]\ninterfaces = [{interfaces}]\n"
        f'[[upstream]]\nname = "a"\ntargets = [{icmp}]\n'
        f'[[upstream]]\nname = "b"\nmethod = "tcp"\nport = 80\ntargets = [{tcp}]\n',
        F,
    )
    assert len(config.demote.interfaces) == 1024
    assert [len(u.targets) for u in config.upstream] == [256, 256]


def test_too_many_targets_in_all_groups_together() -> None:
    groups = "".join(
        f'[[upstream]]\nname = "g{g}"\ntargets = ['
        + ", ".join(f'"10.0.{g}.{i}"' for i in range(200))
        + "]\n"
        for g in range(6)
    )
    assert problems(groups) == [
        f"{F}: upstream: at most 1024 targets in all groups together, not 1200"
    ]


def test_problems_are_capped_at_50_then_counted() -> None:
    text = "".join(f"unknown{i} = 1\n" for i in range(200000 // 100))
    found = problems(text)
    assert len(found) == 51
    assert found[:2] == [f"{F}: unknown0: unknown key", f"{F}: unknown1: unknown key"]
    assert found[49] == f"{F}: unknown49: unknown key"
    assert found[50] == f"{F}: and 1950 more problems"


class Counted:
    """A value that counts how often it is compared: the duplicate check must hash, not scan."""

    eq_calls = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        Counted.eq_calls += 1
        return isinstance(other, Counted) and other.n == self.n

    def __hash__(self) -> int:
        return hash(self.n)


def test_the_duplicate_check_is_linear() -> None:
    check = _array(lambda v: v, unique=True, most=100000)
    Counted.eq_calls = 0
    assert len(check([Counted(i) for i in range(5000)])) == 5000
    assert Counted.eq_calls < 5000  # a scan of the items so far would compare 12.5 million times


def test_a_duplicate_is_still_named_by_its_index() -> None:
    assert problems(f'{ISP}targets = ["10.0.0.1", "10.0.0.2", "10.0.0.1"]\n') == [
        f'{F}: upstream[0].targets[2]: "10.0.0.1" is listed twice'
    ]


def test_load_config_refuses_a_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "carpd-py.conf"
    path.write_text("# " + "x" * (128 * 1024) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [
        f"{path}: too large: {128 * 1024 + 3} bytes, at most {128 * 1024}"
    ]


def test_load_config_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fifo.conf"
    os.mkfifo(path)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))  # never waits for a writer
    assert info.value.problems == [f"{path}: cannot read: a FIFO, not a regular file"]


def test_load_config_refuses_a_device() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("/dev/zero")
    assert info.value.problems == ["/dev/zero: cannot read: a character device, not a regular file"]
