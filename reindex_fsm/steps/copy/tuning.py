"""The ``_reindex`` copy's tuning, chosen at plan time from what the tool knows of the
source, stored with the plan (``Plan.copy_tuning``) so that every (re)start of the copy,
after a crash too, sends the same request; ``--dry-run`` shows it, flags override it.

- Scroll batch size (``source.size``, the engines' default 1,000): a batch is one search
  and one bulk request per slice. Chosen so that a batch holds at most about
  :data:`BATCH_BYTES` of the source's documents (primary store bytes / documents, from
  ``_cat/indices`` and ``_count``): the engines' 1,000 for documents under about 5 KiB,
  fewer for larger ones (down to :data:`MIN_BATCH`), so that one bulk request of large
  documents does not trip the engine's memory breakers; never more than the source's
  ``index.max_result_window`` (the engines refuse a larger scroll batch). Larger batches
  for small documents (about 8,000 for the bench's 644-byte ones) did not pay on the
  bench (README, "Copy tuning"), so the tool does not choose them.
  ``--reindex-batch-size`` (up to :data:`MAX_BATCH`) overrides it. A throttled copy
  (``--requests-per-second``) keeps the engines' 1,000: the throttle waits between
  batches, so a larger batch makes the load burstier, not the rate higher.

The translog (``index.translog.durability: async``, a larger flush threshold) and more
slices than shards were measured too and did not pay: they are not chosen.

Whether each choice pays is measured by ``bench/bench_cli.py`` (``--variant``: the tool with
and without it, alternating on one engine); the README's "Copy tuning" section has the figures.
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from ...options import RunOptions

DEFAULT_BATCH = 1000  # the engines' own source.size for _reindex
BATCH_BYTES = 5 * 1024 * 1024  # a scroll batch (one bulk request) of at most about 5 MiB
MIN_BATCH = 100  # very large documents: still more than a handful per request
MAX_BATCH = 10_000  # the flag's bound: index.max_result_window's default
DEFAULT_MAX_RESULT_WINDOW = 10_000


def average_doc_bytes(store_bytes: int | None, documents: int) -> int | None:
    """The source's primary store bytes per (top-level) document; None when unknown."""
    if not store_bytes or documents <= 0:
        return None
    return max(1, store_bytes // documents)


def batch_size_for(average: int | None, max_result_window: int) -> int:
    """The engines' 1,000 documents, fewer when that would be more than BATCH_BYTES of
    documents of ``average`` bytes; within the source's ``max_result_window``."""
    cap = max(1, min(DEFAULT_BATCH, max_result_window))
    if average is None:
        return cap
    return max(min(MIN_BATCH, cap), min(cap, BATCH_BYTES // average))


def choose(
    options: RunOptions,
    source: str,
    settings: dict[str, Any],
    documents: int,
    store_bytes: int | None,
) -> dict[str, Any]:
    """The copy's tuning for ``source`` (its flat ``settings``, ``documents`` top-level
    documents, ``store_bytes`` of primary store): what the plan stores and shows."""
    window = int(settings.get("index.max_result_window") or DEFAULT_MAX_RESULT_WINDOW)
    average = average_doc_bytes(store_bytes, documents)
    given = options.reindex_batch_size
    if given is not None:
        if given > window:
            raise UsageError(
                f"--reindex-batch-size {given} is more than {source}'s "
                f"index.max_result_window ({window}): the engine would refuse the copy's "
                "first scroll",
                hint=f"give at most {window}, or leave it out; nothing was done",
            )
        size, why = given, "--reindex-batch-size"
    elif options.requests_per_second is not None:
        # the engines throttle by waiting between batches: larger ones make the copy's
        # load burstier, not its rate higher
        size = min(DEFAULT_BATCH, window)
        why = "the engine default: the copy is throttled (--requests-per-second)"
    else:
        size = batch_size_for(average, window)
        if average is None:
            why = "the engine default (the source's size is not known)"
        elif size < min(DEFAULT_BATCH, window):
            why = (
                f"at most about {BATCH_BYTES // (1024 * 1024)} MiB per batch at {average} "
                "bytes per document (primary store / documents)"
            )
        else:
            why = (
                f"the engine default: {average} bytes per document (primary store / "
                "documents) fit in a batch of it; larger batches did not pay on the bench"
            )
    return {
        "batch_size": size,
        "batch_size_from": why,
        "average_doc_bytes": average,
        "max_result_window": window,
    }


def batch_size(plan_tuning: dict[str, Any] | None) -> int | None:
    """The ``source.size`` a plan's copy sends (None: a plan made before the tuning, whose
    copy keeps the engine's default)."""
    if not plan_tuning:
        return None
    value = plan_tuning.get("batch_size")
    return int(value) if value is not None else None
