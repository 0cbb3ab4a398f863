"""/etc/carpd-py.conf: TOML into frozen dataclasses, with every problem reported at once.

The key names are the user-facing contract (see carpd-py.conf(5) and etc/carpd-py.conf).
Pure: `parse_config` takes text and returns a Config or raises ConfigError; only
`load_config` touches the file system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DemoteMethod = Literal["advskew", "carpdemote"]
ProbeMethod = Literal["icmp", "tcp", "exec"]

DEFAULT_PATH = "/etc/carpd-py.conf"


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
    min_up: int = 1
    timeout: float = 1.0
    fall: int = 3
    rise: int = 5


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
    command_timeout: float = 2.0  # deadline for one ifconfig/sysctl run
    sysctl_interval: float = 30.0  # how often the daemon re-reads net.inet.carp


@dataclass(frozen=True)
class HooksConfig:
    on_demote: tuple[str, ...] = ()
    on_restore: tuple[str, ...] = ()
    on_role_change: tuple[str, ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    interval: float = 1.0
    state_file: str = "/var/db/carpd-py/state.json"
    restore_on_exit: bool = False
    demote: DemoteConfig = field(default_factory=DemoteConfig)
    sync: SyncConfig | None = None
    upstream: tuple[UpstreamConfig, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    platform: PlatformConfig = field(default_factory=PlatformConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)
    path: str = DEFAULT_PATH  # where it was read from, for messages


class ConfigError(Exception):
    """Every problem found in one config, each already formatted for the user:
    `FILE:LINE: message` for TOML syntax, `FILE: key.path: message` for the rest."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- loader and validator below (parse_config, load_config) ---
