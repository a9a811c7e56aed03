//! Shared setup: a fresh store in a temp dir with one tenant.
//!
//! The first part is the conformance suite's harness API, the same in every backend (see
//! tests/conformance/README.md at the workspace root); the rest is for this backend's own
//! tests.

use agentstore::{Scope, Store};
use agentstore_sqlite::{KeywordIndexMode, MasterKey, MasterKeySource, OpenOptions};

// ------------------------------------------------------------------- conformance API

/// SQLite text holds U+0000 like any other character.
pub const STORES_NUL: bool = true;

pub struct TestStore {
    pub store: Store,
    pub scope: Scope,
    /// The temp dir whose `data` the store lives in (only SQLite-only tests look inside).
    pub dir: tempfile::TempDir,
}

/// A new store with tenant `t1`, scoped as actor `test`.
pub fn store() -> TestStore {
    store_with(KeywordIndexMode::default())
}

/// As [`store`], with the keyword engine `variant` (the caller's `module_path!()`) asks
/// for: the keyword index, built eagerly, for a module named `…search_keyword_index`;
/// FTS5 alone for any other.
pub fn search_store(variant: &str) -> TestStore {
    if variant.ends_with("search_keyword_index") {
        store_with(KeywordIndexMode::Eager)
    } else {
        store_with(KeywordIndexMode::Off)
    }
}

/// A new store with no tenant and no audit entry yet, and the guard that keeps it (here
/// the temp dir that holds it).
pub fn empty_store() -> (Store, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().unwrap();
    let s = agentstore_sqlite::open(&OpenOptions::new(dir.path().join("data")).create()).unwrap();
    (s, Box::new(dir))
}

impl TestStore {
    /// Reopens the same directory (what a restarted process sees).
    pub fn reopen(&self) -> Store {
        agentstore_sqlite::open(&OpenOptions::new(self.dir.path().join("data"))).unwrap()
    }

    /// A second tenant's scope, created on demand.
    pub fn other_tenant(&self) -> Scope {
        self.store.ensure_tenant("test", "t2").unwrap();
        Scope::new("t2", "test")
    }
}

// ------------------------------------------------------------------- SQLite only

/// As [`store`], with the keyword index built as `mode` says.
pub fn store_with(mode: KeywordIndexMode) -> TestStore {
    store_configured(|o| o.keyword_index = mode)
}

/// As [`store`], with field encryption on under `key`.
pub fn store_encrypted_with(key: MasterKey) -> TestStore {
    store_configured(|o| o.master_key = Some(MasterKeySource::Key(key)))
}

/// As [`store`], with field encryption on (a random master key).
pub fn store_encrypted() -> TestStore {
    store_encrypted_with(MasterKey::generate())
}

/// A new store in a temp dir's `data`, opened with the options `configure` sets.
fn store_configured(configure: impl FnOnce(&mut OpenOptions)) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = OpenOptions::new(dir.path().join("data")).create();
    configure(&mut opts);
    let store = agentstore_sqlite::open(&opts).unwrap();
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    TestStore {
        store,
        scope: Scope::new("t1", "test"),
        dir,
    }
}
