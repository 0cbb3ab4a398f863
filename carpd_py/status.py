"""What `carpctl status` shows: the daemon's view as a document, and as text for people.

Pure: a supervisor `Status` in, plain JSON-able data out. The document (every key always
present, so that scripts need no `in` tests):

    version      carpd-py's version
    method       "advskew" or "carpdemote"
    demoted      bool
    reasons      the reasons in force: "sync", "upstream:<name>", "maintenance"; [] when none
    maintenance  bool: the maintenance flag (the demotion follows at the next round)
    since        when the demotion was applied, ISO-8601 UTC ("2025-11-25T01:48:20Z"), or null
    since_epoch  the same in seconds since the epoch, or null
    checks       name -> {"up": true/false/null, "good": n, "bad": n, "detail": str or null}
    carp         one entry per vhid, as in `carpctl inspect` ([] before the first host read)
    baselines    [{interface, vhid, baseline, target, seen, held}], held: target != baseline
    share        method carpdemote: {group, counter, share, target}; null with advskew
    verify       (added by the control socket) the last run of the verify checks:
                 {result, problems}; null before the first run or with [verify] interval 0
    warnings     what an admin must fix; the last host read's failure first
    started      when the daemon started, ISO-8601 UTC
    updated      when the last round ended, ISO-8601 UTC, or null before the first
    peer         the other node's carpd-py ([peer]): {"state": "up" | "unknown" | "rejected" |
                 "off", "seen": seconds since its last valid message or null, "node": its
                 host name or null, "reasons": [...], "demoted": bool, "maintenance": bool,
                 "roles": {"carp0": "MASTER", "carp2/5": "BACKUP", ...}} (its last view, also
                 when it is no longer fresh; [] / false / {} before any)
    pair         {"withheld": reasons not acted on because of the peer (shared, or its own
                 fault), "waiting": reasons waiting for the peer's verdict, "split_brain":
                 [vhids MASTER on both nodes], "split": bool (managed VIPs on both nodes),
                 "deeper": bool (both demoted, this node one step further down)}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from . import __version__
from .inspect import inspect_report
from .supervisor import Status


def iso_utc(when: float | None) -> str | None:
    """Seconds since the epoch as ISO-8601 UTC to the second, "2025-11-25T01:48:20Z"."""
    if when is None:
        return None
    try:
        return datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # out of range, or nan
        return None


def _natural(name: str) -> tuple[str, int]:
    """carp2 before carp10."""
    m = re.fullmatch(r"(.*?)(\d*)", name)
    assert m is not None
    return m[1], int(m[2]) if m[2] else -1


def status_document(status: Status) -> dict[str, Any]:
    config, memory = status.config, status.memory
    checks = {
        name: {"up": c.up, "good": c.good, "bad": c.bad, "detail": status.details.get(name)}
        for name, c in status.checks.items()
    }
    baselines = [
        {
            "interface": iface,
            "vhid": vhid,
            "baseline": rec.baseline,
            "target": rec.target,
            "seen": rec.seen,
            "held": rec.target != rec.baseline,
        }
        for (iface, vhid), rec in sorted(
            memory.vhids.items(), key=lambda kv: (_natural(kv[0][0]), kv[0][1])
        )
    ]
    share: dict[str, Any] | None = None
    if config.demote.method == "carpdemote":
        group = config.demote.group
        share = {
            "group": group,
            "counter": status.view.group_demote.get(group) if status.view is not None else None,
            "share": memory.share,
            "target": memory.share_target,
        }
    warnings: list[str] = []
    if status.read_error is not None:
        warnings.append(f"the last host read failed: {status.read_error}")
    warnings.extend(status.warnings)
    warnings.extend(
        f"{iface} vhid {vhid}: looked demoted already with no recorded baseline: "
        "left unmanaged until its advskew is set by hand"
        for iface, vhid in sorted(memory.refused, key=lambda k: (_natural(k[0]), k[1]))
    )
    return {
        "version": __version__,
        "method": config.demote.method,
        "demoted": memory.demoted,
        "reasons": list(memory.reasons),
        "maintenance": memory.maintenance,
        "since": iso_utc(memory.since),
        "since_epoch": memory.since if iso_utc(memory.since) is not None else None,
        "checks": checks,
        "carp": inspect_report(status.view, config)["carp"] if status.view is not None else [],
        "baselines": baselines,
        "share": share,
        "warnings": warnings,
        "started": iso_utc(status.started),
        "updated": iso_utc(status.updated),
        **pair_documents(status),
    }


def role_names(carp: Sequence[dict[str, Any]]) -> dict[str, str]:
    """{"carp0": "MASTER"}: a vhid by its interface, "carp2/5" on a multi-vhid interface."""
    per_iface: dict[str, int] = {}
    for c in carp:
        per_iface[c["interface"]] = per_iface.get(c["interface"], 0) + 1
    return {
        c["interface"] if per_iface[c["interface"]] == 1 else f"{c['interface']}/{c['vhid']}": (
            c["state"]
        )
        for c in sorted(carp, key=lambda c: (_natural(c["interface"]), c["vhid"]))
    }


def pair_documents(status: Status) -> dict[str, Any]:
    pair = status.pair
    view: Any = pair.view if pair is not None and pair.view is not None else {}
    return {
        "peer": {
            "state": "off" if pair is None else pair.state,
            "seen": None if pair is None or pair.seen is None else round(pair.seen, 3),
            "node": None if pair is None else pair.node,
            "reasons": list(view.get("reasons", [])),
            "demoted": bool(view.get("demoted", False)),
            "maintenance": bool(view.get("maintenance", False)),
            "roles": role_names(view.get("carp", [])),
        },
        "pair": {
            "withheld": [] if pair is None else list(pair.withheld),
            "waiting": [] if pair is None else list(pair.waiting),
            "split_brain": [] if pair is None else list(pair.split_brain),
            "split": False if pair is None else pair.split,
            "deeper": False if pair is None else pair.deeper,
        },
    }


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def headline(doc: dict[str, Any]) -> str:
    """DEMOTED (sync, maintenance) since 2025-11-25T01:48:20Z, or not demoted."""
    if doc["demoted"]:
        why = ", ".join(doc["reasons"]) or "no reason left, waiting for the hold-down"
        since = f" since {doc['since']}" if doc["since"] else ""
        return f"DEMOTED ({why}){since}"
    if doc["maintenance"]:
        return "not demoted (maintenance is on: the demotion is pending)"
    return "not demoted"


def format_status(doc: dict[str, Any]) -> str:
    """The document for people: a headline, the checks, the carp table, then other facts."""
    lines = [headline(doc)]
    updated = doc["updated"] or "none yet"
    lines.append(
        f"carpd-py {doc['version']}, method {doc['method']}, "
        f"started {doc['started']}, last round {updated}"
    )
    if doc["checks"]:
        rows: list[tuple[str, ...]] = [("CHECK", "VERDICT", "GOOD", "BAD", "DETAIL")]
        for name, c in doc["checks"].items():
            verdict = {True: "up", False: "DOWN", None: "pending"}[c["up"]]
            rows.append((name, verdict, str(c["good"]), str(c["bad"]), c["detail"] or "-"))
        lines.extend(_table(rows))
    else:
        lines.append("checks: none configured")

    records = {(b["interface"], b["vhid"]): b for b in doc["baselines"]}
    if doc["carp"]:
        head = ("INTERFACE", "VHID", "STATE", "ADVSKEW", "BASELINE", "CARPDEV", "STATUS", "MANAGED")
        rows = [head]
        for c in doc["carp"]:
            rec = records.pop((c["interface"], c["vhid"]), None)
            baseline = "-" if rec is None else str(rec["baseline"])
            if rec is not None and rec["held"]:
                baseline += " (held)"
            rows.append(
                (
                    c["interface"],
                    str(c["vhid"]),
                    c["state"],
                    str(c["advskew"]),
                    baseline,
                    c["carpdev"] or "none",
                    c["status"] or "-",
                    "yes" if c["managed"] else "no",
                )
            )
        lines.extend(_table(rows))
    elif doc["updated"] is None:
        lines.append("(the host has not been read yet)")
    else:
        lines.append("(no carp interface with a vhid)")
    for b in records.values():  # recorded, but not in the last read
        held = f" (held at {b['target']})" if b["held"] else ""
        lines.append(
            f"baseline {b['interface']} vhid {b['vhid']}: {b['baseline']}{held}, not on the host"
        )
    share = doc["share"]
    if share is not None:
        counter = "unknown" if share["counter"] is None else str(share["counter"])
        want = f" (want {share['target']})" if share["target"] != share["share"] else ""
        lines.append(
            f"group {share['group']}: demote count {counter}, our share {share['share']}{want}"
        )
    lines.extend(format_pair(doc))
    lines.extend(f"warning: {w}" for w in doc["warnings"])
    verified = doc.get("verify")  # the last `carpctl verify` checks the daemon ran
    if isinstance(verified, dict):
        lines.append(f"verify: {verified.get('result')}")
        lines.extend(f"verify: {p}" for p in verified.get("problems", ()))
    return "\n".join(lines) + "\n"


def format_pair(doc: dict[str, Any]) -> list[str]:
    """The two nodes side by side, and what the pair decided."""
    peer, pair = doc["peer"], doc["pair"]
    if peer["state"] == "off":
        return []
    seen = "never heard" if peer["seen"] is None else f"heard {peer['seen']:.1f}s ago"
    alone = "" if peer["state"] == "up" else ": this node decides alone"
    lines = [f"peer {peer['node'] or '?'}: {peer['state']}, {seen}{alone}"]
    mine = role_names(doc["carp"])
    rows = [("", "THIS NODE", "PEER")]
    rows.append(("demoted", "yes" if doc["demoted"] else "no", "yes" if peer["demoted"] else "no"))
    rows.append(("reasons", ",".join(doc["reasons"]) or "-", ",".join(peer["reasons"]) or "-"))
    for name in sorted({*mine, *peer["roles"]}, key=_natural):
        rows.append((name, mine.get(name, "-"), peer["roles"].get(name, "-")))
    lines.extend(_table(rows))
    if pair["withheld"]:
        lines.append(
            "withheld: " + ", ".join(pair["withheld"]) + " (the peer has it too: a failover "
            "would not help)"
        )
    if pair["waiting"]:
        lines.append("waiting for the peer's verdict on: " + ", ".join(pair["waiting"]))
    if pair["deeper"]:
        lines.append("both nodes demoted: this node is one step further down")
    if pair["split_brain"]:
        vhids = ", ".join(map(str, pair["split_brain"]))
        lines.append(f"SPLIT BRAIN: vhid {vhids} MASTER on both nodes")
    if pair["split"]:
        lines.append("SPLIT: the VIPs are MASTER partly here, partly on the peer")
    return lines
