//! Integration tests of berth-store against real SQLite files in temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use berth_store::rusqlite::{self, OptionalExtension};
use berth_store::{Store, StoreError};

const COMPONENT: &str = "widgets";
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "ALTER TABLE widgets ADD COLUMN color TEXT",
];

/// Env var that tells `child_open_probe` to try opening the store in the named directory.
const PROBE_ENV: &str = "BERTH_STORE_TEST_PROBE_DIR";

/// A service-style error type: wraps store and SQLite errors and has its own refusals.
#[derive(Debug)]
enum TestError {
    Store(StoreError),
    Sqlite(rusqlite::Error),
    Refused,
}

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestError::Store(e) => write!(f, "store: {e}"),
            TestError::Sqlite(e) => write!(f, "sqlite: {e}"),
            TestError::Refused => f.write_str("refused"),
        }
    }
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        TestError::Store(e)
    }
}

impl From<rusqlite::Error> for TestError {
    fn from(e: rusqlite::Error) -> Self {
        TestError::Sqlite(e)
    }
}

fn open_migrated(dir: &Path) -> Store {
    let store = Store::open(dir).expect("open store");
    store.migrate(COMPONENT, MIGRATIONS).expect("migrate");
    store
}

fn insert_widget(store: &Store, name: &str) -> Result<i64, TestError> {
    let name = name.to_owned();
    store.write_blocking(move |tx| {
        tx.execute("INSERT INTO widgets (name) VALUES (?1)", [&name])?;
        Ok(tx.last_insert_rowid())
    })
}

fn widget_count(store: &Store) -> i64 {
    store
        .read_blocking(|conn| {
            conn.query_row("SELECT COUNT(*) FROM widgets", [], |row| row.get(0)).map_err(TestError::from)
        })
        .expect("count widgets")
}

#[test]
fn open_creates_private_directory_and_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.data_dir(), dir);
    assert_eq!(store.revision(), 0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("state.db")), 0o600);
    assert_eq!(mode(&dir.join("berth.lock")), 0o600);

    let (journal_mode, synchronous, foreign_keys) = store
        .write_blocking(|tx| {
            let journal: String = tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync: i64 = tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let fk: i64 = tx.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            Ok::<_, TestError>((journal, sync, fk))
        })
        .unwrap();
    assert_eq!(journal_mode, "wal");
    assert_eq!(mode(&dir.join("state.db-wal")), 0o600);
    assert_eq!(mode(&dir.join("state.db-shm")), 0o600);
    assert_eq!(synchronous, 2, "synchronous=FULL");
    assert_eq!(foreign_keys, 1);
}

#[test]
fn migrations_apply_once_and_are_idempotent_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_migrated(tmp.path());
        // Calling again in the same process is a no-op.
        store.migrate(COMPONENT, MIGRATIONS).unwrap();
        insert_widget(&store, "a").unwrap();
    }
    let store = open_migrated(tmp.path());
    let (versions, rows): (Vec<i64>, i64) = store
        .read_blocking(|conn| {
            let mut stmt =
                conn.prepare("SELECT version FROM _berth_migrations WHERE component = ?1 ORDER BY version")?;
            let versions = stmt.query_map([COMPONENT], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
            let rows = conn.query_row("SELECT COUNT(*) FROM widgets", [], |r| r.get(0))?;
            Ok::<_, TestError>((versions, rows))
        })
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(rows, 1);

    // A later release appends a migration: only the new one runs.
    let mut more = MIGRATIONS.to_vec();
    more.push("CREATE INDEX widgets_by_color ON widgets (color)");
    store.migrate(COMPONENT, &more).unwrap();
    store.migrate(COMPONENT, &more).unwrap();
    let applied: i64 = store
        .read_blocking(|conn| {
            conn.query_row("SELECT COUNT(*) FROM _berth_migrations WHERE component = ?1", [COMPONENT], |r| r.get(0))
                .map_err(TestError::from)
        })
        .unwrap();
    assert_eq!(applied, 3);

    // Components are independent.
    store.migrate("gadgets", &["CREATE TABLE gadgets (id INTEGER PRIMARY KEY)"]).unwrap();
}

#[test]
fn failing_migration_leaves_no_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let bad = [
        "CREATE TABLE ok_table (id INTEGER PRIMARY KEY)",
        "CREATE TABLE half (id INTEGER PRIMARY KEY); THIS IS NOT SQL",
    ];
    let err = store.migrate("bad", &bad).unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
    let (applied, half_exists): (i64, Option<String>) = store
        .read_blocking(|conn| {
            let applied =
                conn.query_row("SELECT COUNT(*) FROM _berth_migrations WHERE component = 'bad'", [], |r| r.get(0))?;
            let half =
                conn.query_row("SELECT name FROM sqlite_master WHERE name = 'half'", [], |r| r.get(0)).optional()?;
            Ok::<_, TestError>((applied, half))
        })
        .unwrap();
    assert_eq!(applied, 1, "the first migration committed on its own");
    assert_eq!(half_exists, None, "the failed migration rolled back");
}

#[test]
fn schema_too_new_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open_migrated(tmp.path()));
    let store = Store::open(tmp.path()).unwrap();
    let err = store.migrate(COMPONENT, &MIGRATIONS[..1]).unwrap_err();
    match err {
        StoreError::SchemaTooNew { ref component, applied, known } => {
            assert_eq!(component, COMPONENT);
            assert_eq!(applied, 2);
            assert_eq!(known, 1);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer version of berth"), "{err}");
}

#[test]
fn write_commits_and_revision_persists_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_migrated(tmp.path());
        assert_eq!(store.revision(), 0, "migrations do not bump the revision");
        insert_widget(&store, "a").unwrap();
        assert_eq!(store.revision(), 1);
        insert_widget(&store, "b").unwrap();
        assert_eq!(store.revision(), 2);
        assert_eq!(*store.subscribe().borrow(), 2);
    }
    let store = open_migrated(tmp.path());
    assert_eq!(store.revision(), 2);
    assert_eq!(widget_count(&store), 2);
    insert_widget(&store, "c").unwrap();
    assert_eq!(store.revision(), 3);
}

#[test]
fn failing_write_rolls_back_and_does_not_notify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    insert_widget(&store, "a").unwrap();
    let mut rx = store.subscribe();
    rx.mark_unchanged();

    // The closure's own error.
    let err = store
        .write_blocking(|tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('ghost')", [])?;
            Err::<(), _>(TestError::Refused)
        })
        .unwrap_err();
    assert!(matches!(err, TestError::Refused));
    // An SQL error part-way through.
    let err = store
        .write_blocking(|tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('ghost2')", [])?;
            tx.execute("INSERT INTO widgets (name) VALUES ('a')", [])?; // UNIQUE violation
            Ok::<_, TestError>(())
        })
        .unwrap_err();
    assert!(matches!(err, TestError::Sqlite(_)), "{err}");

    assert_eq!(widget_count(&store), 1);
    assert_eq!(store.revision(), 1);
    assert!(!rx.has_changed().unwrap(), "no notification for a rolled-back write");

    // The writer is still usable afterwards.
    insert_widget(&store, "b").unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(store.revision(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_write_rolls_back_and_reports_task_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    let result: Result<(), TestError> = store
        .write(|tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('ghost')", [])?;
            panic!("closure panicked on purpose");
        })
        .await;
    assert!(matches!(result, Err(TestError::Store(StoreError::TaskFailed))));
    assert_eq!(store.revision(), 0);
    // The poisoned writer is recovered and the half-done transaction is gone.
    let id = store
        .write(|tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('real')", [])?;
            Ok::<_, TestError>(tx.last_insert_rowid())
        })
        .await
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(widget_count(&store), 1);
    assert_eq!(store.revision(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_wakes_on_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    let mut rx = store.subscribe();
    let waiter = tokio::spawn(async move {
        rx.changed().await.expect("sender alive");
        let seen = *rx.borrow_and_update();
        seen
    });
    tokio::task::yield_now().await;
    store
        .write(|tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('x')", [])?;
            Ok::<_, TestError>(())
        })
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("subscriber woke").unwrap();
    assert_eq!(seen, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_from_many_tasks_all_land() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    const TASKS: usize = 64;
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .write(move |tx| {
                    tx.execute("INSERT INTO widgets (name) VALUES (?1)", [format!("w{i}")])?;
                    Ok::<_, TestError>(())
                })
                .await
        }));
    }
    // Reads interleave with the writes without error.
    for _ in 0..8 {
        store
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM widgets", [], |r| r.get::<_, i64>(0)).map_err(TestError::from)
            })
            .await
            .unwrap();
    }
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let count = store
        .read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM widgets", [], |r| r.get::<_, i64>(0)).map_err(TestError::from)
        })
        .await
        .unwrap();
    assert_eq!(count, TASKS as i64);
    assert_eq!(store.revision(), TASKS as u64);
}

#[test]
fn readers_see_committed_data_while_a_write_is_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    insert_widget(&store, "committed").unwrap();

    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let writer_store = store.clone();
    let writer = std::thread::spawn(move || {
        writer_store.write_blocking(move |tx| {
            tx.execute("INSERT INTO widgets (name) VALUES ('pending')", [])?;
            inside_tx.send(()).ok();
            release_rx.recv_timeout(Duration::from_secs(5)).ok();
            Ok::<_, TestError>(())
        })
    });
    inside_rx.recv_timeout(Duration::from_secs(5)).unwrap();

    // The write transaction is open and holds the write lock; a read neither waits nor sees it.
    let started = std::time::Instant::now();
    let names: Vec<String> = store
        .read_blocking(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM widgets ORDER BY id")?;
            let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok::<_, TestError>(names)
        })
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(names, vec!["committed".to_owned()]);
    assert_eq!(store.revision(), 1);

    release_tx.send(()).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(widget_count(&store), 2);
    assert_eq!(store.revision(), 2);
}

#[test]
fn a_read_sees_one_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    insert_widget(&store, "first").unwrap();
    let writer_store = store.clone();
    let (before, after) = store
        .read_blocking(move |conn| {
            let before: i64 = conn.query_row("SELECT COUNT(*) FROM widgets", [], |r| r.get(0))?;
            // A write commits between two queries of the same read.
            insert_widget(&writer_store, "second")?;
            let after: i64 = conn.query_row("SELECT COUNT(*) FROM widgets", [], |r| r.get(0))?;
            Ok::<_, TestError>((before, after))
        })
        .unwrap();
    assert_eq!((before, after), (1, 1));
    assert_eq!(widget_count(&store), 2);
}

#[test]
fn reads_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_migrated(tmp.path());
    let err = store
        .read_blocking(|conn| {
            conn.execute("INSERT INTO widgets (name) VALUES ('sneaky')", [])?;
            Ok::<_, TestError>(())
        })
        .unwrap_err();
    assert!(matches!(err, TestError::Sqlite(_)), "{err}");
    assert_eq!(widget_count(&store), 0);
}

#[test]
fn second_open_in_same_process_is_locked_until_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let clone = store.clone();
    let err = Store::open(tmp.path()).unwrap_err();
    match &err {
        StoreError::Locked { path } => assert_eq!(path, tmp.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "another berth server is already using the data directory {} (lock file {}/berth.lock is held)",
            tmp.path().display(),
            tmp.path().display()
        )
    );

    // Clones share the lock: dropping one is not enough.
    drop(store);
    assert!(matches!(Store::open(tmp.path()), Err(StoreError::Locked { .. })));
    drop(clone);
    let reopened = Store::open(tmp.path()).expect("lock released on drop");
    drop(reopened);
}

/// Runs this test binary again as a child process that only tries to open the store in `dir`.
fn probe_from_child(dir: &Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["child_open_probe", "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once("PROBE: ").map(|(_, result)| result.trim()))
        .unwrap_or_else(|| panic!("no probe result in child output: {stdout}"))
        .to_owned()
}

/// Not a test on its own: when run by `probe_from_child` it reports what opening the store did.
#[test]
fn child_open_probe() {
    let Some(dir) = std::env::var_os(PROBE_ENV) else {
        return;
    };
    match Store::open(Path::new(&dir)) {
        Ok(_) => println!("PROBE: opened"),
        Err(StoreError::Locked { .. }) => println!("PROBE: locked"),
        Err(other) => println!("PROBE: error {other}"),
    }
}

#[test]
fn open_from_another_process_is_locked_until_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert_eq!(probe_from_child(tmp.path()), "locked");
    drop(store);
    assert_eq!(probe_from_child(tmp.path()), "opened");
}
