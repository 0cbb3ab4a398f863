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
    elif isinstance(effect, d.Unconfirmed):
        if effect.expected is None:
            sup.log.info(
                f"{_describe(effect.key)} advskew {effect.value} read once: managed "
                "when the next read agrees",
            )
        else:
            sup.log.info(
                f"{_describe(effect.key)} read once as advskew {effect.value}, expected "
                f"{effect.expected}: ignored unless the next read agrees",
            )
    elif isinstance(effect, d.NotAdopted):
        sup.log.warning(
            f"{_describe(effect.key)} advskew changed by hand to {effect.value}, at or above "
            f"demote.advskew {sup.policy.advskew}: not adopted as baseline, baseline "
            f"{effect.baseline} kept (restored at the next restore)",
            value=effect.value,
            baseline=effect.baseline,
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


def report_restore(sup: Supervisor, effect: d.Restore, before: d.Memory, after: d.Memory) -> None:
    """Say what the restore really gives back: the vhids, our share, or nothing."""
    sup.telemetry.restores += 1
    demoted_for = round(effect.after, 1)
    refused = ", ".join(_describe(k) for k in sorted(after.refused))
    extra = {"refused": refused} if refused else {}
    if sup.policy.method == "carpdemote":
        if before.share or before.share_target:
            sup.log.notice(
                "restoring baselines",
                demoted_for=demoted_for,
                group=sup.policy.group,
                share=before.share,
            )
        else:
            sup.log.notice(
                "demotion over, nothing to restore: no share of ours in the group counter",
                demoted_for=demoted_for,
                group=sup.policy.group,
            )
    else:
        keys = d.restored(before, after)
        if keys:
            vhids = ", ".join(_describe(k) for k in keys)
            sup.log.notice("restoring baselines", demoted_for=demoted_for, vhids=vhids, **extra)
        elif refused:
            sup.log.notice(
                f"demotion over, nothing to restore: {refused} refused "
                "(no record of their baseline), no other vhid held",
                demoted_for=demoted_for,
            )
        else:
            sup.log.notice(
                "demotion over, nothing to restore: no managed vhid was held",
                demoted_for=demoted_for,
            )
    sup._fire("restore", DEMOTED_FOR=f"{effect.after:.1f}")
