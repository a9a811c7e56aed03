#!/usr/bin/env python3
"""CODEX on agentstore: evolution metrics, digital-twin learning profiles and a RAG index
in one store, behind one REST API, with Redis optional.

The CODEX integration kept three SQLite files (`evolution_metrics.db`, `digital_twin.db`,
`rag_index.db`), FAISS and BM25 indexes beside them, and Redis databases 0/1/2 as caches.
This script does the same work against `agentstore serve`:

1. Evolution metrics: rounds (one session per round and generation), fitness per agent
   (metric points + events), the leaderboard of a round, resource metrics downsampled
   over time, selection outcomes, the round configuration and peer heartbeats cached with
   a TTL.
2. Digital twin: learning profiles (subjects whose external id is stored only as a keyed
   hash, plus a `profile` memory whose sensitive part is encrypted at rest), COPPA
   parental consent, learning sessions, knowledge states upserted per (profile, domain,
   topic) with their mastery trajectory, GDPR export.
3. RAG: documents chunked and embedded on ingest, content dedupe, replacement by source
   path, hybrid (BM25 + vector) retrieval, a query-result cache with a TTL.
4. Redis: with CODEX_REDIS_PORT set, Redis is shut down after the first round and every
   later request still succeeds; /metrics reports `agentstore_redis_up 0`.
5. Operations (the CLI, as an operator): verify, backup, verify the backup, erase a
   learner (crypto-shredding), restore the backup into a scratch directory, read it,
   migrate it down and up, verify it and count what it holds.

Environment: AGENTSTORE_URL, AGENTSTORE_API_KEY (scopes read,write,admin), AGENTSTORE_BIN
and AGENTSTORE_DATA_DIR (the server's store, for the CLI), AGENTSTORE_MASTER_KEY_FILE (or
AGENTSTORE_MASTER_KEY: the store's master key, for the CLI), and optionally
CODEX_REDIS_PORT (the Redis the server was started with, AGENTSTORE_REDIS_URL).

The server must run with a master key (field encryption) and an embedding model
(`--model-dir`, see scripts/fetch-model.sh). The last line on stdout is a JSON summary.
"""

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentstore_client import Client, cli  # noqa: E402

api = Client()
RUN = uuid.uuid4().hex[:8]  # every id and namespace of this run carries it: re-runnable
NS = ["codex", RUN]
EVO_NS = NS + ["evolution"]
TWIN_NS = NS + ["twin"]
RAG_NS = NS + ["rag"]
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
summary = {"run": RUN}


def iso(t):
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse(ts):
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def ns_path(ns):
    return "/".join(ns)


def step(msg):
    print(msg, flush=True)


def metric_value(name):
    """A gauge or counter from /metrics (Prometheus text), summed over its label sets."""
    text = api.get("/metrics")
    values = re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)
    assert values, f"{name} missing from /metrics"
    return sum(float(v) for v in values)


def wait_metric(name, want, seconds=10.0):
    deadline = time.monotonic() + seconds
    while True:
        got = metric_value(name)
        if got == want:
            return got
        assert time.monotonic() < deadline, f"{name} is {got}, expected {want}"
        time.sleep(0.1)


def list_all(path, cursor="after", **params):
    items = []
    while True:
        page = api.get(path, **params)
        items.extend(page["items"])
        if page.get("next") is None:
            return items
        params[cursor] = page["next"]


# ==================================================================== 1. evolution metrics
def register_agent(agent_id, generation, parents=()):
    agent = api.post(
        "/v1/agents",
        {
            "id": agent_id,
            "namespace": EVO_NS,
            "name": agent_id,
            "agent_type": "evolved-solver",
            "model_provider": "codex",
            "model_name": "codex-solver-genome",
            "tags": [f"generation-{generation}"],
            "experimental": True,
            "metadata": {"generation": generation, "parents": list(parents)},
        },
    )
    assert agent["id"] == agent_id and agent["active"], agent
    return agent


def create_round(number, generation, population, started, parent=None):
    """One row of `evolution_rounds`: UNIQUE(round_number, generation) is the session id."""
    round_id = f"evo-{RUN}-r{number}-g{generation}"
    s = api.post(
        "/v1/sessions",
        {
            "id": round_id,
            "namespace": EVO_NS,
            "kind": "evolution_round",
            "status": "running",
            "title": f"Evolution round {number}, generation {generation}",
            "task_type": "evolution",
            "parent_id": parent,
            "started_at": iso(started),
            "metadata": {
                "round_number": number,
                "generation": generation,
                "population_size": population,
                "mutation_rate": 0.05 if generation == 1 else 0.03,
                "selection_pressure": 1.5,
            },
        },
    )
    assert s["id"] == round_id and s["status"] == "running", s
    return s


def record_fitness(round_s, scores, at):
    """`fitness_metrics`: a `fitness` point per agent (the leaderboard's series) and an
    event per agent in the round with the performance and resource details."""
    points = [
        {
            "name": "fitness",
            "labels": {"agent": agent, "round": round_s["id"], "population": RUN},
            "value": score,
            "at": iso(at),
        }
        for agent, score in scores.items()
    ]
    assert api.post("/v1/metric-points", {"points": points})["count"] == len(points)
    events = [
        {
            "kind": "fitness",
            "content": f"{agent} fitness {score:.3f}",
            "parameters": {
                "agent_id": agent,
                "fitness_score": score,
                "performance_metrics": {
                    "tasks_solved": int(score * 40),
                    "accuracy": round(0.5 + score / 2, 3),
                    "latency_ms": int(900 - 600 * score),
                },
                "resource_usage": {"cpu_seconds": round(30 + 20 * score, 1), "memory_mb": 512 + int(256 * score)},
            },
            "success": True,
            "metadata": {"agent_id": agent},
            "created_at": iso(at),
        }
        for agent, score in scores.items()
    ]
    appended = api.post(f"/v1/sessions/{round_s['id']}/events/batch", {"events": events})
    assert [e["parameters"]["agent_id"] for e in appended] == list(scores), appended
    return appended


RESOURCE_METRICS = {
    # name: value of sample i (0..14) in round r (1, 2)
    "cpu_usage": lambda r, i: 40.0 + 3 * i + 5 * r,
    "memory_usage_mb": lambda r, i: 2048.0 + 64 * i + 128 * r,
    "network_io_kb": lambda r, i: 150.0 + (i % 5) * 20 + r,
    "disk_io_kb": lambda r, i: 80.0 + (i % 3) * 15,
    "gpu_usage": lambda r, i: 55.0 + 2 * i - r,
}


def record_resources(round_s, number, start):
    """`resource_metrics`: one sample a minute for 15 minutes, five metrics, label round."""
    points = [
        {
            "name": name,
            "labels": {"round": round_s["id"], "population": RUN},
            "value": f(number, i),
            "at": iso(start + dt.timedelta(minutes=i)),
        }
        for name, f in RESOURCE_METRICS.items()
        for i in range(15)
    ]
    assert api.post("/v1/metric-points", {"points": points})["count"] == 75


def evolution_round_one(t0):
    step("== evolution round 1")
    population = [f"agt-{RUN}-{n:02d}" for n in range(1, 7)]
    for a in population:
        register_agent(a, 1)
    r1 = create_round(1, 1, len(population), t0)

    # UNIQUE(round_number, generation): the same round again is refused.
    e = api.expect_error(
        "already_exists", "POST", "/v1/sessions", {"id": r1["id"], "kind": "evolution_round"}
    )
    assert e.status == 409

    # Redis database 0 held the active round's configuration with a short TTL.
    cfg_key = f"codex:{RUN}:evolution:active-round"
    api.put(f"/v1/kv/{cfg_key}", {"value": r1["metadata"] | {"round_id": r1["id"]}, "ttl_ms": 3_600_000})
    cached = api.get(f"/v1/kv/{cfg_key}")
    assert cached["value"]["round_id"] == r1["id"] and cached["expires_at"], cached

    record_resources(r1, 1, t0)
    scores = dict(zip(population, [0.62, 0.91, 0.48, 0.87, 0.55, 0.79]))
    record_fitness(r1, scores, t0 + dt.timedelta(minutes=14))

    # The leaderboard of the round (Redis sorted set in CODEX): latest fitness per agent.
    top = api.get("/v1/metric-points/top", name="fitness", label=f"round:{r1['id']}", k=3)["items"]
    expected = sorted(scores.items(), key=lambda kv: -kv[1])[:3]
    assert [(t["labels"]["agent"], t["value"]) for t in top] == expected, top
    step(f"  leaderboard: {[(t['labels']['agent'][-2:], t['value']) for t in top]}")

    # Resource usage over time: 15 one-minute samples in 5-minute buckets.
    for name, f in RESOURCE_METRICS.items():
        buckets = api.get(
            "/v1/metric-points/downsample", name=name, label=f"round:{r1['id']}", bucket_secs=300
        )["items"]
        assert [parse(b["start"]) for b in buckets] == [t0 + dt.timedelta(minutes=5 * k) for k in range(3)], buckets
        for k, b in enumerate(buckets):
            vals = [f(1, i) for i in range(5 * k, 5 * k + 5)]
            assert b["count"] == 5 and b["min"] == min(vals) and b["max"] == max(vals), (name, b)
            assert abs(b["avg"] - sum(vals) / 5) < 1e-9 and abs(b["sum"] - sum(vals)) < 1e-9, (name, b)
    cpu = api.get("/v1/metric-points/downsample", name="cpu_usage", label=f"round:{r1['id']}", bucket_secs=300)["items"]
    step(f"  cpu_usage per 5 min: {[round(b['avg'], 1) for b in cpu]}")

    # Selection and reproduction: the top three survive; two children are bred.
    parents = [a for a, _ in expected]
    children = [f"agt-{RUN}-c1", f"agt-{RUN}-c2"]
    outcomes = [
        (parents[0], children[0], "tournament", [12, 40], True, "top fitness 0.91, crossover parent"),
        (parents[1], children[0], "tournament", [12, 40], True, "fitness 0.87, crossover parent"),
        (parents[0], children[1], "tournament", [27], False, "top fitness 0.91, crossover parent"),
        (parents[2], children[1], "tournament", [27], False, "fitness 0.79, crossover parent"),
        (parents[0], None, "elitism", None, False, "elite: carried over unchanged"),
    ]
    for a in population:
        if a not in parents:
            outcomes.append((a, None, "truncation", None, False, f"eliminated: fitness {scores[a]:.2f} below cutoff 0.79"))
    events = [
        {
            "kind": "selection_outcome",
            "content": reason,
            "parameters": {
                "parent_agent_id": parent,
                "child_agent_id": child,
                "selection_method": method,
                "crossover_points": points,
                "mutation_applied": mutated,
            },
            "metadata": {"parent_agent_id": parent, "child_agent_id": child},
            "created_at": iso(t0 + dt.timedelta(minutes=15)),
        }
        for parent, child, method, points, mutated, reason in outcomes
    ]
    api.post(f"/v1/sessions/{r1['id']}/events/batch", {"events": events})
    for c, (p1, p2) in zip(children, [(parents[0], parents[1]), (parents[0], parents[2])]):
        register_agent(c, 2, (p1, p2))

    # Parent -> children of this round (idx_selection_parent).
    sel = list_all(f"/v1/sessions/{r1['id']}/events", cursor="after_seq", kind="selection_outcome")
    assert len(sel) == len(outcomes), sel
    lineage = sorted({e["parameters"]["child_agent_id"] for e in sel if e["parameters"]["parent_agent_id"] == parents[0]} - {None})
    assert lineage == children, lineage
    eliminated = [e["parameters"]["parent_agent_id"] for e in sel if e["parameters"]["selection_method"] == "truncation"]
    assert sorted(eliminated) == sorted(set(population) - set(parents)), eliminated

    done = api.patch(
        f"/v1/sessions/{r1['id']}",
        {
            "status": "completed",
            "ended_at": iso(t0 + dt.timedelta(minutes=15)),
            "success": True,
            "reward": max(scores.values()),
            "metadata": {"best_agent": parents[0], "mean_fitness": round(sum(scores.values()) / 6, 4)},
        },
    )
    assert done["status"] == "completed" and done["metadata"]["round_number"] == 1, done
    assert done["metadata"]["best_agent"] == parents[0], done
    summary["evolution"] = {
        "round_1": r1["id"],
        "leaderboard_1": [t["labels"]["agent"] for t in top],
        "selection_outcomes": len(sel),
        "children": children,
    }
    return r1, parents, children, scores


def evolution_round_two(t0, r1, parents, children, scores1):
    step("== evolution round 2 (generation 2)")
    population = [parents[0], parents[1], parents[2]] + children
    r2 = create_round(2, 2, len(population), t0 + dt.timedelta(minutes=15), parent=r1["id"])
    assert r2["parent_id"] == r1["id"]
    record_resources(r2, 2, t0 + dt.timedelta(minutes=15))
    scores = dict(zip(population, [0.92, 0.88, 0.81, 0.95, 0.83]))
    record_fitness(r2, scores, t0 + dt.timedelta(minutes=29))
    api.patch(f"/v1/sessions/{r2['id']}", {"status": "completed", "ended_at": iso(t0 + dt.timedelta(minutes=30)), "success": True, "reward": 0.95})

    top = api.get("/v1/metric-points/top", name="fitness", label=f"round:{r2['id']}", k=3)["items"]
    assert [t["labels"]["agent"] for t in top] == [children[0], parents[0], parents[1]], top

    # One agent's fitness across rounds (idx_fitness_agent), oldest first.
    hist = api.get("/v1/metric-points", name="fitness", label=f"agent:{parents[0]}")["items"]
    assert [(p["labels"]["round"], p["value"]) for p in hist] == [(r1["id"], scores1[parents[0]]), (r2["id"], 0.92)], hist

    # Historical trend: mean and best fitness of the population per 15-minute window.
    trend = api.get("/v1/metric-points/downsample", name="fitness", label=f"population:{RUN}", bucket_secs=900)["items"]
    assert [b["count"] for b in trend] == [6, 5], trend
    assert trend[1]["avg"] > trend[0]["avg"] and trend[1]["max"] == 0.95, trend
    # CPU of both rounds in one series view (the time-series analysis over rounds).
    cpu = api.get("/v1/metric-points/downsample", name="cpu_usage", label=f"population:{RUN}", bucket_secs=900)["items"]
    assert [b["count"] for b in cpu] == [15, 15], cpu

    rounds = list_all("/v1/sessions", namespace=ns_path(EVO_NS), kind="evolution_round")
    assert sorted((s["metadata"]["round_number"], s["metadata"]["generation"]) for s in rounds) == [(1, 1), (2, 2)]
    assert all(s["status"] == "completed" for s in rounds), rounds
    child = api.get(f"/v1/agents/{children[0]}")
    assert child["metadata"]["parents"] == [parents[0], parents[1]], child
    step(f"  mean fitness per generation: {[round(b['avg'], 3) for b in trend]}")
    summary["evolution"].update(
        {
            "round_2": r2["id"],
            "leaderboard_2": [t["labels"]["agent"] for t in top],
            "mean_fitness": [round(b["avg"], 4) for b in trend],
            "agents": len(list_all("/v1/agents", namespace=ns_path(EVO_NS))),
        }
    )


def peer_discovery():
    """Redis database 2: active peers of the P2P mesh, each a key with a heartbeat TTL."""
    prefix = f"codex:{RUN}:p2p:peer:"
    peers = {"node-fra-1": 60_000, "node-ams-2": 60_000, "node-waw-3": 300}
    for node, ttl in peers.items():
        api.put(f"/v1/kv/{prefix}{node}", {"value": {"addr": f"10.8.0.{len(node)}:7401", "role": "relay"}, "ttl_ms": ttl})
    assert len(api.get("/v1/kv", prefix=prefix)["items"]) == 3
    time.sleep(0.5)  # node-waw-3 missed its heartbeat
    active = sorted(e["key"][len(prefix):] for e in api.get("/v1/kv", prefix=prefix)["items"])
    assert active == ["node-ams-2", "node-fra-1"], active
    api.expect_error("not_found", "GET", f"/v1/kv/{prefix}node-waw-3")
    beats = api.post(f"/v1/kv/codex:{RUN}:p2p:heartbeats/incr", {"by": 2, "ttl_ms": 60_000})
    assert beats["value"] == 2, beats
    summary["p2p_active_peers"] = active


# ==================================================================== 2. digital twin
def create_learner(profile_id, external_id, **extra):
    body = {
        "id": profile_id,
        "external_id": external_id,
        "consent": True,
        "retention_days": 365,
        "strict": True,
        "metadata": {"school": "Northfield Academy", "regulations": ["GDPR", "FERPA"]},
    }
    body.update(extra)
    s = api.post("/v1/subjects", body)
    # user_id_hash: only a keyed hash of the external id is kept.
    assert s["external_id_hash"] != external_id and len(s["external_id_hash"]) == 64, s
    assert external_id not in json.dumps(s)
    return s


def put_profile(subject, sensitive, clear):
    """`learning_profiles`: the clear columns in metadata, `encrypted_data` as content."""
    ns = TWIN_NS + [subject["id"]]
    out = api.post(
        "/v1/memories",
        {
            "namespace": ns,
            "kind": "profile",
            "key": "profile",
            "subject_id": subject["id"],
            "content": json.dumps(sensitive, sort_keys=True),
            "metadata": clear,
            "expires_at": iso(NOW + dt.timedelta(days=365)),  # ttl_expires_at
        },
    )
    return out


def knowledge(subject, domain, topic, mastery, confidence, prerequisites, note):
    """`knowledge_states`: one key per (domain, topic) in the profile's namespace."""
    return api.post(
        "/v1/memories",
        {
            "namespace": TWIN_NS + [subject["id"]],
            "kind": "knowledge",
            "key": f"{domain}/{topic}",
            "subject_id": subject["id"],
            "domain": domain,
            "topic": topic,
            "confidence": confidence,
            "content": f"{topic.replace('-', ' ')}: {note}",
            "metadata": {"mastery_level": mastery, "prerequisites_met": prerequisites},
        },
    )


def learning_session(subject, sid, session_type, topics, start, minutes=None, engagement=None, perf=None, interactions=()):
    """`learning_sessions`: a session of kind `learning`, events for what happened in it,
    closed with end time, engagement (reward) and completion status."""
    s = api.post(
        "/v1/sessions",
        {
            "id": sid,
            "namespace": TWIN_NS + [subject["id"]],
            "kind": "learning",
            "task_type": session_type,
            "subject_id": subject["id"],
            "status": "in_progress",
            "started_at": iso(start),
            "metadata": {"topics_covered": topics},
        },
    )
    if interactions:
        api.post(
            f"/v1/sessions/{sid}/events/batch",
            {"events": [{"kind": "interaction", "role": "learner", "content": c} for c in interactions]},
        )
    if minutes is not None:
        s = api.patch(
            f"/v1/sessions/{sid}",
            {
                "status": "completed",
                "ended_at": iso(start + dt.timedelta(minutes=minutes)),
                "reward": engagement,
                "success": True,
                "metadata": {"performance_metrics": perf, "duration_minutes": minutes},
            },
        )
        duration = (parse(s["ended_at"]) - parse(s["started_at"])).total_seconds() / 60
        assert duration == minutes and s["reward"] == engagement, s
    return s


def digital_twin():
    step("== digital twin")
    ada_ext = f"ada.okafor+{RUN}@northfield.example"
    ada = create_learner(f"twin-{RUN}-ada", ada_ext)
    # The same person twice: the hashed user id is unique.
    api.expect_error("already_exists", "POST", "/v1/subjects", {"external_id": ada_ext})

    ada_secret = {
        "accommodations": f"IEP-{RUN}: extended time on timed assessments, reading support",
        "guardian_contact": "Grace Okafor, +44 7700 900123",
        "date_of_birth": "2009-03-14",
    }
    ada_clear = {
        "learning_style": "visual",
        "preferred_difficulty": "medium",
        "knowledge_domains": ["mathematics", "reading"],
        "learning_goals": ["pass GCSE maths", "read 20 books this year"],
        "privacy_settings": {"share_with_teachers": True, "analytics": "aggregate-only", "consent_form": f"NFA-consent-{RUN}"},
    }
    created = put_profile(ada, ada_secret, ada_clear)
    assert created["outcome"] == "created", created
    # Only the clear settings changed: the version is updated in place.
    ada_clear["preferred_difficulty"] = "hard"
    again = put_profile(ada, ada_secret, ada_clear)
    assert again == {"outcome": "updated", "id": created["id"]}, again
    profile = api.get("/v1/memories/by-key", namespace=ns_path(TWIN_NS + [ada["id"]]), key="profile")
    assert json.loads(profile["content"]) == ada_secret, profile  # decrypted for the API
    assert profile["metadata"]["preferred_difficulty"] == "hard" and profile["subject_id"] == ada["id"]
    assert parse(profile["expires_at"]) == NOW + dt.timedelta(days=365)

    # A learner under 13 (COPPA): nothing personal is stored before a parent consents.
    leo = create_learner(f"twin-{RUN}-leo", f"leo.martins+{RUN}@northfield.example", age_gated=True, consent=False)
    e = api.expect_error(
        "consent_required", "POST", "/v1/sessions", {"kind": "learning", "subject_id": leo["id"], "namespace": TWIN_NS + [leo["id"]]}
    )
    assert e.status == 403
    api.expect_error(
        "consent_required", "POST", "/v1/memories", {"kind": "profile", "key": "profile", "subject_id": leo["id"], "content": "{}"}
    )
    leo = api.put(f"/v1/subjects/{leo['id']}/consent", {"consent": True, "parental_consent_by": "guardian:Marta Martins"})
    assert leo["parental_consent_by"] == "guardian:Marta Martins" and leo["parental_consent_at"], leo
    put_profile(leo, {"accommodations": "none", "date_of_birth": "2015-06-02"}, {"learning_style": "kinesthetic", "preferred_difficulty": "easy"})

    # Learning sessions of Ada: two finished, one in progress.
    day = NOW - dt.timedelta(days=3)
    s1 = learning_session(
        ada, f"learn-{RUN}-ada-1", "tutoring", ["linear-equations"], day, 45, 0.82,
        {"exercises": 12, "correct": 8}, ["Solved 2x + 3 = 11 after a hint", "Asked why dividing both sides keeps equality"],
    )
    s2 = learning_session(
        ada, f"learn-{RUN}-ada-2", "practice", ["linear-equations", "fractions"], day + dt.timedelta(days=1), 30, 0.91,
        {"exercises": 15, "correct": 13}, ["Solved 3/4 x = 9 without help"],
    )
    s3 = learning_session(ada, f"learn-{RUN}-ada-3", "reading", ["inference"], NOW - dt.timedelta(minutes=20))
    assert s3["status"] == "in_progress" and s3["ended_at"] is None
    learning_session(leo, f"learn-{RUN}-leo-1", "practice", ["number-bonds"], day, 20, 0.7, {"exercises": 10, "correct": 9})

    history = list_all("/v1/sessions", subject_id=ada["id"], kind="learning")
    assert [s["id"] for s in history] == [s3["id"], s2["id"], s1["id"]], [s["id"] for s in history]
    window = list_all("/v1/sessions", subject_id=ada["id"], kind="learning", started_from=iso(day), started_to=iso(day + dt.timedelta(days=2)))
    assert {s["id"] for s in window} == {s1["id"], s2["id"]}
    completed = list_all("/v1/sessions", subject_id=ada["id"], kind="learning", status="completed")
    avg_engagement = sum(s["reward"] for s in completed) / len(completed)
    assert len(completed) == 2 and abs(avg_engagement - 0.865) < 1e-9
    events = api.get(f"/v1/sessions/{s1['id']}/events")["items"]
    assert events[0]["content"] == "Solved 2x + 3 = 11 after a hint", events  # decrypted

    # Knowledge states: upsert per (profile, domain, topic); each change is a version.
    trajectory = [(0.35, 0.5, False, "struggles with negative coefficients"), (0.58, 0.7, True, "solves one-step equations"), (0.81, 0.85, True, "solves two-step equations reliably")]
    outs = [knowledge(ada, "mathematics", "linear-equations", m, c, p, n) for m, c, p, n in trajectory]
    assert [o["outcome"] for o in outs] == ["created", "superseded", "superseded"], outs
    assert outs[2]["previous"] == outs[1]["id"]
    # Same content, new confidence: the current version is updated in place.
    same = knowledge(ada, "mathematics", "linear-equations", 0.81, 0.9, True, trajectory[2][3])
    assert same == {"outcome": "updated", "id": outs[2]["id"]}, same
    knowledge(ada, "mathematics", "fractions", 0.9, 0.8, True, "adds and multiplies fractions")
    knowledge(ada, "reading", "inference", 0.42, 0.6, False, "misses implied motives in narratives")
    # Leo's key of the same name lives in his own profile: no clash.
    leo_k = knowledge(leo, "mathematics", "linear-equations", 0.1, 0.3, False, "not started")
    assert leo_k["outcome"] == "created"

    ada_ns = ns_path(TWIN_NS + [ada["id"]])
    states = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge")
    assert sorted(m["key"] for m in states) == ["mathematics/fractions", "mathematics/linear-equations", "reading/inference"], states
    maths = list_all("/v1/memories", namespace=ada_ns, kind="knowledge", domain="mathematics")
    assert sorted(m["topic"] for m in maths) == ["fractions", "linear-equations"]
    # Mastery analysis over the profile's current states, filtered by the server on the
    # metadata: topics below half mastery, and those whose prerequisites are not met.
    weak = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge", metadata="mastery_level:lt:0.5")
    assert [m["key"] for m in weak] == ["reading/inference"], weak
    not_ready = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge", metadata="prerequisites_met:eq:false")
    assert [m["key"] for m in not_ready] == ["reading/inference"], not_ready
    strong = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge", metadata="mastery_level:gte:0.5")
    assert sorted(m["key"] for m in strong) == ["mathematics/fractions", "mathematics/linear-equations"], strong
    # The learning trajectory: every version of the key, oldest first.
    hist = api.get("/v1/memories/history", namespace=ada_ns, key="mathematics/linear-equations")["items"]
    assert [m["metadata"]["mastery_level"] for m in hist] == [0.35, 0.58, 0.81], hist
    assert hist[0]["valid_to"] and hist[-1]["valid_to"] is None and hist[-1]["confidence"] == 0.9
    # last_accessed: the tutor read the state.
    assert api.post("/v1/memories/touch", {"ids": [outs[2]["id"]]})["count"] == 1
    touched = api.get(f"/v1/memories/{outs[2]['id']}")
    assert touched["access_count"] == 1 and touched["last_accessed_at"], touched

    # get_profile_by_user_id: the platform knows the learner by its own user id; the store
    # finds the subject by that id's keyed hash (sent in a POST body, out of URLs and
    # logs), and the profile lives in the subject's namespace.
    twin = api.post("/v1/subjects/lookup", {"external_id": ada_ext})
    assert twin["id"] == ada["id"] and twin["external_id_hash"] == ada["external_id_hash"], twin
    by_user = api.get("/v1/memories/by-key", namespace=ns_path(TWIN_NS + [twin["id"]]), key="profile")
    assert by_user["id"] == created["id"] and json.loads(by_user["content"]) == ada_secret
    api.expect_error("not_found", "POST", "/v1/subjects/lookup", {"external_id": f"nobody+{RUN}@northfield.example"})

    # Recently updated knowledge states: the tutor revises fractions, then inference (same
    # notes, new mastery: each updated in place). The states changed since the first
    # revision, most recently changed first; a read (touch) above is not a change.
    frac = knowledge(ada, "mathematics", "fractions", 0.93, 0.8, True, "adds and multiplies fractions")
    assert frac["outcome"] == "updated", frac
    since = api.get(f"/v1/memories/{frac['id']}")["updated_at"]
    infer = knowledge(ada, "reading", "inference", 0.5, 0.6, False, "misses implied motives in narratives")
    assert infer["outcome"] == "updated", infer
    recent_states = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge", updated_from=since, order="updated")
    assert [m["key"] for m in recent_states] == ["reading/inference", "mathematics/fractions"], recent_states
    assert [m["metadata"]["mastery_level"] for m in recent_states] == [0.5, 0.93]
    by_change = list_all("/v1/memories", subject_id=ada["id"], kind="knowledge", order="updated")
    assert [m["key"] for m in by_change] == ["reading/inference", "mathematics/fractions", "mathematics/linear-equations"]

    # GDPR access / portability: everything about Ada in one document, decrypted.
    export = api.get(f"/v1/subjects/{ada['id']}/export")
    assert export["subject"]["id"] == ada["id"]
    assert len(export["sessions"]) == 3, export.keys()
    exported_contents = json.dumps(export)
    assert ada_secret["accommodations"] in exported_contents
    memories = export["memories"]
    assert len(memories) == 1 + 3 + 1 + 1, len(memories)  # profile, 3 versions, 2 other topics

    # A third learner who will ask to be erased (after the nightly backup).
    mia = create_learner(f"twin-{RUN}-mia", f"mia.novak+{RUN}@northfield.example")
    mia_secret = {"accommodations": f"MIA-{RUN}: hearing support in class", "date_of_birth": "2008-11-30"}
    mia_profile = put_profile(mia, mia_secret, {"learning_style": "auditory"})
    learning_session(mia, f"learn-{RUN}-mia-1", "tutoring", ["essay-structure"], day, 40, 0.75, {"essays": 1}, ["Outlined an argumentative essay"])
    knowledge(mia, "writing", "essay-structure", 0.66, 0.7, True, "uses topic sentences")

    summary["twin"] = {
        "ada": ada["id"],
        "leo": leo["id"],
        "mia": mia["id"],
        "ada_profile": created["id"],
        "mia_profile": mia_profile["id"],
        "ada_secret": ada_secret["accommodations"],
        "mia_secret": mia_secret["accommodations"],
        "clear_marker": f"NFA-consent-{RUN}",
        "learning_sessions": [s["id"] for s in history],
        "mastery_trajectory": [m["metadata"]["mastery_level"] for m in hist],
        "average_engagement": avg_engagement,
        "export_memories": len(memories),
    }
    return ada, leo, mia


# ==================================================================== 3. RAG
DOCS = [
    {
        "title": "Evolution operators",
        "doc_type": "markdown",
        "source_path": "docs/evolution/operators.md",
        "source_url": "https://codex.example/docs/evolution/operators",
        "metadata": {"component": "evolution", "version": 3},
        "content": (
            "# Evolution operators\n\n"
            "Tournament selection draws four agents at random and keeps the fittest as a parent. "
            "Two parents produce a child by crossover: their genomes are cut at one or more crossover points "
            "and the pieces are swapped. Mutation then flips each gene with the mutation rate, 5% in the first generation. "
            "Elitism carries the best agent into the next generation unchanged, so the best fitness never drops. "
            "Truncation removes every agent below the fitness cutoff before breeding starts. "
            "Selection pressure controls how strongly fitter agents are preferred: 1.0 is uniform, 2.0 is greedy."
        ),
    },
    {
        "title": "Digital twin privacy",
        "doc_type": "text",
        "source_path": "docs/twin/privacy.txt",
        "source_url": "https://codex.example/docs/twin/privacy",
        "metadata": {"component": "digital_twin", "version": 2},
        "content": (
            "Learner records are educational records under FERPA. Accommodations, dates of birth and guardian "
            "contacts are encrypted with a per-learner key. Children under thirteen need a parent's consent before "
            "anything about them is stored. A learner or guardian may ask for a copy of every record, and for their "
            "erasure; erasure destroys the learner's key, so old backups can no longer be read."
        ),
    },
    {
        "title": "Mesh troubleshooting",
        "doc_type": "text",
        "source_path": "docs/p2p/troubleshooting.txt",
        "source_url": "https://codex.example/docs/p2p/troubleshooting",
        "metadata": {"component": "p2p", "version": 1},
        "content": (
            "When a node disappears from the mesh, check its heartbeat first: a node that misses three heartbeats "
            "is dropped from the active peer set. Relays on port 7401 must be reachable over UDP. "
            "NAT traversal fails behind symmetric NAT; configure a relay node instead."
        ),
    },
    {
        "title": "Curriculum: linear equations",
        "doc_type": "markdown",
        "source_path": "docs/curriculum/linear-equations.md",
        "source_url": "https://codex.example/curriculum/linear-equations",
        "metadata": {"component": "curriculum", "version": 1},
        "content": (
            "# Linear equations\n\n"
            "A linear equation keeps its balance when the same operation is applied to both sides. "
            "Learners first solve one-step equations such as x + 4 = 9, then two-step equations such as 2x + 3 = 11. "
            "Negative coefficients are the most common stumbling block; practise them with number lines."
        ),
    },
]
CHUNKING = {"size": 300, "overlap": 50}


def check_chunks(doc_id, content):
    chunks = api.get(f"/v1/documents/{doc_id}/chunks")["items"]
    raw = content.encode("utf-8")
    assert [c["idx"] for c in chunks] == list(range(len(chunks))), chunks
    for c in chunks:
        assert c["content"] == raw[c["start"]:c["end"]].decode("utf-8"), c
        assert len(c["content"]) <= CHUNKING["size"]
        assert c["content_hash"] == hashlib.sha256(c["content"].encode()).hexdigest()
        assert c["query_count"] == 0
    starts = [c["start"] for c in chunks]
    assert starts == sorted(set(starts)) and chunks[-1]["end"] == len(raw.rstrip()), chunks
    return chunks


def rag():
    step("== RAG")
    ids = {}
    chunk_counts = {}
    for d in DOCS:
        out = api.post("/v1/documents", d | {"namespace": RAG_NS, "chunking": CHUNKING})
        assert out["outcome"] == "created", out
        doc = api.get(f"/v1/documents/{out['id']}")
        assert doc["content_hash"] == hashlib.sha256(d["content"].encode()).hexdigest()  # file_hash
        assert doc["word_count"] == len(d["content"].split()), (doc["word_count"], d["title"])
        assert (doc["chunk_size"], doc["chunk_overlap"]) == (300, 50)
        chunks = check_chunks(out["id"], d["content"])
        assert out["chunks"] == len(chunks)
        ids[d["source_path"]] = out["id"]
        chunk_counts[d["source_path"]] = len(chunks)
    evo_id = ids["docs/evolution/operators.md"]
    assert chunk_counts["docs/evolution/operators.md"] >= 3, chunk_counts

    # Content dedupe (idx_documents_hash): the same text under another path is not stored twice.
    dup = api.post("/v1/documents", DOCS[2] | {"namespace": RAG_NS, "source_path": "mirror/p2p.txt", "chunking": CHUNKING})
    assert dup == {"outcome": "unchanged", "id": ids["docs/p2p/troubleshooting.txt"]}, dup
    # A changed file replaces its document's chunks.
    old_chunks = {c["id"] for c in api.get(f"/v1/documents/{ids['docs/p2p/troubleshooting.txt']}/chunks")["items"]}
    changed = DOCS[2] | {"content": DOCS[2]["content"] + " Since version 2 the relay port is 7402.", "namespace": RAG_NS, "chunking": CHUNKING}
    rep = api.post("/v1/documents", changed)
    assert rep["outcome"] == "replaced" and rep["id"] == ids["docs/p2p/troubleshooting.txt"], rep
    new_chunks = check_chunks(rep["id"], changed["content"])
    assert not old_chunks & {c["id"] for c in new_chunks}

    # Document type filtering (idx_documents_type).
    md = list_all("/v1/documents", namespace=ns_path(RAG_NS), doc_type="markdown")
    assert sorted(d["title"] for d in md) == ["Curriculum: linear equations", "Evolution operators"], md
    assert len(list_all("/v1/documents", namespace=ns_path(RAG_NS))) == 4

    # Hybrid retrieval: BM25 and vector similarity fused (RRF).
    def search(text, mode, **kw):
        body = {"text": text, "mode": mode, "targets": ["chunk"], "filter": {"namespace_prefix": RAG_NS}, "limit": 5} | kw
        return api.post("/v1/search", body)["hits"]

    q = "how are parents picked for crossover by tournament selection"
    hybrid = search(q, "hybrid")
    top = hybrid[0]
    assert top["record"]["document_id"] == evo_id, hybrid
    assert "Tournament selection" in top["record"]["content"]
    assert top["components"]["keyword"] is not None and top["components"]["vector"] is not None, top
    assert all(h["components"]["fused"] > 0 for h in hybrid)
    # No word in common with the text: only the vectors find it.
    para = "confidential pupil dossiers deletion"
    kw_hits = search(para, "keyword")
    assert kw_hits == [], kw_hits
    vec_hits = search(para, "vector")
    assert vec_hits[0]["record"]["document_id"] == ids["docs/twin/privacy.txt"], vec_hits
    hy_hits = search(para, "hybrid")
    assert hy_hits[0]["record"]["document_id"] == ids["docs/twin/privacy.txt"], hy_hits
    # Metadata filter on the document (component) with keyword search.
    only_p2p = search("relay port", "keyword", filter={"namespace_prefix": RAG_NS, "metadata": [{"path": "component", "op": "eq", "value": "p2p"}]})
    assert only_p2p and all(h["record"]["document_id"] == ids["docs/p2p/troubleshooting.txt"] for h in only_p2p)
    assert "7402" in " ".join(h["record"]["content"] for h in only_p2p)
    # Sequential chunk access: the neighbours of the best hit.
    evo_chunks = api.get(f"/v1/documents/{evo_id}/chunks")["items"]
    best = next(c for c in evo_chunks if c["id"] == top["id"])
    window = [c["idx"] for c in evo_chunks if abs(c["idx"] - best["idx"]) <= 1]
    assert best["idx"] in window

    # embeddings_metadata.query_count / last_queried: the pipeline counts the chunks its
    # answer used (the top three hybrid hits), twice for the top one.
    used = [h["id"] for h in hybrid[:3]]
    assert api.post("/v1/chunks/touch", {"ids": used})["count"] == len(used)
    assert api.post("/v1/chunks/touch", {"ids": [top["id"], "no-such-chunk"]})["count"] == 1
    counted = {c["id"]: c for c in api.get(f"/v1/documents/{evo_id}/chunks")["items"]}
    assert counted[top["id"]]["query_count"] == 2 and counted[top["id"]]["last_queried_at"], counted[top["id"]]

    # embeddings_metadata.vector_dimension: the chunks' vectors are of the store's active
    # model, which says its dimension and metric.
    models = api.get("/v1/vector-models")["items"]
    active = [m for m in models if m["active"]]
    assert len(active) == 1 and active[0]["dimension"] == 384 and active[0]["metric"] == "cosine", models
    step(f"  vector model: {active[0]['id']} ({active[0]['dimension']} dimensions, {active[0]['metric']})")

    # Redis database 1: the pipeline's query-result cache, with a TTL.
    cache_key = f"codex:{RUN}:rag:query:{hashlib.sha256(q.encode()).hexdigest()[:32]}"
    api.put(f"/v1/kv/{cache_key}", {"value": {"hits": [h["id"] for h in hybrid]}, "ttl_ms": 600_000})
    assert api.get(f"/v1/kv/{cache_key}")["value"]["hits"] == [h["id"] for h in hybrid]

    step(f"  hybrid top hit: {top['record']['content'][:60]!r} (bm25 {top['components']['keyword']:.3g}, cosine {top['components']['vector']:.3f})")
    summary["rag"] = {
        "documents": 4,
        "chunks": sum(chunk_counts.values()) - chunk_counts["docs/p2p/troubleshooting.txt"] + len(new_chunks),
        "hybrid_top_document": top["record"]["document_id"],
        "evolution_document": evo_id,
        "keyword_hits_for_paraphrase": len(kw_hits),
        "vector_top_document": vec_hits[0]["record"]["document_id"],
        "privacy_document": ids["docs/twin/privacy.txt"],
        "vector_model": active[0]["id"],
        "vector_dimension": active[0]["dimension"],
    }


# ==================================================================== 4. Redis outage
def redis_shutdown(port):
    """What an outage looks like to the server: Redis goes away (SHUTDOWN NOSAVE)."""
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        s.settimeout(5)
        try:
            s.recv(64)  # the server closes the connection as it exits
        except OSError:
            pass


# ==================================================================== 5. operations
def operations(mia):
    step("== operations: verify, backup, erase, restore, migrate")
    live = cli("verify")
    assert live["ok"] is True and live["target"] == "store", live
    # PRAGMA integrity_check, the audit hash chain, every vector against its index.
    assert {"integrity", "audit_chain", "vectors", "vector_index"} <= {c["name"] for c in live["checks"]}, live
    work = Path(tempfile.mkdtemp(prefix=f"codex-{RUN}-"))
    try:
        backup = work / "nightly-backup"
        manifest = cli("backup", backup)
        assert manifest["schema_version"] >= 1 and manifest["files"], manifest
        checked = cli("verify", "--backup", backup)
        assert checked["ok"] is True and checked["target"] == "backup", checked

        # GDPR erasure of Mia, after the backup was taken.
        erased = api.delete(f"/v1/subjects/{mia['id']}")
        assert erased["subject_id"] == mia["id"] and erased["data_key_destroyed"] is True, erased
        assert (erased["sessions"], erased["events"], erased["memories"]) == (1, 1, 2), erased
        api.expect_error("not_found", "GET", f"/v1/subjects/{mia['id']}")
        api.expect_error("not_found", "GET", f"/v1/memories/{summary['twin']['mia_profile']}")
        assert list_all("/v1/sessions", subject_id=mia["id"]) == []

        # Disaster-recovery drill: restore the backup into a scratch directory. The keyring
        # (keys.db) is never in a backup; the operator keeps a checked copy of it apart
        # (`keys backup-keyring`) and puts it back after the backup (`keys restore-keyring`).
        keyring_copy = work / "keyring-copy.db"
        copied = cli("keys", "backup-keyring", "--out", keyring_copy)
        assert copied["data_keys"] >= 1, copied
        restored = work / "restored"
        out = cli("restore", backup, data_dir=restored)
        assert out["manifest"]["schema_version"] == manifest["schema_version"], out
        back = cli("keys", "restore-keyring", "--from", keyring_copy, data_dir=restored)
        # Mia's key went with the erasure, before the copy was taken.
        assert back["data_keys"] == copied["data_keys"] and back["destroyed_without_subject"] == 0, back
        # Ada's profile reads back decrypted; Mia's rows are in the old backup, but her data
        # key is gone: crypto-shredded.
        got = cli("memory", "get", summary["twin"]["ada_profile"], data_dir=restored)
        assert json.loads(got["content"])["accommodations"] == summary["twin"]["ada_secret"], got
        shredded = cli("memory", "get", summary["twin"]["mia_profile"], data_dir=restored, check=False)
        assert shredded["error"]["code"] == "key_unavailable", shredded

        # Schema rollback and forward migration on the copy (never under a live server).
        # The last migration is field encryption's; the learners here are `strict`, so
        # none of their encrypted text is in the full-text index that it rebuilds.
        status = cli("migrate", "status", data_dir=restored)
        latest = status["latest"]
        assert status["current"] == latest and all(m["state"] == "applied" for m in status["migrations"]), status
        down = cli("migrate", "down", data_dir=restored)
        assert down == {"rolled_back": [latest], "current": latest - 1}, down
        pending = cli("migrate", "status", data_dir=restored)
        assert [m["version"] for m in pending["migrations"] if m["state"] == "pending"] == [latest], pending
        refused = cli("stats", data_dir=restored, check=False)
        assert refused["error"]["code"] == "schema_pending", refused
        up = cli("migrate", "up", data_dir=restored)
        assert up == {"applied": [latest], "current": latest}, up
        verified = cli("verify", data_dir=restored)
        assert verified["ok"] is True, [c for c in verified["checks"] if not c["ok"]]

        # The copy still holds this run's records.
        sessions = cli("sessions", "--kind", "evolution_round", "--limit", "1000", data_dir=restored)["items"]
        rounds = [s for s in sessions if s["namespace"][:2] == NS]
        assert sorted(s["id"] for s in rounds) == sorted([summary["evolution"]["round_1"], summary["evolution"]["round_2"]]), sessions
        again = cli("memory", "get", summary["twin"]["ada_profile"], data_dir=restored)
        assert json.loads(again["content"]) == json.loads(got["content"])
        hits = cli("search", "tournament selection crossover", "--mode", "keyword", "--target", "chunk", "--namespace", ns_path(RAG_NS), data_dir=restored)
        hit_docs = {h["record"]["document_id"] for h in hits}
        assert summary["rag"]["evolution_document"] in hit_docs, hits
        # Erasing Mia again on the restored copy removes her unreadable rows too.
        again_erased = cli("erase-subject", mia["id"], data_dir=restored)
        assert again_erased["memories"] == 2 and again_erased["sessions"] == 1, again_erased
        summary["operations"] = {
            "backup_files": len(manifest["files"]),
            "schema_version": latest,
            "migrated": [down["rolled_back"], up["applied"]],
            "restored_verify_checks": len(verified["checks"]),
            "mia_erasure": {k: erased[k] for k in ("sessions", "events", "memories", "vectors")},
            "shredded_code": shredded["error"]["code"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    for var in ("AGENTSTORE_API_KEY", "AGENTSTORE_DATA_DIR"):
        if not os.environ.get(var):
            sys.exit(f"set {var}")
    # Never hang a CI job: the whole run takes seconds.
    signal.alarm(int(os.environ.get("CODEX_TIMEOUT_SECS", "300")))
    step(f"CODEX run {RUN}")
    redis_port = os.environ.get("CODEX_REDIS_PORT")
    if redis_port:
        wait_metric("agentstore_redis_up", 1.0)

    # Round 1 starts on an hour, two hours ago, so the 5- and 15-minute buckets line up.
    t0 = dt.datetime.fromtimestamp((int(NOW.timestamp()) // 3600 - 2) * 3600, dt.timezone.utc)
    r1, parents, children, scores1 = evolution_round_one(t0)

    if redis_port:
        step("== Redis goes down; the rest runs without it")
        redis_shutdown(redis_port)
        wait_metric("agentstore_redis_up", 0.0)
    evolution_round_two(t0, r1, parents, children, scores1)
    peer_discovery()
    _ada, _leo, mia = digital_twin()
    rag()
    if redis_port:
        # Everything above succeeded with Redis down.
        summary["redis"] = {
            "up": metric_value("agentstore_redis_up"),
            "errors": metric_value("agentstore_redis_errors_total"),
            "fallbacks": metric_value("agentstore_redis_fallbacks_total"),
        }
    operations(mia)
    summary["ok"] = True
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
