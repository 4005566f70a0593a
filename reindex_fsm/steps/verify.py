"""VERIFYING: put back the target's final settings (after bulk-load tuning) and wait for
its health, refresh it and count it; with --verify the count must equal the source's
count (re-counted under the write block when there is one, else snapshotted at plan
time); with --verify deep the documents, mappings and queries are compared too
(:mod:`.deep_verify`) and the result stored in ``runs.verification``. Every part is
idempotent, so a resume just redoes it."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError, VerificationFailed
from ..options import RunOptions
from ..plan import Plan
from . import deep_verify, vector_load, write_policy
from .context import RunContext
from .copy.registry import strategy_for
from .target import final_settings, restore_settings

# "Much smaller": a target holding fewer than this share of its source's documents is
# swapped in only with --allow-shrink (checked at plan time and again before the swap).
SHRINK_RATIO = 0.9


def shrinks(source_docs: int, target_docs: int) -> bool:
    """The target holds much fewer documents than its source (< SHRINK_RATIO of them)."""
    return target_docs < SHRINK_RATIO * source_docs


def _shrink_text(verb: str, target: str, target_docs: int, source: str, source_docs: int) -> str:
    share = f"{100 * target_docs / source_docs:.1f}%" if source_docs else "-"
    return (
        f"target {target} {verb} {target_docs} documents, {share} of the {source_docs} in "
        f"source {source}: much smaller than its source (under {SHRINK_RATIO:.0%})"
    )


def planned_shrink(p: Plan) -> tuple[int, int] | None:
    """(source index documents, planned target documents) when the plan already says the
    target will be much smaller (a recompute from a file of fewer documents)."""
    source_docs = strategy_for(p).source_index_count(p)
    if shrinks(source_docs, p.source_count):
        return source_docs, p.source_count
    return None


def check_plan(p: Plan, options: RunOptions) -> str | None:
    """Refuse, before anything is written, a plan whose target is much smaller than its
    source unless --allow-shrink was given; with it, what the plan is to say (else None)."""
    found = planned_shrink(p)
    if not found:
        return None
    source_docs, target_docs = found
    if not options.allow_shrink:
        raise UsageError(
            _shrink_text("would hold", p.target_index, target_docs, p.source_index, source_docs),
            hint="pass --allow-shrink if that is what you want; nothing was done",
        )
    text = _shrink_text("will hold", p.target_index, target_docs, p.source_index, source_docs)
    return text + "; allowed by --allow-shrink"


def plan(p: Plan, verify: bool, options: RunOptions | None = None) -> dict[str, Any]:
    check = (
        f"target count == {p.source_count}"
        if verify
        else "NONE: --no-verify, the target's count is not compared with the source's"
    )
    own_check = strategy_for(p).verify_check(p)
    if own_check is not None and verify:
        check = own_check
    described = {
        "step": "verify",
        "restore_settings": final_settings(p),
        "refresh": p.target_index,
        "check": check,
    }
    if verify and options is not None and options.verify_level == "deep":
        described["deep"] = deep_plan(p, options)
    found = planned_shrink(p)
    if found:
        allowed = "; allowed by --allow-shrink" if options and options.allow_shrink else ""
        text = _shrink_text("will hold", p.target_index, found[1], p.source_index, found[0])
        described["shrink"] = text + allowed
    else:
        described["shrink"] = (
            f"the swap is refused if the target holds under {SHRINK_RATIO:.0%} of the "
            "source's documents"
            + ("" if not options or not options.allow_shrink else " (allowed: --allow-shrink)")
        )
    return described


def deep_plan(p: Plan, options: RunOptions) -> dict[str, Any]:
    c = deep_verify.Comparison(p, options, strategy_for(p).copied_from(p))
    what = "IDs" + (" and _source SHA-256" if c.compare_source else "")
    docs = f"{c.sample} random source documents" if c.sample else "every source document"
    out: dict[str, Any] = {
        "documents": f"{what} of {docs} looked up in {p.target_index}",
        "mappings": "every planned mapping parameter in effect on the target",
        "notes": c.notes,
    }
    if options.verify_queries:
        out["queries"] = (
            f"{len(options.verify_queries)} queries from {options.verify_queries_file}: "
            f"top-{options.verify_top_k} overlap >= {options.verify_min_overlap}"
        )
    return out


def expected_source_count(ctx: RunContext) -> int:
    """The source's count the copy saw: counted again under the write block (or after the
    last catch-up pass) when the write policy did, else snapshotted at plan time."""
    count = ctx.record.source_count
    return int(count) if count is not None else ctx.plan.source_count


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    # a block that came off when the run failed: on again, and what changed copied again
    resynced = write_policy.resync(ctx)
    restored = restore_settings(ctx)
    ctx.engine.refresh(p.target_index)
    target_count = ctx.engine.count(p.target_index)
    progress = ctx.record.progress or {}
    expected = expected_source_count(ctx)
    detail: dict[str, Any] = {
        "source_count": expected,
        "target_count": target_count,
        "version_conflicts": progress.get("version_conflicts", 0),
        "task_failures": progress.get("failures", 0),
        "verified": ctx.options.verify,
        **restored,
        **resynced,
    }
    # vector targets: the graph deferred during the copy is built here, once, before the
    # checks (the deep verify's k-NN queries included) read the target
    detail.update(vector_load.build_graphs(ctx))
    problems = strategy_for(p).verify_checks(ctx, target_count, detail)
    if ctx.options.verify and ctx.options.verify_level == "deep":
        problems += _deep_checks(ctx, target_count, list(problems))
    if ctx.options.verify and problems:
        raise VerificationFailed(
            "verification failed: " + "; ".join(problems),
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    _check_shrink(ctx, target_count)
    return {"target_count": target_count, "detail": detail}


def _check_shrink(ctx: RunContext, target_count: int) -> None:
    """Whatever --verify says: a target much smaller than its source is not swapped in
    without --allow-shrink (a script or pipeline that drops documents, rejected input,
    a copy without verification)."""
    if ctx.options.allow_shrink:
        return
    p = ctx.plan
    strategy = strategy_for(p)
    if strategy.input_path(p):  # the source index is not what was copied
        source_docs = strategy.source_index_count(p)
    else:
        source_docs = expected_source_count(ctx)
    if shrinks(source_docs, target_count):
        refused = VerificationFailed(
            _shrink_text("holds", p.target_index, target_count, p.source_index, source_docs)
            + "; not swapped",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
        refused.hint = (
            f"if that is intended: `reindex-fsm abort {ctx.run_id}`, then start again with "
            "--allow-shrink"
        )
        raise refused


def _deep_checks(ctx: RunContext, target_count: int, count_problems: list[str]) -> list[str]:
    """Compare documents, mappings and queries; store what was compared and what differed
    (a checkpoint: a failed step's returned values are not stored) before judging."""
    p = ctx.plan
    copied_from = strategy_for(p).copied_from(p)
    record = deep_verify.verify(ctx.engine, p, ctx.options, ctx.run_id, target_count, copied_from)
    found = deep_verify.problems(record)
    record["count"] = {"target": target_count, "problems": count_problems}
    record["passed"] = not found and not count_problems
    docs = record["documents"]
    ctx.checkpoint(
        event="deep verification " + ("passed" if record["passed"] else "found differences"),
        detail={
            "compared": docs.get("compared"),
            "missing_in_target": (docs.get("missing_in_target") or {}).get("count"),
            "differing": (docs.get("differing") or {}).get("count"),
            "only_in_target": (docs.get("only_in_target") or {}).get("count"),
            "mapping_differences": record["mappings"]["difference_count"],
            "queries_failed": (record.get("queries") or {}).get("failed"),
        },
        verification=record,
    )
    return found
