//! The conformance suite's harness API on PostgreSQL (see tests/conformance/README.md at
//! the workspace root): every store is a fresh database of the test process's throwaway
//! cluster, so tests never see each other's data. Databases are not dropped: the cluster
//! and its directory go when the test process exits.

use agentstore::{Scope, Store};
use agentstore_postgres::PgOptions;
use agentstore_testkit::services::Postgres;

/// PostgreSQL text cannot hold U+0000: the backend refuses such text with `invalid_input`
/// and writes nothing (`db_err` in src/sql.rs).
pub const STORES_NUL: bool = false;

pub struct TestStore {
    pub store: Store,
    pub scope: Scope,
    /// The database's URL, for [`TestStore::reopen`].
    url: String,
}

/// A new, empty database with the schema created, opened; its URL.
fn create() -> (Store, String) {
    let url = Postgres::shared().create_database();
    let store = agentstore_postgres::open(&PgOptions::new(url.clone()).create())
        .unwrap_or_else(|e| panic!("cannot create a store in {url}: {e}"));
    (store, url)
}

/// A new store with tenant `t1`, scoped as actor `test`.
pub fn store() -> TestStore {
    let (store, url) = create();
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    TestStore {
        store,
        scope: Scope::new("t1", "test"),
        url,
    }
}

/// As [`store`]: PostgreSQL has one keyword engine, whatever `variant` asks for.
pub fn search_store(_variant: &str) -> TestStore {
    store()
}

/// A new store with no tenant and no audit entry yet, and the guard that keeps it (here
/// only the database's URL: nothing needs removing).
pub fn empty_store() -> (Store, Box<dyn std::any::Any>) {
    let (store, url) = create();
    (store, Box::new(url))
}

impl TestStore {
    /// Opens the same database again, without creating anything (what a restarted
    /// process sees).
    pub fn reopen(&self) -> Store {
        agentstore_postgres::open(&PgOptions::new(self.url.clone()))
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", self.url))
    }

    /// A second tenant's scope, created on demand.
    pub fn other_tenant(&self) -> Scope {
        self.store.ensure_tenant("test", "t2").unwrap();
        Scope::new("t2", "test")
    }
}
