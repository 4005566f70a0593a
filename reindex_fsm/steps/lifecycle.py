"""Lifecycle policies (Elasticsearch ILM, the OpenSearch ISM plugin) follow the alias: the
target is managed only once it is live, and from then on as its source was.

A lifecycle policy acts on an index by itself: copied onto the empty target at creation,
ILM would start managing an index that is not live (a rollover action on an index that
is not the alias's write index errors; a delete phase counts its age from the target's
creation), and an ISM ``ism_template`` matching the target's name attaches a policy to it
the moment it is created. So:

* at plan time (:func:`hold_back`) the lifecycle settings (``index.lifecycle.*``,
  ``index.plugins.index_state_management.*``, ``index.opendistro.index_state_management.*``)
  are taken out of the target's creation settings and planned for after the swap. The
  source's age goes with them: ``index.lifecycle.origination_date`` is the date ILM counts
  the source's age from (its explain's ``lifecycle_date_millis``: its origination date,
  else its rollover or creation date). Where ISM is installed the target is created with
  ``auto_manage`` false (the plugin's key and the legacy one, which the 2.x coordinator
  falls back to), so no ``ism_template`` attaches a policy to it;
* after the target is created and again right before the swap (:func:`release_target`),
  a policy ISM attached to it anyway is removed;
* after the alias moved (:func:`hand_over`, from the swap and from its adoption after a
  crash): the held-back settings go onto the target; ILM is removed from the old source;
  the ISM policy that managed the source is added to the target and removed from the
  source, and the target's ``auto_manage`` becomes the source's (an unmanaged source leaves
  it false: no template takes the target later). Each action first reads whether it is
  done, so a resume repeats nothing;
* undo (:func:`hand_back`) reverses it once the aliases are back: the policy and the
  settings follow the alias back to the previous index.

A policy the engine refuses to move (deleted meanwhile, a refusal of the privileges) does
not undo a swap: it is a warning naming what to do, stored with the swap.
"""

from __future__ import annotations

import re
from typing import Any

from .. import events
from ..engine.base import Engine, EngineInfo, LifecycleStatus
from ..errors import EngineError, EngineUnreachable, IndexNotFound, LockHeld, UsageError
from ..plan import Plan
from .context import RunContext

ILM_PREFIX = "index.lifecycle."
ISM_PREFIXES = ("index.plugins.index_state_management.", "index.opendistro.index_state_management.")
LIFECYCLE_PREFIXES = (ILM_PREFIX, *ISM_PREFIXES)
ILM_NAME = "index.lifecycle.name"
ORIGINATION = "index.lifecycle.origination_date"
PARSE_ORIGINATION = "index.lifecycle.parse_origination_date"
# Off at the target's creation, where the ISM plugin is installed: no ism_template
# attaches a policy to it (the 2.x coordinator reads the legacy key when the new one is
# false, so both are set).
AUTO_MANAGE = (
    "index.plugins.index_state_management.auto_manage",
    "index.opendistro.index_state_management.auto_manage",
)


def is_lifecycle(key: str) -> bool:
    return key.startswith(LIFECYCLE_PREFIXES)


def hold_back(
    engine: Engine,
    info: EngineInfo,
    source: str,
    source_settings: dict[str, Any],
    settings: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The target's creation settings without the lifecycle ones, and the hand-over
    planned for after the swap (None: the engine manages no lifecycle of the source and
    has no ISM that could attach one to the target)."""
    create = {k: v for k, v in settings.items() if not is_lifecycle(k)}
    after = {k: v for k, v in settings.items() if is_lifecycle(k)}
    source_lifecycle = {k: v for k, v in source_settings.items() if is_lifecycle(k)}
    notes: list[str] = []
    handover: dict[str, Any] = {"ilm_policy": None, "ism": None, "ism_plugin": False}
    if info.flavor == "opensearch":
        status = _ism_status(engine, source, handover, notes)
        if status is not None:
            handover["ism_plugin"] = True
            for key in AUTO_MANAGE:
                create[key] = "false"
                # managed, the target gets the source's value back (None: the default) once
                # the policy is on it; unmanaged, it stays false unless the source says
                # otherwise: no template's sweep attaches a policy the source did not have
                after[key] = source_settings.get(key, None if status.policy else "false")
            if status.policy is not None:
                handover["ism"] = {"policy_id": status.policy, "state": status.phase}
                notes.append(
                    f"ISM policy {status.policy} moves from {source} to the target after the "
                    "swap; the target starts in the policy's first state, and ISM counts "
                    "min_index_age from the target's creation date"
                )
    policy = source_settings.get(ILM_NAME)
    if policy and after.get(ILM_NAME):
        handover["ilm_policy"] = policy
        explain = engine.ilm_explain(source)
        age_from = source_settings.get(ORIGINATION)
        if age_from is None and explain is not None and explain.lifecycle_date_ms is not None:
            age_from = str(explain.lifecycle_date_ms)
        if age_from is None:
            age_from = source_settings.get("index.creation_date")
        if age_from is not None:
            after[ORIGINATION] = str(age_from)
        if after.pop(PARSE_ORIGINATION, None) is not None:
            notes.append(
                f"{PARSE_ORIGINATION} is not carried: the age of {source} goes as {ORIGINATION}"
            )
        notes.append(
            f"ILM policy {policy} manages the target from the swap on, its age counted from "
            f"{source}'s ({ORIGINATION}={after.get(ORIGINATION)}); ILM is removed from {source}"
        )
    if not after and not handover["ism_plugin"]:
        return create, None
    handover.update(
        after_swap=dict(sorted(after.items())),
        source_settings=dict(sorted(source_lifecycle.items())),
        notes=notes,
    )
    return dict(sorted(create.items())), handover


ROLLOVER_ALIAS_KEYS = (
    "index.lifecycle.rollover_alias",
    "index.plugins.index_state_management.rollover_alias",
    "index.opendistro.index_state_management.rollover_alias",
)
_ROLLOVER_NAME = re.compile(r"^(.*)-(\d+)$")
MAX_ROLLOVER_COUNTER = 2**31 - 1  # the engines parse the counter as a Java int


def check_rollover_name(source: str, target: str, handover: dict[str, Any] | None) -> None:
    """A target that ILM or ISM will roll over needs a name the engine can count on from
    (``<prefix>-<number>``): the rollover of the default ``<alias>-<timestamp>`` fails
    (number_format_exception). Refused at plan time (UsageError), nothing written."""
    after = (handover or {}).get("after_swap") or {}
    keys = [k for k in ROLLOVER_ALIAS_KEYS if after.get(k)]
    if not keys:
        return
    match = _ROLLOVER_NAME.match(target)
    if match and int(match.group(2)) <= MAX_ROLLOVER_COUNTER:
        return
    found = _ROLLOVER_NAME.match(source)
    suggested = (
        f"{found.group(1)}-{int(found.group(2)) + 1:06d}"
        if found and int(found.group(2)) < MAX_ROLLOVER_COUNTER
        else f"{source}-000002"
    )
    raise UsageError(
        f"{source} is rolled over by its lifecycle policy ({keys[0]}={after[keys[0]]}), and "
        f"the engine cannot roll over from the target name {target!r} (it must end in "
        "-<number> below 2^31)",
        hint=f"give --target-index {suggested}; nothing was done",
    )


def _ism_status(
    engine: Engine, source: str, handover: dict[str, Any], notes: list[str]
) -> LifecycleStatus | None:
    """ISM's explain of the source; None without the plugin. Refused (403: the caller may
    not read ISM), the plugin is there but no policy can follow the alias: the target is
    still kept from every ism_template, and the plan says what is not done."""
    try:
        return engine.ism_explain(source)
    except (EngineUnreachable, IndexNotFound):
        raise
    except EngineError as exc:
        if exc.status != 403:
            raise
    handover["ism_refused"] = (
        f"ISM's explain of {source} was refused (HTTP 403): a policy managing it does not "
        "follow the alias; grant the ISM explain/add/remove privileges to have it moved"
    )
    notes.append(handover["ism_refused"])
    return LifecycleStatus(policy=None)


def describe(p: Plan) -> dict[str, Any] | None:
    """What the plan shows as done after the swap."""
    h = p.lifecycle
    if not h:
        return None
    shown: dict[str, Any] = {"settings": h["after_swap"]}
    if h.get("ilm_policy"):
        shown["ilm_policy"] = h["ilm_policy"]
    if h.get("ism"):
        shown["ism_policy"] = h["ism"]["policy_id"]
    if h.get("notes"):
        shown["notes"] = h["notes"]
    return shown


def _warn(ctx: RunContext, text: str) -> None:
    ctx.reporter.emit(ctx.record, events.Warning(text))


def _in_effect(engine: Engine, index: str, wanted: dict[str, Any]) -> dict[str, Any]:
    """The part of ``wanted`` not in effect on ``index`` (None: absent)."""
    have = engine.get_index(index).settings
    return {
        k: v
        for k, v in wanted.items()
        if (k in have) != (v is not None) or (v is not None and str(have[k]) != str(v))
    }


def _put_missing(ctx: RunContext, index: str, wanted: dict[str, Any], point: str) -> None:
    missing = _in_effect(ctx.engine, index, wanted) if wanted else {}
    if missing:
        ctx.engine.put_settings(index, missing)
        ctx.crash(point)


def release_target(ctx: RunContext) -> dict[str, Any]:
    """The target is not live: a policy ISM attached to it comes off. Idempotent."""
    p = ctx.plan
    h = p.lifecycle or {}
    if not h.get("ism_plugin") or h.get("ism_refused"):  # refused: auto_manage keeps it off
        return {}
    status = ctx.engine.ism_explain(p.target_index)
    if status is None or not status.managed:
        return {}
    ctx.engine.ism_remove_policy(p.target_index)
    ctx.crash("lifecycle.target_released")
    return {"ism_released_from_target": status.policy}


def hand_over(ctx: RunContext) -> dict[str, Any] | None:
    """After the alias moved onto the target: the lifecycle follows it. What was done
    (None: nothing planned); a refusal is a warning and is in the result as ``failed``."""
    p = ctx.plan
    h = p.lifecycle
    if not h:
        return None
    done: dict[str, Any] = {}
    if h.get("ism_refused"):
        done["ism_refused"] = h["ism_refused"]
        _warn(ctx, h["ism_refused"])
    # auto_manage last: until the ISM policy is on the target, no ism_template may attach one
    settings = {k: v for k, v in h["after_swap"].items() if k not in AUTO_MANAGE}
    auto_manage = {k: v for k, v in h["after_swap"].items() if k in AUTO_MANAGE}
    try:
        _put_missing(ctx, p.target_index, settings, "lifecycle.settings_put")
        done["settings"] = h["after_swap"]
        if h.get("ilm_policy"):
            _remove_ilm(ctx, p.source_index, h["ilm_policy"], "lifecycle.source_released")
            done["ilm_removed_from"] = p.source_index
        if h.get("ism"):
            done.update(_move_ism(ctx, h["ism"]["policy_id"], p.source_index, p.target_index))
        _put_missing(ctx, p.target_index, auto_manage, "lifecycle.auto_manage_put")
    except (EngineUnreachable, LockHeld):
        raise
    except EngineError as exc:
        done["failed"] = exc.one_line()
        _warn(
            ctx,
            f"the alias is on {p.target_index}, but its lifecycle could not be handed over: "
            f"{exc.one_line()}; planned: {describe(p)} (set it yourself)",
        )
    return done


def _remove_ilm(ctx: RunContext, index: str, policy: str, point: str) -> None:
    """ILM stops managing ``index`` if ``policy`` still does (idempotent); a crash point
    right after."""
    if ctx.engine.get_index(index).settings.get(ILM_NAME) == policy:
        ctx.engine.ilm_remove_policy(index)
        ctx.crash(point)


def _move_ism(ctx: RunContext, policy: str, frm: str, to: str) -> dict[str, Any]:
    """The ISM policy ``policy`` manages ``to`` and no longer ``frm``. A policy other
    than this one found on either is someone else's: left alone, with a warning."""
    engine = ctx.engine
    now_to = engine.ism_explain(to)
    if now_to is None:
        raise EngineError("the ISM plugin no longer answers (GET _plugins/_ism/explain)")
    if not now_to.managed:
        engine.ism_add_policy(to, policy)
        ctx.crash("lifecycle.policy_added")
    elif now_to.policy != policy:
        _warn(ctx, f"{to} is managed by ISM policy {now_to.policy}, not {policy}: left as it is")
    now_frm = engine.ism_explain(frm)
    if now_frm is not None and now_frm.policy == policy:
        engine.ism_remove_policy(frm)  # also sets its auto_manage false: no template rebinds it
        ctx.crash("lifecycle.policy_removed")
    return {"ism_policy": policy, "ism_added_to": to, "ism_removed_from": frm}


def hand_back(ctx: RunContext) -> dict[str, Any] | None:
    """Undo, once the aliases are back on the previous index: the lifecycle follows them
    back (the source's own lifecycle settings, ILM off the target, the ISM policy moved
    back). Only after a swap that handed it over; idempotent; a refusal is a warning."""
    p = ctx.plan
    h = p.lifecycle
    if not h or "lifecycle" not in (ctx.record.swap_record or {}):
        return None
    done: dict[str, Any] = {}
    try:
        if h.get("ilm_policy"):
            _remove_ilm(ctx, p.target_index, h["ilm_policy"], "lifecycle.handed_back")
            done["ilm_removed_from"] = p.target_index
        if h.get("ism"):
            done.update(_move_ism(ctx, h["ism"]["policy_id"], p.target_index, p.source_index))
        # the source's own lifecycle settings, and none of those only the target had
        wanted = {**{k: None for k in h["after_swap"]}, **h["source_settings"]}
        _put_missing(ctx, p.source_index, wanted, "lifecycle.handed_back")
        done["source_settings"] = h["source_settings"]
    except (EngineUnreachable, LockHeld):
        raise
    except EngineError as exc:
        done["failed"] = exc.one_line()
        _warn(
            ctx,
            f"the aliases are back on {p.source_index}, but its lifecycle could not be handed "
            f"back: {exc.one_line()}; it had {h['source_settings']}"
            + (f" and ISM policy {h['ism']['policy_id']}" if h.get("ism") else ""),
        )
    return done
