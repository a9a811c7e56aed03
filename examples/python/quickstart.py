#!/usr/bin/env python3
"""agentstore quickstart: the REST API from Python with nothing but the standard library.

Walks through sessions and events, versioned memories, documents, search and errors,
and checks every answer. Run it against `agentstore serve`:

    AGENTSTORE_API_KEY=ask_... python3 quickstart.py

Environment:
    AGENTSTORE_URL      base URL of the server (default http://127.0.0.1:8080)
    AGENTSTORE_API_KEY  a key with the read and write scopes (`agentstore keys create`)

The last line on stdout is a JSON summary, for scripts that run this as a check.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

BASE_URL = os.environ.get("AGENTSTORE_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("AGENTSTORE_API_KEY", "")


class AgentstoreError(Exception):
    """A non-2xx answer. `code` is the server's stable error code, e.g. "not_found"."""

    def __init__(self, status, code, message):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def call(method, path, body=None):
    """Sends one request and returns the decoded JSON answer (None for 204 No Content)."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        # The server refuses a body without this header (415 unsupported_media_type).
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            err = json.loads(raw)
            code, message = err["code"], err["message"]
        except (ValueError, KeyError, TypeError):
            # Not the server's own error body: a proxy in between, for instance.
            code, message = f"http_{e.code}", raw.decode("utf-8", "replace")[:200]
        raise AgentstoreError(e.code, code, message) from None
    return json.loads(raw) if raw else None


def query(path, **params):
    """`path` with a query string; a list value repeats the key, as the API expects."""
    params = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urllib.parse.urlencode(params, doseq=True)}" if params else path


def list_all(path, cursor="after", **params):
    """Every item of a paginated list, following `next` until the last page.

    Most lists take the cursor back as `after=`; events and the audit log as `after_seq=`.
    """
    items = []
    while True:
        page = call("GET", query(path, **params))
        items.extend(page["items"])
        if page.get("next") is None:
            return items
        params[cursor] = page["next"]


def main():
    if not API_KEY:
        sys.exit("set AGENTSTORE_API_KEY (create one with: agentstore keys create --scopes read,write)")

    # Each run writes into a namespace of its own, so that running the script again
    # starts from a clean slate instead of adding a third version of the same key.
    namespace = ["quickstart", uuid.uuid4().hex[:12]]
    ns_path = "/".join(namespace)  # how a namespace is written in a query string
    print(f"namespace {ns_path}")

    # --- Sessions and events ---------------------------------------------------------
    session = call(
        "POST",
        "/v1/sessions",
        {"kind": "conversation", "title": "Quickstart chat", "namespace": namespace},
    )
    session_id = session["id"]
    print(f"created session {session_id}")

    messages = [
        ("user", "Hi! Can you help me plan a trip to Lisbon?"),
        ("assistant", "Of course. When are you going, and for how long?"),
        ("user", "Five days in May. I love seafood and old trams."),
    ]
    for role, content in messages:
        event = call(
            "POST",
            f"/v1/sessions/{session_id}/events",
            {"kind": "message", "role": role, "content": content},
        )
        print(f"  event seq={event['seq']} {role}: {content}")

    # A batch is appended atomically and in order: all of it or none of it.
    batch = [
        ("assistant", "Then ride tram 28 and book dinner in Alfama."),
        ("user", "Great, please remember that I prefer window seats."),
    ]
    appended = call(
        "POST",
        f"/v1/sessions/{session_id}/events/batch",
        {"events": [{"kind": "message", "role": r, "content": c} for r, c in batch]},
    )
    assert len(appended) == len(batch), appended
    print(f"  appended a batch of {len(appended)} events")
    messages += batch

    # A small page size, so that the listing really follows the `next` cursor.
    events = list_all(f"/v1/sessions/{session_id}/events", cursor="after_seq", limit=2)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(messages) + 1)), f"events out of order: {seqs}"
    assert [(e["role"], e["content"]) for e in events] == messages, "event contents changed"
    print(f"listed {len(events)} events, seq 1..{len(events)} in order")

    # --- Memories: upsert by key keeps every version ----------------------------------
    plain = call(
        "POST",
        "/v1/memories",
        {
            "content": "The user is planning a five-day trip to Lisbon in May.",
            "kind": "context",
            "namespace": namespace,
        },
    )
    assert plain["outcome"] == "created", plain

    key = "seat_preference"
    first = call(
        "POST",
        "/v1/memories",
        {"key": key, "content": "The user prefers aisle seats.", "namespace": namespace},
    )
    assert first["outcome"] == "created", first
    # Same key, new content: the old version is closed and a new one becomes current.
    second = call(
        "POST",
        "/v1/memories",
        {"key": key, "content": "The user prefers window seats.", "namespace": namespace},
    )
    assert second["outcome"] == "superseded", second
    assert second["previous"] == first["id"], second
    print(f"remembered {key!r} twice: {first['id']} superseded by {second['id']}")

    current = call("GET", query("/v1/memories/by-key", namespace=ns_path, key=key))
    assert current["id"] == second["id"], current
    assert current["content"] == "The user prefers window seats.", current
    print(f"  by-key now: {current['content']}")

    history = call("GET", query("/v1/memories/history", namespace=ns_path, key=key))["items"]
    assert [m["content"] for m in history] == [
        "The user prefers aisle seats.",
        "The user prefers window seats.",
    ], history
    assert history[0]["superseded_by"] == second["id"], history[0]
    assert history[0]["valid_to"] is not None and history[1]["valid_to"] is None, history
    print(f"  history: {len(history)} versions, oldest first")

    # --- Documents --------------------------------------------------------------------
    doc = call(
        "POST",
        "/v1/documents",
        {
            "title": "Lisbon notes",
            "source_path": "notes/lisbon.md",
            "namespace": namespace,
            "content": (
                "# Lisbon\n\n"
                "Tram 28 climbs through the old town to Alfama. Arrive early to get a seat.\n\n"
                "Custard tarts are best warm, with cinnamon. Try the bakery near the river.\n"
            ),
        },
    )
    assert doc["outcome"] == "created", doc
    print(f"stored document {doc['id']} ({doc['outcome']})")

    # --- Search -----------------------------------------------------------------------
    # Keyword search (BM25) needs no embedding model. Without "mode", the server picks
    # hybrid when it can embed the text; asking for keyword keeps the result predictable.
    results = call(
        "POST",
        "/v1/search",
        {
            "text": "window seat tram",
            "mode": "keyword",
            "targets": ["memory", "chunk"],
            "filter": {"namespace_prefix": namespace},
            "limit": 10,
        },
    )
    hits = results["hits"]
    print(f"search 'window seat tram': {len(hits)} hits")
    for hit in hits:
        # score = fused x recency x importance; fused combines the ranked lists (RRF).
        c = hit["components"]
        text = hit["record"]["content"].replace("\n", " ")[:50]
        print(
            f"  score={hit['score']:.4f} {hit['target']:<6} bm25={c['keyword']:.3g} "
            f"keyword_rank={c['keyword_rank']} fused={c['fused']:.4f}  {text}"
        )
    found = {(h["target"], h["id"]) for h in hits}
    # Only the current version of a key is searched, so the aisle-seat version is absent.
    assert ("memory", second["id"]) in found, "the current memory is not found"
    assert ("memory", first["id"]) not in found, "a superseded version was found"
    assert any(h["target"] == "chunk" and h["record"]["document_id"] == doc["id"] for h in hits), (
        "the document is not found"
    )

    # --- Errors -----------------------------------------------------------------------
    try:
        call("GET", "/v1/sessions/no-such-session")
    except AgentstoreError as e:
        assert e.status == 404 and e.code == "not_found", e
        print(f"missing session -> {e.status} {e.code}: {e.message}")
    else:
        raise AssertionError("a missing session was found")

    print(
        json.dumps(
            {
                "ok": True,
                "session_id": session_id,
                "events": len(events),
                "memory_versions": len(history),
                "search_hits": len(hits),
            }
        )
    )


if __name__ == "__main__":
    main()
