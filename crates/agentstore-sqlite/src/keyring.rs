//! Field encryption: one AES-256-GCM data key per subject, wrapped by a master key, kept
//! in a keyring file beside the database.
//!
//! A subject's personal fields (a memory's content and summary, an event's content,
//! parameters and result, a document's title and content, a chunk's content) are stored
//! as BLOBs `A5 01 | key id (16) | nonce (12) | ciphertext and tag`; everything else stays
//! TEXT. SQLite keeps the storage class of a value, so a BLOB can never be mistaken for
//! a user's text that happens to look like a ciphertext, and a store holding both clear
//! and encrypted rows needs no flag per row.
//!
//! Sealing and opening run inside SQLite as application functions registered on every
//! connection (`as_seal`, `as_open`, `as_index`): the SELECT lists open, the INSERTs
//! seal, and the full-text triggers index the opened text in the same statement. That
//! keeps one code path for clear and encrypted rows and lets the triggers stay triggers.
//!
//! The keyring (`keys.db`) is deliberately a separate file: backups copy the database,
//! not the keyring, and restores keep the keyring already in the data directory. Erasing
//! a subject deletes its data key from the keyring (secure delete, WAL truncated), so the
//! subject's fields in any older backup can no longer be decrypted: crypto-shredding.
//!
//! Why hand-written: the cipher is the aes-gcm crate; what is ours is only the framing
//! (header, key ids, wrapping) and the key life cycle, which no crate ties to SQLite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use agentstore::{Error, Result};
use parking_lot::{Mutex, RwLock};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::sql::SqlResult;

/// Name of the keyring file inside the data directory.
pub const KEYRING_FILE: &str = "keys.db";

const MAGIC: [u8; 2] = [0xA5, 0x01];
const KEY_ID_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN;
/// Prefix of the SQLite error message that [`crate::sql::db_err`] turns back into
/// [`Error::KeyUnavailable`]: a scalar function can only report text.
pub(crate) const UNAVAILABLE_PREFIX: &str = "agentstore:key_unavailable:";
/// As [`UNAVAILABLE_PREFIX`], for [`Error::Corrupt`].
pub(crate) const CORRUPT_PREFIX: &str = "agentstore:corrupt:";

thread_local! {
    /// Whether the write transaction running on this thread seals subjects' fields (its
    /// store has a master key). Set by `Connections::write` for the length of the
    /// transaction, so that the hottest inserts pick plain SQL, without the sealing
    /// functions, on a store without encryption. A thread-local rather than a parameter
    /// because the inserts sit several calls below the write path in every module.
    static SEALING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current write transaction seals fields (see `SEALING`).
pub(crate) fn sealing() -> bool {
    SEALING.with(std::cell::Cell::get)
}

/// Sets [`sealing`] for the life of the guard, then restores what was there.
pub(crate) struct Sealing(bool);

impl Sealing {
    pub(crate) fn set(on: bool) -> Sealing {
        Sealing(SEALING.with(|s| s.replace(on)))
    }
}

impl Drop for Sealing {
    fn drop(&mut self) {
        SEALING.with(|s| s.set(self.0));
    }
}

/// The master key: 32 bytes that wrap every subject's data key.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key from 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                Error::Config("a master key is 64 hex digits (32 bytes); this one is not".into())
            })?;
        Ok(Self::from_bytes(bytes))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // The id names the key in the keyring without revealing it: a hash with a
        // purpose prefix, so it is not the SHA-256 of the bare key anyone could test.
        let mut h = Sha256::new();
        h.update(b"agentstore master key id v1\0");
        h.update(bytes);
        let id = hex::encode(&h.finalize()[..8]);
        MasterKey { bytes, id }
    }

    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// The key's public id (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as 64 hex digits, for writing a key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.bytes).expect("32-byte key")
    }
}

/// Where the master key comes from.
#[derive(Clone, Debug)]
pub enum MasterKeySource {
    /// The key itself (`AGENTSTORE_MASTER_KEY`).
    Key(MasterKey),
    /// A file holding 64 hex digits. Read again whenever the keyring names another
    /// master key than the one in memory, so a running server follows a rotation made
    /// by another process once the file holds the new key.
    File(PathBuf),
}

impl MasterKeySource {
    fn load(&self) -> Result<MasterKey> {
        match self {
            MasterKeySource::Key(k) => Ok(k.clone()),
            MasterKeySource::File(p) => {
                let text = fs_err::read_to_string(p).map_err(|e| Error::io(p, e))?;
                MasterKey::from_hex(&text).map_err(|_| {
                    Error::Config(format!(
                        "master key file {} must hold 64 hex digits (32 bytes)",
                        p.display()
                    ))
                })
            }
        }
    }
}

struct DataKey {
    cipher: Aes256Gcm,
    strict: bool,
    /// Keys the digests of this subject's redacted fields in the audit log, derived from
    /// the data key so that they become unguessable once the key is destroyed.
    audit_key: [u8; 32],
}

/// The keyring of one data directory.
pub(crate) struct Keyring {
    path: PathBuf,
    source: Option<MasterKeySource>,
    /// The open keyring database and the master key in use; None while the store has no
    /// keyring (encryption off).
    inner: Mutex<Option<Inner>>,
    keys: RwLock<HashMap<[u8; KEY_ID_LEN], Arc<DataKey>>>,
    by_subject: RwLock<HashMap<(String, String), [u8; KEY_ID_LEN]>>,
}

struct Inner {
    conn: Connection,
    master: MasterKey,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA secure_delete = ON;
    PRAGMA synchronous = FULL;
    CREATE TABLE IF NOT EXISTS keyring_meta (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS data_keys (
        key_id      BLOB PRIMARY KEY,
        tenant_id   TEXT NOT NULL,
        subject_id  TEXT NOT NULL,
        wrapped     BLOB NOT NULL,
        master_id   TEXT NOT NULL,
        strict      INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        UNIQUE (tenant_id, subject_id)
    );";

impl Keyring {
    /// Opens the keyring in `dir`. With a master key it is created when missing; without
    /// one, a store that has a keyring refuses to open (it would otherwise write a
    /// subject's new fields in clear).
    pub(crate) fn open(dir: &Path, source: Option<MasterKeySource>) -> Result<Arc<Keyring>> {
        let path = dir.join(KEYRING_FILE);
        let inner = match (&source, path.exists()) {
            (None, false) => None,
            (None, true) => {
                return Err(Error::Config(format!(
                    "{} holds subjects' data keys: this store encrypts personal fields and \
                     needs its master key (AGENTSTORE_MASTER_KEY or AGENTSTORE_MASTER_KEY_FILE)",
                    path.display()
                )));
            }
            (Some(src), _) => {
                let master = src.load()?;
                let conn = Connection::open(&path).db()?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).db()?;
                conn.execute_batch(SCHEMA).db()?;
                restrict_permissions(&path);
                let stored: Option<String> = conn
                    .query_row(
                        "SELECT value FROM keyring_meta WHERE name = 'master_id'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()
                    .db()?;
                match stored {
                    None => {
                        conn.execute(
                            "INSERT OR IGNORE INTO keyring_meta (name, value) VALUES ('master_id', ?1)",
                            [master.id()],
                        )
                        .db()?;
                    }
                    Some(id) if id == master.id() => {}
                    Some(id) => {
                        return Err(Error::Config(format!(
                            "the master key given (id {}) is not the one that wraps this \
                             store's data keys (id {id})",
                            master.id()
                        )));
                    }
                }
                Some(Inner { conn, master })
            }
        };
        Ok(Arc::new(Keyring {
            path,
            source,
            inner: Mutex::new(inner),
            keys: RwLock::new(HashMap::new()),
            by_subject: RwLock::new(HashMap::new()),
        }))
    }

    /// A keyring that holds nothing and encrypts nothing: the functions for a bare
    /// connection (migrations run on one in tests), where a sealed field is unreadable.
    pub(crate) fn disabled() -> Arc<Keyring> {
        Arc::new(Keyring {
            path: PathBuf::new(),
            source: None,
            inner: Mutex::new(None),
            keys: RwLock::new(HashMap::new()),
            by_subject: RwLock::new(HashMap::new()),
        })
    }

    /// Registers the functions of a keyring-less store on `conn` unless it has them.
    pub(crate) fn ensure_functions(conn: &Connection) -> Result<()> {
        if conn
            .query_row("SELECT as_index(NULL)", [], |_| Ok(()))
            .is_err()
        {
            Keyring::disabled().register(conn)?;
        }
        Ok(())
    }

    /// Whether new personal fields are encrypted.
    pub(crate) fn enabled(&self) -> bool {
        self.inner.lock().is_some()
    }

    /// The id of the master key in use.
    pub(crate) fn master_id(&self) -> Option<String> {
        self.inner.lock().as_ref().map(|i| i.master.id().to_owned())
    }

    /// Brings the in-memory master key up to the keyring's: after another process rotated
    /// it, the key source (a file) is read again.
    fn sync_master(&self, inner: &mut Inner) -> Result<()> {
        let current: String = inner
            .conn
            .query_row(
                "SELECT value FROM keyring_meta WHERE name = 'master_id'",
                [],
                |r| r.get(0),
            )
            .db()?;
        if current == inner.master.id() {
            return Ok(());
        }
        let reloaded = self
            .source
            .as_ref()
            .map(MasterKeySource::load)
            .transpose()?;
        match reloaded {
            Some(k) if k.id() == current => {
                inner.master = k;
                Ok(())
            }
            _ => Err(Error::Config(format!(
                "the keyring's master key was rotated to id {current}; this process holds id {} \
                 and its key source does not hold the new key",
                inner.master.id()
            ))),
        }
    }

    /// Creates the data key of a subject unless it has one. `strict` keeps the subject's
    /// text out of every full-text index.
    pub(crate) fn create_subject_key(
        &self,
        tenant: &str,
        subject: &str,
        strict: bool,
    ) -> Result<()> {
        self.subject_key(tenant, subject, Some(strict)).map(|_| ())
    }

    /// The key id of a subject's data key, created (not strict) when missing and
    /// `create` is Some.
    fn subject_key(
        &self,
        tenant: &str,
        subject: &str,
        create: Option<bool>,
    ) -> Result<Option<[u8; KEY_ID_LEN]>> {
        let cache_key = (tenant.to_owned(), subject.to_owned());
        if let Some(id) = self.by_subject.read().get(&cache_key) {
            return Ok(Some(*id));
        }
        let mut guard = self.inner.lock();
        let Some(inner) = guard.as_mut() else {
            return Ok(None);
        };
        let found = stored_key_id(&inner.conn, tenant, subject)?;
        let id = match (found, create) {
            (Some(id), _) => id,
            (None, None) => return Ok(None),
            (None, Some(strict)) => {
                self.sync_master(inner)?;
                let id: [u8; KEY_ID_LEN] = rand::random();
                let key: [u8; 32] = rand::random();
                let wrapped = wrap(&inner.master, &id, tenant, subject, &key)?;
                // Another process may create the same subject's key at the same moment:
                // the first one stays and both use it.
                inner
                    .conn
                    .execute(
                        "INSERT INTO data_keys (key_id, tenant_id, subject_id, wrapped, master_id,
                             strict, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (tenant_id, subject_id) DO NOTHING",
                        params![
                            id.as_slice(),
                            tenant,
                            subject,
                            wrapped,
                            inner.master.id(),
                            strict,
                            agentstore::time::to_micros(&agentstore::time::now()),
                        ],
                    )
                    .db()?;
                stored_key_id(&inner.conn, tenant, subject)?.ok_or_else(|| {
                    Error::Corrupt(format!("the data key of subject '{subject}' vanished"))
                })?
            }
        };
        self.by_subject.write().insert(cache_key, id);
        Ok(Some(id))
    }

    /// The unwrapped data key `id`, or `KeyUnavailable` when the keyring does not hold it
    /// (the subject was erased, or this is a restored copy without its keys).
    fn data_key(&self, id: &[u8; KEY_ID_LEN]) -> Result<Arc<DataKey>> {
        if let Some(k) = self.keys.read().get(id) {
            return Ok(k.clone());
        }
        let mut guard = self.inner.lock();
        let Some(inner) = guard.as_mut() else {
            return Err(unavailable(
                "the store holds encrypted fields but was opened without a master key",
            ));
        };
        let row: Option<(String, String, Vec<u8>, String, bool)> = inner
            .conn
            .query_row(
                "SELECT tenant_id, subject_id, wrapped, master_id, strict FROM data_keys
                 WHERE key_id = ?1",
                [id.as_slice()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .db()?;
        let Some((tenant, subject, wrapped, master_id, strict)) = row else {
            return Err(unavailable(
                "its data key is not in the keyring: the subject was erased (crypto-shredded)",
            ));
        };
        if master_id != inner.master.id() {
            self.sync_master(inner)?;
        }
        let key = unwrap(&inner.master, id, &tenant, &subject, &wrapped)?;
        let dk = Arc::new(DataKey {
            cipher: Aes256Gcm::new_from_slice(&key).expect("32-byte key"),
            strict,
            audit_key: hmac_sha256(&key, b"agentstore audit digest key v1"),
        });
        self.keys.write().insert(*id, dk.clone());
        Ok(dk)
    }

    /// Encrypts `text` under the subject's data key (created when missing); None when
    /// encryption is off.
    pub(crate) fn seal(&self, tenant: &str, subject: &str, text: &str) -> Result<Option<Vec<u8>>> {
        let Some(id) = self.subject_key(tenant, subject, Some(false))? else {
            return Ok(None);
        };
        let key = self.data_key(&id)?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + text.len() + 16);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&id);
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: text.as_bytes(),
                    aad: &out[..HEADER_LEN],
                },
            )
            .map_err(|_| Error::Corrupt("AES-GCM encryption failed".into()))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(Some(out))
    }

    /// Decrypts a sealed field; the data key's strictness comes with it.
    fn open_sealed(&self, blob: &[u8]) -> Result<(String, bool)> {
        if blob.len() < HEADER_LEN + NONCE_LEN + 16 || blob[..2] != MAGIC {
            return Err(Error::Corrupt(
                "a stored field is a BLOB but not an agentstore ciphertext".into(),
            ));
        }
        let id = key_id(&blob[2..HEADER_LEN])?;
        let key = self.data_key(&id)?;
        let nonce = <[u8; NONCE_LEN]>::try_from(&blob[HEADER_LEN..HEADER_LEN + NONCE_LEN])
            .expect("length checked");
        let plain = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &blob[HEADER_LEN + NONCE_LEN..],
                    aad: &blob[..HEADER_LEN],
                },
            )
            .map_err(|_| {
                Error::Corrupt("an encrypted field failed authentication (altered on disk)".into())
            })?;
        let text = String::from_utf8(plain)
            .map_err(|_| Error::Corrupt("an encrypted field is not UTF-8".into()))?;
        Ok((text, key.strict))
    }

    /// The keyed digest that replaces a redacted field's SHA-256 in the audit log of a
    /// subject with a data key: HMAC-SHA-256 of that SHA-256 under a key derived from the
    /// data key (made now if the subject has none yet). None with encryption off.
    pub(crate) fn audit_digest(
        &self,
        tenant: &str,
        subject: &str,
        sha256: &str,
    ) -> Result<Option<String>> {
        let Some(id) = self.subject_key(tenant, subject, Some(false))? else {
            return Ok(None);
        };
        let key = self.data_key(&id)?;
        Ok(Some(hex::encode(hmac_sha256(
            &key.audit_key,
            sha256.as_bytes(),
        ))))
    }

    /// Whether a sealed field belongs to a strict subject.
    fn is_strict(&self, blob: &[u8]) -> Result<bool> {
        if blob.len() < HEADER_LEN || blob[..2] != MAGIC {
            return Ok(false);
        }
        Ok(self.data_key(&key_id(&blob[2..HEADER_LEN])?)?.strict)
    }

    /// Destroys a subject's data key; returns whether there was one. The key's bytes are
    /// zeroed in the file (secure_delete) and the WAL is truncated, so the keyring keeps
    /// no copy of it.
    pub(crate) fn destroy_subject_key(&self, tenant: &str, subject: &str) -> Result<bool> {
        let mut guard = self.inner.lock();
        let Some(inner) = guard.as_mut() else {
            return Ok(false);
        };
        let id: Option<Vec<u8>> = inner
            .conn
            .query_row(
                "DELETE FROM data_keys WHERE tenant_id = ?1 AND subject_id = ?2 RETURNING key_id",
                params![tenant, subject],
                |r| r.get(0),
            )
            .optional()
            .db()?;
        inner
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .db()?;
        self.by_subject
            .write()
            .remove(&(tenant.to_owned(), subject.to_owned()));
        if let Some(id) = &id {
            self.keys.write().remove(&key_id(id)?);
        }
        Ok(id.is_some())
    }

    /// Re-wraps every data key under `new` in one transaction, and makes it the key in
    /// use. Processes that read their master key from a file follow once the file holds
    /// `new`. Returns how many data keys were re-wrapped.
    pub(crate) fn rotate_master(&self, new: MasterKey) -> Result<usize> {
        let mut guard = self.inner.lock();
        let Some(inner) = guard.as_mut() else {
            return Err(Error::Config(
                "this store has no keyring: open it with its master key to rotate".into(),
            ));
        };
        self.sync_master(inner)?;
        let old = inner.master.clone();
        let tx = inner.conn.transaction().db()?;
        let rows: Vec<(Vec<u8>, String, String, Vec<u8>)> = {
            let mut st = tx
                .prepare("SELECT key_id, tenant_id, subject_id, wrapped FROM data_keys")
                .db()?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?
        };
        for (id, tenant, subject, wrapped) in &rows {
            let kid = key_id(id)?;
            let key = unwrap(&old, &kid, tenant, subject, wrapped)?;
            let rewrapped = wrap(&new, &kid, tenant, subject, &key)?;
            tx.execute(
                "UPDATE data_keys SET wrapped = ?1, master_id = ?2 WHERE key_id = ?3",
                params![rewrapped, new.id(), id],
            )
            .db()?;
        }
        tx.execute(
            "UPDATE keyring_meta SET value = ?1 WHERE name = 'master_id'",
            [new.id()],
        )
        .db()?;
        tx.commit().db()?;
        inner
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .db()?;
        inner.master = new;
        Ok(rows.len())
    }

    /// Destroys the data keys whose subject no longer exists (`exists` asks the store):
    /// left by an erasure whose key destruction failed after its rows had gone, or by a
    /// failed write that created a strict subject. Returns how many went.
    pub(crate) fn destroy_orphans(
        &self,
        exists: impl Fn(&str, &str) -> Result<bool>,
    ) -> Result<usize> {
        let subjects: Vec<(String, String)> = {
            let guard = self.inner.lock();
            let Some(inner) = guard.as_ref() else {
                return Ok(0);
            };
            let mut st = inner
                .conn
                .prepare("SELECT tenant_id, subject_id FROM data_keys")
                .db()?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .db()?
                .collect::<rusqlite::Result<_>>()
                .db()?
        };
        let mut n = 0;
        for (tenant, subject) in subjects {
            if !exists(&tenant, &subject)? && self.destroy_subject_key(&tenant, &subject)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes a consistent copy of the keyring to `out`, a new file, for disaster recovery
    /// (`agentstore keys backup-keyring`). SQLite's online backup copies the pages the WAL
    /// holds too, which a file copy of `keys.db` alone would miss. The copy is checked
    /// before it counts: wrapped by the master key in use, every data key unwrapping.
    /// Returns how many data keys it holds.
    pub(crate) fn backup(&self, out: &Path) -> Result<usize> {
        let guard = self.inner.lock();
        let Some(inner) = guard.as_ref() else {
            return Err(Error::Config(
                "this store has no keyring (field encryption is off): nothing to back up".into(),
            ));
        };
        create_private(out)?;
        let copied = (|| {
            inner
                .conn
                .backup(rusqlite::MAIN_DB, out, rusqlite::backup::NO_PROGRESS)
                .db()?;
            check_copy(out, &inner.master)
        })();
        if copied.is_err() {
            let _ = std::fs::remove_file(out);
        }
        copied
    }

    /// The keyring file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Registers `as_seal`, `as_open` and `as_index` on `conn`.
    pub(crate) fn register(self: &Arc<Self>, conn: &Connection) -> Result<()> {
        let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_INNOCUOUS;
        // as_seal(tenant, subject, text): the text sealed under the subject's key; NULL
        // stays NULL, and text without a subject (or with encryption off) stays clear.
        let k = self.clone();
        conn.create_scalar_function("as_seal", 3, FunctionFlags::SQLITE_UTF8, move |ctx| {
            let text = match ctx.get_raw(2) {
                ValueRef::Null => return Ok(Value::Null),
                ValueRef::Text(t) => std::str::from_utf8(t).map_err(utf8_err)?.to_owned(),
                ValueRef::Blob(b) => return Ok(Value::Blob(b.to_vec())),
                other => return Value::try_from(other).map_err(utf8_from),
            };
            let (ValueRef::Text(tenant), ValueRef::Text(subject)) =
                (ctx.get_raw(0), ctx.get_raw(1))
            else {
                return Ok(Value::Text(text));
            };
            let tenant = std::str::from_utf8(tenant).map_err(utf8_err)?;
            let subject = std::str::from_utf8(subject).map_err(utf8_err)?;
            match k.seal(tenant, subject, &text).map_err(user_err)? {
                Some(blob) => Ok(Value::Blob(blob)),
                None => Ok(Value::Text(text)),
            }
        })
        .db()?;
        // as_open(x): a sealed field's text; anything else unchanged.
        let k = self.clone();
        conn.create_scalar_function("as_open", 1, flags, move |ctx| match ctx.get_raw(0) {
            ValueRef::Blob(b) => Ok(Value::Text(k.open_sealed(b).map_err(user_err)?.0)),
            other => Value::try_from(other).map_err(utf8_from),
        })
        .db()?;
        // as_digest(tenant, subject, sha256): the keyed audit digest, or NULL.
        let k = self.clone();
        conn.create_scalar_function("as_digest", 3, FunctionFlags::SQLITE_UTF8, move |ctx| {
            let tenant: String = ctx.get(0)?;
            let subject: String = ctx.get(1)?;
            let sha: String = ctx.get(2)?;
            k.audit_digest(&tenant, &subject, &sha).map_err(user_err)
        })
        .db()?;
        // as_index(x): what the full-text indexes get of x: its text, or NULL when x is
        // sealed under a strict subject's key. as_index(x, sealed): x unless `sealed`
        // (the row's content) belongs to a strict subject, for the row's clear columns.
        let k = self.clone();
        conn.create_scalar_function("as_index", -1, flags, move |ctx| index_value(&k, ctx))
            .db()?;
        Ok(())
    }
}

/// A field whose data key is gone (a restored copy after an erasure) is indexed as
/// NULL: its text cannot be read, so it cannot be searched either, and the rest of the
/// store stays searchable.
fn index_value(k: &Keyring, ctx: &Context<'_>) -> rusqlite::Result<Value> {
    let lenient = |r: Result<bool>| match r {
        Err(Error::KeyUnavailable(_)) => Ok(true),
        other => other.map_err(user_err),
    };
    if ctx.len() == 2
        && let ValueRef::Blob(b) = ctx.get_raw(1)
        && lenient(k.is_strict(b))?
    {
        return Ok(Value::Null);
    }
    match ctx.get_raw(0) {
        ValueRef::Blob(b) => match k.open_sealed(b) {
            Ok((text, false)) => Ok(Value::Text(text)),
            Ok((_, true)) | Err(Error::KeyUnavailable(_)) => Ok(Value::Null),
            Err(e) => Err(user_err(e)),
        },
        other => Value::try_from(other).map_err(utf8_from),
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// A scalar function can only hand SQLite an error text: engine errors travel as
/// `agentstore:<code>:<message>` and [`crate::sql::db_err`] turns them back.
fn user_err(e: Error) -> rusqlite::Error {
    let text = match &e {
        Error::KeyUnavailable(m) => format!("{UNAVAILABLE_PREFIX}{m}"),
        Error::Corrupt(m) => format!("{CORRUPT_PREFIX}{m}"),
        other => other.to_string(),
    };
    rusqlite::Error::UserFunctionError(text.into())
}

fn utf8_from(e: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(e.to_string().into())
}

fn utf8_err(e: std::str::Utf8Error) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(e.to_string().into())
}

fn unavailable(why: &str) -> Error {
    Error::KeyUnavailable(why.into())
}

/// The key id of a subject's data key in the keyring, if it has one.
fn stored_key_id(
    conn: &Connection,
    tenant: &str,
    subject: &str,
) -> Result<Option<[u8; KEY_ID_LEN]>> {
    let found: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key_id FROM data_keys WHERE tenant_id = ?1 AND subject_id = ?2",
            params![tenant, subject],
            |r| r.get(0),
        )
        .optional()
        .db()?;
    found.map(|b| key_id(&b)).transpose()
}

fn key_id(b: &[u8]) -> Result<[u8; KEY_ID_LEN]> {
    <[u8; KEY_ID_LEN]>::try_from(b).map_err(|_| Error::Corrupt("malformed data key id".into()))
}

/// The additional data binding a wrapped key to its id, tenant and subject, so a wrapped
/// key copied onto another subject's row does not unwrap.
fn wrap_aad(id: &[u8; KEY_ID_LEN], tenant: &str, subject: &str) -> Vec<u8> {
    let mut aad = b"agentstore data key v1\0".to_vec();
    aad.extend_from_slice(id);
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject.as_bytes());
    aad
}

fn wrap(
    master: &MasterKey,
    id: &[u8; KEY_ID_LEN],
    tenant: &str,
    subject: &str,
    key: &[u8; 32],
) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let aad = wrap_aad(id, tenant, subject);
    let ct = master
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: key,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Corrupt("wrapping a data key failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Puts a keyring copy written by [`Keyring::backup`] into data directory `dir`, for a
/// keyring lost with its disk (`agentstore keys restore-keyring`). The directory's own
/// keyring may only be missing or empty (one an open with the master key created after
/// the loss); one holding any data key is never replaced, since that could bring back the
/// key of a subject erased since the copy was taken. The copy must be wrapped by `master`
/// and every data key in it must unwrap. The file lands whole or not at all (a temporary
/// file, fsync, rename, fsync of the directory), readable by its owner only. Returns how
/// many data keys it holds. No process may have the store open meanwhile.
pub(crate) fn restore(dir: &Path, from: &Path, master: &MasterKeySource) -> Result<usize> {
    let master = &master.load()?;
    let path = dir.join(KEYRING_FILE);
    if path.exists() {
        let conn = Connection::open(&path).db()?;
        let held: i64 = conn
            .query_row("SELECT count(*) FROM data_keys", [], |r| r.get(0))
            .optional()
            .db()?
            .unwrap_or(0);
        if held > 0 {
            return Err(Error::AlreadyExists {
                entity: "keyring with data keys",
                id: path.display().to_string(),
            });
        }
    }
    // The copy is checked once it is in the directory, so `from` itself is only read.
    let tmp = dir.join(format!("{KEYRING_FILE}.restore"));
    let _ = std::fs::remove_file(&tmp);
    create_private(&tmp)?;
    let placed = (|| {
        // What `from` holds is the caller's input: unreadable or not a keyring is
        // `invalid_input`, not a failure of this store's database.
        let src = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM keyring_meta", [], |_| Ok(()))?;
                Ok(c)
            })
            .map_err(|e| {
                Error::invalid(
                    "keyring copy",
                    format!("{}: not a keyring ({e})", from.display()),
                )
            })?;
        src.backup(rusqlite::MAIN_DB, &tmp, rusqlite::backup::NO_PROGRESS)
            .db()?;
        let n = check_copy(&tmp, master)?;
        for stale in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{KEYRING_FILE}{stale}")));
        }
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        #[cfg(unix)]
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        Ok(n)
    })();
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

/// Creates `path` as a new empty file readable by its owner only, before any key is
/// written to it; an existing file is never overwritten (it may be the only other copy).
fn create_private(path: &Path) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            entity: "file",
            id: path.display().to_string(),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Checks a keyring copy: wrapped by `master`, every data key unwrapping. Leaves it a
/// single file (rollback journal, no WAL beside it) and durable. Returns its key count.
fn check_copy(path: &Path, master: &MasterKey) -> Result<usize> {
    let not_keyring =
        |why: String| Error::invalid("keyring copy", format!("{}: {why}", path.display()));
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| not_keyring(e.to_string()))?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(|e| not_keyring(e.to_string()))?;
    let id: String = conn
        .query_row(
            "SELECT value FROM keyring_meta WHERE name = 'master_id'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_keyring(format!("not a keyring ({e})")))?;
    if id != master.id() {
        return Err(Error::Config(format!(
            "{} is wrapped by master key {id}, not by the one given ({})",
            path.display(),
            master.id()
        )));
    }
    let rows: Vec<(Vec<u8>, String, String, Vec<u8>)> = {
        let mut st = conn
            .prepare("SELECT key_id, tenant_id, subject_id, wrapped FROM data_keys")
            .map_err(|e| not_keyring(format!("not a keyring ({e})")))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .db()?
            .collect::<rusqlite::Result<_>>()
            .db()?
    };
    for (id, tenant, subject, wrapped) in &rows {
        unwrap(master, &key_id(id)?, tenant, subject, wrapped)?;
    }
    drop(conn);
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))?;
    Ok(rows.len())
}

fn unwrap(
    master: &MasterKey,
    id: &[u8; KEY_ID_LEN],
    tenant: &str,
    subject: &str,
    wrapped: &[u8],
) -> Result<[u8; 32]> {
    let bad = || {
        Error::Corrupt(format!(
            "the data key of subject '{subject}' does not unwrap under master key {}",
            master.id()
        ))
    };
    if wrapped.len() < NONCE_LEN {
        return Err(bad());
    }
    let nonce = <[u8; NONCE_LEN]>::try_from(&wrapped[..NONCE_LEN]).expect("length checked");
    let aad = wrap_aad(id, tenant, subject);
    let key = master
        .cipher()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &wrapped[NONCE_LEN..],
                aad: &aad,
            },
        )
        .map_err(|_| bad())?;
    <[u8; 32]>::try_from(key).map_err(|_| bad())
}

#[cfg(unix)]
fn restrict_permissions(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the keys are wrapped, the mode only keeps other users from copying
    // the file for an offline attack on a stolen master key.
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_p: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(dir: &Path, key: &MasterKey) -> Arc<Keyring> {
        Keyring::open(dir, Some(MasterKeySource::Key(key.clone()))).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_shred() {
        let d = tempfile::tempdir().unwrap();
        let mk = MasterKey::generate();
        let k = ring(d.path(), &mk);
        let blob = k.seal("t", "alice", "my secret").unwrap().unwrap();
        assert!(!blob.windows(9).any(|w| w == b"my secret"));
        assert_eq!(k.open_sealed(&blob).unwrap(), ("my secret".into(), false));
        // A flipped bit fails authentication rather than decrypting to something else.
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(k.open_sealed(&bad).unwrap_err().code(), "corrupt");
        // Another process with the same master key reads it from the keyring.
        let k2 = ring(d.path(), &mk);
        assert_eq!(k2.open_sealed(&blob).unwrap().0, "my secret");
        assert!(k.destroy_subject_key("t", "alice").unwrap());
        let e = k.open_sealed(&blob).unwrap_err();
        assert_eq!(e.code(), "key_unavailable", "{e}");
        // A new process has nothing cached either.
        let e = ring(d.path(), &mk).open_sealed(&blob).unwrap_err();
        assert_eq!(e.code(), "key_unavailable", "{e}");
    }

    #[test]
    fn wrong_or_missing_master_key_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let k = ring(d.path(), &MasterKey::generate());
        k.seal("t", "s", "x").unwrap();
        let e = Keyring::open(d.path(), Some(MasterKeySource::Key(MasterKey::generate())))
            .err()
            .unwrap();
        assert!(e.to_string().contains("not the one"), "{e}");
        let e = Keyring::open(d.path(), None).err().unwrap();
        assert_eq!(e.code(), "config_error");
        assert!(MasterKey::from_hex("abc").is_err());
    }

    #[test]
    fn rotation_rewraps_and_file_sources_follow() {
        let d = tempfile::tempdir().unwrap();
        let key_file = d.path().join("master.key");
        let old = MasterKey::generate();
        std::fs::write(&key_file, old.to_hex()).unwrap();
        let server =
            Keyring::open(d.path(), Some(MasterKeySource::File(key_file.clone()))).unwrap();
        let a = server.seal("t", "a", "alpha").unwrap().unwrap();
        let b = server.seal("t", "b", "beta").unwrap().unwrap();

        // Another process rotates; the server's key file gets the new key.
        let new = MasterKey::generate();
        let admin = ring(d.path(), &old);
        assert_eq!(admin.rotate_master(new.clone()).unwrap(), 2);
        std::fs::write(&key_file, new.to_hex()).unwrap();

        // A fresh process needs the new key now.
        assert!(Keyring::open(d.path(), Some(MasterKeySource::Key(old))).is_err());
        let fresh = ring(d.path(), &new);
        assert_eq!(fresh.open_sealed(&a).unwrap().0, "alpha");
        // The running one (nothing of "b" unwrapped yet in a new instance's cache) follows
        // through its file, for reads and for new keys.
        server.keys.write().clear();
        assert_eq!(server.open_sealed(&b).unwrap().0, "beta");
        let c = server.seal("t", "c", "gamma").unwrap().unwrap();
        assert_eq!(fresh.open_sealed(&c).unwrap().0, "gamma");
    }
}
