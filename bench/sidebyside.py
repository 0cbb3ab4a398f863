"""keepalived side by side: the integration point with the network lab (bench/keepalived.py).

The network lab (carpd_py/sim/lab.py) and `bench/keepalived.py` are another part of the
project; this module only calls them, when they are there:

    run_keepalived(root, faults, *, idle, lab, progress)   keepalived in fwA and fwB
    run_carpd_lab(root, faults, *, idle, lab, progress)    carpd-py in fwA and fwB

both in ONE `Lab` (the same namespaces, links and targets), one after the other, in this run.
Each is passed the keyword arguments its signature accepts among `root`, `faults`, `idle`,
`quick`, `lab` and `progress`. What each returns (a mapping) is flattened into figures:
numbers as they are, nested mappings joined with dots (`reaction.sync_carrier.p50`), lists of
numbers as p50/p95/max; the table shows every figure both sides returned, with the
carpd-py / keepalived ratio. When `bench/keepalived.py` or the lab's tools are missing, the
part is skipped and RESULTS.md says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import summary

MODULE = "bench.keepalived"
LAB_MODULE = "carpd_py.sim.lab"
# Counts and settings, not costs: no ratio for these.
NOT_FIGURES = (".n", ".missed", ".processes", ".window_s")


@dataclass
class SideBySide:
    available: bool
    note: str = ""
    keepalived: dict[str, float] = field(default_factory=dict)
    carpd: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, float | None, float | None, float | None]]:
        """(figure, carpd-py, keepalived, ratio carpd-py / keepalived) for every figure."""
        out = []
        for key in sorted(set(self.carpd) | set(self.keepalived)):
            if key.endswith(NOT_FIGURES):
                continue
            c, k = self.carpd.get(key), self.keepalived.get(key)
            ratio = c / k if c is not None and k is not None and k != 0 else None
            out.append((key, c, k, ratio))
        return out


def lab_present() -> bool:
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    return {"value": value}


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Numbers as they are, lists of numbers as p50/p95/max, nested mappings with a dot."""
    out: dict[str, float] = {}
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            out[prefix or "value"] = float(value)
        return out
    if isinstance(value, (list, tuple)):
        numbers = [
            float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if numbers and len(numbers) == len(value):
            s = summary(numbers)
            out.update({f"{prefix}.p50": s.p50, f"{prefix}.p95": s.p95, f"{prefix}.max": s.most})
            out[f"{prefix}.n"] = float(len(numbers))
        return out
    if isinstance(value, Mapping) or dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        for key, inner in _as_dict(value).items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _call(fn: Callable[..., Any], offer: dict[str, Any]) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**offer)
    return fn(**{k: v for k, v in offer.items() if k in params})


def run_side_by_side(
    root: Path, faults: int, idle: float, quick: bool, progress: Callable[[str], None]
) -> SideBySide:
    if not lab_present():
        return SideBySide(
            available=False,
            note=(
                "bench/keepalived.py (run_keepalived, run_carpd_lab) is not in the tree: the "
                "keepalived side by side was not run. Integration point: bench/sidebyside.py."
            ),
        )
    module = importlib.import_module(MODULE)
    missing_tools = getattr(module, "missing_tools", None)
    missing = list(missing_tools()) if missing_tools is not None else []
    if missing:
        note = "the network lab cannot run here: " + "; ".join(map(str, missing))
        return SideBySide(available=False, note=note)
    lab_class = getattr(importlib.import_module(LAB_MODULE), "Lab", None)
    result = SideBySide(available=True)
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(lab_class()) if lab_class is not None else None
        for name, attr in (("keepalived", "run_keepalived"), ("carpd", "run_carpd_lab")):
            fn = getattr(module, attr, None)
            if fn is None:
                result.note += f"{MODULE}.{attr} is missing. "
                continue
            directory = root / name
            directory.mkdir(parents=True, exist_ok=True)
            offer: dict[str, Any] = {
                "root": directory,
                "faults": faults,
                "idle": idle,
                "quick": quick,
                "lab": lab,
                "progress": progress,
            }
            progress(f"  side by side: {attr}")
            try:
                raw = _call(fn, offer)
            except Exception as exc:  # another part's code: report it, go on
                result.note += f"{attr} failed: {type(exc).__name__}: {exc}. "
                continue
            result.raw[name] = raw
            figures = flatten(raw)
            if name == "keepalived":
                result.keepalived = figures
            else:
                result.carpd = figures
    result.available = bool(result.keepalived or result.carpd)
    return result
