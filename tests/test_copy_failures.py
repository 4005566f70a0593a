"""A document the target refuses during the copy: the error names the document, the field
and the engine's reason, outright (not only inside the engine's brackets)."""

from __future__ import annotations

from reindex_fsm.engine.base import TaskStatus
from reindex_fsm.steps.copy.reindex import _failure_summary, describe_failure, failure_hint

# What OpenSearch 2.19 stores in a _reindex task's response.failures for a text value
# copied into a field mapped as integer (captured from the real engine).
OPENSEARCH_FAILURE = {
    "index": "swapb-target",
    "id": "d3",
    "cause": {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [title] of type [integer] in document with id 'd3'. "
        "Preview of field's value: 'hello world'",
        "caused_by": {
            "type": "number_format_exception",
            "reason": 'For input string: "hello world"',
        },
    },
    "status": 400,
}


def test_a_mapping_conflict_names_the_document_the_field_and_the_cause():
    text = describe_failure(OPENSEARCH_FAILURE)
    assert text.startswith(
        "document d3 (index swapb-target), field title (mapped as integer) refused its value, "
        "mapper_parsing_exception: failed to parse field [title]"
    )
    assert text.endswith('(caused by number_format_exception: For input string: "hello world")')


def test_the_summary_counts_the_failures_and_describes_the_first():
    status = TaskStatus("n:1", completed=True, failures=(OPENSEARCH_FAILURE, OPENSEARCH_FAILURE))
    assert _failure_summary(status).startswith(
        "2 document(s) failed, first: document d3 (index swapb-target), field title"
    )


def test_a_bulk_item_error_is_described_the_same_way():
    item = {"_index": "t", "_id": "a[1]", "status": 400, "error": OPENSEARCH_FAILURE["cause"]}
    assert describe_failure(item).startswith("document a[1] (index t), field title (mapped as")


def test_a_search_failure_names_the_shard_and_a_task_error_its_reason():
    search = {"index": "src", "shard": 2, "node": "n1", "reason": {"type": "x", "reason": "boom"}}
    assert describe_failure(search) == "reading src shard 2, x: boom"
    status = TaskStatus("n:1", completed=True, error={"type": "y", "reason": "stopped"})
    assert _failure_summary(status) == "y: stopped"


# What a _reindex task reports when a target shard's primary was lost with its node
# (the node-failure crash test's engine, OpenSearch 2.19).
UNAVAILABLE_SHARD = {
    "index": "nodefail-target",
    "id": "doc-00000001",
    "cause": {
        "type": "unavailable_shards_exception",
        "reason": "[nodefail-target][1] primary shard is not active Timeout: [1m]",
    },
    "status": 503,
}


def test_a_document_the_mappings_refuse_gets_the_mapping_advice():
    hint = failure_hint(OPENSEARCH_FAILURE, "r1")
    assert hint.startswith("the target's mappings refuse the document: `reindex-fsm abort r1`")


def test_a_failure_of_the_cluster_is_not_called_a_mapping_problem():
    hint = failure_hint(UNAVAILABLE_SHARD, "r1")
    assert "mappings refuse" not in hint
    assert hint.startswith("the cluster could not write the documents (unavailable_shards_excep")
    assert "`reindex-fsm resume r1`" in hint
