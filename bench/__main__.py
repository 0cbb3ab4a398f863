"""`make bench`: `python -m bench [--quick] [--faults N] [--idle SECONDS] [--no-lab]`.

Runs the real carpd-py daemon on the simulated OpenBSD pair and measures: reaction and
recovery times (bench/reaction.py), the cost at idle (bench/idle.py), how the poll cost grows
with the number of carp interfaces (bench/scale.py), and, when the network lab's
bench/keepalived.py is there, keepalived side by side (bench/sidebyside.py). Prints a table
and writes bench/RESULTS.md and bench/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .demotion import run_demotion
from .idle import memory_layers, run_idle
from .machine import load_average, machine
from .pair import run_pair
from .reaction import run_reaction
from .report import Results, load, markdown, stdout_report, write
from .scale import SIZES, run_scale
from .sidebyside import run_side_by_side
from .simcost import measure_sim_costs

PARTS = ("reaction", "idle", "scale", "demotion", "pair", "lab")


# --merge: the Results attributes each part fills
MERGED = {
    "reaction": ("reaction",),
    "idle": ("idle", "layers"),
    "scale": ("scale",),
    "demotion": ("demotion",),
    "pair": ("pair",),
    "lab": ("side",),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--quick",
        action="store_true",
        help="a check that everything runs: 3 faults each, 10 s idle, 4 s per poll-cost run",
    )
    p.add_argument("--faults", type=int, help="faults of each kind (default 30; quick 3)")
    p.add_argument(
        "--idle", type=float, metavar="SECONDS", help="idle window (default 60; quick 10)"
    )
    p.add_argument(
        "--poll-window",
        type=float,
        metavar="SECONDS",
        help="window of each poll-cost run (default 15; quick 4)",
    )
    p.add_argument("--no-lab", action="store_true", help="skip the keepalived side by side")
    p.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); RESULTS.md then has only those figures",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="where RESULTS.md and results.json go (default: bench/)",
    )
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument(
        "--merge",
        action="store_true",
        help="with --only: keep the other parts' figures of the results.json in --out",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write RESULTS.md (into --out) again from a results.json",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report is not None:
        results = load(args.report)
        print(stdout_report(results))
        md = args.out / "RESULTS.md"
        md.write_text(markdown(results), encoding="utf-8")
        print(f"\nwrote {md}")
        return 0
    faults = args.faults if args.faults is not None else (3 if args.quick else 30)
    idle_seconds = args.idle if args.idle is not None else (10.0 if args.quick else 60.0)
    poll_window = (
        args.poll_window if args.poll_window is not None else (4.0 if args.quick else 15.0)
    )
    parts = set(args.only or PARTS)
    if args.no_lab:
        parts.discard("lab")

    def say(line: str) -> None:
        print(line, flush=True)

    results = Results(
        machine=machine(),
        argv=list(sys.argv[1:] if argv is None else argv),
        quick=args.quick,
        faults=faults,
        idle_seconds=idle_seconds,
        scale_seconds=poll_window,
    )
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="carpd-bench-"))
    say(f"carpd-py bench: working in {work}")
    try:
        results.sim = measure_sim_costs(work / "simcost")
        if "reaction" in parts:
            say(f"reaction: {faults} faults of each kind")
            lead = results.sim.start_latency
            results.reaction = run_reaction(work / "reaction", faults, progress=say, lead=lead)
        if "idle" in parts:
            results.layers = memory_layers()
            results.idle.append(
                run_idle(work / "idle-2", "handbook", 2, idle_seconds, progress=say)
            )
            results.idle.append(
                run_idle(work / "idle-256", "scale", 256, idle_seconds, progress=say)
            )
        if "scale" in parts:
            say(f"poll cost: {', '.join(map(str, SIZES))} carp interfaces")
            results.scale = run_scale(work / "scale", poll_window, progress=say)
        if "demotion" in parts:
            say("demotion poll at scale")
            results.demotion = run_demotion(work / "demotion", progress=say)
        if "pair" in parts:
            results.pair = run_pair(
                work / "pair", min(faults, 10), 3 if args.quick else 5, progress=say
            )
        if "lab" in parts:
            results.side = run_side_by_side(
                work / "lab", faults, idle_seconds, args.quick, progress=say
            )
    finally:
        results.elapsed = time.monotonic() - started
        results.machine["load average at the end"] = load_average()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    old = args.out / "results.json"
    if args.merge and args.only and old.exists():
        # The earlier run stays as it was (its machine, settings and figures); only the parts
        # measured now replace its own.
        kept = load(old)
        for part in parts:
            for attr in MERGED[part]:
                setattr(kept, attr, getattr(results, attr))
        when = results.machine.get("date", "")
        kept.notes.append(f"{', '.join(sorted(parts))}: measured again on {when} (--merge)")
        results = kept
    say(stdout_report(results))
    md, raw = write(results, args.out)
    say(f"\nwrote {md} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
