#!/usr/bin/env python3
"""Writes sample.jsonl: a small, realistic agentstore export for the demo and tests.

One tenant ("demo"), three agents, twelve sessions of four kinds with their events,
forty memories (one key with two versions), two chunked documents, usage records, metric
points, two checkpoints with a pending write, and key-value entries. No audit records:
the store that imports the file writes its own.

The output is byte-for-byte what `agentstore export` writes for the same records, so
importing and re-exporting it reproduces every line:

- records in export order (by type, each in insertion order), fields in the order of
  crates/agentstore/src/model.rs, compact JSON;
- JSON-valued fields (metadata, parameters, results, state, values) with sorted keys,
  as serde_json's map gives them back;
- times as chrono writes them: RFC 3339 in UTC with `Z`, microseconds;
- content hashes are SHA-256 hex of the UTF-8 content; chunks are cut exactly as
  agentstore::text::chunk_text cuts them.

Deterministic: a fixed seed, no wall-clock time. Run: python3 examples/sample/make_sample.py
"""

import datetime as dt
import hashlib
import json
import os
import random

rng = random.Random(20250303)
TENANT = "demo"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# ------------------------------------------------------------------ encodings


def micros(y, mo, d, h=0, mi=0, s=0):
    """A time with a random, non-round microsecond part, as integer microseconds."""
    t = dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.timezone.utc)
    us = rng.randint(1, 999_999)
    while us % 1000 == 0:
        us = rng.randint(1, 999_999)
    return int((t - EPOCH).total_seconds()) * 1_000_000 + us


def ts(us):
    """RFC 3339 as chrono serialises a DateTime<Utc>: 0, 3 or 6 fraction digits."""
    if us is None:
        return None
    secs, frac = divmod(us, 1_000_000)
    t = EPOCH + dt.timedelta(seconds=secs)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return base + "Z"
    if frac % 1000 == 0:
        return f"{base}.{frac // 1000:03d}Z"
    return f"{base}.{frac:06d}Z"


def canon(v):
    """A JSON value with object keys sorted, as serde_json::Value returns it."""
    if isinstance(v, dict):
        return {k: canon(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, float):
        # Python and serde_json print floats identically only above 1e-4 (below, Python
        # writes 5e-05 and serde_json 5e-5).
        assert v == 0 or abs(v) >= 1e-4, v
    return v


def sha256(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def words(s):
    return len(s.split())


def tokens(s):
    """agentstore::codec::estimate_tokens: about four characters a token."""
    return (len(s) + 3) // 4


# ------------------------------------------------------------------ chunking


def is_sentence_end(c):
    return c in ".!?。！？;"


def chunk_text(text, size, overlap):
    """Port of agentstore::text::chunk_text; returns (start_byte, end_byte, text)."""
    chars = list(text)
    n = len(chars)
    byte_offsets = []
    b = 0
    for c in chars:
        byte_offsets.append(b)
        b += len(c.encode("utf-8"))
    total = b

    def byte_at(i):
        return byte_offsets[i] if i < n else total

    def find_cut(start, limit):
        floor = start + size // 2
        for i in range(limit, floor, -1):
            prev = chars[i - 1]
            cur = chars[i] if i < n else None
            if prev == "\n" or (is_sentence_end(prev) and cur is not None and cur.isspace()):
                return i
        for i in range(limit, floor, -1):
            if i < n and chars[i].isspace():
                return i
        return limit

    def next_start(base, cut):
        if overlap == 0:
            return cut
        frm = max(cut - overlap, base + 1)
        for i in range(frm, cut):
            if i > 0 and chars[i - 1].isspace() and not chars[i].isspace():
                return i
        return frm

    out = []
    start = 0
    while start < n:
        if n - start <= size:
            cut, last = n, True
        else:
            cut, last = find_cut(start, start + size), False
        s, e = start, cut
        while s < e and chars[s].isspace():
            s += 1
        while e > s and chars[e - 1].isspace():
            e -= 1
        if s < e:
            covered = bool(out) and byte_at(e) <= out[-1][1]
            if not covered:
                out.append((byte_at(s), byte_at(e), text[s:e]))
        if last:
            break
        base = s if s < e else cut - 1
        start = next_start(base, cut)
    return out


# ------------------------------------------------------------------ records

records = []


def emit(type_, **fields):
    records.append({"type": type_, **fields})


emit("tenant", id=TENANT, name="Demo workspace", created_at=ts(micros(2025, 3, 3, 8, 58, 40)))

AGENTS = [
    dict(
        id="agent-support",
        name="support",
        agent_type="support",
        model_provider="ollama",
        model_name="llama3.1:8b-instruct",
        capabilities={"tools": ["lookup_account", "search_docs", "revoke_sessions", "get_invoice", "create_ticket", "get_usage"], "max_turns": 20},
        tags=["support", "customer-facing"],
        experimental=True,
        metadata={"owner": "support-team", "prompt_version": "v5"},
        ns=["acme", "support"],
    ),
    dict(
        id="agent-coder",
        name="coder",
        agent_type="coder",
        model_provider="openai",
        model_name="gpt-4o",
        capabilities={"tools": ["read_file", "run_tests", "apply_patch", "open_pr"], "sandbox": "container"},
        tags=["engineering"],
        experimental=False,
        metadata={"owner": "platform-team"},
        ns=["acme", "eng"],
    ),
    dict(
        id="agent-planner",
        name="planner",
        agent_type="planner",
        model_provider="anthropic",
        model_name="claude-sonnet-4",
        capabilities={"tools": ["search_docs", "list_issues", "classify", "create_ticket", "run_benchmark", "run_eval"], "max_steps": 40},
        tags=["planning", "research"],
        experimental=False,
        metadata={"owner": "product-team"},
        ns=["acme", "product"],
    ),
]

for a in AGENTS:
    at = micros(2025, 3, 3, 9, rng.randint(0, 20), rng.randint(0, 59))
    emit(
        "agent",
        id=a["id"],
        tenant_id=TENANT,
        namespace=a["ns"],
        name=a["name"],
        agent_type=a["agent_type"],
        model_provider=a["model_provider"],
        model_name=a["model_name"],
        capabilities=canon(a["capabilities"]),
        tags=a["tags"],
        active=True,
        experimental=a["experimental"],
        metadata=canon(a["metadata"]),
        created_at=ts(at),
        updated_at=ts(at),
    )

# Events are written compactly: (kind, role, content, extra fields).


def U(text):
    return ("message", "user", text, {})


def A(text):
    return ("message", "assistant", text, {})


def SYS(text):
    return ("message", "system", text, {})


def T(tool, params, result, ok=True, ms=None):
    return ("tool_call", "tool", None, {"tool_name": tool, "parameters": params, "result": result, "success": ok, "duration_ms": ms or rng.randint(40, 900)})


def D(text, options, chosen, why=None):
    params = {"options": options, "chosen": chosen}
    if why:
        params["criteria"] = why
    return ("decision", "assistant", text, {"parameters": params})


def STEP(text):
    return ("step", "assistant", text, {})


SESSIONS = [
    dict(
        id="conv-01",
        kind="conversation",
        ns=["acme", "support"],
        title="Login loop after password reset",
        domain="support",
        task_type="account_access",
        agent="agent-support",
        start=(2025, 3, 10, 14, 2),
        status="completed",
        success=True,
        reward=0.9,
        reflection="Revoking sessions fixed it on the first try; check session state before suggesting cache clears.",
        metadata={"channel": "web", "user": "u-ada", "csat": 5},
        gap=(4, 45),
        events=[
            SYS("You are Acme's support assistant. Be concise and cite policy documents when relevant."),
            U("Hi, after resetting my password I keep getting sent back to the login page."),
            A("Sorry about that! Let me look at your account first."),
            T("lookup_account", {"user": "u-ada", "fields": ["status", "mfa", "last_reset", "active_sessions"]}, {"status": "active", "mfa": "totp", "last_reset": "2025-03-10T13:55:02Z", "active_sessions": 4}, ms=184),
            T("search_docs", {"query": "redirect loop after password reset", "top_k": 3}, {"hits": [{"doc": "kb-112", "score": 0.82}, {"doc": "kb-087", "score": 0.61}]}, ms=92),
            D("Sessions created before the reset are still valid and conflict with the new credentials; revoking them is the lowest-risk fix.", ["revoke_sessions", "reset_mfa", "escalate"], "revoke_sessions", "least user effort, no security downgrade"),
            T("revoke_sessions", {"user": "u-ada", "scope": "all_devices"}, {"revoked": 4}, ms=240),
            A("Your old sessions were still active after the reset, which caused the loop. I've signed you out on all devices; please log in again with your new password."),
            U("That worked, thanks! Also, can you keep answers short next time? Just the fix first."),
            A("Will do: fix first, details only if you ask."),
            STEP("Stored preference answer-style for u-ada (supersedes the onboarding preference)."),
            A("Anything else I can help with today?"),
            U("No, all good."),
        ],
    ),
    dict(
        id="conv-02",
        kind="conversation",
        ns=["acme", "support"],
        title="Invoice shows VAT although we have a VAT ID",
        domain="billing",
        task_type="invoice_dispute",
        agent="agent-support",
        start=(2025, 3, 11, 9, 31),
        status="escalated",
        success=False,
        reward=0.4,
        reflection="Could not reissue the invoice myself; escalation was right but I should have collected the VAT ID up front.",
        metadata={"channel": "email", "user": "u-ben", "amount_eur": 1180.0},
        gap=(30, 400),
        events=[
            SYS("You are Acme's support assistant. Billing changes above EUR 500 need a human."),
            U("Our March invoice INV-2025-0314 charges 23% VAT, but we're a business in Spain with a valid VAT ID."),
            A("Thanks, Ben. Let me pull up the invoice."),
            T("get_invoice", {"invoice": "INV-2025-0314"}, {"total_eur": 1180.0, "vat_rate": 0.23, "customer_vat_id": None, "country": "ES"}, ms=131),
            A("The invoice was issued without a VAT ID on file, so VAT was charged. Could you send the VAT ID you'd like on the account?"),
            U("It's ESB12345678. Can you fix the invoice?"),
            T("search_docs", {"query": "reverse charge VAT EU business", "top_k": 2}, {"hits": [{"doc": "doc-refund-policy", "score": 0.44}, {"doc": "kb-201", "score": 0.79}]}, ms=88),
            D("Reissuing an invoice over EUR 500 needs finance approval; escalate with all details so the customer does not have to repeat them.", ["reissue_now", "escalate_to_finance"], "escalate_to_finance", "policy: billing changes above EUR 500"),
            T("create_ticket", {"queue": "finance", "priority": "normal", "summary": "Reissue INV-2025-0314 with reverse-charge VAT (ES VAT ID provided)"}, {"ticket": "FIN-4471", "sla_hours": 8}, ms=305),
            A("I've opened ticket FIN-4471 with finance to reissue the invoice with reverse-charge VAT. They reply within 8 business hours."),
            U("Fine, but please call me rather than email when it's done."),
            A("Noted: phone follow-up for billing matters."),
            T("update_contact_preferences", {"user": "u-ben", "billing_channel": "phone"}, {"updated": True}, ms=77),
            A("Is there anything else about this invoice I can check while finance works on it?"),
        ],
    ),
    dict(
        id="conv-03",
        kind="conversation",
        ns=["acme", "support"],
        title="Hitting 429s from the orders API",
        domain="api",
        task_type="developer_question",
        agent="agent-support",
        start=(2025, 3, 12, 16, 45),
        status="completed",
        success=True,
        reward=0.8,
        reflection=None,
        metadata={"channel": "chat", "user": "u-chen", "plan": "team"},
        gap=(5, 90),
        events=[
            U("We get HTTP 429 from /v1/orders during our nightly sync. What are the limits?"),
            T("get_usage", {"api_key": "key_7f2c", "window": "24h"}, {"requests": 912044, "peak_per_minute": 1840, "limit_per_minute": 600, "throttled": 18211}, ms=210),
            A("Your key peaks at about 1,840 requests per minute; the Team plan allows 600 per minute per key, so the sync is being throttled."),
            U("Is there a header that tells us when we can retry?"),
            A("Yes: X-RateLimit-Remaining and X-RateLimit-Reset (Unix seconds). Sleep until the reset time when remaining hits 0."),
            U("Our SDK is Python. Got a snippet?"),
            A("resp = client.get('/v1/orders', params={'cursor': cur})\nif resp.status_code == 429:\n    time.sleep(max(0, int(resp.headers['X-RateLimit-Reset']) - time.time()))"),
            D("Suggest pagination with larger pages before suggesting a plan upgrade.", ["upgrade_plan", "bigger_pages", "webhooks"], "bigger_pages"),
            A("Also request 100 orders per page (the maximum) instead of 20; that cuts your request count by 5x."),
            U("Makes sense. Do you have webhooks so we can stop polling?"),
            A("Order webhooks are in beta; I've added your workspace to the waitlist."),
            STEP("Recorded SDK language and notification preference for u-chen."),
            U("Thanks, bigger pages already help a lot."),
            A("Glad to hear it. Your throttled requests should drop to near zero with 100-item pages."),
        ],
    ),
    dict(
        id="conv-04",
        kind="conversation",
        ns=["acme", "support"],
        title="Weekly report arrives at 3 am",
        domain="support",
        task_type="settings",
        agent="agent-support",
        start=(2025, 3, 13, 8, 12),
        status="completed",
        success=True,
        reward=1.0,
        reflection=None,
        metadata={"channel": "web", "user": "u-ada"},
        gap=(4, 40),
        events=[
            U("My weekly report email arrives at 3 am. I moved to Lisbon last month."),
            T("lookup_account", {"user": "u-ada", "fields": ["timezone", "report_schedule"]}, {"timezone": "America/Sao_Paulo", "report_schedule": "MON 00:00"}, ms=97),
            A("Your account is still on São Paulo time. Switch it to Europe/Lisbon and send reports Mondays at 09:00?"),
            U("Yes please."),
            T("update_settings", {"user": "u-ada", "timezone": "Europe/Lisbon", "report_schedule": "MON 09:00"}, {"updated": ["timezone", "report_schedule"]}, ms=150),
            A("Done: Europe/Lisbon, Mondays 09:00."),
            STEP("Updated timezone memory for u-ada."),
            U("Thanks!"),
            U("While you're at it, can the UI be in Portuguese? Emails can stay in English."),
            T("update_settings", {"user": "u-ada", "ui_language": "pt-PT", "email_language": "en"}, {"updated": ["ui_language"]}, ms=133),
            A("Done: UI in Portuguese, emails in English."),
        ],
    ),
    dict(
        id="task-01",
        kind="task",
        ns=["acme", "eng"],
        title="Fix flaky test payments::refund_is_idempotent",
        domain="payments",
        task_type="bugfix",
        agent="agent-coder",
        start=(2025, 3, 6, 10, 5),
        status="completed",
        success=True,
        reward=1.0,
        reflection="The flake came from a process-wide clock shared between tests; injecting a TestClock fixed it.",
        metadata={"repo": "acme/payments", "issue": 812, "pr": 1290},
        gap=(20, 300),
        events=[
            SYS("You are a careful senior engineer. Reproduce before changing code; keep diffs small."),
            U("refund_is_idempotent fails roughly 1 in 7 CI runs. Please find and fix the cause."),
            STEP("Reproduce the failure locally with repeated runs."),
            T("run_tests", {"filter": "refund_is_idempotent", "runs": 20}, {"passed": 17, "failed": 3, "first_failure": "assertion `left == right` failed: refund created twice"}, ok=False, ms=48210),
            T("read_file", {"path": "payments/src/refund.rs", "lines": [80, 140]}, {"bytes": 2311}, ms=12),
            T("read_file", {"path": "payments/tests/refund.rs", "lines": [1, 60]}, {"bytes": 1720}, ms=9),
            D("The idempotency window reads a process-wide clock that another test advances; inject the clock instead of mocking time globally.", ["inject_clock", "serialize_tests", "widen_window"], "inject_clock", "fixes the cause, not the symptom"),
            T("apply_patch", {"files": ["payments/src/refund.rs", "payments/tests/refund.rs"], "insertions": 18, "deletions": 7}, {"applied": True}, ms=31),
            T("run_tests", {"filter": "refund_is_idempotent", "runs": 50, "test_threads": 8}, {"passed": 50, "failed": 0}, ms=121044),
            T("open_pr", {"branch": "fix/refund-clock", "title": "Inject clock into RefundService; fix flaky idempotency test"}, {"pr": 1290, "checks": "pending"}, ms=870),
            A("Fixed: RefundService now takes a Clock; the test injects its own. 50/50 runs pass. PR #1290."),
            U("CI is green on the PR. Merging."),
            STEP("Recorded the test-clock pattern for future flaky-test work."),
        ],
    ),
    dict(
        id="task-02",
        kind="task",
        ns=["acme", "eng"],
        title="Add cursor pagination to GET /v1/orders",
        domain="api",
        task_type="feature",
        agent="agent-coder",
        start=(2025, 3, 7, 13, 40),
        status="completed",
        success=True,
        reward=0.9,
        reflection="Keyset pagination on (created_at, id) was straightforward; remember to index both columns.",
        metadata={"repo": "acme/api", "issue": 455, "pr": 1301},
        gap=(30, 600),
        events=[
            U("Offset pagination on /v1/orders skips rows under concurrent inserts. Switch to cursors."),
            STEP("Read the current handler and query."),
            T("read_file", {"path": "api/src/orders/list.rs"}, {"bytes": 4120}, ms=11),
            D("Use keyset pagination over (created_at, id) with an opaque base64 cursor.", ["offset", "keyset_created_at_id", "snapshot_token"], "keyset_created_at_id", "stable under inserts, index-friendly"),
            T("apply_patch", {"files": ["api/src/orders/list.rs", "api/migrations/0042_orders_cursor_idx.sql"], "insertions": 96, "deletions": 41}, {"applied": True}, ms=44),
            T("run_tests", {"filter": "orders::list", "runs": 1}, {"passed": 23, "failed": 1, "first_failure": "cursor_round_trip: invalid base64"}, ok=False, ms=9120),
            T("apply_patch", {"files": ["api/src/orders/cursor.rs"], "insertions": 6, "deletions": 2}, {"applied": True}, ms=20),
            T("run_tests", {"filter": "orders::list", "runs": 1}, {"passed": 24, "failed": 0}, ms=8877),
            T("open_pr", {"branch": "feat/orders-cursor", "title": "Cursor pagination for GET /v1/orders"}, {"pr": 1301, "checks": "passed"}, ms=910),
            A("Done: /v1/orders takes ?cursor= and returns next_cursor; max page size stays 100. PR #1301."),
            U("Does the migration lock the orders table?"),
            A("No: the index is created with CREATE INDEX CONCURRENTLY, so writes continue during the build."),
            STEP("Checkpoint ckpt-0002 written before the fix-up patch; resume from it if the PR needs rework."),
        ],
    ),
    dict(
        id="task-03",
        kind="task",
        ns=["acme", "eng"],
        title="Upgrade rusqlite 0.39 to 0.41",
        domain="dependencies",
        task_type="upgrade",
        agent="agent-coder",
        start=(2025, 3, 12, 11, 0),
        status="failed",
        success=False,
        reward=0.2,
        reflection="Blocked: sqlite-vec 0.1.6 does not build against the SQLite 3.50 headers bundled by rusqlite 0.41.",
        metadata={"repo": "acme/indexer", "issue": 97},
        gap=(20, 400),
        events=[
            U("Bump rusqlite to 0.41 in the indexer."),
            T("apply_patch", {"files": ["Cargo.toml", "Cargo.lock"], "insertions": 14, "deletions": 14}, {"applied": True}, ms=25),
            T("run_tests", {"filter": "", "runs": 1}, {"build": "failed", "error": "sqlite-vec: implicit declaration of function 'sqlite3_vtab_in'"}, ok=False, ms=65530),
            STEP("Check whether sqlite-vec has a release for SQLite 3.50."),
            T("search_docs", {"query": "sqlite-vec sqlite 3.50 build error", "top_k": 5}, {"hits": []}, ms=140),
            D("Stop and report: patching a vendored C extension is out of scope for a dependency bump.", ["patch_vendored_c", "pin_rusqlite", "report_blocked"], "report_blocked"),
            A("Blocked: sqlite-vec 0.1.6 fails to build against SQLite 3.50 (bundled by rusqlite 0.41). Keeping 0.39 until sqlite-vec releases a fix."),
            T("apply_patch", {"files": ["Cargo.toml", "Cargo.lock"], "revert": True}, {"applied": True}, ms=19),
            T("run_tests", {"filter": "", "runs": 1}, {"build": "ok", "passed": 312, "failed": 0}, ms=201330),
            T("create_ticket", {"queue": "indexer", "priority": "low", "summary": "Retry rusqlite 0.41 once sqlite-vec supports SQLite 3.50"}, {"ticket": "IDX-77"}, ms=250),
        ],
    ),
    dict(
        id="ep-01",
        kind="episode",
        ns=["acme", "product"],
        title="Plan the Q2 onboarding flow",
        domain="product",
        task_type="planning",
        agent="agent-planner",
        start=(2025, 3, 4, 9, 15),
        status="completed",
        success=True,
        reward=0.85,
        reflection="Anchoring the plan on one metric (time to first success) kept scope small.",
        metadata={"quarter": "2025-Q2"},
        gap=(30, 240),
        events=[
            U("Draft the Q2 onboarding plan. Goal: new workspaces succeed faster."),
            T("search_docs", {"query": "onboarding funnel drop-off 2025", "top_k": 5}, {"hits": [{"doc": "analytics-q1-funnel", "score": 0.88}]}, ms=201),
            STEP("Q1 funnel: 41% of new workspaces never import data; median time to first success is 14 minutes."),
            D("Target time-to-first-success under 5 minutes as the single Q2 metric.", ["activation_rate", "time_to_first_success", "nps"], "time_to_first_success", "measurable weekly, moves with the planned work"),
            STEP("Milestone 1: sample data on first login."),
            STEP("Milestone 2: guided import with CSV and JSON Lines."),
            STEP("Milestone 3: in-product checklist with three tasks."),
            A("Plan: three milestones aimed at time-to-first-success under 5 minutes; sample data ships first because it needs no backend work."),
            U("Good. Put sample data first."),
            STEP("Filing PLAN-21, PLAN-22 and PLAN-23."),
            T("create_ticket", {"queue": "product", "priority": "high", "summary": "Sample data on first login"}, {"ticket": "PLAN-21"}, ms=230),
            T("create_ticket", {"queue": "product", "priority": "normal", "summary": "Guided import: CSV and JSON Lines"}, {"ticket": "PLAN-22"}, ms=221),
            T("create_ticket", {"queue": "product", "priority": "normal", "summary": "In-product checklist with three first tasks"}, {"ticket": "PLAN-23"}, ms=219),
            U("How will we measure time to first success?"),
            A("From workspace creation to the first successful agent run, as a weekly median over new workspaces."),
        ],
    ),
    dict(
        id="ep-02",
        kind="episode",
        ns=["acme", "product"],
        title="Triage incoming bug reports (batch 14)",
        domain="quality",
        task_type="triage",
        agent="agent-planner",
        start=(2025, 3, 14, 7, 30),
        status="completed",
        success=True,
        reward=0.75,
        reflection="Asking for the version number once saved a round trip on 4 of 6 unclear reports.",
        metadata={"batch": 14, "reports": 23},
        gap=(10, 120),
        events=[
            T("list_issues", {"label": "needs-triage", "limit": 50}, {"count": 23}, ms=320),
            T("classify", {"batch": 14, "labels": ["bug", "question", "duplicate", "feature"]}, {"bug": 8, "question": 4, "duplicate": 9, "feature": 2}, ms=5400),
            D("Close the 9 duplicates with links instead of merging threads.", ["merge", "close_with_link"], "close_with_link"),
            STEP("Closed 9 duplicates with links to the originals."),
            STEP("6 bug reports lack a version number; asked reporters once, with a template."),
            T("create_ticket", {"queue": "payments", "priority": "high", "summary": "Refund webhook sent twice for partial refunds"}, {"ticket": "PAY-3312"}, ms=260),
            T("create_ticket", {"queue": "api", "priority": "normal", "summary": "429 responses missing X-RateLimit-Reset header on /v1/customers"}, {"ticket": "API-1187"}, ms=244),
            A("Batch 14: 9 duplicates closed, 2 tickets filed (PAY-3312 high), 6 waiting for version numbers, 4 questions routed to support."),
            T("add_comment", {"issue": 3921, "template": "ask_version"}, {"ok": True}, ms=140),
            T("add_comment", {"issue": 3930, "template": "ask_version"}, {"ok": True}, ms=133),
            STEP("Routed 4 questions to the support queue."),
            D("Defer the 2 feature requests to the Q2 planning board instead of filing tickets now.", ["file_now", "defer_to_board"], "defer_to_board"),
        ],
    ),
    dict(
        id="ep-03",
        kind="episode",
        ns=["acme", "research"],
        title="Compare vector index options for support search",
        domain="retrieval",
        task_type="research",
        agent="agent-planner",
        start=(2025, 3, 5, 13, 0),
        status="completed",
        success=True,
        reward=0.8,
        reflection=None,
        metadata={"corpus_vectors": 1000000, "dim": 384},
        gap=(60, 1800),
        events=[
            U("Which vector index should support search use? 1M chunks, 384 dimensions."),
            T("run_benchmark", {"index": "hnsw", "quantisation": "none", "m": 16, "ef_search": 64}, {"recall_at_10": 0.985, "p95_ms": 4.1, "memory_mb": 1650}, ms=912000),
            T("run_benchmark", {"index": "hnsw", "quantisation": "int8", "m": 16, "ef_search": 64, "rescore": True}, {"recall_at_10": 0.972, "p95_ms": 3.2, "memory_mb": 520}, ms=840500),
            T("run_benchmark", {"index": "ivf_pq", "nlist": 4096, "nprobe": 32}, {"recall_at_10": 0.91, "p95_ms": 2.4, "memory_mb": 210}, ms=1203000),
            D("HNSW with int8 quantisation and exact rescoring: recall within 1.5 points of full precision at a third of the memory.", ["hnsw_f32", "hnsw_int8", "ivf_pq"], "hnsw_int8", "recall >= 0.97 and memory < 1 GB"),
            A("Recommendation: HNSW, int8 quantised, rescoring the top 40 exactly. Recall@10 0.972, p95 3.2 ms, 520 MB."),
            U("What about M=32?"),
            T("run_benchmark", {"index": "hnsw", "quantisation": "int8", "m": 32, "ef_search": 64, "rescore": True}, {"recall_at_10": 0.981, "p95_ms": 4.6, "memory_mb": 690}, ms=1105000),
            A("M=32 gains 0.9 points of recall for 44% more latency and 170 MB more memory; M=16 stays the better trade-off for support search."),
            T("run_benchmark", {"index": "hnsw", "quantisation": "int8", "m": 16, "ef_search": 64, "rescore": False}, {"recall_at_10": 0.944, "p95_ms": 2.9, "memory_mb": 520}, ms=832100),
            STEP("Exact rescoring is worth 2.8 points of recall at 0.3 ms; keep it on."),
        ],
    ),
    dict(
        id="evo-01",
        kind="evolution_round",
        ns=["acme", "support", "prompts"],
        title="Support prompt evolution, generation 1",
        domain="support",
        task_type="prompt_evolution",
        agent="agent-planner",
        start=(2025, 3, 8, 2, 0),
        status="completed",
        success=True,
        reward=0.7,
        reflection="Variants that restate the user's goal did best; long system prompts did worst.",
        metadata={"generation": 1, "population": 8, "best_fitness": 0.7, "eval_set": "held-out-40"},
        gap=(120, 900),
        events=[
            STEP("Generated 8 prompt variants from the v4 support prompt (mutation rate 0.3)."),
            T("run_eval", {"variant": "v1", "conversations": 40}, {"resolved": 22, "resolution": 0.55}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v2", "conversations": 40}, {"resolved": 24, "resolution": 0.6}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v3", "conversations": 40}, {"resolved": 27, "resolution": 0.675}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v4", "conversations": 40}, {"resolved": 25, "resolution": 0.625}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v5", "conversations": 40}, {"resolved": 28, "resolution": 0.7}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v6", "conversations": 40}, {"resolved": 20, "resolution": 0.5}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v7", "conversations": 40}, {"resolved": 26, "resolution": 0.65}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v8", "conversations": 40}, {"resolved": 23, "resolution": 0.575}, ms=rng.randint(90000, 120000)),
            D("Keep v3, v5 and v7 as parents for generation 2.", ["v3", "v5", "v7", "v4"], ["v3", "v5", "v7"], "top 3 by resolution rate"),
            STEP("Mutation notes: v5 restates the user's goal in one line; v6 adds a 400-token policy preamble."),
            A("Generation 1: best v5 at 0.7 resolution (baseline v4 0.625); v3, v5, v7 carried forward."),
        ],
    ),
    dict(
        id="evo-02",
        kind="evolution_round",
        ns=["acme", "support", "prompts"],
        title="Support prompt evolution, generation 2",
        domain="support",
        task_type="prompt_evolution",
        agent="agent-planner",
        parent="evo-01",
        start=(2025, 3, 9, 2, 0),
        status="completed",
        success=True,
        reward=0.775,
        reflection="Shorter system prompts cut hallucinated policy citations; v5b promoted to production.",
        metadata={"generation": 2, "population": 6, "best_fitness": 0.775, "eval_set": "held-out-40"},
        gap=(120, 900),
        events=[
            STEP("Crossed over v3 x v5 and v5 x v7; 6 variants."),
            T("run_eval", {"variant": "v5a", "conversations": 40}, {"resolved": 29, "resolution": 0.725}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v5b", "conversations": 40}, {"resolved": 31, "resolution": 0.775}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v5c", "conversations": 40}, {"resolved": 28, "resolution": 0.7}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v7a", "conversations": 40}, {"resolved": 27, "resolution": 0.675}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v7b", "conversations": 40}, {"resolved": 29, "resolution": 0.725}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v7c", "conversations": 40}, {"resolved": 25, "resolution": 0.625}, ms=rng.randint(90000, 120000)),
            T("run_eval", {"variant": "v5b", "conversations": 40, "check": "policy_citations"}, {"hallucinated_citations": 1, "baseline": 6}, ms=95400),
            D("Promote v5b to production behind a 20% rollout.", ["v5b", "v5a", "keep_v4"], "v5b", "best resolution, fewest hallucinated citations"),
            A("Generation 2: v5b resolves 0.775 of conversations (v4 baseline 0.625) with 1 hallucinated citation in 40. Rolling out to 20%."),
            T("set_flag", {"flag": "prompt_variant", "value": "v5b", "rollout": 0.2}, {"ok": True}, ms=64),
        ],
    ),
]

MODEL_COST = {"agent-support": 0.0, "agent-coder": 0.00001, "agent-planner": 0.000015}

session_times = {}
event_ids = {}
pending_events = []
for s in SESSIONS:
    y, mo, d, h, mi = s["start"]
    start = micros(y, mo, d, h, mi, rng.randint(0, 59))
    t = start
    evs = []
    for seq, (kind, role, content, extra) in enumerate(s["events"], start=1):
        t += rng.randint(*s["gap"]) * 1_000_000 + rng.randint(1, 999_999)
        eid = f"evt-{s['id']}-{seq:03d}"
        event_ids[(s["id"], seq)] = eid
        tok = None
        cost = None
        if role == "assistant" and content:
            tok = tokens(content) + rng.randint(20, 400)
            rate = MODEL_COST[s["agent"]]
            cost = round(tok * rate, 6) if rate else None
        evs.append(
            {
                "type": "event",
                "id": eid,
                "tenant_id": TENANT,
                "session_id": s["id"],
                "seq": seq,
                "kind": kind,
                "role": role,
                "content": content,
                "tool_name": extra.get("tool_name"),
                "parameters": canon(extra["parameters"]) if "parameters" in extra else None,
                "result": canon(extra["result"]) if "result" in extra else None,
                "success": extra.get("success"),
                "duration_ms": extra.get("duration_ms"),
                "tokens": tok,
                "cost": cost,
                "metadata": {},
                "created_at": ts(t),
            }
        )
    end = t + rng.randint(5, 60) * 1_000_000
    session_times[s["id"]] = (start, end)
    emit(
        "session",
        id=s["id"],
        tenant_id=TENANT,
        namespace=s["ns"],
        kind=s["kind"],
        status=s["status"],
        title=s["title"],
        domain=s["domain"],
        task_type=s["task_type"],
        subject_id=None,
        agent_id=s["agent"],
        parent_id=s.get("parent"),
        started_at=ts(start),
        ended_at=ts(end),
        success=s["success"],
        reward=s["reward"],
        reflection=s["reflection"],
        priority=1 if s["kind"] == "task" else 0,
        metadata=canon(s["metadata"]),
        expires_at=None,
        created_at=ts(start),
        updated_at=ts(end),
    )
    pending_events.extend(evs)

records.extend(pending_events)

# ------------------------------------------------------------------ memories

SUPPORT = ["acme", "support"]
ENG = ["acme", "eng"]
PRODUCT = ["acme", "product"]
RESEARCH = ["acme", "research"]
PROMPTS = ["acme", "support", "prompts"]
ADA = ["acme", "users", "u-ada"]
BEN = ["acme", "users", "u-ben"]
CHEN = ["acme", "users", "u-chen"]


def after(session, minutes=None):
    """A time shortly after a session ended."""
    end = session_times[session][1]
    return end + (minutes or rng.randint(1, 30)) * 60_000_000 + rng.randint(1, 999_999)


def ev(session, seq):
    return event_ids[(session, seq)]


MEMORIES = [
    # facts
    dict(kind="fact", ns=SUPPORT, key="reset-redirect-loop", content="Password resets do not revoke existing sessions; a user stuck in a login loop after a reset must be signed out on all devices.", topic="auth", agent="agent-support", src=["conv-01"], evs=[ev("conv-01", 4), ev("conv-01", 7)], at=after("conv-01"), importance=0.8, tags=["auth", "kb-112"]),
    dict(kind="fact", ns=SUPPORT, key="refund-policy", content="Annual plans are refunded pro rata for unused full months; monthly plans are refundable within 14 days of the charge.", topic="billing", at=micros(2025, 3, 3, 10, 0), importance=0.9, pinned=True, priority=10, tags=["billing", "policy"], metadata={"source": "doc-refund-policy"}),
    dict(kind="fact", ns=SUPPORT, content="Invoices for EU business customers must show reverse-charge VAT when a valid VAT ID is on file before the invoice date.", topic="billing", agent="agent-support", src=["conv-02"], evs=[ev("conv-02", 4)], at=after("conv-02"), importance=0.7, tags=["billing", "vat"]),
    dict(kind="fact", ns=SUPPORT, key="rate-limits", content="The public API allows 600 requests per minute per key on the Team plan and 3,000 on Enterprise.", topic="api", agent="agent-support", src=["conv-03"], evs=[ev("conv-03", 2)], at=after("conv-03"), importance=0.8, tags=["api", "limits"]),
    dict(kind="fact", ns=SUPPORT, content="Rate-limit headers are X-RateLimit-Remaining and X-RateLimit-Reset (Unix seconds).", topic="api", agent="agent-support", src=["conv-03"], evs=[ev("conv-03", 5)], at=after("conv-03"), importance=0.6, tags=["api"]),
    dict(kind="fact", ns=SUPPORT, content="Billing tickets go to the finance queue; the first-response SLA is 8 business hours.", topic="escalation", agent="agent-support", src=["conv-02"], evs=[ev("conv-02", 9)], at=after("conv-02"), importance=0.6, tags=["billing", "sla"]),
    dict(kind="fact", ns=ENG, content="payments::refund tests share a process-wide clock unless a TestClock is injected into RefundService.", topic="testing", agent="agent-coder", src=["task-01"], evs=[ev("task-01", 7)], at=after("task-01"), importance=0.7, tags=["payments", "tests"]),
    dict(kind="fact", ns=ENG, key="orders-pagination", content="GET /v1/orders returns at most 100 items per page; the cursor encodes the last order's (created_at, id).", topic="api", agent="agent-coder", src=["task-02"], evs=[ev("task-02", 4)], at=after("task-02"), importance=0.7, tags=["api", "pagination"]),
    dict(kind="fact", ns=ENG, content="sqlite-vec 0.1.6 does not build against the SQLite 3.50 headers bundled by rusqlite 0.41.", topic="dependencies", agent="agent-coder", src=["task-03"], evs=[ev("task-03", 3)], at=after("task-03"), importance=0.6, tags=["rusqlite", "blocked"], expires=micros(2025, 6, 30)),
    dict(kind="fact", ns=ENG, content="CI runs on 2-core runners; the integration suite must finish within 10 minutes.", topic="ci", at=micros(2025, 3, 3, 11, 30), importance=0.5, tags=["ci"]),
    dict(kind="fact", ns=PRODUCT, key="q2-onboarding-goal", content="Q2 onboarding goal: time to first success under 5 minutes for new workspaces.", topic="onboarding", agent="agent-planner", src=["ep-01"], evs=[ev("ep-01", 4)], at=after("ep-01"), importance=0.9, pinned=True, priority=5, tags=["okr", "onboarding"]),
    dict(kind="fact", ns=RESEARCH, content="HNSW with int8 quantisation and exact rescoring kept recall@10 at 0.972 on the 1M-vector support corpus, using 520 MB.", topic="retrieval", agent="agent-planner", src=["ep-03"], evs=[ev("ep-03", 3)], at=after("ep-03"), importance=0.8, tags=["vector-index", "benchmark"]),
    # preferences; answer-style has two versions
    dict(id="mem-ada-style-v1", kind="preference", ns=ADA, key="answer-style", content="Ada prefers detailed answers with worked examples.", topic="communication", at=micros(2025, 3, 4, 8, 20), importance=0.6, tags=["style"], metadata={"source": "onboarding_form"}, superseded=("mem-ada-style-v2", after("conv-01", 2))),
    dict(id="mem-ada-style-v2", kind="preference", ns=ADA, key="answer-style", content="Ada prefers short answers: the fix first, details only on request.", topic="communication", agent="agent-support", src=["conv-01"], evs=[ev("conv-01", 9)], at=None, importance=0.7, tags=["style"], metadata={"source": "conversation"}),
    dict(kind="preference", ns=ADA, key="timezone", content="Ada's timezone is Europe/Lisbon; weekly reports go out Mondays at 09:00 local time.", topic="settings", agent="agent-support", src=["conv-04"], evs=[ev("conv-04", 5)], at=after("conv-04"), importance=0.6, tags=["timezone"]),
    dict(kind="preference", ns=ADA, key="language", content="Ada writes in English; her product UI is set to Portuguese (pt-PT).", topic="settings", at=micros(2025, 3, 4, 8, 21), importance=0.4, tags=["language"]),
    dict(kind="preference", ns=BEN, key="invoice-format", content="Ben wants invoices as PDF attachments rather than links.", topic="billing", at=micros(2025, 3, 3, 15, 2), importance=0.5, tags=["billing"]),
    dict(kind="preference", ns=BEN, key="contact-channel", content="Ben prefers a phone call for billing follow-ups instead of email.", topic="communication", agent="agent-support", src=["conv-02"], evs=[ev("conv-02", 11)], at=after("conv-02"), importance=0.6, tags=["contact"]),
    dict(kind="preference", ns=CHEN, key="sdk-language", content="Chen uses the Python SDK; show code samples in Python.", topic="developer", agent="agent-support", src=["conv-03"], evs=[ev("conv-03", 6)], at=after("conv-03"), importance=0.5, tags=["sdk"]),
    dict(kind="preference", ns=CHEN, key="notifications", content="Chen wants order webhooks instead of polling once they leave beta.", topic="developer", agent="agent-support", src=["conv-03"], evs=[ev("conv-03", 10)], at=after("conv-03"), importance=0.5, tags=["webhooks"]),
    dict(kind="preference", ns=SUPPORT, key="escalation-threshold", content="Escalate billing changes above EUR 500 to a human within the same conversation.", topic="escalation", at=micros(2025, 3, 3, 10, 5), importance=0.9, pinned=True, priority=8, tags=["policy", "billing"]),
    # patterns with success rates
    dict(kind="pattern", ns=SUPPORT, content="For a login loop after a password reset, revoke all sessions before suggesting a cache clear.", topic="auth", agent="agent-support", src=["conv-01"], at=after("conv-01", 5), importance=0.7, success_rate=0.92, tags=["playbook"]),
    dict(kind="pattern", ns=SUPPORT, content="Quote the exact policy paragraph when declining a refund; it halves follow-up questions.", topic="billing", at=micros(2025, 3, 5, 16, 40), importance=0.6, success_rate=0.81, tags=["playbook", "billing"]),
    dict(kind="pattern", ns=SUPPORT, content="Collect the VAT ID before escalating an invoice dispute so finance can act without another round trip.", topic="billing", agent="agent-support", src=["conv-02"], at=after("conv-02", 6), importance=0.6, success_rate=0.67, tags=["playbook", "vat"]),
    dict(kind="pattern", ns=ENG, content="For a flaky test, run it 20+ times before changing code, then 50 times after the fix.", topic="testing", agent="agent-coder", src=["task-01"], at=after("task-01", 4), importance=0.7, success_rate=0.86, tags=["tests"]),
    dict(kind="pattern", ns=ENG, content="Inject clocks and RNG seeds through constructors; never advance a global clock in tests.", topic="testing", agent="agent-coder", src=["task-01"], at=after("task-01", 6), importance=0.8, success_rate=0.9, tags=["tests", "design"]),
    dict(kind="pattern", ns=ENG, content="Keyset pagination on (created_at, id) avoids skipped and repeated rows under concurrent inserts.", topic="api", agent="agent-coder", src=["task-02"], at=after("task-02", 3), importance=0.7, success_rate=0.95, tags=["api", "pagination"]),
    dict(kind="pattern", ns=ENG, content="When a bump changes the bundled SQLite version, build native extensions first before touching code.", topic="dependencies", agent="agent-coder", src=["task-03"], at=after("task-03", 3), importance=0.5, success_rate=0.6, tags=["dependencies"]),
    dict(kind="pattern", ns=PRODUCT, content="Ask once, with a template, for the version number when a bug report lacks it.", topic="triage", agent="agent-planner", src=["ep-02"], at=after("ep-02", 3), importance=0.5, success_rate=0.74, tags=["triage"]),
    dict(kind="pattern", ns=PROMPTS, content="Prompt variants that restate the user's goal in one line resolve more conversations.", topic="prompting", agent="agent-planner", src=["evo-01"], at=after("evo-01", 3), importance=0.7, success_rate=0.7, tags=["prompt-evolution"]),
    dict(kind="pattern", ns=PROMPTS, content="System prompts under 150 tokens reduced hallucinated policy citations from 6 to 1 in 40 conversations.", topic="prompting", agent="agent-planner", src=["evo-02"], at=after("evo-02", 3), importance=0.8, success_rate=0.775, tags=["prompt-evolution"]),
    # summaries
    dict(kind="summary", ns=SUPPORT, content="Ada was stuck in a login loop after a password reset; revoking her 4 old sessions fixed it. She asked for shorter answers.", topic="auth", agent="agent-support", src=["conv-01"], evs=[ev("conv-01", 7), ev("conv-01", 9)], at=after("conv-01", 10), importance=0.4, tier="short"),
    dict(kind="summary", ns=SUPPORT, content="Ben's March invoice charged VAT despite a Spanish VAT ID; escalated to finance as FIN-4471. He wants a phone follow-up.", topic="billing", agent="agent-support", src=["conv-02"], at=after("conv-02", 10), importance=0.5, tier="short"),
    dict(kind="summary", ns=ENG, content="Fixed the flaky refund_is_idempotent test by injecting a clock into RefundService (PR #1290).", topic="testing", agent="agent-coder", src=["task-01"], at=after("task-01", 12), importance=0.4, tier="short"),
    dict(kind="summary", ns=PRODUCT, content="Triage batch 14: 23 reports, 9 duplicates closed, 2 tickets filed, 6 waiting for version numbers.", topic="triage", agent="agent-planner", src=["ep-02"], at=after("ep-02", 10), importance=0.3, tier="short"),
    dict(kind="summary", ns=PROMPTS, content="Two generations of support prompt evolution raised resolution from 0.625 (v4) to 0.775 (v5b).", topic="prompting", agent="agent-planner", src=["evo-01", "evo-02"], at=after("evo-02", 10), importance=0.6),
    # knowledge, evidence, context
    dict(kind="knowledge", ns=SUPPORT, content="Reverse-charge VAT applies to B2B sales within the EU when the buyer has a valid VAT ID; the buyer accounts for the VAT.", topic="billing", at=micros(2025, 3, 3, 10, 30), importance=0.7, confidence=0.95, tags=["vat"]),
    dict(kind="evidence", ns=ENG, content="3 of 20 runs of refund_is_idempotent failed before the fix; 0 of 50 after.", topic="testing", agent="agent-coder", src=["task-01"], evs=[ev("task-01", 4), ev("task-01", 9)], at=after("task-01", 8), importance=0.5, tags=["tests"]),
    dict(kind="evidence", ns=PROMPTS, content="Variant v5b resolved 31 of 40 held-out conversations with 1 hallucinated policy citation.", topic="prompting", agent="agent-planner", src=["evo-02"], evs=[ev("evo-02", 3), ev("evo-02", 8)], at=after("evo-02", 5), importance=0.6, tags=["eval"]),
    dict(kind="context", ns=PRODUCT, content="Currently triaging batch 14: 23 reports, 9 duplicates found so far.", topic="triage", agent="agent-planner", src=["ep-02"], at=session_times["ep-02"][0] + 600_000_123, importance=0.2, tier="working", expires=micros(2025, 3, 21)),
    dict(kind="context", ns=SUPPORT, content="Team-plan customers on the 2023 price list keep their rate until renewal.", topic="billing", at=micros(2025, 3, 3, 10, 40), importance=0.5, tier="short", tags=["pricing"]),
]

# The second answer-style version starts when the first one ends.
v1 = next(m for m in MEMORIES if m.get("id") == "mem-ada-style-v1")
v2 = next(m for m in MEMORIES if m.get("id") == "mem-ada-style-v2")
v2["at"] = v1["superseded"][1]

ACCESSED = {0: 7, 1: 12, 3: 5, 13: 3, 20: 9, 21: 4}

for i, m in enumerate(MEMORIES):
    mid = m.get("id") or f"mem-{i + 1:03d}"
    at = m["at"]
    valid_to = superseded_by = None
    updated = at
    if "superseded" in m:
        superseded_by, valid_to = m["superseded"]
        updated = valid_to
    access = ACCESSED.get(i, 0)
    last_access = at + rng.randint(1, 48) * 3_600_000_000 + rng.randint(1, 999_999) if access else None
    if last_access:
        updated = max(updated, last_access)
    emit(
        "memory",
        id=mid,
        tenant_id=TENANT,
        namespace=m["ns"],
        kind=m["kind"],
        key=m.get("key"),
        content=m["content"],
        summary=None,
        tier=m.get("tier", "long"),
        importance=m["importance"],
        confidence=m.get("confidence", 1.0),
        success_rate=m.get("success_rate"),
        pinned=m.get("pinned", False),
        priority=m.get("priority", 0),
        topic=m.get("topic"),
        domain=None,
        tags=m.get("tags", []),
        source_sessions=m.get("src", []),
        source_events=m.get("evs", []),
        subject_id=None,
        agent_id=m.get("agent"),
        access_count=access,
        last_accessed_at=ts(last_access),
        token_count=tokens(m["content"]),
        content_hash=sha256(m["content"]),
        valid_from=ts(at),
        valid_to=ts(valid_to),
        superseded_by=superseded_by,
        expires_at=ts(m.get("expires")),
        metadata=canon(m.get("metadata", {})),
        created_at=ts(at),
        updated_at=ts(updated),
    )

# ------------------------------------------------------------------ documents

REFUND_POLICY = """# Refund policy

Applies to all self-serve plans purchased on or after 1 January 2025.

## Monthly plans
Monthly plans are refundable in full within 14 days of the charge. After 14 days the current month is not refunded, but you can cancel at any time and keep access until the end of the paid period.

## Annual plans
Annual plans are refunded pro rata for every unused full month. Partial months are not refunded. Discounts granted for annual billing are deducted from the refund when the plan is cancelled in its first three months.

## Usage-based charges
Charges for API overage and extra seats are not refundable once the usage has occurred. If overage was caused by an incident on our side, support credits the affected amount on the next invoice.

## How to request a refund
Ask support from the billing page or reply to your invoice email. Refunds above EUR 500 are approved by the finance team within 8 business hours. Approved refunds reach the original payment method within 5 to 10 business days.

## Taxes
Refunds include the VAT that was charged. For EU business customers with a valid VAT ID, invoices use reverse-charge VAT and no VAT is refunded.
"""

DEPLOY_RUNBOOK = """Payments service: deploy runbook

Before you start. Check that the payments dashboard shows no open incident and that the error rate has been below 0.1% for the last 30 minutes. Deploys are frozen on the last business day of each month while invoices run.

Rolling out. Deploy to the canary pool first. Watch refund and charge success rates for 15 minutes; both must stay within 0.5 points of the previous hour. Then roll out to 25%, 50% and 100% with 10 minutes between steps.

Rolling back. Run the rollback job with the previous release tag. Rollbacks do not need approval. If a database migration shipped with the release, roll back the application first, then run the down migration only if the new columns are already written.

After the deploy. Post the release tag and the canary numbers in the payments channel. Close the deploy ticket with links to the dashboards.
"""

DOCS = [
    dict(id="doc-refund-policy", ns=SUPPORT, title="Refund policy", doc_type="markdown", source_path="policies/refunds.md", source_url=None, content=REFUND_POLICY, size=500, overlap=50, at=micros(2025, 3, 3, 9, 45), metadata={"owner": "finance", "version": "2025-01"}, queried={0: 3, 2: 5, 4: 2}),
    dict(id="doc-payments-runbook", ns=ENG, title="Payments service: deploy runbook", doc_type="text", source_path=None, source_url="https://wiki.example.invalid/payments/deploy-runbook", content=DEPLOY_RUNBOOK, size=400, overlap=40, at=micros(2025, 3, 3, 11, 10), metadata={"owner": "platform-team"}, queried={1: 1}),
]

chunk_records = []
for d in DOCS:
    emit(
        "document",
        id=d["id"],
        tenant_id=TENANT,
        namespace=d["ns"],
        title=d["title"],
        doc_type=d["doc_type"],
        source_path=d["source_path"],
        source_url=d["source_url"],
        content_hash=sha256(d["content"]),
        word_count=words(d["content"]),
        content=d["content"],
        subject_id=None,
        chunk_size=d["size"],
        chunk_overlap=d["overlap"],
        metadata=canon(d["metadata"]),
        created_at=ts(d["at"]),
        updated_at=ts(d["at"]),
    )
    for idx, (start, end, text) in enumerate(chunk_text(d["content"], d["size"], d["overlap"])):
        hits = d["queried"].get(idx, 0)
        chunk_records.append(
            {
                "type": "chunk",
                "id": f"{d['id']}.c{idx}",
                "tenant_id": TENANT,
                "document_id": d["id"],
                "idx": idx,
                "content": text,
                "content_hash": sha256(text),
                "start": start,
                "end": end,
                "word_count": words(text),
                "token_count": tokens(text),
                "query_count": hits,
                "last_queried_at": ts(micros(2025, 3, 11, 9, 40) if hits else None),
                "created_at": ts(d["at"]),
            }
        )
records.extend(chunk_records)

# ------------------------------------------------------------------ checkpoints

t2_start, t2_end = session_times["task-02"]
ck1_at = t2_start + 400_000_017
ck2_at = t2_start + 2_100_000_029
emit(
    "checkpoint",
    tenant_id=TENANT,
    session_id="task-02",
    checkpoint_ns="",
    id="ckpt-0001",
    parent_id=None,
    state={"format": "json", "data": canon({"step": 2, "plan": ["read handler", "choose cursor scheme", "patch", "test", "open PR"], "messages": 3, "files_read": ["api/src/orders/list.rs"]})},
    metadata=canon({"source": "loop", "step": 2, "writes": None}),
    created_at=ts(ck1_at),
)
emit(
    "checkpoint",
    tenant_id=TENANT,
    session_id="task-02",
    checkpoint_ns="",
    id="ckpt-0002",
    parent_id="ckpt-0001",
    state={"format": "json", "data": canon({"step": 5, "plan": ["read handler", "choose cursor scheme", "patch", "test", "open PR"], "messages": 6, "files_read": ["api/src/orders/list.rs"], "last_test": {"passed": 23, "failed": 1}})},
    metadata=canon({"source": "loop", "step": 5, "writes": {"tools": 1}}),
    created_at=ts(ck2_at),
)
emit(
    "pending_write",
    tenant_id=TENANT,
    session_id="task-02",
    checkpoint_ns="",
    checkpoint_id="ckpt-0002",
    task_id="task-apply-patch",
    idx=0,
    channel="messages",
    value={"format": "json", "data": canon({"role": "tool", "tool": "apply_patch", "content": "applied: api/src/orders/cursor.rs (+6 -2)"})},
    created_at=ts(ck2_at + 1_500_000_031),
)

# ------------------------------------------------------------------ usage and metrics

PROVIDER = {a["id"]: (a["model_provider"], a["model_name"]) for a in AGENTS}
for i, s in enumerate(SESSIONS):
    provider, model = PROVIDER[s["agent"]]
    inp = rng.randint(1200, 9000)
    out = rng.randint(200, 1800)
    rate_in, rate_out = {"ollama": (0.0, 0.0), "openai": (0.0000025, 0.00001), "anthropic": (0.000003, 0.000015)}[provider]
    est = round(inp * rate_in + out * rate_out, 5)
    emit(
        "usage",
        id=f"use-{i + 1:03d}",
        tenant_id=TENANT,
        session_id=s["id"],
        agent_id=s["agent"],
        provider=provider,
        model=model,
        operation="chat",
        input_tokens=inp,
        output_tokens=out,
        estimated_cost=est if est else None,
        actual_cost=round(est * 0.97, 5) if est else None,
        latency_ms=float(rng.randint(350, 4200)),
        quality_score=s["reward"],
        success=s["status"] != "failed",
        metadata=canon({"turns": len(s["events"])}),
        created_at=ts(session_times[s["id"]][1]),
    )

for day in range(3, 15):
    emit("metric", tenant_id=TENANT, name="support.resolution_rate", labels={"agent": "support"}, value=round(0.6 + day * 0.012 + rng.uniform(-0.03, 0.03), 3), at=ts(micros(2025, 3, day, 23, 59)))
for gen, variant, fit in [(1, "v3", 0.675), (1, "v5", 0.7), (1, "v7", 0.65), (2, "v5a", 0.725), (2, "v5b", 0.775), (2, "v7b", 0.725)]:
    emit("metric", tenant_id=TENANT, name="evolution.fitness", labels={"generation": str(gen), "variant": variant}, value=fit, at=ts(session_times[f"evo-0{gen}"][1]))
for sid in ["task-01", "task-02", "task-03"]:
    emit("metric", tenant_id=TENANT, name="agent.latency_p95_ms", labels={"agent": "coder", "model": "gpt-4o"}, value=float(rng.randint(1800, 4200)), at=ts(session_times[sid][1]))

# ------------------------------------------------------------------ key-value

emit("kv", tenant_id=TENANT, key="config:feature-flags", value=canon({"hybrid_search": False, "order_webhooks_beta": True, "prompt_variant": "v5b"}), expires_at=None, version=4, updated_at=ts(after("evo-02", 20)))
emit("kv", tenant_id=TENANT, key="cache:search:refund-policy", value=canon({"query": "refund annual plan", "hits": ["doc-refund-policy.c1", "doc-refund-policy.c2"]}), expires_at=ts(micros(2030, 1, 1)), version=1, updated_at=ts(micros(2025, 3, 11, 9, 40)))
emit("kv", tenant_id=TENANT, key="ratelimit:support:u-chen", value=3, expires_at=None, version=3, updated_at=ts(after("conv-03")))
emit("kv", tenant_id=TENANT, key="cursor:sync:orders", value="eyJjcmVhdGVkX2F0IjoxNzQxODEyMjAwLCJpZCI6Im9yZC05MTIwNDQifQ", expires_at=None, version=12, updated_at=ts(micros(2025, 3, 14, 2, 0)))

# ------------------------------------------------------------------ write

ORDER = ["tenant", "subject", "agent", "session", "event", "memory", "document", "chunk", "checkpoint", "pending_write", "usage", "metric", "kv", "lock"]
records.sort(key=lambda r: ORDER.index(r["type"]))  # stable: keeps insertion order per type

for r in records:
    if r["type"] == "metric":
        r["labels"] = dict(sorted(r["labels"].items()))
    canon(r)  # checks every float prints the same in Python and serde_json

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.jsonl")
with open(out, "w", encoding="utf-8", newline="\n") as f:
    for r in records:
        f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")

counts = {}
for r in records:
    counts[r["type"]] = counts.get(r["type"], 0) + 1
print(f"wrote {len(records)} records to {out}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
