"""A client that writes through an alias without pause until told to stop, logging the
outcome of every write: ``python writer.py URL ALIAS LOG STOPFILE``.

Each write is one HTTP request (no bulk, no retries): a new document, an update of one
of its earlier documents (``v`` goes up) or a delete, in a fixed rotation, each with
``updated_at`` set to the time of the write. One JSON line per write goes to LOG:
``{"op", "id", "v", "status", "outcome"}`` where outcome is ``ack`` (2xx), ``refused``
(403: a write block) or ``unknown`` (anything else: it may or may not have happened).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROTATION = ("new", "new", "new", "update", "new", "update", "delete", "new")


def send(url: str, method: str, path: str, body: dict | None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def main(url: str, alias: str, log_path: str, stop_path: str) -> None:
    stop = Path(stop_path)
    live: list[str] = []  # documents this writer created and has not deleted
    versions: dict[str, int] = {}
    n = 0
    with open(log_path, "a", buffering=1) as log:
        while not stop.exists():
            op = ROTATION[n % len(ROTATION)]
            n += 1
            if op == "new" or len(live) < 4:
                op, doc_id = "new", f"w-{n:06d}"
            elif op == "update":
                doc_id = live[n % len(live)]
            else:
                doc_id = live[(n * 7) % (len(live) - 2)]  # not one of the newest two
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            if op == "delete":
                status = send(url, "DELETE", f"/{alias}/_doc/{doc_id}", None)
                v = None
            else:
                v = versions.get(doc_id, 0) + 1
                body = {
                    "title": f"written by the writer {doc_id} v{v}",
                    "v": v,
                    "updated_at": stamp,
                }
                status = send(url, "PUT", f"/{alias}/_doc/{doc_id}", body)
            outcome = "ack" if 200 <= status < 300 else "refused" if status == 403 else "unknown"
            if outcome == "ack":
                if op == "delete":
                    live.remove(doc_id)
                else:
                    versions[doc_id] = v or 0
                    if doc_id not in live:
                        live.append(doc_id)
            log.write(
                json.dumps({"op": op, "id": doc_id, "v": v, "status": status, "outcome": outcome})
                + "\n"
            )
            if outcome == "refused":
                time.sleep(0.01)  # as a real client backs off


if __name__ == "__main__":
    main(*sys.argv[1:5])
