//! Integration tests of the SQLite backend on real files in temporary directories.
//! One binary (links once); one module per area.

mod admin;
mod checkpoints;
mod common;
mod documents;
mod infra;
mod memories;
mod migrations;
mod search;
mod sessions;
mod telemetry;
mod transfer;
mod vectors;
