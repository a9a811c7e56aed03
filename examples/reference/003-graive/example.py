#!/usr/bin/env python3
"""Graive (PostgreSQL + ChromaDB) on agentstore: the platform's DatabaseManager, over REST.

Graive is an autonomous agent platform with "infinite" conversations: every message is
stored and embedded, older context is compressed into memory segments (short-term, then
long-term), tools are audited, the agent checkpoints its state and can go back to a
checkpoint, people interrupt it (pause, feedback, goal changes), and everything is
searchable by meaning. This script does what Graive's `database_demo.py` does, against
agentstore instead of PostgreSQL + ChromaDB, and checks every answer:

    users                -> subjects (email kept only as a keyed hash) + a `preference` memory
    conversations        -> sessions, kind `conversation`
    messages             -> events, kind `message` (embedded: the server runs --embed-events)
    memory_segments      -> memories, kind `summary`, tier short / long, source_events
    tool_executions      -> events, kind `tool_call`
    checkpoints          -> checkpoints (thread = conversation), parent links
    vector_embeddings    -> the server's vector index (all-MiniLM-L6-v2, --model-dir)
    documents            -> documents (chunked, embedded)
    interaction_events   -> events, kind `interaction`
    agent_metrics        -> metric points labelled by conversation and agent; usage records
    cleanup / archival   -> status `archived` + expiry, retention rules, `agentstore maintenance`

Run it against a server with an embedder and event embedding on (see README.md):

    agentstore --model-dir .models/all-MiniLM-L6-v2 --embed-events serve
    AGENTSTORE_API_KEY=ask_... AGENTSTORE_DATA_DIR=./agentstore-data python3 example.py

The key needs the read, write and admin scopes (retention rules and the audit log are
admin). The sweep runs through the `agentstore` CLI on the server's data directory, as an
operator's cron job would. The last stdout line is a JSON summary.
"""

import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentstore_client import Client, cli  # noqa: E402

api = Client()
RUN = uuid.uuid4().hex[:10]
ROOT = ["graive", RUN]  # every record of this run lives under graive/<run>/...
ROOT_PATH = "/".join(ROOT)


def iso(dt):
    """RFC 3339 in UTC, as the API writes times."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def list_all(path, cursor="after", **params):
    """Every item of a paginated list, following `next`."""
    items = []
    while True:
        page = api.get(path, **params)
        items.extend(page["items"])
        if page.get("next") is None:
            return items
        params[cursor] = page["next"]


def user_ns(user_id):
    return ROOT + ["users", user_id]


# ============================================================================ users
# Graive's `users` table: username, email, preferences, API keys. The email is the
# caller's id for the person; agentstore keeps only its HMAC, never the address.
def create_user(username, email, plan):
    user = api.post(
        "/v1/subjects",
        {
            "id": f"user-{username}-{RUN}",
            "external_id": email,
            "consent": True,
            "metadata": {"plan": plan, "signup_source": "web"},
        },
    )
    assert user["id"] == f"user-{username}-{RUN}"
    assert user["consent"] is True and user["consent_at"] is not None
    assert len(user["external_id_hash"]) == 64
    assert email not in json.dumps(user), "the email address must not be stored"
    return user


alice = create_user("alice", f"alice+{RUN}@example.com", "pro")
bob = create_user("bob", f"bob+{RUN}@example.com", "free")
# Emails are unique: a second account with Alice's address is refused.
api.expect_error(
    "already_exists",
    "POST",
    "/v1/subjects",
    {"id": f"user-alice2-{RUN}", "external_id": f"alice+{RUN}@example.com"},
)
assert api.get(f"/v1/subjects/{alice['id']}")["metadata"]["plan"] == "pro"
# `get_user(email=...)`: the address is sent in a POST body (it stays out of URLs and
# logs) and compared as its keyed hash.
found = api.post("/v1/subjects/lookup", {"external_id": f"bob+{RUN}@example.com"})
assert found["id"] == bob["id"] and found["metadata"]["plan"] == "free", found
api.expect_error("not_found", "POST", "/v1/subjects/lookup", {"external_id": f"carol+{RUN}@example.com"})
# `update_user(plan=...)`: Bob upgrades. Metadata keys are merged in (`null` removes
# one); the change is audited with the old and new values.
upgraded = api.patch(f"/v1/subjects/{bob['id']}", {"metadata": {"plan": "pro", "upgraded_from": "free"}})
assert upgraded["metadata"] == {"plan": "pro", "signup_source": "web", "upgraded_from": "free"}, upgraded
assert upgraded["external_id_hash"] == bob["external_id_hash"] and upgraded["consent"] is True
tidied = api.patch(f"/v1/subjects/{bob['id']}", {"metadata": {"upgraded_from": None}})
assert tidied["metadata"] == {"plan": "pro", "signup_source": "web"}, tidied
assert api.post("/v1/subjects/lookup", {"external_id": f"bob+{RUN}@example.com"}) == tidied

# Preferences: a keyed memory in the user's namespace; an update supersedes it and
# keeps the old version (`update_user(preferences=...)`).
prefs_v1 = {"language": "en", "response_style": "concise", "default_llm": "openai"}
prefs_v2 = {"language": "en", "response_style": "detailed", "default_llm": "anthropic"}
for prefs in (prefs_v1, prefs_v2):
    api.post(
        "/v1/memories",
        {
            "namespace": user_ns(alice["id"]),
            "kind": "preference",
            "key": "preferences",
            "content": json.dumps(prefs, sort_keys=True),
            "subject_id": alice["id"],
        },
    )
current = api.get("/v1/memories/by-key", namespace="/".join(user_ns(alice["id"])), key="preferences")
assert json.loads(current["content"]) == prefs_v2
history = api.get("/v1/memories/history", namespace="/".join(user_ns(alice["id"])), key="preferences")["items"]
assert [json.loads(m["content"])["response_style"] for m in history] == ["concise", "detailed"]
assert history[0]["superseded_by"] == history[1]["id"]

# The agent that runs the conversations.
agent = api.post(
    "/v1/agents",
    {
        "name": f"graive-orchestrator-{RUN}",
        "agent_type": "orchestrator",
        "model_provider": "openai",
        "model_name": "gpt-4o",
        "capabilities": {"tools": ["web_search", "python_exec", "file_write", "publish_report"]},
    },
)
AGENT = agent["id"]


# ==================================================================== conversations
def create_conversation(user, title, llm_provider):
    conv = api.post(
        "/v1/sessions",
        {
            "kind": "conversation",
            "namespace": user_ns(user["id"]),
            "title": title,
            "subject_id": user["id"],
            "agent_id": AGENT,
            "metadata": {"llm_provider": llm_provider, "client_session": f"web-{uuid.uuid4().hex[:8]}"},
        },
    )
    assert conv["status"] == "active" and conv["kind"] == "conversation"
    return conv


research = create_conversation(alice, "AI Research", "openai")
k8s = create_conversation(alice, "Kubernetes migration", "openai")
baking = create_conversation(bob, "Sourdough troubleshooting", "anthropic")
R, K, B = research["id"], k8s["id"], baking["id"]


def add_messages(conv_id, turns):
    """`add_message` for several turns at once: one atomic, ordered batch."""
    events = api.post(
        f"/v1/sessions/{conv_id}/events/batch",
        {
            "events": [
                {
                    "kind": "message",
                    "role": role,
                    "content": text,
                    "tokens": len(text.split()) * 4 // 3,
                    "metadata": {"importance": importance},
                }
                for role, text, importance in turns
            ]
        },
    )
    assert [e["content"] for e in events] == [t[1] for t in turns]
    return events


def tool_call(conv_id, tool, action, parameters, result, success, duration_ms, iteration):
    return api.post(
        f"/v1/sessions/{conv_id}/events",
        {
            "kind": "tool_call",
            "tool_name": tool,
            "content": action,
            "parameters": parameters,
            "result": result,
            "success": success,
            "duration_ms": duration_ms,
            "metadata": {"iteration": iteration},
        },
    )


def checkpoint(conv_id, name, iteration, agent_state, event_seq, progress, parent=None, extra=None):
    state = {
        "iteration": iteration,
        "agent_state": agent_state,
        "event_seq": event_seq,  # the last event this snapshot includes
        "progress": progress,
        "goal": "Summarise recent long-context LLM research for the team",
    }
    state.update(extra or {})
    return api.post(
        "/v1/checkpoints",
        {
            "session_id": conv_id,
            "parent_id": parent,
            "state": {"format": "json", "data": state},
            "metadata": {"name": name, "iteration": iteration},
        },
    )


# ------------------------------------------------------------ messages and tool use
m1 = add_messages(
    R,
    [
        ("user", "What are the latest AI developments in long-context language models?", 0.6),
        ("assistant", "Recent models read up to a million tokens at once, thanks to ring attention and better positional encodings such as RoPE scaling.", 0.9),
        ("user", "How do they stay accurate over such long inputs?", 0.5),
        ("assistant", "Retrieval-augmented generation still helps: the model fetches the most relevant passages instead of attending to everything equally.", 0.8),
    ],
)
t_search = tool_call(
    R, "web_search", "search", {"query": "long context LLM benchmarks 2025", "max_results": 8},
    {"results": 8, "top": "arxiv.org/abs/2404.07143"}, True, 1240, 6,
)
m2 = add_messages(
    R,
    [
        ("user", "Compare the training cost of mixture-of-experts models with dense ones.", 0.5),
        ("assistant", "A mixture-of-experts model activates only a few experts per token, so it trains on more data for the same GPU budget than a dense model of equal quality.", 0.85),
    ],
)
cp1 = checkpoint(R, "Research gathered", 10, "planning", m2[-1]["seq"], "25%")
t_plot_fail = tool_call(
    R, "python_exec", "execute", {"code": "import matplotlib.pyplot as plt\nplt.plot(costs)"},
    {"error": "ModuleNotFoundError: No module named 'matplotlib'"}, False, 310, 14,
)
t_plot_ok = tool_call(
    R, "python_exec", "execute", {"code": "print(costs.to_markdown())"},
    {"stdout": "| model | cost |\n| dense | 1.0 |\n| moe | 0.4 |"}, True, 2210, 15,
)
m3 = add_messages(
    R,
    [
        ("user", "Write a short report on these findings for my team.", 0.7),
        ("assistant", "Done: I saved the report as llm_context_research.md in your workspace.", 0.6),
    ],
)
t_write = tool_call(
    R, "file_write", "write", {"path": "/workspace/alice/reports/llm_context_research.md"},
    {"bytes": 1834}, True, 45, 24,
)
cp2 = checkpoint(R, "Before critical operation", 25, "executing", t_write["seq"], "75%", parent=cp1["id"])

# The critical operation goes wrong: the agent publishes the report on the public wiki.
t_publish = tool_call(
    R, "publish_report", "publish", {"target": "public-wiki", "path": "/workspace/alice/reports/llm_context_research.md"},
    {"url": "https://wiki.example.com/public/llm-context"}, True, 880, 26,
)
m_wrong = add_messages(R, [("assistant", "I published the report on the public wiki.", 0.4)])
cp3 = checkpoint(R, "Report published", 27, "executing", m_wrong[-1]["seq"], "90%", parent=cp2["id"])

# ------------------------------------------------------------ human in the loop
def interaction(conv_id, event_type, text, iteration, data=None, goal_modified=False):
    return api.post(
        f"/v1/sessions/{conv_id}/events",
        {
            "kind": "interaction",
            "role": "user",
            "content": text,
            "parameters": data or {},
            "metadata": {"event_type": event_type, "iteration": iteration, "goal_modified": goal_modified},
        },
    )


i_pause = interaction(R, "pause", "Stop! That wiki is public.", 27)
i_feedback = interaction(R, "feedback", "Never publish research externally without asking me.", 27)
i_goal = interaction(
    R, "goal_modification", "Share the report internally only.", 27,
    {"old_goal": "Summarise recent long-context LLM research for the team",
     "new_goal": "Summarise recent long-context LLM research and share it on the internal drive"},
    goal_modified=True,
)
i_context = interaction(R, "context_addition", "Our team drive is at drive.internal/ai-research.", 27,
                        {"drive": "drive.internal/ai-research"})

# ------------------------------------------------------------ going back to a checkpoint
# The newest checkpoint is the one after the mistake.
latest = api.get("/v1/checkpoints/latest", session_id=R)
assert latest["id"] == cp3["id"] and latest["state"]["data"]["iteration"] == 27

# Resume from "Before critical operation": its state is the earlier one ...
target = api.get(f"/v1/checkpoints/{cp2['id']}", session_id=R)
assert target["state"]["data"] == {
    "iteration": 25, "agent_state": "executing", "event_seq": t_write["seq"],
    "progress": "75%", "goal": "Summarise recent long-context LLM research for the team",
}
assert target["metadata"]["name"] == "Before critical operation"
assert target["parent_id"] == cp1["id"]
# ... and so is the conversation the agent rebuilds from it: the events up to the
# checkpoint's position, without the publish call or the message that followed it.
context = list_all(f"/v1/sessions/{R}/events", cursor="after_seq", before_seq=target["state"]["data"]["event_seq"] + 1)
assert [e["seq"] for e in context] == list(range(1, t_write["seq"] + 1))
assert context[-1]["id"] == t_write["id"]
assert t_publish["id"] not in {e["id"] for e in context}
assert m_wrong[0]["id"] not in {e["id"] for e in context}

i_rollback = interaction(R, "rollback", "Go back to before the report was published.", 27, {"checkpoint_id": cp2["id"]})
i_resume = interaction(R, "resume", "Continue.", 25)
m_new = add_messages(R, [("assistant", "Understood. I shared the report on the internal team drive instead.", 0.7)])
t_share = tool_call(
    R, "file_write", "write", {"path": "drive.internal/ai-research/llm_context_research.md"},
    {"bytes": 1834}, True, 60, 26,
)
cp4 = checkpoint(
    R, "Shared internally", 26, "completed", t_share["seq"], "100%", parent=cp2["id"],
    extra={"resumed_from": cp2["id"], "branch_start_seq": i_rollback["seq"],
           "goal": "Summarise recent long-context LLM research and share it on the internal drive"},
)
# The thread now continues from the new branch: the latest checkpoint descends from cp2,
# not from the abandoned cp3.
latest = api.get("/v1/checkpoints/latest", session_id=R)
assert latest["id"] == cp4["id"]
lineage, cursor = [], latest
while cursor is not None:
    lineage.append(cursor["id"])
    cursor = api.get(f"/v1/checkpoints/{cursor['parent_id']}", session_id=R) if cursor["parent_id"] else None
assert lineage == [cp4["id"], cp2["id"], cp1["id"]]
# The abandoned branch is not discarded: its checkpoint stays reachable by id (and in the
# thread's list), and its events stay in the append-only log for the audit trail.
abandoned = api.get(f"/v1/checkpoints/{cp3['id']}", session_id=R)
assert abandoned["parent_id"] == cp2["id"] and abandoned["state"]["data"]["iteration"] == 27
assert [c["id"] for c in api.get("/v1/checkpoints", session_id=R)["items"]] == [cp4["id"], cp3["id"], cp2["id"], cp1["id"]]
assert api.get(f"/v1/events/{t_publish['id']}")["tool_name"] == "publish_report"
# The resumed agent's context: events up to cp2, then the new branch.
all_events = list_all(f"/v1/sessions/{R}/events", cursor="after_seq")
state = latest["state"]["data"]
resumed = [e for e in all_events if e["seq"] <= target["state"]["data"]["event_seq"] or e["seq"] >= state["branch_start_seq"]]
resumed_ids = [e["id"] for e in resumed]
assert t_publish["id"] not in resumed_ids and m_wrong[0]["id"] not in resumed_ids
assert resumed_ids[-3:] == [i_resume["id"], m_new[0]["id"], t_share["id"]]

# ------------------------------------------------------------ interaction events
interactions = list_all(f"/v1/sessions/{R}/events", cursor="after_seq", kind="interaction")
assert [e["metadata"]["event_type"] for e in interactions] == [
    "pause", "feedback", "goal_modification", "context_addition", "rollback", "resume"
]
goal_changes = [e for e in interactions if e["metadata"]["goal_modified"]]
assert len(goal_changes) == 1 and goal_changes[0]["parameters"]["new_goal"].endswith("internal drive")

# ------------------------------------------------------------ tool executions
tools = list_all(f"/v1/sessions/{R}/events", cursor="after_seq", kind="tool_call")
assert [t["tool_name"] for t in tools] == ["web_search", "python_exec", "python_exec", "file_write", "publish_report", "file_write"]
failed = [t for t in tools if t["success"] is False]
assert len(failed) == 1 and failed[0]["result"]["error"].startswith("ModuleNotFoundError")
assert sum(t["duration_ms"] for t in tools) == 1240 + 310 + 2210 + 45 + 880 + 60

# ------------------------------------------------------------ other conversations
k_msgs = add_messages(
    K,
    [
        ("user", "Plan the migration of our billing service from virtual machines to Kubernetes.", 0.8),
        ("assistant", "Start with a staging cluster, containerise the service, then shift traffic gradually with a canary deployment.", 0.9),
        ("user", "What about the Postgres database?", 0.6),
        ("assistant", "Keep the database on managed hosting at first; move only the stateless API pods into the cluster.", 0.8),
    ],
)
k_cp = checkpoint(K, "Plan drafted", 4, "planning", k_msgs[-1]["seq"], "50%")
b_msgs = add_messages(
    B,
    [
        ("user", "My sourdough starter smells like acetone. Is it dead?", 0.7),
        ("assistant", "No, it is hungry. Feed it twice a day with equal weights of starter, flour and water, and keep it warm.", 0.9),
    ],
)

# ============================================================ memory segments by tier
# Working memory: the newest messages, uncompressed.
working = api.get(f"/v1/sessions/{R}/events", kind="message", descending="true", limit=3)["items"]
assert [e["id"] for e in working] == [m_new[0]["id"], m_wrong[0]["id"], m3[1]["id"]]


def add_segment(conv_id, ns, summary, events, tier, importance, level, original_tokens):
    content_tokens = len(summary.split()) * 4 // 3
    out = api.post(
        "/v1/memories",
        {
            "namespace": ns,
            "kind": "summary",
            "content": summary,
            "tier": tier,
            "importance": importance,
            "source_sessions": [conv_id],
            "source_events": [e["id"] for e in events],
            "subject_id": research["subject_id"],
            "agent_id": AGENT,
            "token_count": content_tokens,
            "metadata": {"compression_level": level, "original_tokens": original_tokens},
        },
    )
    assert out["outcome"] == "created", out
    return api.get(f"/v1/memories/{out['id']}")


alice_ns = user_ns(alice["id"])
seg1 = add_segment(
    R, alice_ns,
    "Discussed long-context LLMs: million-token windows via ring attention and RoPE scaling; retrieval keeps long answers accurate.",
    m1, "short", 0.8, 1, sum(e["tokens"] for e in m1),
)
seg2 = add_segment(
    R, alice_ns,
    "Mixture-of-experts models train more cheaply than dense models of the same quality; a cost table was produced.",
    m2 + [t_plot_ok], "short", 0.7, 1, sum(e["tokens"] for e in m2) + len(t_plot_ok["result"]["stdout"]) // 4,
)
seg_long = add_segment(
    R, alice_ns,
    "Research on long-context and mixture-of-experts LLMs, summarised into a report for the team.",
    m1 + m2 + m3, "long", 0.9, 2, sum(e["tokens"] for e in m1 + m2 + m3),
)
assert seg1["source_events"] == [e["id"] for e in m1]
short_term = list_all("/v1/memories", namespace="/".join(alice_ns), kind="summary", tier="short", source_session=R)
long_term = list_all("/v1/memories", namespace="/".join(alice_ns), kind="summary", tier="long", source_session=R)
assert {m["id"] for m in short_term} == {seg1["id"], seg2["id"]}
assert [m["id"] for m in long_term] == [seg_long["id"]]
assert long_term[0]["metadata"]["compression_level"] == 2
by_importance = list_all("/v1/memories", namespace="/".join(alice_ns), kind="summary", order="importance")
assert [m["id"] for m in by_importance] == [seg_long["id"], seg1["id"], seg2["id"]]

# ================================================================= documents
REPORT = """# Long-context language models: findings

## Context length
Ring attention and RoPE scaling let current models read up to a million tokens.
Retrieval-augmented generation keeps answers grounded when inputs are long.

## Training cost
Mixture-of-experts models activate a few experts per token. For the same GPU budget
they see more data than dense models of equal quality; our table puts them at 40% of
the dense cost.
"""
doc_out = api.post(
    "/v1/documents",
    {
        "namespace": alice_ns,
        "title": "llm_context_research.md",
        "doc_type": "markdown",
        "source_path": "/workspace/alice/reports/llm_context_research.md",
        "content": REPORT,
        "subject_id": alice["id"],
        "chunking": {"size": 300, "overlap": 30},
        "metadata": {"operation": "generated", "conversation_id": R, "format": "md", "tool_event": t_write["id"]},
    },
)
assert doc_out["outcome"] == "created" and doc_out["chunks"] >= 2, doc_out
DOC = doc_out["id"]
# Saving the same file again changes nothing.
again = api.post(
    "/v1/documents",
    {"namespace": alice_ns, "title": "llm_context_research.md", "doc_type": "markdown",
     "source_path": "/workspace/alice/reports/llm_context_research.md", "content": REPORT,
     "subject_id": alice["id"], "chunking": {"size": 300, "overlap": 30},
     "metadata": {"operation": "generated", "conversation_id": R, "format": "md", "tool_event": t_write["id"]}},
)
assert again == {"outcome": "unchanged", "id": DOC}, again
doc = api.get(f"/v1/documents/{DOC}")
assert doc["metadata"]["operation"] == "generated" and doc["word_count"] == len(REPORT.split())
chunks = api.get(f"/v1/documents/{DOC}/chunks")["items"]
assert "".join(c["content"] for c in chunks).count("Mixture-of-experts") >= 1
alice_docs = list_all("/v1/documents", namespace="/".join(alice_ns))
assert [d["id"] for d in alice_docs] == [DOC]

# ============================================================ semantic search
def search(text, **filt):
    body = {"text": text, "mode": "vector", "limit": 5, "filter": filt}
    return api.post("/v1/search", body)["hits"]


def owner(hit):
    """The conversation a hit belongs to (event: its session; memory: its source; chunk:
    its document's conversation)."""
    rec = hit["record"]
    if hit["target"] == "event":
        return rec["session_id"]
    if hit["target"] == "memory":
        return (rec.get("source_sessions") or [None])[0]
    return R if rec["document_id"] == DOC else None


# Inside one conversation: the answer about longer context, without sharing its words.
inside = search("context window improvements", session_id=R)
assert inside, "no hits inside the conversation"
assert all(owner(h) == R for h in inside), [owner(h) for h in inside]
assert inside[0]["id"] in {m1[1]["id"], seg1["id"], m1[0]["id"]}, inside[0]["record"]
assert all(h["components"].get("vector") is not None for h in inside)

# Across every conversation of the platform: each question finds its own conversation.
across = {}
for query, conv in [
    ("machine learning improvements", R),
    ("container orchestration rollout", K),
    ("bread fermentation", B),
]:
    hits = search(query, namespace_prefix=ROOT)
    assert hits and owner(hits[0]) == conv, (query, [(h["target"], owner(h)) for h in hits])
    across[query] = hits[0]["id"]
assert across["container orchestration rollout"] in {e["id"] for e in k_msgs}
assert across["bread fermentation"] in {e["id"] for e in b_msgs}
# Alice's history never returns Bob's conversation.
alice_only = search("bread fermentation", namespace_prefix=alice_ns)
assert all(owner(h) in {R, K} for h in alice_only)
# The generated report is searchable too (chunks of document type markdown).
doc_hits = api.post(
    "/v1/search",
    {"text": "cost of sparse expert models", "mode": "vector", "targets": ["chunk"], "limit": 3,
     "filter": {"namespace_prefix": alice_ns, "metadata": [{"path": "conversation_id", "op": "eq", "value": R}]}},
)["hits"]
assert doc_hits and doc_hits[0]["record"]["document_id"] == DOC
assert "Mixture-of-experts" in doc_hits[0]["record"]["content"]
# Hybrid (keyword + vector) is the default with text: a tool name is found by keyword.
hybrid = api.post("/v1/search", {"text": "python_exec ModuleNotFoundError", "targets": ["event"], "limit": 3,
                                 "filter": {"session_id": R, "kinds": ["tool_call"]}})["hits"]
assert hybrid[0]["id"] == t_plot_fail["id"] and hybrid[0]["components"]["keyword"] is not None

# ======================================================== agent metrics and usage
now = datetime.now(timezone.utc)
points = []
for conv_id, latencies in [(R, [820.0, 1430.0, 990.0, 640.0]), (K, [1210.0, 1550.0])]:
    for i, ms in enumerate(latencies):
        at = now - timedelta(minutes=10 * (len(latencies) - i))
        labels = {"conversation": conv_id, "agent": AGENT, "model": "gpt-4o"}
        points.append({"name": "response_time_ms", "labels": labels, "value": ms, "at": iso(at)})
        points.append({"name": "tokens_per_second", "labels": labels, "value": 52000.0 / ms, "at": iso(at)})
points.append({"name": "memory_compression_ratio", "labels": {"conversation": R, "agent": AGENT, "model": "gpt-4o"},
               "value": round(seg_long["metadata"]["original_tokens"] / seg_long["token_count"], 3), "at": iso(now)})
# Two old samples, from before the 90-day retention window set below.
for days in (120, 119):
    points.append({"name": "response_time_ms", "labels": {"conversation": R, "agent": AGENT, "model": "gpt-4o"},
                   "value": 3000.0, "at": iso(now - timedelta(days=days))})
assert api.post("/v1/metric-points", {"points": points})["count"] == len(points)

recent_r = api.get("/v1/metric-points", name="response_time_ms", label=[f"conversation:{R}"],
                   **{"from": iso(now - timedelta(days=1))})["items"]
assert [p["value"] for p in recent_r] == [820.0, 1430.0, 990.0, 640.0]
# The agent's gpt-4o response times over the last day, in one-hour buckets.
hourly = api.get("/v1/metric-points/downsample", name="response_time_ms", label=[f"agent:{AGENT}", "model:gpt-4o"],
                 bucket_secs=3600, **{"from": iso(now - timedelta(days=1))})["items"]
assert sum(b["count"] for b in hourly) == 6 and max(b["max"] for b in hourly) == 1550.0
assert min(b["min"] for b in hourly) == 640.0
# Which of the agent's conversations are slowest right now (latest sample per series)?
slowest = api.get("/v1/metric-points/top", name="response_time_ms", label=f"agent:{AGENT}", k=2)["items"]
assert [s["labels"]["conversation"] for s in slowest] == [K, R]  # latest: 1550 vs 640

usage = [
    {"session_id": R, "agent_id": AGENT, "provider": "openai", "model": "gpt-4o", "operation": "chat",
     "input_tokens": 1200, "output_tokens": 350, "actual_cost": 0.0065, "latency_ms": 820.0},
    {"session_id": R, "agent_id": AGENT, "provider": "openai", "model": "gpt-4o", "operation": "chat",
     "input_tokens": 2400, "output_tokens": 900, "actual_cost": 0.015, "latency_ms": 1430.0},
    {"session_id": R, "agent_id": AGENT, "provider": "openai", "model": "text-embedding-3-small",
     "operation": "embed", "input_tokens": 800, "actual_cost": 0.000016},
    {"session_id": K, "agent_id": AGENT, "provider": "openai", "model": "gpt-4o", "operation": "chat",
     "input_tokens": 900, "output_tokens": 400, "actual_cost": 0.00625, "latency_ms": 1210.0},
    # An old call, from before the 365-day usage retention.
    {"session_id": R, "agent_id": AGENT, "provider": "openai", "model": "gpt-4o", "operation": "chat",
     "input_tokens": 100, "output_tokens": 10, "actual_cost": 0.0004, "created_at": iso(now - timedelta(days=400))},
]
assert len(api.post("/v1/usage", {"items": usage})["items"]) == len(usage)

# ============================================================ conversation statistics
def conversation_statistics(conv_id, ns):
    """Graive's get_conversation_statistics: counts derived from the store."""
    events = list_all(f"/v1/sessions/{conv_id}/events", cursor="after_seq", limit=1000)
    by_kind = {}
    for e in events:
        by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
    tools_ = [e for e in events if e["kind"] == "tool_call"]
    segments = list_all("/v1/memories", namespace="/".join(ns), kind="summary", source_session=conv_id)
    agg = api.get("/v1/usage/aggregate", group="all", session_id=conv_id)["items"]
    return {
        "total_messages": by_kind.get("message", 0),
        "tool_executions": len(tools_),
        "tool_success_rate": sum(1 for t in tools_ if t["success"]) / len(tools_) if tools_ else None,
        "interaction_events": by_kind.get("interaction", 0),
        "compression_count": len(segments),
        "checkpoints": len(api.get("/v1/checkpoints", session_id=conv_id)["items"]),
        "llm_calls": agg[0]["calls"] if agg else 0,
        "input_tokens": agg[0]["input_tokens"] if agg else 0,
        "cost": round(agg[0]["actual_cost"], 6) if agg else 0.0,
    }


stats = conversation_statistics(R, alice_ns)
assert stats == {
    "total_messages": 10,  # 8, the wrong one on the abandoned branch, the new one
    "tool_executions": 6,
    "tool_success_rate": 5 / 6,
    "interaction_events": 6,
    "compression_count": 3,
    "checkpoints": 4,
    "llm_calls": 4,
    "input_tokens": 1200 + 2400 + 800 + 100,
    "cost": round(0.0065 + 0.015 + 0.000016 + 0.0004, 6),
}, stats
# Graive keeps the counters on the conversation row; here they go into its metadata.
updated = api.patch(f"/v1/sessions/{R}", {"metadata": {"total_messages": stats["total_messages"],
                                                       "compression_count": stats["compression_count"]}})
assert updated["metadata"]["llm_provider"] == "openai" and updated["metadata"]["total_messages"] == 10
done = api.patch(f"/v1/sessions/{R}", {"status": "completed", "ended_at": iso(datetime.now(timezone.utc)),
                                       "success": True})
assert done["status"] == "completed" and done["success"] is True

# ============================================================ cleanup and archival
# Retention: agent metrics are kept 90 days, usage records 365 days.
rules = api.put("/v1/retention", {"entity": "metric", "kind": "response_time_ms", "days": 90})["items"]
rules = api.put("/v1/retention", {"entity": "usage", "days": 365})["items"]
assert {(r["entity"], r["kind"], r["days"]) for r in rules} >= {("metric", "response_time_ms", 90), ("usage", "", 365)}

# Archival: the finished migration chat is archived, and archived conversations are
# purged after a grace period (30 days in production; 2 seconds here, to watch it go).
grace = timedelta(seconds=2)
archived = api.patch(f"/v1/sessions/{K}", {"status": "archived", "ended_at": iso(datetime.now(timezone.utc)),
                                           "expires_at": iso(datetime.now(timezone.utc) + grace)})
assert archived["status"] == "archived"
alice_ns_path = "/".join(alice_ns)
assert [s["id"] for s in api.get("/v1/sessions", namespace=alice_ns_path, status="archived")["items"]] == [K]
assert [s["id"] for s in api.get("/v1/sessions", namespace=alice_ns_path, kind="conversation")["items"]] == [K, R]

time.sleep(grace.total_seconds() + 0.3)
# Past its expiry, the conversation is out of lists and search at once ...
assert [s["id"] for s in api.get("/v1/sessions", namespace=alice_ns_path)["items"]] == [R]
assert K in [s["id"] for s in api.get("/v1/sessions", namespace=alice_ns_path, include_expired="true")["items"]]
assert all(owner(h) != K for h in search("container orchestration rollout", namespace_prefix=ROOT))

# ... and the maintenance sweep (an operator's nightly job) deletes it with its messages
# and checkpoints, and the samples and usage older than their retention.
report = cli("maintenance", "--no-vacuum", timeout=120)
swept = report["swept"]
assert swept["sessions"] >= 1 and swept["events"] >= len(k_msgs), swept
assert swept["metric_points"] >= 2 and swept["usage"] >= 1, swept
api.expect_error("not_found", "GET", f"/v1/sessions/{K}")
api.expect_error("not_found", "GET", f"/v1/events/{k_msgs[0]['id']}")
api.expect_error("not_found", "GET", f"/v1/checkpoints/{k_cp['id']}", session_id=K)
assert K not in [s["id"] for s in api.get("/v1/sessions", namespace=alice_ns_path, include_expired="true")["items"]]
old_points = api.get("/v1/metric-points", name="response_time_ms", label=[f"conversation:{R}"])["items"]
assert [p["value"] for p in old_points] == [820.0, 1430.0, 990.0, 640.0], "the 120-day-old samples are gone"
after = conversation_statistics(R, alice_ns)
assert after["llm_calls"] == 3 and after["input_tokens"] == 1200 + 2400 + 800
# The metrics the rule does not cover stay, whatever their age; so does the research chat.
assert len(api.get("/v1/metric-points", name="tokens_per_second", label=[f"conversation:{K}"])["items"]) == 2
assert api.get(f"/v1/sessions/{R}")["status"] == "completed"
sweeps = api.get("/v1/audit", action="retention.sweep")["items"]
assert sweeps and sweeps[-1]["new_values"]["sessions"] >= 1, sweeps[-1:]

# Agent statistics after cleanup: the research chat (succeeded) and Bob's open one. The
# LLM calls of the purged chat stay: usage records are billing data, kept by the usage
# retention rule (365 days), not by the conversation's lifetime.
agent_stats = api.get(f"/v1/agents/{AGENT}/stats")
assert agent_stats["sessions"] == 2 and agent_stats["succeeded"] == 1 and agent_stats["success_rate"] == 1.0
assert agent_stats["usage_calls"] == 4 and agent_stats["input_tokens"] == 1200 + 2400 + 800 + 900, agent_stats
assert api.get("/v1/usage/aggregate", group="all", session_id=K)["items"][0]["calls"] == 1

summary = {
    "run": RUN,
    "users": [alice["id"], bob["id"]],
    "agent": AGENT,
    "conversations": {"research": R, "archived": K, "other_user": B},
    "statistics": stats,
    "checkpoints": {"abandoned": cp3["id"], "resumed_from": cp2["id"], "latest": cp4["id"], "lineage": lineage},
    "segments": {"short": len(short_term), "long": len(long_term)},
    "document": {"id": DOC, "chunks": len(chunks)},
    "search": {"inside_top": inside[0]["id"], "inside_hits": len(inside), "across_top": across},
    "swept": swept,
    "agent_stats": {k: agent_stats[k] for k in ("sessions", "succeeded", "usage_calls")},
}
print(json.dumps(summary))
