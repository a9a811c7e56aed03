//! Integration tests of the SQLite backend on real files in temporary directories.
//! One binary (links once); one module per area.

mod common;
mod sessions;
