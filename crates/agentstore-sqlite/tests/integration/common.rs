//! Shared setup: a fresh store in a temp dir with one tenant.

use agentstore::{Scope, Store};
use agentstore_sqlite::{KeywordIndexMode, OpenOptions};

pub struct TestStore {
    pub store: Store,
    pub scope: Scope,
    pub dir: tempfile::TempDir,
}

/// A new store with tenant `t1`, scoped as actor `test`.
pub fn store() -> TestStore {
    store_with(KeywordIndexMode::default())
}

/// As [`store`], with the keyword index built as `mode` says.
pub fn store_with(mode: KeywordIndexMode) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = OpenOptions::new(dir.path().join("data")).create();
    opts.keyword_index = mode;
    let store = agentstore_sqlite::open(&opts).unwrap();
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    TestStore {
        store,
        scope: Scope::new("t1", "test"),
        dir,
    }
}

/// As [`store`], with field encryption on (a random master key).
pub fn store_encrypted() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = OpenOptions::new(dir.path().join("data")).create();
    opts.master_key = Some(agentstore_sqlite::MasterKeySource::Key(
        agentstore_sqlite::MasterKey::generate(),
    ));
    let store = agentstore_sqlite::open(&opts).unwrap();
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    TestStore {
        store,
        scope: Scope::new("t1", "test"),
        dir,
    }
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
