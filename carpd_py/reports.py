"""What the supervisor says about each decision effect that is not a command: log lines at
the level an operator must see, counters, hooks. Moved out of supervisor.py to keep it small."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import decide as d

if TYPE_CHECKING:
    from .supervisor import Supervisor


def _describe(key: d.VhidKey) -> str:
    return f"{key[0]} vhid {key[1]}"


def report(sup: Supervisor, effect: d.Effect) -> None:
    if isinstance(effect, d.Demote):
        for reason in effect.reasons:
            sup.telemetry.demotions[reason] += 1
        sup.log.notice("demoting", reasons=effect.reasons, method=sup.policy.method)
        sup._fire("demote", REASONS=",".join(effect.reasons))
    elif isinstance(effect, d.Restore):
        sup.telemetry.restores += 1
        sup.log.notice("restoring baselines", demoted_for=round(effect.after, 1))
        sup._fire("restore", DEMOTED_FOR=f"{effect.after:.1f}")
    elif isinstance(effect, d.ReasonsChanged):
        for reason in set(effect.after) - set(effect.before):
            sup.telemetry.demotions[reason] += 1
        sup.log.notice("demotion reasons changed", before=effect.before, after=effect.after)
    elif isinstance(effect, d.Adopt):
        sup.log.warning(
            f"{_describe(effect.key)} advskew changed by hand: adopted as baseline",
            before=effect.before,
            after=effect.after,
            released=effect.released,
        )
    elif isinstance(effect, d.Refuse):
        sup.log.error(
            f"{_describe(effect.key)} advskew {effect.advskew} looks demoted already and "
            "carpd-py has no record of its baseline: left unmanaged until its real advskew "
            "is set by hand",
        )
    elif isinstance(effect, d.Manage):
        sup.log.info(f"managing {_describe(effect.key)}", baseline=effect.baseline)
    elif isinstance(effect, d.ShareAdopted):
        sup.log.warning(
            f"group {effect.group} demote counter below our share: adopted",
            before=effect.before,
            after=effect.after,
        )
