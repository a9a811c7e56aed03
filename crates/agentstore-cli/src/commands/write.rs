//! Small write commands: remember, session create, event append.

use agentstore::{NewEvent, NewMemory, NewSession, UpsertOutcome};

use super::open;
use crate::config::Config;
use crate::output::Outcome;

pub fn remember(cfg: &Config, m: NewMemory) -> anyhow::Result<Outcome> {
    let outcome = open(cfg)?.remember(&cfg.scope(), m)?;
    let text = match &outcome {
        UpsertOutcome::Created { id } => format!("created memory {id}\n"),
        UpsertOutcome::Updated { id } => format!("updated memory {id} (same content)\n"),
        UpsertOutcome::Superseded { id, previous } => {
            format!("created memory {id}, superseding {previous}\n")
        }
        UpsertOutcome::Deduplicated { id } => {
            format!("already remembered as {id}; nothing stored\n")
        }
    };
    Outcome::new(&outcome, text)
}

/// Prints only the id, so `SID=$(agentstore session create task)` works in scripts.
pub fn session_create(cfg: &Config, s: NewSession) -> anyhow::Result<Outcome> {
    let session = open(cfg)?.create_session(&cfg.scope(), s)?;
    let text = format!("{}\n", session.id);
    Outcome::new(&session, text)
}

pub fn event_append(cfg: &Config, session_id: &str, e: NewEvent) -> anyhow::Result<Outcome> {
    let event = open(cfg)?.append_event(&cfg.scope(), session_id, e)?;
    let text = format!(
        "appended event #{} ({}) to {session_id}\n",
        event.seq, event.id
    );
    Outcome::new(&event, text)
}
