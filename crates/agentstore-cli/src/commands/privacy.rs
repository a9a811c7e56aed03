//! export-subject, erase-subject: GDPR access and erasure; retention rules.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentstore::backend::RetentionEntity;

use super::open;
use crate::config::Config;
use crate::output::{Outcome, Table, time};

pub fn export_subject(cfg: &Config, id: &str, out: Option<&Path>) -> anyhow::Result<Outcome> {
    let export = open(cfg)?.export_subject(&cfg.scope(), id)?;
    let Some(path) = out else {
        let text = serde_json::to_string_pretty(&export)? + "\n";
        return Outcome::new(&export, text);
    };
    // Written beside and renamed, so the file is never half a document.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| {
        let mut f = fs_err::File::create(&partial)?;
        serde_json::to_writer_pretty(&mut f, &export)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs_err::rename(&partial, path)?;
        anyhow::Ok(())
    })();
    if let Err(e) = written {
        let _ = fs_err::remove_file(&partial);
        return Err(e);
    }
    let records = export.sessions.len()
        + export.events.len()
        + export.checkpoints.len()
        + export.pending_writes.len()
        + export.usage.len()
        + export.memories.len()
        + export.documents.len()
        + export.chunks.len();
    Outcome::new(
        serde_json::json!({"subject_id": id, "out": path, "records": records, "audit_entries": export.audit.len()}),
        format!(
            "wrote subject {id} ({records} records, {} audit entries) to {}\n",
            export.audit.len(),
            path.display()
        ),
    )
}

pub fn erase_subject(cfg: &Config, id: &str) -> anyhow::Result<Outcome> {
    let r = open(cfg)?.erase_subject(&cfg.scope(), id)?;
    let text = format!(
        "erased subject {id}: {} sessions ({} events, {} checkpoints, {} usage records), \
         {} memory versions, {} documents ({} chunks), {} vectors\n",
        r.sessions,
        r.events,
        r.checkpoints,
        r.usage_records,
        r.memories,
        r.documents,
        r.chunks,
        r.vectors
    );
    Outcome::new(&r, text)
}

pub fn retention(
    cfg: &Config,
    change: Option<&(RetentionEntity, Option<String>, Option<i64>)>,
) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    let scope = cfg.scope();
    let rules = match change {
        Some((entity, kind, days)) => {
            store.set_retention(&scope, *entity, kind.as_deref(), *days)?
        }
        None => store.list_retention(&scope)?,
    };
    let mut t = Table::new(&["entity", "kind", "days", "set"]);
    for r in &rules {
        t.row(vec![
            r.entity.as_str().into(),
            if r.kind.is_empty() {
                "(every kind)".into()
            } else {
                r.kind.clone()
            },
            r.days.to_string(),
            time(&r.updated_at),
        ]);
    }
    let text = format!("{}{} rule(s)\n", t.render(), rules.len());
    Outcome::new(serde_json::json!({ "items": rules }), text)
}
