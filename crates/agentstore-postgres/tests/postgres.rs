//! The PostgreSQL backend's own tests, beside the conformance suite (`tests/conformance/`):
//! what only a PostgreSQL database shows. Migrations down to nothing and up again with
//! the schema read back from `pg_catalog`; checksums and pending migrations refused on
//! open; several servers creating one new database at once; stats, verify (and what it
//! finds after damage done as a superuser with the triggers off), backup and its import;
//! a server that goes away under a writer and comes back, a connection reset under a
//! transaction (through a proxy), and a crashed server process.
//!
//! The throwaway clusters come from `agentstore_testkit::services::Postgres` (PostgreSQL
//! with pgvector from `scripts/fetch-postgres.sh` or `AGENTSTORE_PG_BIN`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agentstore::backend::{AuditQuery, BackupManifest};
use agentstore::{
    NewCheckpoint, NewDocument, NewEvent, NewMemory, NewMetricPoint, NewSession, NewSubject,
    NewUsage, Payload, Scope, Store,
};
use agentstore_postgres::PgOptions;
use agentstore_postgres::migrate::{MIGRATIONS, down_at, latest_version, status_at, up_at};
use agentstore_testkit::services::Postgres;
use postgres::{Client, NoTls};
use serde_json::json;

fn client(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

fn open(url: &str) -> agentstore::Result<Store> {
    agentstore_postgres::open(&PgOptions::new(url))
}

fn open_migrating(url: &str) -> agentstore::Result<Store> {
    agentstore_postgres::open(&PgOptions {
        migrate: true,
        ..PgOptions::new(url)
    })
}

fn create(url: &str) -> Store {
    agentstore_postgres::open(&PgOptions::new(url).create())
        .unwrap_or_else(|e| panic!("cannot create a store in {url}: {e}"))
}

fn scope() -> Scope {
    Scope::new("t1", "test")
}

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.1; 8];
    v[i % 8] = 1.0;
    v
}

/// A bit of everything in tenant `t1`: a subject, a session with events (one with a
/// vector), a checkpoint, memories with vectors, a document, usage, a metric point, a
/// key and a lock.
fn write_data(store: &Store) {
    let sc = scope();
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    let subject = store
        .create_subject(
            &sc,
            NewSubject {
                consent: true,
                ..NewSubject::new("alice@example.com")
            },
        )
        .unwrap()
        .id;
    let mut ns = NewSession::new("conversation");
    ns.subject_id = Some(subject.clone());
    let session = store.create_session(&sc, ns).unwrap();
    let mut first = NewEvent::message("user", "hello there");
    first.vector = Some(unit(0));
    store
        .append_events(
            &sc,
            &session.id,
            vec![first, NewEvent::message("assistant", "hi, how can I help?")],
        )
        .unwrap();
    store
        .put_checkpoint(
            &sc,
            NewCheckpoint {
                session_id: session.id.clone(),
                checkpoint_ns: String::new(),
                id: Some("cp1".into()),
                parent_id: None,
                state: Payload::Json(json!({"step": 1})),
                metadata: json!({}),
            },
        )
        .unwrap();
    for i in 0..5 {
        store
            .remember(
                &sc,
                NewMemory {
                    subject_id: (i == 0).then(|| subject.clone()),
                    vector: Some(unit(i + 1)),
                    ..NewMemory::new(format!("fact number {i}"))
                },
            )
            .unwrap();
    }
    store
        .put_document(
            &sc,
            NewDocument::new("A short document. It has two sentences about PostgreSQL."),
        )
        .unwrap();
    store
        .record_usage(
            &sc,
            vec![NewUsage {
                id: None,
                session_id: Some(session.id.clone()),
                agent_id: None,
                provider: "p".into(),
                model: "m".into(),
                operation: None,
                input_tokens: 10,
                output_tokens: 5,
                estimated_cost: None,
                actual_cost: None,
                latency_ms: None,
                quality_score: None,
                success: true,
                metadata: json!({}),
                created_at: None,
            }],
        )
        .unwrap();
    store
        .record_metrics(
            &sc,
            vec![NewMetricPoint {
                name: "cpu".into(),
                labels: Default::default(),
                value: 0.5,
                at: None,
            }],
        )
        .unwrap();
    store.kv_set(&sc, "k", json!({"v": 1}), None).unwrap();
    store.lock_acquire(&sc, "job", "worker", 60_000).unwrap();
}

/// Rows per entity, from `stats`.
fn rows(store: &Store) -> BTreeMap<String, u64> {
    store
        .stats()
        .unwrap()
        .entities
        .into_iter()
        .map(|e| (e.entity, e.rows))
        .collect()
}

/// Every object of the schema `public` that agentstore owns, as PostgreSQL describes it
/// (objects of extensions left out): relations, columns, constraints, index, trigger and
/// function definitions, text search configurations, and the extensions installed.
fn schema(url: &str) -> Vec<String> {
    let mut c = client(url);
    let not_extension = |catalog: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass
                         AND d.objid = {oid} AND d.deptype = 'e')"
        )
    };
    let queries = [
        format!(
            "SELECT 'relation ' || c.relkind::text || ' ' || c.relname FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND {}",
            not_extension("pg_class", "c.oid")
        ),
        "SELECT 'column ' || c.relname || '.' || a.attname || ' ' || a.attnum::text || ' '
                || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                || COALESCE(' collate ' || co.collname, '')
                || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                || ' generated:' || a.attgenerated::text || ' identity:' || a.attidentity::text
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped"
            .into(),
        "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
                || pg_get_constraintdef(oid)
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            .into(),
        "SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'".into(),
        "SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"
            .into(),
        format!(
            "SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND {}",
            not_extension("pg_proc", "p.oid")
        ),
        "SELECT 'text search ' || c.cfgname || ' ' || m.maptokentype::text || ' '
                || m.mapseqno::text || ' ' || m.mapdict::regdictionary::text
         FROM pg_ts_config c JOIN pg_ts_config_map m ON m.mapcfg = c.oid
         WHERE c.cfgnamespace = 'public'::regnamespace"
            .into(),
        "SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension".into(),
    ];
    let mut out: Vec<String> = queries
        .iter()
        .flat_map(|q| {
            c.query(q.as_str(), &[])
                .unwrap_or_else(|e| panic!("{q}: {e}"))
                .into_iter()
                .map(|r| r.get::<_, String>(0))
        })
        .collect();
    out.sort();
    out
}

fn audit_actions(store: &Store, action: &str) -> usize {
    store
        .list_audit(AuditQuery {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .items
        .len()
}

// ------------------------------------------------------------------------- migrations

/// Down to nothing and up again on a database with data: the data goes, the schema
/// comes back exactly as it was; every state in between is what `status` says, and
/// `open` refuses what it must.
#[test]
fn migrations_go_down_to_nothing_and_up_to_the_same_schema() {
    let url = Postgres::shared().create_database();
    let store = create(&url);
    write_data(&store);
    let before = schema(&url);
    for needle in [
        "relation r memories",
        "trigger CREATE TRIGGER audit_log_no_update",
        "function CREATE OR REPLACE FUNCTION public.agentstore_drop_vectors()",
        "index CREATE INDEX vectors_hnsw_",
        "text search agentstore_english",
    ] {
        assert!(
            before.iter().any(|s| s.starts_with(needle)),
            "{needle} is not in the schema read back: {before:#?}"
        );
    }
    let counts = rows(&store);
    drop(store);

    // Every version applied, with the checksum of this binary's script.
    let st = status_at(&url).unwrap();
    assert_eq!(
        (st.current, st.latest),
        (latest_version(), latest_version())
    );
    assert_eq!(st.migrations.len(), MIGRATIONS.len());
    for (m, known) in st.migrations.iter().zip(MIGRATIONS) {
        assert_eq!((m.version, m.name.as_str()), (known.version, known.name));
        assert_eq!(m.state, "applied", "{m:?}");
        assert_eq!(m.checksum, known.checksum());
        assert!(m.applied_at.is_some());
    }

    // One step down: the database is behind, refused without migrate, brought up with it.
    assert_eq!(
        down_at(&url, Some(latest_version() - 1), "test").unwrap(),
        [2]
    );
    let st = status_at(&url).unwrap();
    assert_eq!(st.current, latest_version() - 1);
    assert_eq!(st.migrations.last().unwrap().state, "pending");
    let e = open(&url).unwrap_err();
    assert_eq!(e.code(), "schema_pending", "{e}");
    let store = open_migrating(&url).unwrap();
    assert_eq!(status_at(&url).unwrap().current, latest_version());
    assert_eq!(audit_actions(&store, "schema.migrate_down"), 1);
    assert_eq!(audit_actions(&store, "schema.migrate_up"), 1);
    assert!(store.verify().unwrap().ok());
    drop(store);

    // All the way down: nothing of agentstore's is left but the bookkeeping table.
    assert_eq!(down_at(&url, Some(0), "test").unwrap(), [2, 1]);
    let st = status_at(&url).unwrap();
    assert_eq!(st.current, 0);
    assert!(st.migrations.iter().all(|m| m.state == "pending"), "{st:?}");
    let left: Vec<String> = schema(&url)
        .into_iter()
        .filter(|s| !s.starts_with("extension "))
        .filter(|s| !s.contains("schema_migrations"))
        .collect();
    assert!(left.is_empty(), "left behind by the rollback: {left:#?}");
    let e = open(&url).unwrap_err();
    assert_eq!(e.code(), "schema_pending", "{e}");

    // Up again: the same schema, without the data, until it is written again.
    assert_eq!(up_at(&url, None, "test").unwrap(), [1, 2]);
    let store = create(&url);
    assert!(rows(&store).values().all(|&n| n == 0), "{:?}", rows(&store));
    write_data(&store);
    assert_eq!(schema(&url), before);
    assert_eq!(rows(&store), counts);
    assert!(store.verify().unwrap().ok());
}

/// An applied migration whose recorded checksum is not this binary's: the database was
/// built by another build, and is refused with or without migrate until it matches.
#[test]
fn an_edited_checksum_is_refused_on_open() {
    let url = Postgres::shared().create_database();
    drop(create(&url));
    let mut c = client(&url);
    let real: String = c
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 1",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "UPDATE schema_migrations SET checksum = $1 WHERE version = 1",
        &[&"0".repeat(64)],
    )
    .unwrap();
    let st = status_at(&url).unwrap();
    assert_eq!(st.migrations[0].state, "checksum_mismatch");
    for e in [
        open(&url).unwrap_err(),
        open_migrating(&url).unwrap_err(),
        agentstore_postgres::open(&PgOptions::new(&url).create()).unwrap_err(),
    ] {
        assert_eq!(e.code(), "schema_mismatch", "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
    }
    assert_eq!(
        up_at(&url, None, "test").unwrap_err().code(),
        "schema_mismatch"
    );
    assert_eq!(
        down_at(&url, Some(0), "test").unwrap_err().code(),
        "schema_mismatch"
    );
    c.execute(
        "UPDATE schema_migrations SET checksum = $1 WHERE version = 1",
        &[&real],
    )
    .unwrap();
    let store = open(&url).unwrap();
    assert!(store.verify().unwrap().ok());
}

/// Servers starting together against one new database: every one opens it, the schema
/// is created once (each migration recorded once, no audit entry for a new store), and
/// they share one subject secret.
#[test]
fn servers_creating_one_new_database_at_once_all_open_it() {
    for _ in 0..3 {
        let url = Postgres::shared().create_database();
        let n = 4;
        let start = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    agentstore_postgres::open(&PgOptions::new(&url).create())
                })
            })
            .collect();
        let stores: Vec<Store> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        let mut c = client(&url);
        let recorded: Vec<(i64, i64)> = c
            .query(
                "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let want: Vec<(i64, i64)> = MIGRATIONS.iter().map(|m| (m.version, 1)).collect();
        assert_eq!(recorded, want);
        let secrets: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM store_meta WHERE key = 'subject_secret'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(secrets, 1);
        let hash = stores[0].subject_hash("t1", "alice@example.com");
        assert!(
            stores
                .iter()
                .all(|s| s.subject_hash("t1", "alice@example.com") == hash)
        );
        assert_eq!(audit_actions(&stores[0], "schema.migrate_up"), 0);
        // Each can write, and the others read it.
        stores[0].create_tenant("test", "t1", "Tenant One").unwrap();
        for s in &stores {
            s.get_tenant("t1").unwrap();
        }
    }
}

// ------------------------------------------------------------------------- admin

#[test]
fn stats_count_every_entity() {
    let url = Postgres::shared().create_database();
    let store = create(&url);
    write_data(&store);
    let stats = store.stats().unwrap();
    assert_eq!(stats.schema_version, latest_version());
    assert!(stats.files["database"] > 0, "{:?}", stats.files);
    let r = rows(&store);
    for (entity, n) in [
        ("tenants", 1),
        ("subjects", 1),
        ("sessions", 1),
        ("events", 2),
        ("memories", 5),
        ("documents", 1),
        ("checkpoints", 1),
        ("usage_records", 1),
        ("metric_points", 1),
        ("kv_entries", 1),
        ("locks", 1),
        // One event and five memories had vectors.
        ("vectors", 6),
    ] {
        assert_eq!(r[entity], n, "{entity}: {r:?}");
    }
    assert!(r["chunks"] >= 1);
    assert!(r["audit_log"] > 10);
    assert!(
        stats
            .entities
            .iter()
            .filter(|e| e.rows > 0)
            .all(|e| e.bytes > 0)
    );
}

/// The names of the checks of `report` that failed.
fn failing(report: &agentstore::backend::VerifyReport) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect()
}

/// Verify passes on a healthy store, and each check finds the damage it is for, done as a
/// superuser with the tables' triggers (the append-only guards, the foreign keys and
/// the vector cleanup) disabled.
#[test]
fn verify_finds_damage_done_behind_the_stores_back() {
    let url = Postgres::shared().create_database();
    let store = create(&url);
    write_data(&store);
    let report = store.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    for name in [
        "schema",
        "foreign_keys",
        "integrity",
        "audit_chain",
        "event_seq",
        "vectors",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }

    let mut c = client(&url);
    // With the triggers on, the audit log and events refuse changes even from a superuser.
    for sql in [
        "UPDATE audit_log SET action = 'x' WHERE seq = 3",
        "DELETE FROM audit_log",
        "UPDATE events SET content = 'y'",
    ] {
        let e = c.execute(sql, &[]).unwrap_err();
        let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
        assert!(message.contains("append-only"), "{sql}: {e:?}");
    }

    // An audit entry's hash changed.
    c.batch_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER ALL;
         UPDATE audit_log SET hash = repeat('0', 64) WHERE seq = 3;
         ALTER TABLE audit_log ENABLE TRIGGER ALL;",
    )
    .unwrap();
    let report = store.verify().unwrap();
    assert_eq!(failing(&report), ["audit_chain"], "{report:?}");
    let detail = &report
        .checks
        .iter()
        .find(|c| c.name == "audit_chain")
        .unwrap()
        .detail;
    assert!(detail.contains('3') || detail.contains('4'), "{detail}");

    // An event renumbered, on a second store whose chain is intact.
    let url2 = Postgres::shared().create_database();
    let second = create(&url2);
    write_data(&second);
    let mut c2 = client(&url2);
    c2.batch_execute(
        "ALTER TABLE events DISABLE TRIGGER ALL;
         UPDATE events SET seq = 7 WHERE seq = 2;
         ALTER TABLE events ENABLE TRIGGER ALL;",
    )
    .unwrap();
    let report = second.verify().unwrap();
    assert_eq!(failing(&report), ["event_seq"], "{report:?}");

    // A memory deleted without its vector (the cleanup trigger off).
    let url3 = Postgres::shared().create_database();
    let third = create(&url3);
    write_data(&third);
    let mut c3 = client(&url3);
    c3.batch_execute(
        "ALTER TABLE memories DISABLE TRIGGER ALL;
         DELETE FROM memories WHERE content = 'fact number 3';
         ALTER TABLE memories ENABLE TRIGGER ALL;",
    )
    .unwrap();
    let report = third.verify().unwrap();
    assert_eq!(failing(&report), ["vectors"], "{report:?}");
    // An edited checksum shows too (the store is open already).
    c3.execute(
        "UPDATE schema_migrations SET checksum = 'x' WHERE version = 2",
        &[],
    )
    .unwrap();
    let report = third.verify().unwrap();
    assert_eq!(failing(&report), ["schema", "vectors"], "{report:?}");
}

/// A backup is a manifest and `store.jsonl`; that file imported into a new database
/// reproduces the export line for line (plus the import's own audit entry).
#[test]
fn backup_is_an_export_that_imports_into_a_new_database() {
    let url = Postgres::shared().create_database();
    let store = create(&url);
    write_data(&store);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let manifest = store.backup(&out).unwrap();
    assert_eq!(
        (manifest.format, manifest.backend.as_str()),
        (1, "postgres")
    );
    assert_eq!(manifest.schema_version, latest_version());
    assert_eq!(manifest.files.len(), 1);
    let file = &manifest.files[0];
    assert_eq!(file.path, "store.jsonl");
    let bytes = std::fs::read(out.join("store.jsonl")).unwrap();
    assert_eq!(file.bytes, bytes.len() as u64);
    assert_eq!(file.sha256, agentstore::codec::sha256_hex(&bytes));
    let on_disk: BackupManifest =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);

    // The file is the export.
    let mut export = Vec::new();
    store.export_jsonl(&mut export, &mut |_| {}).unwrap();
    assert_eq!(export, bytes);
    let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
    assert!(lines.len() > 20);

    // A backup goes into an empty directory only.
    let e = store.backup(&out).unwrap_err();
    assert_eq!(e.code(), "invalid_input", "{e}");

    // Imported into a new database, it is exported again line for line.
    let url2 = Postgres::shared().create_database();
    let restored = create(&url2);
    let report = restored
        .import_jsonl(
            &Scope::new("admin", "importer"),
            &mut bytes.as_slice(),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(report.lines, lines.len() as u64);
    let mut again = Vec::new();
    restored.export_jsonl(&mut again, &mut |_| {}).unwrap();
    let again: Vec<&str> = std::str::from_utf8(&again).unwrap().lines().collect();
    assert_eq!(again.len(), lines.len() + 1);
    // The import's own audit entry follows the copied ones, before the vector lines.
    let split = lines
        .iter()
        .position(|l| l.starts_with(r#"{"type":"vector"#))
        .expect("the backup carries the vectors");
    assert_eq!(again[..split], lines[..split]);
    assert_eq!(again[split + 1..], lines[split..]);
    let import: serde_json::Value = serde_json::from_str(again[split]).unwrap();
    assert_eq!(
        (&import["type"], &import["action"]),
        (&json!("audit"), &json!("store.import"))
    );
    assert!(restored.verify().unwrap().ok());
    // Vectors travel in the backup; the keyword index comes back with the rows.
    assert_eq!(rows(&restored)["vectors"], rows(&store)["vectors"]);
    assert!(rows(&store)["vectors"] > 0);
    // The restored store answers keyword searches as the original does.
    let hits = |s: &Store| -> Vec<String> {
        s.search(
            &scope(),
            agentstore::SearchRequest::text("PostgreSQL sentences"),
        )
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
    };
    assert_eq!(hits(&restored), hits(&store));
}

// ------------------------------------------------------------------------- outage

/// A writer keeps writing while its server is stopped (`pg_ctl stop -m immediate`) and
/// started again: while it is down the writes fail with a clean error (busy, or a
/// database error), never a panic; once it is back the same store writes again (its pool
/// makes new connections); and every write that was acknowledged is there.
#[test]
fn a_server_that_goes_away_and_comes_back() {
    let began = Instant::now();
    let pg = Postgres::start_private();
    let url = pg.create_database();
    let store = Arc::new(create(&url));
    store.create_tenant("test", "t1", "Tenant One").unwrap();

    #[derive(Default)]
    struct Log {
        acked: Vec<usize>,
        /// Code and message of each failed write.
        errors: Vec<(&'static str, String)>,
        /// The longest a failed write took.
        slowest_failure: Duration,
        /// Acknowledged writes after the first error.
        acked_after_error: usize,
    }
    let log = Arc::new(Mutex::new(Log::default()));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, log, done) = (store.clone(), log.clone(), done.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let began = Instant::now();
                let r = store.remember(
                    &scope(),
                    NewMemory {
                        id: Some(format!("m{i}")),
                        ..NewMemory::new(format!("write number {i}"))
                    },
                );
                let mut log = log.lock().unwrap();
                match r {
                    Ok(_) => {
                        log.acked.push(i);
                        if !log.errors.is_empty() {
                            log.acked_after_error += 1;
                        }
                    }
                    Err(e) => {
                        log.errors.push((e.code(), e.to_string()));
                        log.slowest_failure = log.slowest_failure.max(began.elapsed());
                        drop(log);
                        thread::sleep(Duration::from_millis(20));
                    }
                }
                i += 1;
            }
        })
    };
    let wait_for = |what: &str, limit: Duration, cond: &dyn Fn(&Log) -> bool| {
        let deadline = Instant::now() + limit;
        while !cond(&log.lock().unwrap()) {
            if Instant::now() >= deadline {
                let l = log.lock().unwrap();
                panic!(
                    "timed out waiting for {what}: {} writes acknowledged, {} after the first error; errors: {:?}",
                    l.acked.len(),
                    l.acked_after_error,
                    &l.errors[l.errors.len().saturating_sub(5)..]
                );
            }
            assert!(!writer.is_finished(), "the writer died waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    };

    wait_for("writes before the outage", Duration::from_secs(10), &|l| {
        l.acked.len() >= 30
    });
    pg.stop();
    let stopped = Instant::now();
    // A write in flight has its connection cut under it and fails at once; a write that
    // starts with the server gone finds no server to connect to: the pool tries until
    // its timeout (10 s), then says busy. Wait for such a write: it fails, not hangs.
    wait_for(
        "a write without a server to fail",
        Duration::from_secs(15),
        &|l| l.slowest_failure >= Duration::from_secs(5),
    );
    let down_for = stopped.elapsed();
    pg.restart();
    wait_for("writes after the restart", Duration::from_secs(15), &|l| {
        l.acked_after_error >= 30
    });
    done.store(true, Ordering::Relaxed);
    writer.join().expect("the writer panicked");

    let log = log.lock().unwrap();
    for (code, message) in &log.errors {
        assert!(
            matches!(*code, "busy" | "database_error"),
            "a write failed with {code}: {message}"
        );
    }
    assert!(
        log.slowest_failure < Duration::from_secs(15),
        "a write without a server took {:?}",
        log.slowest_failure
    );
    let sc = scope();
    for i in &log.acked {
        let m = store
            .get_memory(&sc, &format!("m{i}"))
            .unwrap_or_else(|e| panic!("acknowledged write m{i} is missing: {e}"));
        assert_eq!(m.content, format!("write number {i}"));
    }
    let report = store.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    eprintln!(
        "{} writes acknowledged, {} failed ({:?}, the slowest in {:?}); down for {down_for:?}; {:?} in all",
        log.acked.len(),
        log.errors.len(),
        log.errors,
        log.slowest_failure,
        began.elapsed()
    );
}

/// A proxied connection: the client side's socket and the two forwarding threads.
type Proxied = (std::net::TcpStream, Vec<thread::JoinHandle<()>>);

/// A TCP proxy in front of the shared cluster, for one test: it forwards every
/// connection both ways until told to hold what clients send (unread, in its socket),
/// and then to cut the connections it has, which resets them (a socket closed with
/// unread data sends RST): the client sees its socket fail under a query.
struct Proxy {
    port: u16,
    hold: Arc<AtomicBool>,
    /// Set by a forwarding thread once it holds (reads nothing more from its client).
    holding: Arc<AtomicBool>,
    /// Ends every current connection's forwarding.
    cut: Arc<AtomicBool>,
    /// The client side of every connection so far, and its forwarding threads.
    conns: Arc<Mutex<Vec<Proxied>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let holding = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        {
            let (hold, holding, cut, conns) =
                (hold.clone(), holding.clone(), cut.clone(), conns.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { return };
                    let server = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    let tick = Some(Duration::from_millis(5));
                    client.set_read_timeout(tick).unwrap();
                    server.set_read_timeout(tick).unwrap();
                    let pipe =
                        |from: std::net::TcpStream, mut to: std::net::TcpStream, holds: bool| {
                            let (hold, holding, cut) = (hold.clone(), holding.clone(), cut.clone());
                            thread::spawn(move || {
                                use std::io::{ErrorKind, Read, Write};
                                let mut from = from;
                                let mut buf = [0u8; 8192];
                                while !cut.load(Ordering::SeqCst) {
                                    if holds && hold.load(Ordering::SeqCst) {
                                        holding.store(true, Ordering::SeqCst);
                                        thread::sleep(Duration::from_millis(2));
                                        continue;
                                    }
                                    match from.read(&mut buf) {
                                        Ok(0) => return,
                                        Ok(n) => {
                                            if to.write_all(&buf[..n]).is_err() {
                                                return;
                                            }
                                        }
                                        Err(e)
                                            if matches!(
                                                e.kind(),
                                                ErrorKind::WouldBlock | ErrorKind::TimedOut
                                            ) => {}
                                        Err(_) => return,
                                    }
                                }
                            })
                        };
                    let threads = vec![
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            true,
                        ),
                        pipe(server, client.try_clone().unwrap(), false),
                    ];
                    conns.lock().unwrap().push((client, threads));
                }
            });
        }
        Proxy {
            port,
            hold,
            holding,
            cut,
            conns,
        }
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Cuts every connection so far, with a reset; later ones are forwarded again.
    fn reset_all(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for (client, threads) in conns {
            for t in threads {
                t.join().unwrap();
            }
            // The last handle of the client's socket: closed with unread data, it resets.
            drop(client);
        }
        self.hold.store(false, Ordering::SeqCst);
        self.holding.store(false, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A connection that fails under a transaction (reset by the network between, as when a
/// server goes away mid-query) is `busy`, as a closed one is: nothing was written, the
/// pool replaces the connection and the retry succeeds.
#[test]
fn a_connection_reset_mid_transaction_is_busy_and_the_retry_succeeds() {
    let pg = Postgres::shared();
    let url = pg.create_database();
    create(&url)
        .create_tenant("test", "t1", "Tenant One")
        .unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let proxy = Proxy::start(pg.port());
    let store = Arc::new(
        agentstore_postgres::open(&PgOptions {
            pool_size: 1,
            ..PgOptions::new(proxy.url(&db))
        })
        .unwrap(),
    );
    store.remember(&scope(), NewMemory::new("before")).unwrap();

    // Hold the write inside its transaction: the tenants table is locked.
    let mut admin = client(&url);
    let mut lock = admin.transaction().unwrap();
    lock.batch_execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            store.remember(
                &scope(),
                NewMemory {
                    id: Some("lost".into()),
                    ..NewMemory::new("written as the connection went")
                },
            )
        })
    };
    let mut watch = client(&url);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the write never waited");
        thread::sleep(Duration::from_millis(10));
    }
    // From now on the proxy holds what the client sends; the lock goes, the client sends
    // its next statement, which stays unread; then the connection is reset.
    proxy.hold.store(true, Ordering::SeqCst);
    while !proxy.holding.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
    lock.rollback().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conns = proxy.conns.lock().unwrap();
        let mut buf = [0u8; 1];
        if conns
            .iter()
            .any(|(c, _)| c.peek(&mut buf).is_ok_and(|n| n > 0))
        {
            break;
        }
        drop(conns);
        assert!(Instant::now() < deadline, "the client sent nothing more");
        thread::sleep(Duration::from_millis(2));
    }
    proxy.reset_all();
    let e = writer.join().unwrap().unwrap_err();
    assert_eq!(e.code(), "busy", "{e}");
    // The reset cut every connection through the proxy, the pool's idle ones too; a read
    // that draws one of those before the pool has replaced it answers `busy`, which tells
    // the caller to retry (seen on a loaded CI machine). Retrying is what a client does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        match store.get_memory(&scope(), "lost") {
            Err(e) if e.code() == "busy" && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            other => break other,
        }
    };
    assert_eq!(
        read.unwrap_err().code(),
        "not_found",
        "the failed write was not rolled back"
    );
    store
        .remember(&scope(), NewMemory::new("after the reset"))
        .unwrap();
    assert!(store.verify().unwrap().ok());
}

/// One server process killed (`kill -9`): PostgreSQL ends every other connection (a
/// warning, then the socket closes) and recovers. A write waiting in its transaction then
/// is `busy` and writes nothing; writes are `busy` while the server recovers and succeed
/// again once it is back, through the same store. (A private cluster: the shared one
/// serves the other tests.)
#[test]
fn a_crashed_server_process_is_busy_and_the_retry_succeeds() {
    let pg = Postgres::start_private();
    let url = pg.create_database();
    let store = Arc::new(create(&url));
    store.create_tenant("test", "t1", "Tenant One").unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();

    let mut admin = client(&url);
    let mut lock = admin.transaction().unwrap();
    lock.batch_execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            store.remember(
                &scope(),
                NewMemory {
                    id: Some("lost".into()),
                    ..NewMemory::new("written as the server crashed")
                },
            )
        })
    };
    let mut watch = client(&url);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the write never waited");
        thread::sleep(Duration::from_millis(10));
    }
    let victim: i32 = watch
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let killed = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let e = writer.join().unwrap().unwrap_err();
    assert_eq!(e.code(), "busy", "{e}");
    drop(lock);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.remember(&scope(), NewMemory::new("after the crash")) {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), "busy", "{e}");
                assert!(Instant::now() < deadline, "the server did not come back");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert_eq!(
        store.get_memory(&scope(), "lost").unwrap_err().code(),
        "not_found"
    );
    assert!(store.verify().unwrap().ok());
}
