//! Integration tests of the SQLite backend on real files in temporary directories.
//! One binary (links once); one module per area.
//!
//! Two kinds of module:
//! - the conformance suite every backend runs, written once against the engine's API in
//!   `tests/conformance/` at the workspace root (see its README.md); `common.rs` here is
//!   this backend's harness for it;
//! - this backend's own tests (`sqlite_*.rs` and the areas only SQLite has: admin,
//!   encryption, keyword_index, migrations), which look into the data directory, run SQL
//!   on `agentstore.db` or use the SQLite backend's own API and options.

mod common;

// ------------------------------------------------------------------- conformance suite

#[path = "../../../../tests/conformance/checkpoints.rs"]
mod checkpoints;
#[path = "../../../../tests/conformance/documents.rs"]
mod documents;
#[path = "../../../../tests/conformance/hostile.rs"]
mod hostile;
#[path = "../../../../tests/conformance/infra.rs"]
mod infra;
#[path = "../../../../tests/conformance/memories.rs"]
mod memories;
#[path = "../../../../tests/conformance/privacy.rs"]
mod privacy;
#[path = "../../../../tests/conformance/search.rs"]
mod search;
// The same tests again, answered by the keyword index instead of FTS5 (see search.rs and
// `common::search_store`).
#[allow(clippy::duplicate_mod)]
#[path = "../../../../tests/conformance/search.rs"]
mod search_keyword_index;
#[path = "../../../../tests/conformance/sessions.rs"]
mod sessions;
#[path = "../../../../tests/conformance/telemetry.rs"]
mod telemetry;
#[path = "../../../../tests/conformance/transfer.rs"]
mod transfer;
#[path = "../../../../tests/conformance/vectors.rs"]
mod vectors;

// ------------------------------------------------------------------- SQLite only

mod admin;
mod encryption;
mod keyword_index;
mod migrations;
mod sqlite_hostile;
mod sqlite_infra;
mod sqlite_privacy;
mod sqlite_search;
// The same test again with the keyword index (see sqlite_search.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sqlite_search.rs"]
mod sqlite_search_keyword_index;
mod sqlite_sessions;
mod sqlite_telemetry;
mod sqlite_vectors;
