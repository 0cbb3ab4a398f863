"""What the figures were measured on: CPU, cores, memory, kernel, Python, package versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("carpd-py", "trio", "psutil", "prometheus-client", "structlog")
MACHINE_ORDER = (
    "date", "cpu", "cores", "memory", "kernel", "python", "load average at the start",
    "load average at the end", "carpd-py tree", *PACKAGES, "keepalived",
)  # fmt: skip


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    m = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    return m.group(1).strip() if m else (platform.processor() or platform.machine())


def memory_total() -> str:
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    return f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else "unknown"


def keepalived_version() -> str | None:
    path = shutil.which("keepalived")
    if path is None:
        return None
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else None


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores)"
    except OSError:
        return "unknown"


def revision() -> str:
    """The commit of the tree measured, and whether it had changes on top."""
    root = Path(__file__).resolve().parent.parent
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run(
        [git, "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        [git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (head or "unknown") + (" with uncommitted changes" if dirty else "")


def machine() -> dict[str, str]:
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": memory_total(),
        "kernel": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "load average at the start": load_average(),
        "carpd-py tree": revision(),
    }
    for name in PACKAGES:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "not installed"
    ka = keepalived_version()
    info["keepalived"] = ka or "not installed"
    return info
