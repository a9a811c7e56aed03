//! Integration tests of the SQLite backend on real files in temporary directories.
//! One binary (links once); one module per area.

mod admin;
mod checkpoints;
mod common;
mod documents;
mod encryption;
mod hostile;
mod infra;
mod keyword_index;
mod memories;
mod migrations;
mod privacy;
mod search;
// The same tests again, answered by the keyword index instead of FTS5 (see search.rs).
#[allow(clippy::duplicate_mod)]
#[path = "search.rs"]
mod search_keyword_index;
mod sessions;
mod telemetry;
mod transfer;
mod vectors;
