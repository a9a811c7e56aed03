//! Read commands: tenants, sessions, events, memories, memory get/key, audit.

use std::fmt::Write as _;

use agentstore::backend::{AuditQuery, EventQuery, MemoryQuery, SessionQuery};
use agentstore::{Event, Memory, Namespace, Timestamp};

use super::open;
use crate::config::Config;
use crate::output::{Outcome, Table, clip, or_dash, time, time_opt};

/// Widest text column in list tables, so a row fits a terminal.
const TEXT_WIDTH: usize = 60;

/// Footer telling the user the list was cut at `--limit`.
fn more(next: Option<&String>, shown: usize) -> String {
    match next {
        Some(_) => format!("({shown} shown; more with a higher --limit)\n"),
        None if shown == 0 => "(none)\n".to_owned(),
        None => String::new(),
    }
}

pub fn tenants(cfg: &Config) -> anyhow::Result<Outcome> {
    let tenants = open(cfg)?.list_tenants()?;
    let mut t = Table::new(&["ID", "NAME", "CREATED"]);
    for x in &tenants {
        t.row(vec![x.id.clone(), x.name.clone(), time(&x.created_at)]);
    }
    let text = t.render() + &more(None, t.len());
    Outcome::new(&tenants, text)
}

pub fn sessions(cfg: &Config, q: SessionQuery) -> anyhow::Result<Outcome> {
    let page = open(cfg)?.list_sessions(&cfg.scope(), q)?;
    let mut t = Table::new(&["ID", "KIND", "STATUS", "STARTED", "TITLE"]);
    for s in &page.items {
        t.row(vec![
            s.id.clone(),
            s.kind.clone(),
            s.status.clone(),
            time(&s.started_at),
            clip(s.title.as_deref().unwrap_or(""), TEXT_WIDTH),
        ]);
    }
    let text = t.render() + &more(page.next.as_ref(), t.len());
    Outcome::new(&page, text)
}

pub fn events(cfg: &Config, q: EventQuery) -> anyhow::Result<Outcome> {
    let page = open(cfg)?.list_events(&cfg.scope(), q)?;
    let mut t = Table::new(&["SEQ", "TIME", "KIND", "ROLE", "CONTENT"]);
    for e in &page.items {
        t.row(vec![
            e.seq.to_string(),
            time(&e.created_at),
            e.kind.clone(),
            or_dash(e.role.as_deref()),
            clip(&event_text(e), TEXT_WIDTH),
        ]);
    }
    let text = t.render() + &more(page.next.as_ref(), t.len());
    Outcome::new(&page, text)
}

/// What to show of an event in one line: its content, or for a tool call without text
/// the call and its outcome.
fn event_text(e: &Event) -> String {
    if let Some(c) = e.content.as_deref().filter(|c| !c.is_empty()) {
        return c.to_owned();
    }
    let mut s = String::new();
    if let Some(tool) = &e.tool_name {
        s.push_str(tool);
        s.push('(');
        if let Some(p) = &e.parameters {
            s.push_str(&p.to_string());
        }
        s.push(')');
    }
    if let Some(r) = &e.result {
        s.push_str(" → ");
        s.push_str(&r.to_string());
    }
    s
}

pub fn memories(cfg: &Config, q: MemoryQuery) -> anyhow::Result<Outcome> {
    let page = open(cfg)?.list_memories(&cfg.scope(), q)?;
    let mut t = Table::new(&["ID", "KIND", "NAMESPACE", "KEY", "CONTENT"]);
    for m in &page.items {
        t.row(vec![
            m.id.clone(),
            m.kind.clone(),
            namespace(&m.namespace),
            or_dash(m.key.as_deref()),
            clip(&m.content, TEXT_WIDTH),
        ]);
    }
    let text = t.render() + &more(page.next.as_ref(), t.len());
    Outcome::new(&page, text)
}

pub fn memory_get(cfg: &Config, id: &str) -> anyhow::Result<Outcome> {
    let m = open(cfg)?.get_memory(&cfg.scope(), id)?;
    let text = describe_memory(&m);
    Outcome::new(&m, text)
}

pub fn memory_key(
    cfg: &Config,
    ns: &Namespace,
    key: &str,
    as_of: Option<Timestamp>,
) -> anyhow::Result<Outcome> {
    let m = open(cfg)?.get_memory_by_key(&cfg.scope(), ns, key, as_of)?;
    let text = describe_memory(&m);
    Outcome::new(&m, text)
}

fn namespace(ns: &Namespace) -> String {
    if ns.segments().is_empty() {
        "/".to_owned()
    } else {
        ns.display_path()
    }
}

fn describe_memory(m: &Memory) -> String {
    let validity = match (&m.valid_to, &m.superseded_by) {
        (None, _) => format!("{} → now (current)", time(&m.valid_from)),
        (Some(to), Some(by)) => format!(
            "{} → {} (superseded by {by})",
            time(&m.valid_from),
            time(to)
        ),
        (Some(to), None) => format!("{} → {} (invalidated)", time(&m.valid_from), time(to)),
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("id", m.id.clone()),
        ("kind", m.kind.clone()),
        ("namespace", namespace(&m.namespace)),
        ("key", or_dash(m.key.as_deref())),
        ("valid", validity),
        ("tier", m.tier.clone()),
        ("importance", m.importance.to_string()),
        ("confidence", m.confidence.to_string()),
    ];
    if let Some(r) = m.success_rate {
        rows.push(("success rate", r.to_string()));
    }
    if let Some(t) = &m.topic {
        rows.push(("topic", t.clone()));
    }
    if !m.tags.is_empty() {
        rows.push(("tags", m.tags.join(", ")));
    }
    if let Some(a) = &m.agent_id {
        rows.push(("agent", a.clone()));
    }
    rows.push((
        "accessed",
        format!(
            "{} times, last {}",
            m.access_count,
            time_opt(m.last_accessed_at.as_ref())
        ),
    ));
    if let Some(e) = &m.expires_at {
        rows.push(("expires", time(e)));
    }
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<13}{v}");
    }
    let _ = writeln!(s, "\n{}", m.content);
    s
}

pub fn audit(
    cfg: &Config,
    limit: usize,
    after: Option<i64>,
    all_tenants: bool,
) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    let page = store.list_audit(AuditQuery {
        tenant_id: (!all_tenants).then(|| cfg.tenant.clone()),
        after_seq: after,
        limit,
        ..Default::default()
    })?;
    let mut t = Table::new(&["SEQ", "TIME", "TENANT", "ACTOR", "ACTION", "RESOURCE"]);
    for e in &page.items {
        t.row(vec![
            e.seq.to_string(),
            time(&e.at),
            or_dash(e.tenant_id.as_deref()),
            e.actor.clone(),
            e.action.clone(),
            format!("{} {}", e.resource_type, e.resource_id),
        ]);
    }
    let text = t.render()
        + &match (&page.next, page.items.last()) {
            (Some(_), Some(last)) => format!("(more with --after {})\n", last.seq),
            _ => more(None, t.len()),
        };
    Outcome::new(&page, text)
}
