//! The conformance suite on PostgreSQL: the backend-neutral tests every backend runs,
//! written once in `tests/conformance/` at the workspace root (see its README.md), each
//! on a fresh database of one throwaway cluster per test process
//! (`agentstore_testkit::services::Postgres`; PostgreSQL with pgvector comes from
//! `scripts/fetch-postgres.sh` or `AGENTSTORE_PG_BIN`). `common.rs` is this backend's
//! harness for it.

mod common;

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
// One keyword engine here (PostgreSQL full text), so search.rs runs once.
#[path = "../../../../tests/conformance/search.rs"]
mod search;
#[path = "../../../../tests/conformance/sessions.rs"]
mod sessions;
#[path = "../../../../tests/conformance/telemetry.rs"]
mod telemetry;
#[path = "../../../../tests/conformance/transfer.rs"]
mod transfer;
#[path = "../../../../tests/conformance/vectors.rs"]
mod vectors;
