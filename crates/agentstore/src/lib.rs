//! agentstore: the storage and memory engine for AI agents.
//!
//! This crate holds the data model, validation, the [`Backend`] trait that storage
//! backends implement, and the engine [`Store`] that users call. A key design decision:
//! backends only store records and return candidates, while the engine builds records and
//! computes aggregates, so the embedded SQLite store and a server on PostgreSQL behave
//! the same.
#![warn(missing_docs)]

pub mod audit;
pub mod backend;
pub mod codec;
pub mod copy;
pub mod embedding;
pub mod error;
pub mod memory_cursor;
pub mod migration;
pub mod model;
pub mod namespace;
pub mod search;
pub mod store;
pub mod text;
pub mod time;

pub use backend::{Backend, Record, Scope, WriteOp, WriteResult};
pub use embedding::{Embedder, Embedding, Metric, VectorModel};
pub use error::{Error, Result};
pub use model::*;
pub use namespace::Namespace;
pub use search::{SearchHit, SearchRequest};
pub use store::{EmbedReport, Limits, Store, UsageGroup};
pub use time::Timestamp;
