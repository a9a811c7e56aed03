//! Field encryption: subjects' personal fields sealed under per-subject data keys wrapped
//! by a master key; strict subjects kept out of every full-text index; crypto-shredding
//! through backups; master-key rotation.

use std::path::{Path, PathBuf};

use agentstore::backend::{EventQuery, MemoryQuery};
use agentstore::{
    NewDocument, NewEvent, NewMemory, NewSession, NewSubject, Scope, SearchRequest, Store,
};
use agentstore_sqlite::{MasterKey, MasterKeySource, OpenOptions};

use crate::common::TestStore;

struct Encrypted {
    store: Store,
    scope: Scope,
    key: MasterKey,
    dir: tempfile::TempDir,
}

impl Encrypted {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn open_with(&self, key: Option<MasterKey>) -> agentstore::Result<Store> {
        let mut o = OpenOptions::new(self.data());
        o.master_key = key.map(MasterKeySource::Key);
        agentstore_sqlite::open(&o)
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data().join("agentstore.db")).unwrap()
    }
}

fn encrypted() -> Encrypted {
    let key = MasterKey::generate();
    let TestStore { store, scope, dir } = crate::common::store_encrypted_with(key.clone());
    Encrypted {
        store,
        scope,
        key,
        dir,
    }
}

fn subject(t: &Encrypted, external: &str, strict: bool) -> String {
    let mut s = NewSubject::new(external);
    s.consent = true;
    s.strict = strict;
    t.store.create_subject(&t.scope, s).unwrap().id
}

/// A memory, a session with a title and two events, and a document, each carrying
/// `word`, for `subject` (None: nobody's). Returns (memory id, session id, document id).
fn write_all(t: &Encrypted, subject: Option<&str>, word: &str) -> (String, String, String) {
    let sc = &t.scope;
    let mut m = NewMemory::new(format!("prefers {word} for breakfast"));
    m.summary = Some(format!("breakfast: {word}"));
    m.subject_id = subject.map(Into::into);
    let memory = t.store.remember(sc, m).unwrap().id().to_owned();
    let mut s = NewSession::new("chat");
    s.title = Some(format!("talking about {word}"));
    s.subject_id = subject.map(Into::into);
    let session = t.store.create_session(sc, s).unwrap().id;
    let mut tool = NewEvent::message("assistant", format!("looked up {word}"));
    tool.tool_name = Some("lookup".into());
    tool.parameters = Some(serde_json::json!({ "query": word }));
    t.store
        .append_events(
            sc,
            &session,
            vec![
                NewEvent::message("user", format!("I had {word} today")),
                tool,
            ],
        )
        .unwrap();
    let mut d = NewDocument::new(format!("A diary page. Breakfast was {word} again."));
    d.title = Some(format!("diary {word}"));
    d.subject_id = subject.map(Into::into);
    let document = t.store.put_document(sc, d).unwrap().id().to_owned();
    (memory, session, document)
}

fn events_of(session: &str) -> EventQuery {
    EventQuery {
        session_id: session.into(),
        limit: 100,
        ..Default::default()
    }
}

fn keyword_hits(store: &Store, scope: &Scope, word: &str) -> usize {
    store
        .search(scope, SearchRequest::text(word))
        .unwrap()
        .len()
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// A subject's fields are BLOBs on disk that do not contain the text; every read gives
/// the text back; keyword search still finds them; a record without a subject stays
/// clear text.
#[test]
fn subject_fields_are_sealed_at_rest_and_read_back() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    let (memory, session, document) = write_all(&t, Some(&alice), "rambutan");
    write_all(&t, None, "persimmon");

    let db = t.db();
    let sealed = |sql: &str| -> Vec<(String, Vec<u8>)> {
        let mut st = db.prepare(sql).unwrap();
        st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get_ref(1)?.as_bytes().unwrap().to_vec(),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    for (sql, rows) in [
        (
            "SELECT typeof(content), content FROM memories WHERE subject_id IS NOT NULL",
            1,
        ),
        (
            "SELECT typeof(summary), summary FROM memories WHERE subject_id IS NOT NULL",
            1,
        ),
        (
            "SELECT typeof(title), title FROM sessions WHERE subject_id IS NOT NULL",
            1,
        ),
        (
            "SELECT typeof(e.content), e.content FROM events e JOIN sessions s
             ON s.tenant_id = e.tenant_id AND s.id = e.session_id WHERE s.subject_id IS NOT NULL",
            2,
        ),
        (
            "SELECT typeof(content), content FROM documents WHERE subject_id IS NOT NULL",
            1,
        ),
        (
            "SELECT typeof(title), title FROM documents WHERE subject_id IS NOT NULL",
            1,
        ),
        (
            "SELECT typeof(c.content), c.content FROM chunks c JOIN documents d
             ON d.tenant_id = c.tenant_id AND d.id = c.document_id WHERE d.subject_id IS NOT NULL",
            1,
        ),
    ] {
        let got = sealed(sql);
        assert_eq!(got.len(), rows, "{sql}");
        for (ty, bytes) in got {
            assert_eq!(ty, "blob", "{sql}");
            assert!(
                !bytes.windows(8).any(|w| w == b"rambutan"),
                "clear text in {sql}"
            );
        }
    }
    let clear: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM memories WHERE typeof(content) = 'text' AND content LIKE '%persimmon%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(clear, 1, "a memory without a subject is stored as it is");

    let sc = &t.scope;
    let m = t.store.get_memory(sc, &memory).unwrap();
    assert_eq!(m.content, "prefers rambutan for breakfast");
    assert_eq!(m.summary.as_deref(), Some("breakfast: rambutan"));
    let s = t.store.get_session(sc, &session).unwrap();
    assert_eq!(s.title.as_deref(), Some("talking about rambutan"));
    let events = t.store.list_events(sc, events_of(&session)).unwrap().items;
    assert_eq!(events[0].content.as_deref(), Some("I had rambutan today"));
    assert_eq!(
        events[1].parameters,
        Some(serde_json::json!({ "query": "rambutan" }))
    );
    let d = t.store.get_document(sc, &document).unwrap();
    assert!(d.content.contains("rambutan"));
    assert_eq!(d.title.as_deref(), Some("diary rambutan"));
    let chunks = t.store.list_chunks(sc, &document).unwrap();
    assert!(chunks[0].content.contains("rambutan"));
    let listed = t.store.list_memories(sc, MemoryQuery::default()).unwrap();
    assert!(listed.items.iter().any(|m| m.content.contains("rambutan")));
    // Memory, document chunk and both events are found by keyword.
    assert_eq!(keyword_hits(&t.store, sc, "rambutan"), 4);
    let export = t.store.export_subject(sc, &alice).unwrap();
    assert_eq!(export.memories[0].content, "prefers rambutan for breakfast");

    // Another process needs the same master key: none, or another, is refused.
    let e = t.open_with(None).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    let e = t.open_with(Some(MasterKey::generate())).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    let again = t.open_with(Some(t.key.clone())).unwrap();
    assert_eq!(
        again.get_memory(sc, &memory).unwrap().content,
        "prefers rambutan for breakfast"
    );
    assert!(t.store.verify().unwrap().ok());
}

/// A strict subject's text enters no full-text index: keyword search does not find it,
/// and after a checkpoint its words are in no file of the data directory at all.
#[test]
fn strict_subject_leaves_no_plaintext_in_any_file() {
    let t = encrypted();
    let carol = subject(&t, "carol@example.com", true);
    let dave = subject(&t, "dave@example.com", false);
    let (memory, _, _) = write_all(&t, Some(&carol), "kumquatish");
    write_all(&t, Some(&dave), "loquatish");
    let sc = &t.scope;
    assert_eq!(keyword_hits(&t.store, sc, "kumquatish"), 0);
    assert_eq!(keyword_hits(&t.store, sc, "loquatish"), 4);
    assert_eq!(
        t.store.get_memory(sc, &memory).unwrap().content,
        "prefers kumquatish for breakfast"
    );
    assert!(t.store.get_subject(sc, &carol).unwrap().strict);
    t.store.maintenance(false).unwrap();
    let holding = files_holding(&t.data(), "kumquatish");
    assert!(
        holding.is_empty(),
        "a strict subject's text is in {holding:?}"
    );
    assert!(
        !files_holding(&t.data(), "loquatish").is_empty(),
        "a non-strict subject's words are in the full-text index (documented)"
    );

    // A strict subject with the id of an existing one (which has no data key yet) is
    // refused and does not make that subject's key strict: its words stay searchable.
    let frank = subject(&t, "frank@example.com", false);
    let mut clash = NewSubject::new("frank-again@example.com");
    clash.id = Some(frank.clone());
    clash.strict = true;
    let e = t.store.create_subject(sc, clash).unwrap_err();
    assert_eq!(e.code(), "already_exists", "{e}");
    let mut m = NewMemory::new("frank eats tamarillos");
    m.subject_id = Some(frank);
    t.store.remember(sc, m).unwrap();
    assert_eq!(keyword_hits(&t.store, sc, "tamarillos"), 1);

    // Strict needs encryption.
    let plain = crate::common::store();
    let mut s = NewSubject::new("erin@example.com");
    s.strict = true;
    let e = plain.store.create_subject(&plain.scope, s).unwrap_err();
    assert_eq!(e.code(), "invalid_input", "{e}");
}

/// GDPR erasure destroys the subject's data key: a backup taken before the erasure,
/// restored afterwards, still holds the subject's rows but cannot decrypt them; the
/// other subject reads fine, and the restored copy can be erased again.
#[test]
fn erased_subject_cannot_be_read_from_an_older_backup() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    let bob = subject(&t, "bob@example.com", false);
    let (a_memory, a_session, a_document) = write_all(&t, Some(&alice), "rambutan");
    let (b_memory, _, _) = write_all(&t, Some(&bob), "durian");
    let backup = t.dir.path().join("backup");
    t.store.backup(&backup).unwrap();
    assert!(
        !backup.join(agentstore_sqlite::KEYRING_FILE).exists(),
        "the keyring must not be in a backup"
    );
    let erased = t.store.erase_subject(&t.scope, &alice).unwrap();
    assert!(erased.data_key_destroyed);
    // The tombstone holds counts; the key's destruction, which follows the commit, has
    // an entry of its own after it.
    let log = t
        .store
        .list_audit(agentstore::backend::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items;
    let at = |action: &str| {
        log.iter()
            .position(|e| e.action == action && e.resource_id == alice)
    };
    let (tomb, key) = (
        at("subject.erase").unwrap(),
        at("subject.key_destroy").unwrap(),
    );
    assert!(log[tomb].seq < log[key].seq);
    assert!(
        log[tomb]
            .new_values
            .as_ref()
            .unwrap()
            .get("data_key_destroyed")
            .is_none()
    );

    let Encrypted {
        store,
        scope,
        key,
        dir,
    } = t;
    drop(store);
    let data = dir.path().join("data");
    agentstore_sqlite::restore(&backup, &data, true).unwrap();
    let mut o = OpenOptions::new(&data);
    o.master_key = Some(MasterKeySource::Key(key));
    let restored = agentstore_sqlite::open(&o).unwrap();
    // The rows came back with the backup...
    let db = rusqlite::Connection::open(data.join("agentstore.db")).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM memories WHERE subject_id = ?1",
            [&alice],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1);
    // ...but not their key.
    for e in [
        restored.get_memory(&scope, &a_memory).unwrap_err(),
        restored.get_session(&scope, &a_session).unwrap_err(),
        restored.get_document(&scope, &a_document).unwrap_err(),
        restored
            .list_events(&scope, events_of(&a_session))
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), "key_unavailable", "{e}");
    }
    assert_eq!(
        restored.get_memory(&scope, &b_memory).unwrap().content,
        "prefers durian for breakfast"
    );
    // Search keeps working in the restored copy: its first search indexes the events
    // the backup had not indexed yet, the erased subject's as nothing (their text cannot
    // be read), and the other subject is found.
    assert_eq!(keyword_hits(&restored, &scope, "durian"), 4);
    // The backup's full-text index still has the erased subject's words (a non-strict
    // subject's, as documented), so a search for them finds its records; their text
    // cannot be read, so they are left out of the hits, and the readable records that
    // match are still answered.
    assert!(
        restored
            .search(&scope, SearchRequest::text("rambutan"))
            .unwrap()
            .is_empty()
    );
    let both = restored
        .search(&scope, SearchRequest::text("breakfast"))
        .unwrap();
    assert!(!both.is_empty());
    assert!(
        both.iter().all(|h| !serde_json::to_string(&h.record)
            .unwrap()
            .contains("rambutan")),
        "{both:?}"
    );
    assert!(both.iter().any(|h| h.id == b_memory), "{both:?}");
    // Erasing the subject again in the restored copy works without its key.
    let again = restored.erase_subject(&scope, &alice).unwrap();
    assert_eq!(again.memories, 1);
    assert!(!again.data_key_destroyed);
    let report = restored.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(keyword_hits(&restored, &scope, "durian"), 4);
}

/// Rotation re-wraps the data keys: the old master key no longer opens the store, the
/// new one reads everything, and the rotation is audited.
#[test]
fn master_key_rotation() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    let (memory, _, _) = write_all(&t, Some(&alice), "rambutan");
    let new = MasterKey::generate();
    let mut o = OpenOptions::new(t.data());
    o.master_key = Some(MasterKeySource::Key(t.key.clone()));
    let backend = agentstore_sqlite::SqliteBackend::open(&o).unwrap();
    assert_eq!(backend.rotate_master_key(new.clone()).unwrap(), 1);
    assert_eq!(backend.master_key_id().as_deref(), Some(new.id()));
    drop(backend);
    let e = t.open_with(Some(t.key.clone())).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    let store = t.open_with(Some(new)).unwrap();
    assert_eq!(
        store.get_memory(&t.scope, &memory).unwrap().content,
        "prefers rambutan for breakfast"
    );
    // The store that was open all along has the key cached and keeps serving.
    assert_eq!(
        t.store.get_memory(&t.scope, &memory).unwrap().content,
        "prefers rambutan for breakfast"
    );
}

/// The audit log keeps a redacted field's length and a digest keyed by the subject's
/// data key, not the plain SHA-256 of its text that anyone could test guesses against.
#[test]
fn audit_digests_of_a_subjects_fields_are_keyed() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    let mut m = NewMemory::new("yes");
    m.subject_id = Some(alice.clone());
    t.store.remember(&t.scope, m).unwrap();
    // The redacted `content` of each memory.create entry, oldest first.
    let contents = || -> Vec<serde_json::Value> {
        t.store
            .list_audit(agentstore::backend::AuditQuery {
                action: Some("memory.create".into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.new_values.unwrap()["content"].clone())
            .collect()
    };
    let content = &contents()[0];
    assert_eq!(content["redacted"], true, "{content}");
    assert_eq!(content["bytes"], 3);
    assert!(content.get("sha256").is_none(), "{content}");
    let keyed = content["hmac_sha256"].as_str().unwrap();
    assert_ne!(keyed, agentstore::codec::sha256_hex(b"yes"));
    assert!(
        t.store.verify().unwrap().ok(),
        "the chain covers the keyed digests"
    );
    // A record without a subject keeps the plain digest.
    t.store.remember(&t.scope, NewMemory::new("no")).unwrap();
    let plain = contents()[1].get("sha256").cloned();
    assert_eq!(
        plain,
        Some(serde_json::json!(agentstore::codec::sha256_hex(b"no")))
    );
}

/// Rotation without downtime: a serving store that reads its master key from a file keeps
/// answering through a rotation made by another process, once the file holds the new key:
/// for data keys it has not unwrapped before (made elsewhere after the rotation) and for
/// the data keys of subjects it creates afterwards.
#[test]
fn a_serving_store_follows_a_rotation_through_its_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = dir.path().join("master.key");
    let old = MasterKey::generate();
    std::fs::write(&key_file, old.to_hex()).unwrap();
    let mut o = OpenOptions::new(&data).create();
    o.master_key = Some(MasterKeySource::File(key_file.clone()));
    let server = agentstore_sqlite::open(&o).unwrap();
    server.create_tenant("test", "t1", "Tenant One").unwrap();
    let t = Encrypted {
        store: server,
        scope: Scope::new("t1", "test"),
        key: old.clone(),
        dir,
    };
    let alice = subject(&t, "alice@example.com", false);
    let (a_memory, _, _) = write_all(&t, Some(&alice), "rambutan");

    // The operator writes the new key into the server's key file, then rotates.
    let new = MasterKey::generate();
    std::fs::write(&key_file, new.to_hex()).unwrap();
    let mut admin = OpenOptions::new(&data);
    admin.master_key = Some(MasterKeySource::Key(old));
    let rotated = agentstore_sqlite::SqliteBackend::open(&admin)
        .unwrap()
        .rotate_master_key(new.clone())
        .unwrap();
    assert_eq!(rotated, 1);

    // Another process, on the new key, adds a subject the server has never seen.
    let other = t.open_with(Some(new)).unwrap();
    let mut s = NewSubject::new("bob@example.com");
    s.consent = true;
    let bob = other.create_subject(&t.scope, s).unwrap().id;
    let mut m = NewMemory::new("bob prefers durian");
    m.subject_id = Some(bob);
    let b_memory = other.remember(&t.scope, m).unwrap().id().to_owned();

    assert_eq!(
        t.store.get_memory(&t.scope, &b_memory).unwrap().content,
        "bob prefers durian"
    );
    assert_eq!(
        t.store.get_memory(&t.scope, &a_memory).unwrap().content,
        "prefers rambutan for breakfast"
    );
    let carol = subject(&t, "carol@example.com", false);
    let (c_memory, _, _) = write_all(&t, Some(&carol), "kiwano");
    assert_eq!(
        other.get_memory(&t.scope, &c_memory).unwrap().content,
        "prefers kiwano for breakfast"
    );
}

/// `migrate down` past field encryption and `up` again rebuilds the full-text indexes
/// through the store's functions: on a connection with the keyring, a non-strict
/// subject's encrypted text is indexed again and stays findable; a master key is needed.
#[test]
fn migrating_down_and_up_keeps_encrypted_text_searchable() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    write_all(&t, Some(&alice), "zebrafish");
    assert_eq!(keyword_hits(&t.store, &t.scope, "zebrafish"), 4);
    let Encrypted {
        store,
        scope,
        key,
        dir,
    } = t;
    drop(store);
    let data = dir.path().join("data");
    let mut conn = rusqlite::Connection::open(data.join("agentstore.db")).unwrap();
    let e = agentstore_sqlite::register_store_functions(&conn, &data, None).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    agentstore_sqlite::register_store_functions(
        &conn,
        &data,
        Some(MasterKeySource::Key(key.clone())),
    )
    .unwrap();
    let latest = agentstore_sqlite::migrate::latest_version();
    let down = agentstore_sqlite::migrate::down(&mut conn, Some(7)).unwrap();
    assert_eq!(down.first(), Some(&latest));
    agentstore_sqlite::migrate::up(&mut conn, None).unwrap();
    drop(conn);
    let mut o = OpenOptions::new(&data);
    o.master_key = Some(MasterKeySource::Key(key));
    let reopened = agentstore_sqlite::open(&o).unwrap();
    assert_eq!(keyword_hits(&reopened, &scope, "zebrafish"), 4);
    assert!(reopened.verify().unwrap().ok());
}

/// A keyring lost with its disk comes back from a copy made by `backup_keyring`: the
/// subjects' fields read again, and the key of a subject erased after the copy was taken
/// is destroyed at once. A copy is a new private file; a keyring holding keys is never
/// replaced; a copy under another master key, or no keyring at all, is refused.
#[test]
fn a_lost_keyring_comes_back_from_its_copy_without_the_erased_subjects_key() {
    let t = encrypted();
    let alice = subject(&t, "alice@example.com", false);
    let bob = subject(&t, "bob@example.com", false);
    let (a_memory, _, _) = write_all(&t, Some(&alice), "rambutan");
    write_all(&t, Some(&bob), "durian");
    let opts = |key: &MasterKey| {
        let mut o = OpenOptions::new(t.data());
        o.master_key = Some(MasterKeySource::Key(key.clone()));
        o
    };
    let copy = t.dir.path().join("keyring-copy.db");
    let backend = agentstore_sqlite::SqliteBackend::open(&opts(&t.key)).unwrap();
    assert_eq!(backend.backup_keyring(&copy).unwrap(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Never over an existing file: it may be the only other copy.
    let e = backend.backup_keyring(&copy).unwrap_err();
    assert_eq!(e.code(), "already_exists", "{e}");
    drop(backend);
    // A keyring that holds keys is not replaced.
    let e = agentstore_sqlite::restore_keyring(&opts(&t.key), &copy).unwrap_err();
    assert_eq!(e.code(), "already_exists", "{e}");

    t.store.erase_subject(&t.scope, &bob).unwrap();
    let Encrypted {
        store,
        scope,
        key,
        dir,
    } = t;
    drop(store);
    let data = dir.path().join("data");
    for f in ["keys.db", "keys.db-wal", "keys.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    // Opened with the master key after the loss, the store starts an empty keyring and
    // cannot read alice's fields.
    let mut o = OpenOptions::new(&data);
    o.master_key = Some(MasterKeySource::Key(key.clone()));
    let lost = agentstore_sqlite::open(&o).unwrap();
    assert_eq!(
        lost.get_memory(&scope, &a_memory).unwrap_err().code(),
        "key_unavailable"
    );
    drop(lost);

    // Another master key, a file that is not a keyring, no master key: refused, and the
    // (empty) keyring in place is left as it was.
    let mut other = OpenOptions::new(&data);
    other.master_key = Some(MasterKeySource::Key(MasterKey::generate()));
    let e = agentstore_sqlite::restore_keyring(&other, &copy).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let e = agentstore_sqlite::restore_keyring(&o, &junk).unwrap_err();
    assert_eq!(e.code(), "invalid_input", "{e}");
    let e = agentstore_sqlite::restore_keyring(&OpenOptions::new(&data), &copy).unwrap_err();
    assert_eq!(e.code(), "config_error", "{e}");
    assert!(!data.join("keys.db.restore").exists());

    assert_eq!(agentstore_sqlite::restore_keyring(&o, &copy).unwrap(), 2);
    let backend = agentstore_sqlite::SqliteBackend::open(&o).unwrap();
    // bob was erased after the copy: his key goes, alice's stays.
    assert_eq!(backend.destroy_orphan_keys().unwrap(), 1);
    assert_eq!(backend.destroy_orphan_keys().unwrap(), 0);
    drop(backend);
    let back = agentstore_sqlite::open(&o).unwrap();
    let m = back.get_memory(&scope, &a_memory).unwrap();
    assert_eq!(m.content, "prefers rambutan for breakfast");
    let ring = rusqlite::Connection::open(data.join("keys.db")).unwrap();
    let subjects: Vec<String> = ring
        .prepare("SELECT subject_id FROM data_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(subjects, vec![alice]);
}
