#!/usr/bin/env python3
"""Autom8's SQLite + sqlite-vec storage foundation on agentstore.

Autom8 kept a context registry, agent decisions, a usage ledger, model performance and
embeddings in SQLite (with sqlite-vec for semantic search). This script does the same
work against agentstore's REST API and checks every answer:

    context_registry   -> memories kind "context": key, summary, topic, priority, pinned,
                          expires_at, token_count, content_hash (dedupe)
    agent_decisions    -> events kind "decision" in the router agent's session
    usage_ledger       -> usage records (tokens, estimated / actual cost, quality, latency)
    model_performance  -> /v1/usage/aggregate grouped by model (and by time bucket)
    embeddings         -> the store's vector index: memories and document chunks are
                          embedded by the server's local model (all-MiniLM-L6-v2, 384-d)
    migrations, health -> `agentstore migrate status`, /readyz, /metrics
    auto_cleanup_days  -> a retention rule for context memories

The server must run with an embedder (`agentstore --model-dir DIR serve`, DIR from
scripts/fetch-model.sh) for the semantic and hybrid searches.

Environment: AGENTSTORE_URL, AGENTSTORE_API_KEY (scopes read,write,admin: the retention
rule needs admin), AGENTSTORE_BIN and AGENTSTORE_DATA_DIR for `migrate status`. The last
line on stdout is a JSON summary.
"""

import hashlib
import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentstore_client import Client, cli  # noqa: E402

RUN = uuid.uuid4().hex[:8]
NS = ["autom8", RUN]
NS_PATH = "/".join(NS)
SIMILARITY_THRESHOLD = 0.25  # database.yaml's similarity_threshold (MiniLM cosine)


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def list_all(api, path, cursor="after", **query):
    items = []
    while True:
        page = api.get(path, **query)
        items.extend(page["items"])
        if not page.get("next"):
            return items
        query[cursor] = page["next"]


CONTEXTS = [
    # key, topic, priority, pinned, token_count, content, summary
    ("welcome", "welcome", 100, True, 12,
     "Welcome to Autom8 v3.0 context-aware runtime!", "Greeting shown to every agent."),
    ("db-optimization", "performance", 10, False, None,
     "Context about database optimization: add covering indexes for the hot queries "
     "and enable WAL mode so readers never block the writer.",
     "Indexes and WAL mode."),
    ("prompt-budget", "context", 50, False, 31,
     "Keep prompts small: send the model only the snippets it needs, summarise older "
     "turns, and drop anything past the token budget.",
     "Prompt size discipline."),
    ("model-routing", "routing", 30, True, 22,
     "Route simple classification to the local 3B model and escalate multi-step "
     "reasoning to a hosted model.",
     "Which model gets which job."),
    ("release-notes", "release", 5, False, None,
     "Release 3.0.2 fixed the scheduler crash when two agents shared one workspace.",
     None),
]


def main():
    api = Client()
    started = datetime.now(timezone.utc)

    # --- health and schema (ConnectionManager / MigrationManager) ---------------------
    assert api.get("/readyz") is not None
    status = cli("migrate", "status")
    assert status["current"] == status["latest"], status  # nothing pending
    assert all(m["state"] == "applied" for m in status["migrations"]), status

    # auto_cleanup_days: 30 -> context memories are swept 30 days after their last change.
    rules = api.put("/v1/retention", {"entity": "memory", "kind": "context", "days": 30})["items"]
    assert {"entity": "memory", "kind": "context", "days": 30}.items() <= next(
        r for r in rules if r["entity"] == "memory" and r.get("kind") == "context"
    ).items(), rules

    # --- context_registry ---------------------------------------------------------------
    ids = {}
    for key, topic, prio, pinned, tokens, content, summary in CONTEXTS:
        body = {
            "namespace": NS, "kind": "context", "key": key, "content": content,
            "topic": topic, "priority": prio, "pinned": pinned,
            "metadata": {"source": "seed", "run": RUN},
        }
        if summary:
            body["summary"] = summary
        if tokens is not None:
            body["token_count"] = tokens
        out = api.post("/v1/memories", body)
        assert out["outcome"] == "created", out
        ids[key] = out["id"]

    welcome = api.get(f"/v1/memories/{ids['welcome']}")
    assert welcome["pinned"] is True and welcome["priority"] == 100 and welcome["token_count"] == 12
    assert welcome["content_hash"] == hashlib.sha256(CONTEXTS[0][5].encode()).hexdigest()
    estimated = api.get(f"/v1/memories/{ids['db-optimization']}")["token_count"]
    assert estimated > 0, "token count is estimated when the caller gives none"

    # Deduplication by content hash: the same snippet stored again without a key is
    # recognised; under its key, it only updates the other fields.
    dup = api.post("/v1/memories", {"namespace": NS, "kind": "context", "content": CONTEXTS[4][5]})
    assert dup == {"outcome": "deduplicated", "id": ids["release-notes"]}, dup
    bumped = api.post("/v1/memories", {
        "namespace": NS, "kind": "context", "key": "release-notes", "content": CONTEXTS[4][5],
        "topic": "release", "priority": 7, "metadata": {"source": "seed", "run": RUN},
    })
    assert bumped == {"outcome": "updated", "id": ids["release-notes"]}, bumped
    # New content under the same key: a new version; the old one stays in the history.
    v2 = api.post("/v1/memories", {
        "namespace": NS, "kind": "context", "key": "db-optimization", "topic": "performance",
        "priority": 12, "summary": "Indexes, WAL and ANALYZE.",
        "content": "Context about database optimization: add covering indexes for the hot "
                   "queries, enable WAL mode, and run ANALYZE after bulk loads.",
    })
    assert v2["outcome"] == "superseded" and v2["previous"] == ids["db-optimization"], v2
    ids["db-optimization"] = v2["id"]
    history = api.get("/v1/memories/history", namespace=NS_PATH, key="db-optimization")["items"]
    assert [h["priority"] for h in history] == [10, 12]
    assert history[0]["superseded_by"] == v2["id"] and history[1]["valid_to"] is None

    # Expiry: a temporary context disappears from lists and searches when it expires.
    temp = api.post("/v1/memories", {
        "namespace": NS, "kind": "context", "key": "deploy-freeze", "topic": "ops",
        "priority": 90, "content": "Deployment freeze until the Friday release is tagged.",
        "expires_at": iso(datetime.now(timezone.utc) + timedelta(milliseconds=1500)),
    })
    ids["deploy-freeze"] = temp["id"]
    live = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context")
    assert len(live) == 6, [m["key"] for m in live]

    # The context package for a prompt: pinned first, then priority, within a budget.
    ordered = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context", order="priority")
    order_keys = [m["key"] for m in ordered]
    assert order_keys == ["welcome", "model-routing", "deploy-freeze", "prompt-budget",
                          "db-optimization", "release-notes"], order_keys
    budget, package, used = 80, [], 0
    for m in ordered:
        if used + m["token_count"] <= budget:
            package.append(m["key"])
            used += m["token_count"]
    assert package[:2] == ["welcome", "model-routing"] and used <= budget
    pinned = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context", pinned="true")
    assert sorted(m["key"] for m in pinned) == ["model-routing", "welcome"]
    perf = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context", topic="performance")
    assert [m["id"] for m in perf] == [ids["db-optimization"]]
    # Context transparency: each read is counted.
    assert api.post("/v1/memories/touch", {"ids": [ids[k] for k in package]}) == {"count": len(package)}
    assert api.get(f"/v1/memories/{ids['welcome']}")["access_count"] == 1

    # --- agent_decisions -----------------------------------------------------------------
    router = api.post("/v1/agents", {
        "name": f"autom8-router-{RUN}", "agent_type": "router", "model_provider": "ollama",
        "model_name": "llama3.2:3b", "capabilities": {"routes": ["local", "hosted"]},
    })
    run = api.post("/v1/sessions", {
        "namespace": NS, "kind": "run", "title": "Nightly triage batch", "agent_id": router["id"],
    })
    decisions = [
        ("model_selection", "llama3.2:3b", 0.18, True, 140, "Classify the issue title: simple, route to the local model."),
        ("model_selection", "claude-3-5-haiku", 0.62, True, 910, "Summarise a 40-message thread: escalate to a hosted model."),
        ("context_selection", "llama3.2:3b", 0.35, True, 60, "Include prompt-budget and model-routing contexts; skip release notes."),
        ("model_selection", "llama3.2:3b", 0.81, False, 2300, "Plan a multi-file refactor locally: failed, should have escalated."),
    ]
    appended = api.post(f"/v1/sessions/{run['id']}/events/batch", {"events": [
        {
            "kind": "decision", "role": "agent", "content": summary,
            "parameters": {"decision_type": dtype, "model": model},
            "result": {"full_content": summary, "alternatives": ["llama3.2:3b", "claude-3-5-haiku", "gpt-4o-mini"]},
            "success": ok, "duration_ms": ms, "metadata": {"complexity_score": cx},
        }
        for dtype, model, cx, ok, ms, summary in decisions
    ]})
    assert [e["seq"] for e in appended] == [1, 2, 3, 4]
    history_d = list_all(api, f"/v1/sessions/{run['id']}/events", cursor="after_seq", kind="decision")
    failed = [e for e in history_d if e["success"] is False]
    assert len(failed) == 1 and failed[0]["metadata"]["complexity_score"] == 0.81
    latest = api.get(f"/v1/sessions/{run['id']}/events", kind="decision", descending="true", limit=1)["items"]
    assert latest[0]["seq"] == 4
    complex_ones = api.post("/v1/search", {
        "text": "escalate", "mode": "keyword", "targets": ["event"],
        "filter": {"session_id": run["id"], "kinds": ["decision"],
                   "metadata": [{"path": "complexity_score", "op": "gte", "value": 0.5}]},
    })["hits"]
    # "escalate" also finds "escalated" (stemming); both are complex decisions.
    assert sorted(h["record"]["seq"] for h in complex_ones) == [2, 4], complex_ones

    # --- usage_ledger ----------------------------------------------------------------------
    t0 = started - timedelta(hours=2)
    ledger = []
    calls = [
        # model, provider, in, out, est, actual, quality, latency, ok, minutes after t0
        ("llama3.2:3b", "ollama", 420, 35, 0.0, 0.0, 0.78, 310.0, True, 0),
        ("llama3.2:3b", "ollama", 380, 41, 0.0, 0.0, 0.74, 290.0, True, 10),
        ("llama3.2:3b", "ollama", 2900, 600, 0.0, 0.0, 0.31, 2300.0, False, 70),
        ("claude-3-5-haiku", "anthropic", 5200, 480, 0.0061, 0.0060, 0.92, 910.0, True, 20),
        ("claude-3-5-haiku", "anthropic", 4100, 350, 0.0047, 0.0049, 0.88, 860.0, True, 80),
        ("gpt-4o-mini", "openai", 1500, 220, 0.0004, 0.0004, 0.81, 640.0, True, 30),
    ]
    for model, provider, inp, out, est, act, q, lat, ok, minutes in calls:
        ledger.append({
            "session_id": run["id"], "agent_id": router["id"], "provider": provider,
            "model": model, "operation": "chat", "input_tokens": inp, "output_tokens": out,
            "estimated_cost": est, "actual_cost": act, "quality_score": q, "latency_ms": lat,
            "success": ok, "created_at": iso(t0 + timedelta(minutes=minutes)),
        })
    recorded = api.post("/v1/usage", {"items": ledger})["items"]
    assert len(recorded) == 6 and all(r["id"] for r in recorded)

    # --- model_performance -----------------------------------------------------------------
    perf_rows = {
        a["group"]: a
        for a in api.get("/v1/usage/aggregate", group="model", agent_id=router["id"])["items"]
    }
    assert set(perf_rows) == {"ollama/llama3.2:3b", "anthropic/claude-3-5-haiku", "openai/gpt-4o-mini"}
    local = perf_rows["ollama/llama3.2:3b"]
    assert (local["calls"], local["successes"]) == (3, 2)
    assert abs(local["success_rate"] - 2 / 3) < 1e-9
    assert abs(local["avg_latency_ms"] - (310 + 290 + 2300) / 3) < 1e-6
    assert abs(local["avg_quality"] - (0.78 + 0.74 + 0.31) / 3) < 1e-9
    haiku = perf_rows["anthropic/claude-3-5-haiku"]
    assert abs(haiku["estimated_cost"] - 0.0108) < 1e-9 and abs(haiku["actual_cost"] - 0.0109) < 1e-9
    assert haiku["input_tokens"] == 9300 and haiku["output_tokens"] == 830
    # Model routing: the best quality per cent among models that succeed at least 90%.
    reliable = [g for g, a in perf_rows.items() if a["success_rate"] >= 0.9]
    best = max(reliable, key=lambda g: perf_rows[g]["avg_quality"])
    assert best == "anthropic/claude-3-5-haiku", best
    # Quality over time: hourly buckets.
    hourly = api.get("/v1/usage/aggregate", group="model", agent_id=router["id"],
                     model="llama3.2:3b", bucket_secs=3600)["items"]
    local_hours = {}
    for c in calls:
        if c[0] == "llama3.2:3b":
            at = t0 + timedelta(minutes=c[9])
            hour = at.replace(minute=0, second=0, microsecond=0)
            local_hours.setdefault(hour, []).append(c[6])
    assert [datetime.fromisoformat(b["bucket"].replace("Z", "+00:00")) for b in hourly] == sorted(local_hours)
    for b, hour in zip(hourly, sorted(local_hours)):
        assert b["calls"] == len(local_hours[hour])
        assert abs(b["avg_quality"] - sum(local_hours[hour]) / len(local_hours[hour])) < 1e-9
    overall = api.get("/v1/usage/aggregate", group="all", session_id=run["id"])["items"][0]
    assert overall["calls"] == 6 and overall["input_tokens"] == sum(c[2] for c in calls)
    stats = api.get(f"/v1/agents/{router['id']}/stats")
    assert stats["usage_calls"] == 6 and abs(stats["cost"] - 0.0113) < 1e-9

    # --- semantic and hybrid search (sqlite-vec) ----------------------------------------
    ctx_filter = {"namespace_prefix": NS, "kinds": ["context"]}
    question = "trimming chat history before calling an LLM"
    kw = api.post("/v1/search", {"text": question, "mode": "keyword", "targets": ["memory"], "filter": ctx_filter})["hits"]
    assert ids["prompt-budget"] not in [h["id"] for h in kw], "no word of the question is in the snippet"
    sem = api.post("/v1/search", {"text": question, "mode": "vector", "targets": ["memory"], "filter": ctx_filter, "limit": 3})["hits"]
    assert sem[0]["id"] == ids["prompt-budget"], [(h["record"]["key"], h["score"]) for h in sem]
    assert sem[0]["components"]["vector"] >= SIMILARITY_THRESHOLD
    above = [h["record"]["key"] for h in sem if h["components"]["vector"] >= SIMILARITY_THRESHOLD]
    assert above == ["prompt-budget"], [(h["record"]["key"], h["score"]) for h in sem]

    hyb = api.post("/v1/search", {"text": "database optimization", "mode": "hybrid", "targets": ["memory"],
                                  "filter": ctx_filter, "limit": 5})["hits"]
    top = hyb[0]
    assert top["id"] == ids["db-optimization"], [(h["record"]["key"], h["score"]) for h in hyb]
    assert top["components"]["keyword_rank"] == 1 and top["components"]["vector_rank"] == 1
    assert all(h["record"]["valid_to"] is None for h in hyb), "only current versions"
    # Weighted fusion as an alternative to RRF.
    weighted = api.post("/v1/search", {"text": "context management", "mode": "hybrid", "targets": ["memory"],
                                       "filter": ctx_filter, "fusion": {"method": "weighted", "keyword": 0.3, "vector": 0.7}})["hits"]
    assert weighted and all(0.0 <= h["components"]["fused"] <= 1.0 for h in weighted)

    # Content chunking for large documents, searched by meaning.
    runbook = " ".join([
        "Autom8 operations runbook.",
        "Section one: when the SQLite file grows past a gigabyte, run maintenance to vacuum it.",
        "Section two: if the embedding model fails to load, the runtime keeps answering keyword searches.",
        "Section three: to rotate API keys, create the new key, deploy it, then revoke the old one.",
        "Section four: backups are taken hourly and verified with the checksum report.",
    ] * 2)
    doc = api.post("/v1/documents", {"namespace": NS, "title": "Operations runbook", "doc_type": "runbook",
                                      "content": runbook, "chunking": {"size": 300, "overlap": 30}})
    assert doc["outcome"] == "created" and doc["chunks"] >= 3, doc
    chunk_hits = api.post("/v1/search", {"text": "replacing credentials safely", "mode": "vector", "targets": ["chunk"],
                                         "filter": {"namespace_prefix": NS}, "limit": 1})["hits"]
    assert "rotate API keys" in chunk_hits[0]["record"]["content"], chunk_hits

    # --- expiry takes effect -------------------------------------------------------------
    time.sleep(1.6)
    after = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context")
    assert ids["deploy-freeze"] not in [m["id"] for m in after] and len(after) == 5
    with_expired = list_all(api, "/v1/memories", namespace=NS_PATH, kind="context", include_expired="true")
    assert ids["deploy-freeze"] in [m["id"] for m in with_expired]
    gone = api.post("/v1/search", {"text": "deployment freeze", "targets": ["memory"], "filter": ctx_filter})["hits"]
    assert ids["deploy-freeze"] not in [h["id"] for h in gone]

    # --- statistics ------------------------------------------------------------------------
    # Every memory version and chunk of this run has a vector of the server's model.
    rows = {}
    for line in api.get("/metrics").splitlines():
        if line.startswith("agentstore_store_rows{"):
            entity = line.split('entity="', 1)[1].split('"', 1)[0]
            rows[entity] = int(float(line.rsplit(" ", 1)[1]))
    assert rows["vectors"] >= len(with_expired) + 1 + doc["chunks"], rows  # + db-optimization v1
    # Model and dimension tracking: the store's active vector model.
    models = api.get("/v1/vector-models")["items"]
    active = [m for m in models if m["active"]]
    assert len(active) == 1 and (active[0]["dimension"], active[0]["metric"]) == (384, "cosine"), models

    print(json.dumps({
        "run": RUN,
        "namespace": NS_PATH,
        "contexts": len(after),
        "vector_model": [active[0]["id"], active[0]["dimension"]],
        "priority_order": order_keys,
        "context_package": package,
        "package_tokens": used,
        "dedupe": dup["outcome"],
        "decisions": len(history_d),
        "usage_calls": overall["calls"],
        "best_model": best,
        "local_success_rate": round(local["success_rate"], 4),
        "semantic_top": sem[0]["record"]["key"],
        "semantic_score": round(sem[0]["components"]["vector"], 4),
        "hybrid_top": top["record"]["key"],
        "chunks": doc["chunks"],
        "router_agent": router["id"],
    }))


if __name__ == "__main__":
    main()
