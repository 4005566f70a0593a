"""Realistic sample data: an index with non-trivial settings and mappings (custom
analyzers, multi-fields, nested objects, dynamic templates, 3 shards) behind an alias,
filled with deterministic generated articles. Used by the newcomer demo, the
integration tests and the benchmarks; never by a run itself.

    python -m reindex_fsm.testing.sample --engine-url URL --alias documents --docs 20000
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ..engine.base import Engine
from ..errors import EngineError

SAMPLE_SETTINGS: dict[str, Any] = {
    "index.number_of_shards": 3,
    "index.number_of_replicas": 0,
    "index.refresh_interval": "2s",
    "index.max_result_window": 20000,
    "index.analysis.filter.english_stop.type": "stop",
    "index.analysis.filter.english_stop.stopwords": "_english_",
    "index.analysis.filter.autocomplete_edge.type": "edge_ngram",
    "index.analysis.filter.autocomplete_edge.min_gram": 2,
    "index.analysis.filter.autocomplete_edge.max_gram": 12,
    "index.analysis.analyzer.folding.type": "custom",
    "index.analysis.analyzer.folding.tokenizer": "standard",
    "index.analysis.analyzer.folding.filter": ["lowercase", "asciifolding", "english_stop"],
    "index.analysis.analyzer.autocomplete.type": "custom",
    "index.analysis.analyzer.autocomplete.tokenizer": "standard",
    "index.analysis.analyzer.autocomplete.filter": ["lowercase", "autocomplete_edge"],
}

# An engine without the analysis-common module (the Elasticsearch 7.17 test engine) has only
# the server's own token filters (lowercase, stop, shingle): the sample then defines the same
# analyzers and custom filter from those.
CORE_ANALYSIS_SETTINGS: dict[str, Any] = {
    "index.analysis.filter.autocomplete_edge.type": "shingle",
    "index.analysis.filter.autocomplete_edge.min_shingle_size": 2,
    "index.analysis.filter.autocomplete_edge.max_shingle_size": 3,
    "index.analysis.analyzer.folding.filter": ["lowercase", "english_stop"],
}
_EDGE_NGRAM_KEYS = ("min_gram", "max_gram")


def has_analysis_common(engine: Engine) -> bool:
    """Whether the engine has the analysis-common filters (asked with ``_analyze``); an
    engine that cannot be asked (no REST requests) is taken to have them."""
    request = getattr(engine, "request", None)
    if request is None:
        return True
    body = {"tokenizer": "standard", "filter": ["asciifolding"], "text": "a"}
    try:
        request("POST", "/_analyze", body=body)
    except EngineError as exc:
        if exc.status == 400:
            return False
        raise
    return True


def sample_settings(engine: Engine | None = None) -> dict[str, Any]:
    """SAMPLE_SETTINGS, from the server's own filters when ``engine`` lacks analysis-common."""
    if engine is None or has_analysis_common(engine):
        return dict(SAMPLE_SETTINGS)
    settings = {
        key: value
        for key, value in SAMPLE_SETTINGS.items()
        if not key.endswith(tuple(f"autocomplete_edge.{k}" for k in _EDGE_NGRAM_KEYS))
    }
    return {**settings, **CORE_ANALYSIS_SETTINGS}


SAMPLE_MAPPINGS: dict[str, Any] = {
    "dynamic_templates": [
        {
            "attrs_as_keywords": {
                "path_match": "attrs.*",
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": 256},
            }
        },
    ],
    "properties": {
        "title": {
            "type": "text",
            "analyzer": "folding",
            "fields": {
                "raw": {"type": "keyword", "ignore_above": 512},
                "suggest": {
                    "type": "text",
                    "analyzer": "autocomplete",
                    "search_analyzer": "standard",
                },
            },
        },
        "body": {"type": "text", "analyzer": "folding"},
        "lang": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "author": {
            "properties": {
                "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "email": {"type": "keyword"},
            }
        },
        "published_at": {"type": "date"},
        "views": {"type": "integer"},
        "rating": {"type": "float"},
        "comments": {
            "type": "nested",
            "properties": {
                "author": {"type": "keyword"},
                "body": {"type": "text", "analyzer": "folding"},
                "at": {"type": "date"},
            },
        },
        "attrs": {"type": "object", "dynamic": True},
    },
}

_WORDS = [
    "index",
    "alias",
    "shard",
    "replica",
    "cluster",
    "node",
    "query",
    "search",
    "vector",
    "embedding",
    "token",
    "analyzer",
    "mapping",
    "field",
    "document",
    "segment",
    "merge",
    "refresh",
    "flush",
    "snapshot",
    "restore",
    "latency",
    "throughput",
    "operator",
    "pager",
    "rollback",
    "checkpoint",
    "resume",
    "migration",
    "schema",
    "backfill",
    "consistency",
    "quorum",
    "café",
    "naïve",
    "résumé",
    "über",
    "façade",
    "jalapeño",
    "smörgåsbord",
    "crème",
    "brûlée",
    "déjà",
    "vu",
]
_TAGS = ["ops", "search", "ml", "infra", "billing", "docs", "security", "release", "howto"]
_NAMES = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "Niklaus Wirth",
]


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def generate_docs(n: int, seed: int = 7, start: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """``n`` deterministic articles as (id, source)."""
    epoch = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(start, start + n):
        rng = random.Random(seed * 1_000_003 + i)
        author = rng.choice(_NAMES)
        doc: dict[str, Any] = {
            "title": _sentence(rng, rng.randint(3, 9)),
            "body": " ".join(_sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(2, 6))),
            "lang": rng.choice(["en", "fr", "de"]),
            "tags": rng.sample(_TAGS, rng.randint(1, 3)),
            "author": {"name": author, "email": author.lower().replace(" ", ".") + "@example.org"},
            "published_at": (epoch + timedelta(minutes=rng.randint(0, 900_000))).isoformat(),
            "views": rng.randint(0, 100_000),
            "rating": round(rng.uniform(1, 5), 2),
            "comments": [
                {
                    "author": rng.choice(_NAMES),
                    "body": _sentence(rng, rng.randint(4, 12)),
                    "at": (epoch + timedelta(minutes=rng.randint(0, 900_000))).isoformat(),
                }
                for _ in range(rng.randint(0, 3))
            ],
            "attrs": {
                "source": rng.choice(["web", "api", "import"]),
                "region": rng.choice(["eu-west", "us-east", "ap-south"]),
            },
        }
        yield f"doc-{i:08d}", doc


def create_sample(
    engine: Engine,
    index: str,
    alias: str,
    n_docs: int,
    *,
    extra_aliases: dict[str, dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    seed: int = 7,
) -> int:
    """Create ``index`` with the sample settings and mappings, put ``alias`` (and any
    ``extra_aliases``) on it, bulk-load ``n_docs`` articles, refresh; return the count."""
    engine.create_index(index, {**sample_settings(engine), **(settings or {})}, SAMPLE_MAPPINGS)
    actions = (
        {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}
        for doc_id, source in generate_docs(n_docs, seed)
    )
    _ok, errors = engine.bulk(actions)
    if errors:
        raise RuntimeError(f"{len(errors)} sample documents were refused, first: {errors[0]}")
    aliases = {alias: {"is_write_index": True}, **(extra_aliases or {})}
    engine.update_aliases(
        [{"add": {"index": index, "alias": name, **props}} for name, props in aliases.items()]
    )
    engine.refresh(index)
    return engine.count(index)


@click.command()
@click.option("--engine-url", envvar="REINDEX_FSM_ENGINE_URL", required=True)
@click.option("--alias", default="documents", show_default=True)
@click.option("--index", default=None, help="[default: <alias>-v1]")
@click.option("--docs", "n_docs", type=int, default=20000, show_default=True)
@click.option("--replace", is_flag=True, help="Delete the index first if it exists.")
def main(engine_url: str, alias: str, index: str | None, n_docs: int, replace: bool) -> None:
    """Create a sample index of realistic articles behind ALIAS."""
    from ..engine.connect import connect

    engine = connect(engine_url)
    index = index or f"{alias}-v1"
    if engine.index_exists(index):
        if not replace:
            click.echo(
                f"{index} exists already ({engine.count(index)} documents); "
                "pass --replace to rebuild it"
            )
            return
        engine.delete_index(index)
    count = create_sample(engine, index, alias, n_docs)
    click.echo(f"created {index} with {count} documents behind alias {alias}")


if __name__ == "__main__":
    main()
