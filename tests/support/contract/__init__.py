"""A FakeEngine behind the REST API the real adapters speak, for contract tests.

:class:`~.server.ContractServer` is an in-process HTTP server (127.0.0.1, a free port) that
answers as Elasticsearch 8.x (with the ``X-Elastic-Product: Elasticsearch`` header the
official client checks) or as OpenSearch 2.19, and turns every request the adapters of
:mod:`reindex_fsm.engine` make into calls on one :class:`FakeEngine`:

==========================================  ============================================
request                                     FakeEngine
==========================================  ============================================
GET /                                       info (the body is the flavor's own)
GET _alias/{name}                           get_alias (404 "alias [x] missing" if none)
GET {index}/_alias                          get_index_aliases
GET {index}/_settings[/{name}]              get_index, or index_exists with a name filter
GET {index}/_mapping                        (read from the fake's state, not recorded)
PUT {index}, PUT {index}/_settings          create_index, put_settings
PUT {index}/_block/write                    add_write_block
PUT {index}/_settings {blocks.write: null}  remove_write_block
POST {index}/_refresh, GET {index}/_count   refresh, count
POST _aliases                               update_aliases
GET _cluster/health[/{index}]               cluster_health
DELETE {index}                              delete_index
POST _reindex[?wait_for_completion=false]  start_reindex (X-Opaque-Id read from headers);
                                            waiting: the task run to its end, its response
GET _tasks/{id}                             get_task (the task progresses as polled; the
                                            counts are the fake's, as BulkByScrollTask.Status)
GET _tasks?actions=*reindex&detailed=true   list_reindex_tasks
POST _tasks/{id}/_cancel                    cancel_task
POST _reindex/{id}/_rethrottle              rethrottle
POST [{index}/]_bulk                        bulk (one fake call per item)
{index}/_search?scroll, _search/scroll      scan (recorded once; pages served from a
                                            scroll context), DELETE _search/scroll
POST {index}/_search (no scroll)            search (match_all, ids, function_score with
                                            random_score; the sample of a verify)
ES: POST {index}/_pit?keep_alive=           open_pit, answering {"id"}; a fake without
OS: POST {index}/_search/point_in_time      PIT (open_pit None) answers 400 "no handler
                                            found", as an engine without the API does
POST _search {"pit", "sort", ...}           search with a point in time: ``pit_id`` in the
                                            answer; 404 search_context_missing_exception
                                            (in a search_phase_execution_exception) for a
                                            closed or unknown PIT
ES: DELETE _pit {"id": str}                 close_pit, {"succeeded", "num_freed"}
OS: DELETE _search/point_in_time            close_pit, {"pits": [{"successful", "pit_id"}]}
    {"pit_id": [str, ...]}
GET _cat/plugins?format=json                plugins, rows of {name, component, version}
POST {index}/_mget {"docs": [...]}          mget (found, _source unless asked false;
                                            routing passed on; a missing index: 200 with
                                            a per-document index_not_found_exception)
reindex-fsm-leases: GET _doc/{id},          get_lease, put_lease (create, or if_seq_no +
PUT _create/{id}, PUT _doc/{id}?if_seq_no,  if_primary_term; a 409 version conflict),
DELETE _doc/{id}?if_seq_no                  delete_lease; the index's own GET _settings
                                            and PUT (hidden, required) are answered
                                            from the fake's state, unrecorded
GET _cat/indices/{index}?format=json        index_status (open/close, pri.store.size)
GET _nodes/stats/fs                         data_node_disks (plus a node without the data
                                            role, which the adapter must leave out)
GET _cluster/settings?include_defaults=     disk_watermarks: the fake's transient,
  true&filter_path=*.<prefix>               persistent and default layers, nested
ES: POST _security/user/_has_privileges     check_privileges; security off: the 500
                                            "Security must be explicitly enabled"
OS: GET _plugins/_security/authinfo         (unrecorded) only with the opensearch-security
                                            plugin in the fake's plugin list
GET _ingest/pipeline/{name}                 pipeline_exists ({} and 404 when missing)
GET _cat/indices/{pattern}?format=json,     describe_indices (one call; the _alias and
  {pattern}/_alias, {pattern}/_mapping      _mapping reads that follow are not recorded)
DELETE _tasks/{id}                          405: OpenSearch 2.19 has no such API (3.9 has)
DELETE .tasks/_doc/{id}                     delete_task_result; Elasticsearch refuses
                                            (403: .tasks is a restricted system index)
GET {index}/_stats/docs?level=shards        max_seq_nos (a primary and a lagging replica
                                            copy of each shard)
GET _resolve/index/{names}                  data_stream_use (data streams, backing
                                            indices, aliases; ES: aliases over streams)
ES 9.5: GET _reindex/{id},                  get_task, cancel_task by the ID a task was
  POST _reindex/{id}/_cancel, GET _reindex  started with, across a relocation (the Tasks
                                            API then knows only the new ID)
GET _index_template (+ GET _template,       index_templates (composable ones; the legacy
  unrecorded)                               ones read from the fake's state)
POST _index_template/_simulate_index/{n}    simulate_index ({} when none matches)
PUT, DELETE _index_template/{name}          put_index_template, delete_index_template
                                            (404 index_template_missing_exception)
==========================================  ============================================

Each flavor has only its own PIT endpoints (the other flavor's path has no route), and
sorts as it does: ``_shard_doc`` only with a PIT and only on Elasticsearch (OpenSearch
2.19 has no mapping for it), an implicit ``_shard_doc`` tiebreaker at the end of every
Elasticsearch PIT search, and ``_id`` refused on Elasticsearch 8 (no fielddata on _id;
``id_fielddata=True`` is the cluster setting ``indices.id_field_data.enabled: true``).
PIT IDs are opaque base64 strings wrapping the fake's own. A request a real engine
refuses as malformed (a close-PIT body with the other flavor's key, say) is answered
with the engine's refusal and recorded in :attr:`~.server.ContractServer.problems` too: the
adapters must never send one, and some of their callers ignore errors (closing a PIT).

Like the real engines, names that are aliases are resolved to their indices where a read
API allows it (``_alias``, ``_settings``, ``_mapping``, ``_count``, ``_refresh``,
``_search``), and settings are stored and answered as flat ``index.*`` keys with string
values. FakeEngine errors become the engines' error bodies: ``IndexNotFound`` is a 404
``index_not_found_exception``, an ``EngineError("type_exception: reason", status=N)``
is an N with that type, an unknown task is a 404 ``resource_not_found_exception``
(for cancel/rethrottle, by default, a 200 with ``node_failures`` as the engines answer).
An ``EngineUnreachable`` from the fake (``refuse_connections`` or ``fail_on``) closes the
connection without an answer. Anything the server does not implement, and any other
exception, is answered with an error and recorded in :attr:`~.server.ContractServer.problems`.

The routes are grouped by API family, one module each: :mod:`.cluster` (GET /, health,
nodes, cluster settings, plugins, pipelines), :mod:`.indices` (create/delete, settings,
mappings, blocks, refresh, count, _cat/indices, stats), :mod:`.aliases`,
:mod:`.documents` (bulk, mget), :mod:`.search` (search, scroll, points in time),
:mod:`.reindex` (_reindex and the task counts), :mod:`.tasks` (and Elasticsearch 9.5's
reindex management), :mod:`.security`, :mod:`.lease`, :mod:`.data_streams` (resolve
index), :mod:`.lifecycle` (ILM explain/remove, ISM explain/add/remove), :mod:`.templates`;
:mod:`.wire` holds what they share and :mod:`.server` the HTTP plumbing and the routing
table.
"""

from __future__ import annotations

from .server import ES_7_17, FLAVORS, VERSIONS, ContractServer

__all__ = ["ES_7_17", "FLAVORS", "VERSIONS", "ContractServer"]
