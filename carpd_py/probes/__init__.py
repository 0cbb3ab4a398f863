"""Probes: ICMP echo (one socket per address family), TCP connect, exec; and group rounds."""

from ._addr import family_of
from .exec import ExecResult, exec_probe
from .group import (
    ROUND_MARGIN,
    BatchProbe,
    GroupResult,
    TargetProbe,
    TargetResult,
    judge,
    probe_group,
)
from .icmp import Pinger, Pingers
from .tcp import tcp_probe

__all__ = [
    "ROUND_MARGIN",
    "BatchProbe",
    "ExecResult",
    "GroupResult",
    "Pinger",
    "Pingers",
    "TargetProbe",
    "TargetResult",
    "exec_probe",
    "family_of",
    "judge",
    "probe_group",
    "tcp_probe",
]
