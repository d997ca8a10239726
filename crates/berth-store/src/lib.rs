#![forbid(unsafe_code)]
//! berth's persistent state: one SQLite database per data directory.
//!
//! * One writer connection serialises every write in an `IMMEDIATE` transaction; each committed
//!   write bumps a persistent revision counter in the same transaction and then wakes subscribers.
//! * A small pool of read-only connections serves reads; in WAL mode readers never block the
//!   writer and the writer never blocks readers. Each read runs in one read transaction, so all the
//!   queries of one `read` closure see the same committed snapshot.
//! * `journal_mode=WAL` + `synchronous=FULL`: once `write` returns `Ok`, the transaction is on disk
//!   and survives `kill -9` and power loss.
//! * An exclusive lock on `<data_dir>/berth.lock`, held for the life of the [`Store`], keeps a
//!   second berth server away from the same directory.
//!
//! Each service owns its tables and creates them with [`Store::migrate`] at start.

use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::watch;

pub use rusqlite;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE_NAME: &str = "berth.lock";
/// Name of the SQLite database inside the data directory.
pub const DATABASE_FILE_NAME: &str = "state.db";

/// How long a connection waits for a lock held by another connection before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read-only connections kept for reuse; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 4;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another `Store` in this process) holds the data directory's lock.
    #[error(
        "another berth server is already using the data directory {} (lock file {} is held)",
        path.display(),
        path.join(LOCK_FILE_NAME).display()
    )]
    Locked { path: PathBuf },
    /// A filesystem operation on the data directory failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer berth that knows more migrations for this component.
    #[error(
        "the database has {applied} migrations applied for component {component:?} but this berth \
         knows only {known}; it was written by a newer version of berth"
    )]
    SchemaTooNew { component: String, applied: usize, known: usize },
    /// The blocking task running a store operation panicked or was cancelled.
    #[error("a state store task panicked or was cancelled")]
    TaskFailed,
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), source }
    }
}

/// Handle to the state store. Cheap to clone; all clones share one database, one writer
/// connection, one reader pool and one lock.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    db_path: PathBuf,
    /// The single writer connection; the mutex serialises writes.
    writer: Mutex<Connection>,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
    /// Latest committed revision; subscribers get a receiver of it.
    revision: watch::Sender<u64>,
    /// Held (and therefore locked) for the life of the store. Declared last so the database
    /// connections are closed before the lock is released.
    _lock: File,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.data_dir)
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering the guard if a previous holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    ///
    /// Creates `data_dir` with mode 0700 if missing, takes an exclusive lock on
    /// `<data_dir>/berth.lock` (held until the last clone of the `Store` is dropped), and opens
    /// `<data_dir>/state.db` (mode 0600) in WAL mode with `synchronous=FULL` and foreign keys on.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(|e| StoreError::io(data_dir, e))?;

        let lock_path = data_dir.join(LOCK_FILE_NAME);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path: data_dir.to_path_buf() }),
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
        }

        let db_path = data_dir.join(DATABASE_FILE_NAME);
        let created = create_private_file(&db_path)?;
        if created {
            // Make the new directory entry itself durable.
            File::open(data_dir).and_then(|dir| dir.sync_all()).map_err(|e| StoreError::io(data_dir, e))?;
        }

        let writer = Connection::open(&db_path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        let journal_mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %db_path.display(),
                journal_mode,
                "the filesystem does not support SQLite WAL mode; readers may wait for writers"
            );
        }
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS _berth_migrations (
                 component TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 applied_at TEXT NOT NULL,
                 PRIMARY KEY (component, version)
             );
             CREATE TABLE IF NOT EXISTS _berth_revision (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 revision INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO _berth_revision (id, revision) VALUES (1, 0);
             COMMIT;",
        )?;
        let revision: u64 =
            writer.query_row("SELECT revision FROM _berth_revision WHERE id = 1", [], |row| row.get(0))?;

        tracing::debug!(path = %db_path.display(), revision, "opened state store");

        let store = Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                db_path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                revision: watch::Sender::new(revision),
                _lock: lock_file,
            }),
        };
        // Open one reader now so that a problem with read-only access shows up at startup.
        let reader = store.open_reader()?;
        lock(&store.inner.readers).push(reader);
        Ok(store)
    }

    /// Applies the migrations of `component` that the database does not have yet.
    ///
    /// `migrations[i]` is version `i + 1`; the versions already applied are counted in
    /// `_berth_migrations`, and each remaining migration runs in its own transaction together with
    /// its `_berth_migrations` row. Migrations are append-only: never edit or reorder one that has
    /// shipped. Fails with [`StoreError::SchemaTooNew`] if the database has more migrations for the
    /// component than `migrations` holds.
    pub fn migrate(&self, component: &str, migrations: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.writer();
        loop {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let applied: i64 =
                tx.query_row("SELECT COUNT(*) FROM _berth_migrations WHERE component = ?1", [component], |row| {
                    row.get(0)
                })?;
            let applied = usize::try_from(applied).unwrap_or(usize::MAX);
            if applied > migrations.len() {
                return Err(StoreError::SchemaTooNew {
                    component: component.to_owned(),
                    applied,
                    known: migrations.len(),
                });
            }
            let Some(sql) = migrations.get(applied) else {
                return Ok(());
            };
            tx.execute_batch(sql)?;
            let version = i64::try_from(applied + 1).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO _berth_migrations (component, version, applied_at)
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                rusqlite::params![component, version],
            )?;
            tx.commit()?;
            tracing::debug!(component, version, "applied state store migration");
        }
    }

    /// Runs `f` in one `IMMEDIATE` transaction on the writer connection, on a blocking thread.
    ///
    /// On `Ok` the transaction commits together with a revision bump, and subscribers are notified
    /// after the commit; the call returns once the commit is durable. On `Err` (or a panic) the
    /// transaction is rolled back and nothing is notified. If the returned future is dropped
    /// before completion the write still runs to completion on its thread.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::TaskFailed)))
    }

    /// Runs `f` on a read-only connection, inside one read transaction (a consistent snapshot of
    /// committed data), on a blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::TaskFailed)))
    }

    /// Synchronous [`Store::write`] for startup code and non-async callers. Blocks the calling
    /// thread (do not call it from an async task). Must not be called from inside another
    /// `write`/`write_blocking` closure (the writer is not reentrant).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<StoreError>,
    {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
        // On `Err` the transaction is dropped here, which rolls it back.
        let value = f(&tx)?;
        let revision: u64 = tx
            .query_row(
                "UPDATE _berth_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision",
                [],
                |row| row.get(0),
            )
            .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        // Still holding the writer lock, so revisions are published in commit order.
        self.inner.revision.send_replace(revision);
        Ok(value)
    }

    /// Synchronous [`Store::read`] for startup code and non-async callers. Blocks the calling
    /// thread (do not call it from an async task).
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<StoreError>,
    {
        let idle = lock(&self.inner.readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = {
            // A deferred transaction: the snapshot is taken at the first read and held until the
            // end of `f`. Dropping it rolls back, which for a read transaction just ends it.
            let tx = Transaction::new_unchecked(&conn, TransactionBehavior::Deferred).map_err(StoreError::from)?;
            f(&tx)
        };
        // Only reuse a connection that is back in autocommit mode.
        if conn.is_autocommit() {
            let mut idle = lock(&self.inner.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }

    /// The latest committed revision: a counter bumped by every committed write, persistent
    /// across restarts and monotonic.
    pub fn revision(&self) -> u64 {
        *self.inner.revision.borrow()
    }

    /// A receiver of the latest committed revision; `changed()` wakes after each commit
    /// (several commits in quick succession may be seen as one change).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    /// The data directory this store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The writer connection, recovered from poison (and rolled back) if a writer panicked.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        let conn = lock(&self.inner.writer);
        if !conn.is_autocommit() {
            // Only reachable if a previous holder panicked between BEGIN and the transaction's
            // drop; nothing of that transaction may survive.
            if let Err(error) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(%error, "rolling back an abandoned write transaction failed");
            }
        }
        conn
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.inner.db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }
}

/// Creates `path` with mode 0600 if it does not exist, and makes sure it has mode 0600.
/// Returns whether the file was created.
fn create_private_file(path: &Path) -> Result<bool, StoreError> {
    let created = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(StoreError::io(path, e)),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| StoreError::io(path, e))?;
    Ok(created)
}
