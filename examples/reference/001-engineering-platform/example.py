#!/usr/bin/env python3
"""The AI-first software engineering platform's database (`packages/db`) on agentstore.

The platform kept users, projects, agents, tasks, evidence, agent executions, an immutable
audit log and an activity feed in PostgreSQL, and its cache, rate limiter, login sessions
and distributed lock in Redis. This script does the same work against agentstore's REST
API and checks every answer:

    users              -> subjects (email stored only as a keyed hash; role in metadata)
    projects           -> namespace ["projects", slug] + memory kind "project", key "project"
    agents             -> agents; success rate and durations from /v1/agents/{id}/stats
    tasks              -> sessions kind "task" (type, status, priority, assignee)
    evidence           -> memories kind "evidence", confidence = credibility
    agent_executions   -> sessions kind "run" under the task, usage records (tokens, cost)
    task_comments      -> events kind "comment" in the task session
    task_attachments   -> documents of type "attachment" in the task's namespace
    audit_logs         -> the audit log (hash-chained; no route changes it)
    activity_feed      -> the audit log filtered by resource and by actor
    Redis              -> /v1/kv (cache, fixed-window rate limiter, login sessions) and
                          /v1/locks (lease with fencing tokens)

Each actor (a person, an agent) works with an API key of its own, created by the
platform's backend with an admin key, so that the audit log names who did what.

Environment: AGENTSTORE_URL, AGENTSTORE_API_KEY (scopes read,write,admin), and for the
audit-chain check AGENTSTORE_BIN / AGENTSTORE_DATA_DIR (the `agentstore` CLI and the
server's data directory). The last line on stdout is a JSON summary.
"""

import hashlib
import ipaddress
import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentstore_client import AgentstoreError, Client, cli  # noqa: E402

RUN = uuid.uuid4().hex[:8]  # every run writes records of its own: the script re-runs
PRIORITY = {"critical": 4, "high": 3, "medium": 2, "low": 1}


def list_all(api, path, cursor="after", **query):
    items = []
    while True:
        page = api.get(path, **query)
        items.extend(page["items"])
        if not page.get("next"):
            return items
        query[cursor] = page["next"]


def main():
    backend = Client()  # the platform's backend, with an admin key
    summary = {"run": RUN}

    # --- users -> subjects ------------------------------------------------------------
    # The email is the external id: agentstore keeps only its keyed hash, and refuses a
    # second account with the same email.
    people = [
        ("alice", f"alice.nguyen+{RUN}@example.dev", "manager"),
        ("bob", f"bob.okafor+{RUN}@example.dev", "user"),
        ("svc", f"ci-bot+{RUN}@example.dev", "service"),
    ]
    users = {}
    for handle, email, role in people:
        user = backend.post(
            "/v1/subjects",
            {
                "id": f"usr-{handle}-{RUN}",
                "external_id": email,
                "consent": True,
                "metadata": {"role": role, "github_username": f"{handle}-{RUN}", "is_active": True},
            },
        )
        assert user["external_id_hash"] and email not in json.dumps(user), user
        assert user["metadata"]["role"] == role
        users[handle] = user["id"]
    dup = backend.expect_error(
        "already_exists", "POST", "/v1/subjects", {"external_id": people[0][1]}
    )
    assert dup.status == 409
    assert backend.get(f"/v1/subjects/{users['bob']}")["metadata"]["role"] == "user"
    # get_user_by_email: the address goes in a POST body (never a URL or a log line), and
    # the server compares its keyed hash.
    by_email = backend.post("/v1/subjects/lookup", {"external_id": people[1][1]})
    assert by_email["id"] == users["bob"] and by_email["metadata"]["role"] == "user", by_email
    missing = backend.expect_error(
        "not_found", "POST", "/v1/subjects/lookup", {"external_id": f"nobody+{RUN}@example.dev"}
    )
    assert missing.status == 404 and "nobody" not in missing.message

    # Each actor gets a key of its own; the audit log then names the actor of every change.
    def actor_client(name):
        created = backend.post("/v1/keys", {"name": name, "scopes": ["write"]})
        assert created["key"]["scopes"] == ["write"] and created["secret"].startswith("ask_")
        return Client(api_key=created["secret"]), f"api_key:{created['key']['id']}"

    alice, alice_actor = actor_client(f"user:alice-{RUN}")

    # --- projects -> namespace + project record ---------------------------------------
    slug = f"payments-api-{RUN}"
    ns = ["projects", slug]
    ns_path = "/".join(ns)
    project = alice.post(
        "/v1/memories",
        {
            "namespace": ns,
            "kind": "project",
            "key": "project",
            "content": "Payments API: card and SEPA payment processing service.",
            "topic": "service",
            "tags": ["python", "fastapi", "postgresql"],
            "metadata": {
                "slug": slug,
                "repository_url": f"https://github.com/example/{slug}",
                "owner_id": users["alice"],
                "technology_stack": ["python", "fastapi", "postgresql", "redis"],
                "status": "active",
                "pr_merge_rate": 0.82,
                "test_coverage_percent": 71.5,
            },
        },
    )
    assert project["outcome"] == "created", project
    # Metrics change: same content, so the record is updated in place (no new version).
    updated = alice.post(
        "/v1/memories",
        {
            "namespace": ns,
            "kind": "project",
            "key": "project",
            "content": "Payments API: card and SEPA payment processing service.",
            "topic": "service",
            "tags": ["python", "fastapi", "postgresql"],
            "metadata": {
                "slug": slug,
                "repository_url": f"https://github.com/example/{slug}",
                "owner_id": users["alice"],
                "technology_stack": ["python", "fastapi", "postgresql", "redis"],
                "status": "active",
                "pr_merge_rate": 0.85,
                "test_coverage_percent": 74.0,
            },
        },
    )
    assert updated == {"outcome": "updated", "id": project["id"]}, updated
    by_slug = alice.get("/v1/memories/by-key", namespace=ns_path, key="project")
    assert by_slug["metadata"]["test_coverage_percent"] == 74.0
    assert by_slug["metadata"]["owner_id"] == users["alice"]

    # --- agents -------------------------------------------------------------------------
    agent_specs = [
        ("code-reviewer", "reviewer", "anthropic", "claude-sonnet-4", ["review", "security"], False),
        ("test-writer", "coder", "openai", "gpt-4.1", ["tests", "python"], False),
        ("refactor-bot", "coder", "openai", "o4-mini", ["refactor"], True),
    ]
    agents = {}
    for name, atype, provider, model, caps, experimental in agent_specs:
        agent = backend.post(
            "/v1/agents",
            {
                "id": f"agt-{name}-{RUN}",
                "name": f"{name}-{RUN}",
                "agent_type": atype,
                "model_provider": provider,
                "model_name": model,
                "capabilities": {"skills": caps, "max_files_per_pr": 40},
                "tags": [f"run-{RUN}", atype],
                "experimental": experimental,
            },
        )
        assert agent["active"] is True and agent["experimental"] is experimental
        agents[name] = agent["id"]
    coders = list_all(backend, "/v1/agents", agent_type="coder", tag=f"run-{RUN}")
    assert sorted(a["name"] for a in coders) == [f"refactor-bot-{RUN}", f"test-writer-{RUN}"]
    # Retire the experimental agent: registering the same id replaces it.
    retired = backend.post(
        "/v1/agents",
        {
            "id": agents["refactor-bot"],
            "name": f"refactor-bot-{RUN}",
            "agent_type": "coder",
            "model_provider": "openai",
            "model_name": "o4-mini",
            "tags": [f"run-{RUN}", "coder"],
            "active": False,
            "experimental": True,
        },
    )
    assert retired["active"] is False
    active = list_all(backend, "/v1/agents", active="true", tag=f"run-{RUN}")
    assert sorted(a["id"] for a in active) == sorted([agents["code-reviewer"], agents["test-writer"]])
    reviewer, reviewer_actor = actor_client(f"agent:code-reviewer-{RUN}")
    tester, tester_actor = actor_client(f"agent:test-writer-{RUN}")

    # --- tasks -> sessions kind "task" ----------------------------------------------------
    task_rows = [
        ("Card refunds double-charge on retry", "bug", "open", "critical", 412, None),
        ("Add SEPA mandate revocation endpoint", "feature", "open", "high", 415, None),
        ("Raise coverage of the webhook module", "test", "open", "medium", None, None),
        ("Split PaymentService into smaller services", "refactor", "draft", "low", None, 88),
    ]
    tasks = {}
    for title, ttype, status, prio, issue, pr in task_rows:
        task = alice.post(
            "/v1/sessions",
            {
                "namespace": ns,
                "kind": "task",
                "title": title,
                "task_type": ttype,
                "status": status,
                "priority": PRIORITY[prio],
                "subject_id": users["bob"],  # assigned to a person
                "metadata": {
                    "github_issue_number": issue,
                    "github_pr_number": pr,
                    "labels": [ttype, prio],
                },
            },
        )
        assert task["subject_id"] == users["bob"] and task["agent_id"] is None
        tasks[ttype] = task["id"]
    bug = tasks["bug"]
    open_tasks = list_all(alice, "/v1/sessions", namespace=ns_path, kind="task", status="open")
    assert len(open_tasks) == 3, [t["title"] for t in open_tasks]
    assert sorted(t["priority"] for t in open_tasks) == [2, 3, 4]
    bobs = list_all(alice, "/v1/sessions", namespace=ns_path, kind="task", subject_id=users["bob"])
    assert len(bobs) == 4
    only_bugs = list_all(alice, "/v1/sessions", namespace=ns_path, task_type="bug")
    assert [t["id"] for t in only_bugs] == [bug]

    # Triage by an agent: AI analysis merged into the task's metadata, status moves on.
    # The caller's request id and user agent travel into the audit log's request context
    # (ip_address / user_agent of audit_logs), beside the address the server saw.
    triage_request = f"triage-{RUN}"
    triage_agent = f"code-reviewer-agent/1.4 (run {RUN})"
    triaged = reviewer.request(
        "PATCH",
        f"/v1/sessions/{bug}",
        headers={"x-request-id": triage_request, "User-Agent": triage_agent},
        body={
            "status": "in_progress",
            "metadata": {
                "ai_analysis": {"root_cause": "idempotency key not checked on retry", "confidence": 0.86},
                "ai_suggestions": ["check Idempotency-Key before capture", "add a unique index"],
            },
        },
    )
    assert triaged["status"] == "in_progress"
    assert triaged["metadata"]["github_issue_number"] == 412  # merged, not replaced
    assert triaged["metadata"]["ai_analysis"]["confidence"] == 0.86

    # Assigned to an agent from the start: regression tests for the bug, a child task.
    regression_task = alice.post(
        "/v1/sessions",
        {
            "namespace": ns,
            "kind": "task",
            "title": "Regression tests for the refund retry fix",
            "task_type": "test",
            "status": "open",
            "priority": PRIORITY["high"],
            "agent_id": agents["test-writer"],
            "parent_id": bug,
        },
    )
    on_agent = list_all(alice, "/v1/sessions", kind="task", agent_id=agents["test-writer"])
    assert [t["id"] for t in on_agent] == [regression_task["id"]]
    # Reassigned from a person to an agent: the coverage task goes to the test writer.
    # Bob stays the task's subject (its texts are his personal data, encrypted and erased
    # with him), so the assignee is the agent when one is set, else the person.
    coverage = tasks["test"]
    reassigned = alice.patch(f"/v1/sessions/{coverage}", {"agent_id": agents["test-writer"], "status": "in_progress"})
    assert reassigned["agent_id"] == agents["test-writer"] and reassigned["subject_id"] == users["bob"], reassigned
    on_agent = list_all(alice, "/v1/sessions", kind="task", agent_id=agents["test-writer"])
    assert sorted(t["id"] for t in on_agent) == sorted([regression_task["id"], coverage])
    # Another person would take the task's data with them: refused, nothing changes.
    refused = alice.expect_error("invalid_input", "PATCH", f"/v1/sessions/{coverage}", {"subject_id": users["alice"]})
    assert "subject" in refused.message
    assert alice.get(f"/v1/sessions/{coverage}")["subject_id"] == users["bob"]
    # Unknown agents are refused too; `null` hands the task back to the person.
    alice.expect_error("not_found", "PATCH", f"/v1/sessions/{coverage}", {"agent_id": f"agt-nobody-{RUN}"})
    back = alice.patch(f"/v1/sessions/{coverage}", {"agent_id": None})
    assert back["agent_id"] is None and back["status"] == "in_progress"
    reassigned = alice.patch(f"/v1/sessions/{coverage}", {"agent_id": agents["test-writer"]})
    assert reassigned["agent_id"] == agents["test-writer"]

    # --- task_comments -> events ------------------------------------------------------
    comments = [
        (alice, "user", "Customers report two refunds for one retry since Tuesday.", {"author_id": users["alice"], "is_ai_generated": False, "github_comment_id": 9001}),
        (reviewer, "agent", "The retry path calls capture() twice; see evidence ev-idempotency.", {"agent_id": agents["code-reviewer"], "is_ai_generated": True, "ai_metadata": {"model": "claude-sonnet-4", "prompt_tokens": 1830}}),
        (alice, "user", "Thanks, please add a regression test.", {"author_id": users["alice"], "is_ai_generated": False, "github_comment_id": 9002}),
    ]
    for who, role, text, meta in comments:
        who.post(f"/v1/sessions/{bug}/events", {"kind": "comment", "role": role, "content": text, "metadata": meta})
    thread = list_all(alice, f"/v1/sessions/{bug}/events", cursor="after_seq", kind="comment")
    assert [e["seq"] for e in thread] == [1, 2, 3]
    assert [e["metadata"]["is_ai_generated"] for e in thread] == [False, True, False]
    assert thread[1]["role"] == "agent" and "capture()" in thread[1]["content"]

    # --- agent_executions -> run sessions + usage ------------------------------------
    # started_at / ended_at are set explicitly so that the durations are exact.
    t0 = time.time() - 3600

    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"

    executions = [
        # agent, task, status, duration ms, calls: (input, output, cost)
        ("code-reviewer", bug, "success", 42_000, [(5200, 900, 0.0291), (3100, 650, 0.0190)]),
        ("code-reviewer", tasks["feature"], "failure", 18_000, [(2600, 120, 0.0096)]),
        ("test-writer", bug, "success", 65_000, [(7400, 2300, 0.0415)]),
        ("test-writer", tasks["test"], "timeout", 120_000, [(9000, 0, 0.0225)]),
    ]
    runs = []
    for i, (agent, task_id, status, ms, calls) in enumerate(executions):
        client = reviewer if agent == "code-reviewer" else tester
        started = t0 + i * 600
        run = client.post(
            "/v1/sessions",
            {
                "namespace": ns,
                "kind": "run",
                "status": "running",
                "agent_id": agents[agent],
                "parent_id": task_id,
                "started_at": iso(started),
            },
        )
        model = "claude-sonnet-4" if agent == "code-reviewer" else "gpt-4.1"
        provider = "anthropic" if agent == "code-reviewer" else "openai"
        recorded = client.post(
            "/v1/usage",
            {
                "items": [
                    {
                        "session_id": run["id"],
                        "agent_id": agents[agent],
                        "provider": provider,
                        "model": model,
                        "operation": "chat",
                        "input_tokens": inp,
                        "output_tokens": out,
                        "actual_cost": cost,
                        "success": status == "success",
                    }
                    for inp, out, cost in calls
                ]
            },
        )
        assert len(recorded["items"]) == len(calls)
        done = client.patch(
            f"/v1/sessions/{run['id']}",
            {
                "status": status,
                "ended_at": iso(started + ms / 1000),
                "success": status == "success",
                "metadata": {"result": {"files_changed": 3 if status == "success" else 0}},
            },
        )
        assert done["status"] == status and done["success"] is (status == "success")
        runs.append((agent, task_id, run["id"], status, calls))

    # Usage per execution and per task (a task's executions are its child sessions).
    def usage_of_task(task_id):
        total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "actual_cost": 0.0}
        for r in list_all(alice, "/v1/sessions", kind="run", parent_id=task_id):
            for agg in alice.get("/v1/usage/aggregate", group="all", session_id=r["id"])["items"]:
                for k in total:
                    total[k] += agg[k]
        return total

    bug_usage = usage_of_task(bug)
    assert bug_usage["calls"] == 3
    assert bug_usage["input_tokens"] == 5200 + 3100 + 7400
    assert bug_usage["output_tokens"] == 900 + 650 + 2300
    assert abs(bug_usage["actual_cost"] - (0.0291 + 0.0190 + 0.0415)) < 1e-9

    # Usage per agent, and the agent's performance from its runs.
    per_agent = {
        a["group"]: a
        for a in alice.get("/v1/usage/aggregate", group="agent", agent_id=agents["code-reviewer"])["items"]
    }
    rev = per_agent[agents["code-reviewer"]]
    assert (rev["calls"], rev["successes"]) == (3, 2)
    assert rev["input_tokens"] == 5200 + 3100 + 2600 and rev["output_tokens"] == 900 + 650 + 120
    stats = {name: alice.get(f"/v1/agents/{agents[name]}/stats") for name in ("code-reviewer", "test-writer")}
    assert stats["code-reviewer"]["sessions"] == 2
    assert stats["code-reviewer"]["success_rate"] == 0.5
    assert abs(stats["code-reviewer"]["avg_duration_ms"] - 30_000) < 1
    assert abs(stats["code-reviewer"]["cost"] - (0.0291 + 0.0190 + 0.0096)) < 1e-9
    assert stats["test-writer"]["success_rate"] == 0.5 and stats["test-writer"]["failed"] == 1
    assert abs(stats["test-writer"]["avg_duration_ms"] - 92_500) < 1
    failed_runs = list_all(alice, "/v1/sessions", namespace=ns_path, kind="run", status="timeout")
    assert [r["agent_id"] for r in failed_runs] == [agents["test-writer"]]

    # --- evidence -> memories kind "evidence" -----------------------------------------
    review_run = runs[0][2]
    evidence_rows = [
        ("ev-idempotency", "code_analysis", 0.86, "refunds.py:118 calls capture() again when the gateway times out; no idempotency check.", [bug, review_run]),
        ("ev-ci-failure", "test_result", 0.97, "test_refund_retry fails: two refund rows for one Idempotency-Key.", [bug, runs[2][2]]),
        ("ev-gateway-blame", "ai_output", 0.35, "The payment gateway may be sending duplicate webhooks.", [bug, review_run]),
    ]
    evidence = {}
    for key, source, cred, text, sources in evidence_rows:
        out = reviewer.post(
            "/v1/memories",
            {
                "namespace": ns,
                "kind": "evidence",
                "key": key,
                "content": text,
                "topic": source,
                "confidence": cred,
                "source_sessions": sources,
                "agent_id": agents["code-reviewer"],
                "metadata": {"is_verified": False, "related_evidence": [], "contradicting_evidence": []},
            },
        )
        assert out["outcome"] == "created"
        evidence[key] = out["id"]
    # A person verifies the test result and marks the gateway theory as contradicted:
    # same content, so each record is updated in place.
    verified = alice.post(
        "/v1/memories",
        {
            "namespace": ns, "kind": "evidence", "key": "ev-ci-failure", "content": evidence_rows[1][3],
            "topic": "test_result", "confidence": 0.97, "source_sessions": evidence_rows[1][4],
            "agent_id": agents["code-reviewer"],
            "metadata": {"is_verified": True, "verified_by": users["alice"], "related_evidence": ["ev-idempotency"], "contradicting_evidence": ["ev-gateway-blame"]},
        },
    )
    assert verified == {"outcome": "updated", "id": evidence["ev-ci-failure"]}, verified
    for_bug = list_all(alice, "/v1/memories", namespace=ns_path, kind="evidence", source_session=bug)
    assert len(for_bug) == 3
    # Credible evidence, most credible first: filtered and ordered by the server.
    credible = list_all(alice, "/v1/memories", namespace=ns_path, kind="evidence", source_session=bug,
                        min_confidence=0.7, order="confidence")
    assert [m["key"] for m in credible] == ["ev-ci-failure", "ev-idempotency"]
    assert [m["confidence"] for m in credible] == [0.97, 0.86]
    assert [m["key"] for m in for_bug if m["metadata"]["is_verified"]] == ["ev-ci-failure"]
    for_run = list_all(alice, "/v1/memories", kind="evidence", source_session=review_run)
    assert sorted(m["key"] for m in for_run) == ["ev-gateway-blame", "ev-idempotency"]
    tests_only = list_all(alice, "/v1/memories", namespace=ns_path, kind="evidence", topic="test_result")
    assert [m["key"] for m in tests_only] == ["ev-ci-failure"]

    # --- task_attachments -> documents in the task's namespace ------------------------
    task_ns = ns + ["tasks", bug]
    attachment = tester.post(
        "/v1/documents",
        {
            "namespace": task_ns,
            "title": "pytest log: test_refund_retry",
            "doc_type": "attachment",
            "source_url": f"s3://eng-artifacts/{slug}/ci/9931/pytest.log",
            "content": "FAILED tests/test_refunds.py::test_refund_retry - AssertionError: 2 refunds != 1",
            "metadata": {"task": bug, "is_evidence": True, "evidence_id": evidence["ev-ci-failure"], "mime_type": "text/plain"},
        },
    )
    assert attachment["outcome"] == "created"
    atts = list_all(alice, "/v1/documents", namespace="/".join(task_ns), doc_type="attachment")
    assert [(a["id"], a["metadata"]["evidence_id"]) for a in atts] == [(attachment["id"], evidence["ev-ci-failure"])]

    # --- audit_logs: immutable, hash-chained ------------------------------------------
    created_entries = list_all(backend, "/v1/audit", cursor="after_seq", action="session.create", resource_id=bug)
    assert len(created_entries) == 1 and created_entries[0]["actor"] == alice_actor
    # Text fields are personal data: the log keeps their hash and size, not the text.
    logged_title = created_entries[0]["new_values"]["title"]
    assert logged_title["redacted"] is True
    assert logged_title["sha256"] == hashlib.sha256(task_rows[0][0].encode()).hexdigest()
    assert created_entries[0]["new_values"]["status"] == "open"
    assert created_entries[0]["context"]["key_name"] == f"user:alice-{RUN}"
    changes = list_all(backend, "/v1/audit", cursor="after_seq", action="session.update", resource_id=bug)
    assert changes[0]["actor"] == reviewer_actor
    assert changes[0]["old_values"]["status"] == "open" and changes[0]["new_values"]["status"] == "in_progress"
    assert changes[0]["context"]["request_id"] == triage_request
    assert changes[0]["context"]["key_name"] == f"agent:code-reviewer-{RUN}"
    assert changes[0]["context"]["user_agent"] == triage_agent
    # The peer's address as the server saw it (this script's, or a proxy's in between).
    for e in (created_entries[0], changes[0]):
        ipaddress.ip_address(e["context"]["remote_addr"])
    # A client that names no agent is recorded with its library's.
    assert created_entries[0]["context"]["user_agent"].startswith("Python-urllib/")
    # No route alters or removes an entry: the OpenAPI document lists GET only, and other
    # methods are refused.
    spec = backend.get("/v1/openapi.json")
    audit_paths = {p: sorted(ops) for p, ops in spec["paths"].items() if p.startswith("/v1/audit")}
    assert audit_paths == {"/v1/audit": ["get"]}, audit_paths
    entry = created_entries[0]
    for method, path in [("DELETE", "/v1/audit"), ("PUT", "/v1/audit"), ("POST", "/v1/audit"),
                         ("PATCH", f"/v1/audit/{entry['seq']}"), ("DELETE", f"/v1/audit/{entry['seq']}")]:
        try:
            backend.request(method, path, {} if method in ("PUT", "POST", "PATCH") else None)
        except AgentstoreError as e:
            assert e.code in ("method_not_allowed", "not_found"), (method, path, e)
        else:
            raise AssertionError(f"{method} {path} was accepted")
    # An actor without the admin scope cannot even read it.
    alice.expect_error("forbidden", "GET", "/v1/audit")
    # The operator checks the chain: every entry's hash covers the one before it.
    report = cli("verify")
    assert report["ok"] is True, report
    chain = [c for c in report["checks"] if "audit" in c["name"]]
    assert chain and all(c["ok"] for c in chain), report["checks"]

    # --- activity_feed -> the audit log by resource and by actor ----------------------
    bug_feed = list_all(backend, "/v1/audit", cursor="after_seq", resource_id=bug)
    bug_actions = [(e["action"], e["actor"]) for e in bug_feed]
    assert bug_actions[0] == ("session.create", alice_actor), bug_actions
    assert ("session.update", reviewer_actor) in bug_actions
    assert sum(1 for a, _ in bug_actions if a == "event.append") == 3  # the three comments
    assert [e["seq"] for e in bug_feed] == sorted(e["seq"] for e in bug_feed)
    reviewer_feed = list_all(backend, "/v1/audit", cursor="after_seq", actor=reviewer_actor)
    kinds = {e["resource_type"] for e in reviewer_feed}
    assert kinds == {"session", "usage", "memory"}, kinds
    assert sum(1 for e in reviewer_feed if e["action"] == "memory.create") == 3

    # --- Redis: cache ------------------------------------------------------------------
    cache_key = f"cache:{RUN}:user:{users['alice']}:profile"
    backend.put(f"/v1/kv/{cache_key}", {"value": {"name": "Alice Nguyen", "role": "manager"}, "ttl_ms": 400})
    assert backend.get(f"/v1/kv/{cache_key}")["value"]["name"] == "Alice Nguyen"
    for i in range(3):
        backend.put(f"/v1/kv/cache:{RUN}:project:{slug}:stats:{i}", {"value": {"open": i}})
    listed = backend.get("/v1/kv", prefix=f"cache:{RUN}:project:")["items"]
    assert [e["value"]["open"] for e in listed] == [0, 1, 2]
    cleared = backend.delete("/v1/kv", prefix=f"cache:{RUN}:project:")  # clear_pattern
    assert cleared == {"count": 3}
    time.sleep(0.5)
    backend.expect_error("not_found", "GET", f"/v1/kv/{cache_key}")  # the TTL ran out

    # --- Redis: fixed-window rate limiter ----------------------------------------------
    limit, window_ms = 5, 600
    limiter_key = f"ratelimit:{RUN}:{users['bob']}"

    def is_allowed():
        return backend.post(f"/v1/kv/{limiter_key}/incr", {"by": 1, "ttl_ms": window_ms})["value"] <= limit

    decisions = [is_allowed() for _ in range(limit + 2)]
    assert decisions == [True] * limit + [False, False], decisions
    remaining = max(0, limit - backend.get(f"/v1/kv/{limiter_key}")["value"])
    assert remaining == 0
    time.sleep(window_ms / 1000 + 0.15)
    assert is_allowed() is True  # a new window
    assert backend.get(f"/v1/kv/{limiter_key}")["value"] == 1

    # --- Redis: login sessions with expiry ---------------------------------------------
    sess_key = f"session:{RUN}:sess_{uuid.uuid4().hex[:12]}"
    sess = backend.put(
        f"/v1/kv/{sess_key}",
        {"value": {"user_id": users["alice"], "permissions": ["read", "write"]}, "ttl_ms": 7_200_000},
    )
    assert sess["expires_at"] is not None
    assert backend.get(f"/v1/kv/{sess_key}")["value"]["permissions"] == ["read", "write"]
    # Activity refreshes the session's expiry without rewriting it (Redis EXPIRE).
    assert backend.post(f"/v1/kv/{sess_key}/expire", {"ttl_ms": 14_400_000}) is None
    refreshed = backend.get(f"/v1/kv/{sess_key}")
    assert datetime.fromisoformat(refreshed["expires_at"]) > datetime.fromisoformat(sess["expires_at"]), (refreshed, sess)
    assert refreshed["value"] == sess["value"] and refreshed["version"] == sess["version"] + 1
    # "Remember me": the session no longer expires (Redis PERSIST).
    backend.post(f"/v1/kv/{sess_key}/expire", {"ttl_ms": None})
    assert backend.get(f"/v1/kv/{sess_key}")["expires_at"] is None
    assert backend.delete(f"/v1/kv/{sess_key}") is None  # logout
    backend.expect_error("not_found", "GET", f"/v1/kv/{sess_key}")
    short_key = f"session:{RUN}:sess_short"
    backend.put(f"/v1/kv/{short_key}", {"value": {"user_id": users["bob"]}, "ttl_ms": 300})
    time.sleep(0.4)
    backend.expect_error("not_found", "GET", f"/v1/kv/{short_key}")
    # An expired session cannot be refreshed back to life, nor a logged-out one.
    backend.expect_error("not_found", "POST", f"/v1/kv/{short_key}/expire", {"ttl_ms": 7_200_000})
    backend.expect_error("not_found", "POST", f"/v1/kv/{sess_key}/expire", {"ttl_ms": 7_200_000})

    # --- Redis: distributed lock with fencing tokens ----------------------------------
    lock = f"deploy-production-{RUN}"
    first = reviewer.post(f"/v1/locks/{lock}/acquire", {"holder": "deployer-a", "ttl_ms": 400})
    assert first["holder"] == "deployer-a"
    held = tester.expect_error("lock_held", "POST", f"/v1/locks/{lock}/acquire", {"holder": "deployer-b", "ttl_ms": 400})
    assert held.status == 409
    renewed = reviewer.post(f"/v1/locks/{lock}/renew", {"token": first["token"], "ttl_ms": 400})
    assert renewed["token"] == first["token"]
    time.sleep(0.5)  # deployer-a stalls past its lease
    second = tester.post(f"/v1/locks/{lock}/acquire", {"holder": "deployer-b", "ttl_ms": 5_000})
    assert second["holder"] == "deployer-b" and second["token"] > first["token"]
    stale = reviewer.expect_error("stale_token", "POST", f"/v1/locks/{lock}/renew", {"token": first["token"], "ttl_ms": 400})
    assert stale.status == 409
    reviewer.expect_error("stale_token", "POST", f"/v1/locks/{lock}/release", {"token": first["token"]})
    assert tester.get(f"/v1/locks/{lock}")["holder"] == "deployer-b"
    released = tester.post(f"/v1/locks/{lock}/release", {"token": second["token"]})
    assert released["holder"] is None
    third = reviewer.post(f"/v1/locks/{lock}/acquire", {"holder": "deployer-a", "ttl_ms": 400})
    assert third["token"] > second["token"]
    reviewer.post(f"/v1/locks/{lock}/release", {"token": third["token"]})

    summary.update(
        {
            "project": slug,
            "users": len(users),
            "agents": len(agents),
            "tasks": len(tasks) + 1,
            "bug_task": bug,
            "comments": len(thread),
            "runs": len(runs),
            "bug_usage": bug_usage,
            "reviewer_success_rate": stats["code-reviewer"]["success_rate"],
            "reviewer_cost": round(stats["code-reviewer"]["cost"], 6),
            "evidence_credible": [m["key"] for m in credible],
            "bug_feed_actions": len(bug_feed),
            "reviewer_actor": reviewer_actor,
            "alice_actor": alice_actor,
            "audit_chain_ok": report["ok"],
            "rate_limit_decisions": decisions,
            "lock_tokens": [first["token"], second["token"], third["token"]],
        }
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
