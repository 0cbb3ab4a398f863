"""A stand-in for OpenBSD's C `ifconfig` and `sysctl`: /bin/sh exec'ing /bin/cat.

It prints, byte for byte, what the simulated executables printed for the same world at the
moment it was written (`ifconfig`, `ifconfig -g carp`, `sysctl net.inet.carp`), and costs what
starting a small C program costs: the time a poll spends on the host commands then is about
what it is on OpenBSD, where ifconfig answers in about a millisecond. It changes nothing: only
for the idle poll-cost runs, where carpd-py runs no set command.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

_IFCONFIG = """#!/bin/sh
# carpd-py bench: a C-speed stand-in for ifconfig (prints a frozen answer)
if [ "$1" = "-g" ]; then exec /bin/cat {group}; fi
exec /bin/cat {full}
"""
_SYSCTL = """#!/bin/sh
# carpd-py bench: a C-speed stand-in for sysctl (prints a frozen answer)
exec /bin/cat {values}
"""


@dataclass(frozen=True)
class Texts:
    ifconfig: str
    group: str
    sysctl: str


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def write_stub(directory: Path, ifconfig: str, sysctl: str) -> tuple[str, str, Texts]:
    """Freeze what `ifconfig`/`sysctl` print now into `directory`; the stand-ins' paths."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = Texts(
        ifconfig=_out([ifconfig]),
        group=_out([ifconfig, "-g", "carp"]),
        sysctl=_out([sysctl, "net.inet.carp"]),
    )
    files = {"full": texts.ifconfig, "group": texts.group, "values": texts.sysctl}
    paths = {}
    for name, text in files.items():
        path = directory / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        paths[name] = shlex.quote(str(path))
    stub_ifconfig = directory / "ifconfig"
    stub_ifconfig.write_text(_IFCONFIG.format(**paths), encoding="utf-8")
    stub_sysctl = directory / "sysctl"
    stub_sysctl.write_text(_SYSCTL.format(**paths), encoding="utf-8")
    for path in (stub_ifconfig, stub_sysctl):
        path.chmod(0o755)
    return str(stub_ifconfig), str(stub_sysctl), texts
