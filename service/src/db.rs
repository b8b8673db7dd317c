//! The service's SQLite database: schema migrations and the message log.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use anyhow::{Context, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use rusqlite_migration::{M, Migrations, SchemaVersion};
use serde::Serialize;

struct Migration {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

/// The schema, oldest first. Append only: a released migration never changes.
const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "create the messages table",
        up: "CREATE TABLE messages (
                 id          INTEGER PRIMARY KEY,
                 body        TEXT NOT NULL,
                 received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             );",
        down: "DROP TABLE messages;",
    },
    Migration {
        name: "index messages by arrival time",
        up: "CREATE INDEX messages_received_at ON messages (received_at);",
        down: "DROP INDEX messages_received_at;",
    },
];

pub fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|m| M::up(m.up).down(m.down).comment(m.name))
            .collect(),
    )
}

/// Opens (creating if needed) the database file with the settings the service relies on.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    // WAL lets readers (readyz, /messages) proceed while a message is written.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    settings(&conn)?;
    Ok(conn)
}

/// Opens a read-only connection to a database `open` has set up (in WAL mode).
pub fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .with_context(|| format!("cannot open the database {} to read", path.display()))?;
    settings(&conn)?;
    Ok(conn)
}

/// What every connection shares.
fn settings(conn: &Connection) -> anyhow::Result<()> {
    // Temporary tables and indices (large RETURNING results, sorts) stay in memory: the
    // scratch image has no /tmp and a read-only root, where SQLite's temporary files fail.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Without the query planner stability guarantee, binding `LIMIT ?1` expires the cached
    // statement and SQLite parses and plans it again on every call (a third of the query's
    // instructions for `/messages?limit=100`).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Where a database stands against this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub applied: usize,
    pub latest: usize,
}

impl Status {
    pub fn pending(&self) -> usize {
        self.latest.saturating_sub(self.applied)
    }
}

pub fn status(conn: &Connection) -> anyhow::Result<Status> {
    let latest = MIGRATIONS.len();
    let applied = match migrations().current_version(conn)? {
        SchemaVersion::NoneSet => 0,
        SchemaVersion::Inside(v) => v.get(),
        SchemaVersion::Outside(v) => bail!(
            "the database is at schema version {v}, newer than this build knows ({latest}): \
             run a newer build, or `migrate down --to {latest}` with the newer build"
        ),
    };
    Ok(Status { applied, latest })
}

/// The description of migration `version` (1-based).
pub fn describe(version: usize) -> &'static str {
    version
        .checked_sub(1)
        .and_then(|i| MIGRATIONS.get(i))
        .map_or("", |m| m.name)
}

/// Fails with the fix when migrations are pending: the service must not run on a schema it
/// does not expect.
pub fn ensure_current(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let status = status(conn)?;
    if status.pending() > 0 {
        bail!(
            "the database {} has {} pending migration(s) (at version {} of {}): run `migrate up` \
             with the same DATABASE_PATH, or start with MIGRATE_ON_START=true",
            path.display(),
            status.pending(),
            status.applied,
            status.latest
        );
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: i64,
    pub body: String,
    pub received_at: String,
}

pub fn insert_message(conn: &Connection, body: &str) -> rusqlite::Result<Message> {
    conn.query_row(
        "INSERT INTO messages (body) VALUES (?1) RETURNING id, body, received_at",
        params![body],
        row_to_message,
    )
}

/// A list stops growing past this many bytes of message bodies: 1000 messages of 1 MiB
/// would otherwise make one request build a gigabyte of JSON.
pub const LIST_BYTES: usize = 8 << 20;

/// The latest `limit` messages, newest first, stopping before the bodies pass `LIST_BYTES`
/// (the newest message is always included).
pub fn latest_messages(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Message>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, body, received_at FROM messages ORDER BY id DESC LIMIT ?1")?;
    let mut list = Vec::new();
    let mut bytes = 0;
    for message in stmt.query_map(params![limit], row_to_message)? {
        let message = message?;
        bytes += message.body.len();
        if bytes > LIST_BYTES && !list.is_empty() {
            break;
        }
        list.push(message);
    }
    Ok(list)
}

pub fn ping(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT 1", [], |_| Ok(()))
        .optional()
        .map(drop)
}

fn row_to_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        body: row.get(1)?,
        received_at: row.get(2)?,
    })
}

/// The connections shared by the handlers: one writer, and optionally a few read-only
/// connections (WAL lets them read while the writer writes).
///
/// The writer's calls block on locks and disk, so they run on tokio's blocking pool, one at
/// a time (a single writer is what SQLite allows anyway). A read takes a free reader and runs
/// on the calling thread: a bounded read costs less than serialising its result, which the
/// handler does on that thread anyway, and it saves the blocking pool's round trip (a wake-up
/// of a pool thread and of the task: about 3 context switches per request).
#[derive(Clone)]
pub struct Db {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<[Mutex<Connection>]>,
}

impl Db {
    /// One connection for everything: reads go through the writer.
    pub fn new(conn: Connection) -> Db {
        Db {
            writer: Arc::new(Mutex::new(conn)),
            readers: Arc::new([]),
        }
    }

    /// The writer `conn` and `readers` read-only connections to the same file at `path`.
    /// Readers need WAL: on a database in another journal mode (`:memory:`, say) there are
    /// none, and reads go through the writer.
    pub fn with_readers(conn: Connection, path: &Path, readers: usize) -> anyhow::Result<Db> {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let readers = if mode.eq_ignore_ascii_case("wal") {
            readers
        } else {
            0
        };
        let readers = (0..readers)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<anyhow::Result<_>>()?;
        Ok(Db {
            writer: Arc::new(Mutex::new(conn)),
            readers,
        })
    }

    /// How many read-only connections `read` can use.
    pub fn readers(&self) -> usize {
        self.readers.len()
    }

    /// Runs `f` with the writer, on the blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&lock(&db)))
            .await
            .context("database task failed")?
            .context("database query failed")
    }

    /// Runs `f`, which must only read, with a free reader on this thread. When every reader
    /// is taken (more threads than readers), or there are none, `f` waits for one (or for
    /// the writer) on the blocking pool instead.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        for reader in self.readers.iter() {
            let conn = match reader.try_lock() {
                Ok(conn) => conn,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return f(&conn).context("database query failed");
        }
        if self.readers.is_empty() {
            return self.call(f).await;
        }
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || f(&lock(&readers[0])))
            .await
            .context("database task failed")?
            .context("database query failed")
    }
}

/// A panic while holding the lock cannot leave SQLite half-written (statements are atomic),
/// so a poisoned lock is still usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn up_then_down_round_trips() {
        let mut conn = fresh();
        assert_eq!(
            status(&conn).unwrap(),
            Status {
                applied: 0,
                latest: 2
            }
        );
        migrations().to_latest(&mut conn).unwrap();
        assert_eq!(status(&conn).unwrap().pending(), 0);
        migrations().to_version(&mut conn, 0).unwrap();
        assert_eq!(status(&conn).unwrap().applied, 0);
    }

    #[test]
    fn pending_migrations_are_refused_with_the_fix() {
        let conn = fresh();
        let err = ensure_current(&conn, Path::new("x.db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 pending migration(s)"), "{err}");
        assert!(err.contains("migrate up"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_reported() {
        let conn = fresh();
        conn.pragma_update(None, "user_version", 9).unwrap();
        let err = status(&conn).unwrap_err().to_string();
        assert!(
            err.contains("version 9, newer than this build knows (2)"),
            "{err}"
        );
    }

    #[test]
    fn temporary_storage_is_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        let mode: i64 = conn
            .pragma_query_value(None, "temp_store", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "temp_store = MEMORY");
    }

    #[test]
    fn lists_stop_at_the_byte_budget() {
        let mut conn = fresh();
        migrations().to_latest(&mut conn).unwrap();
        let big = "x".repeat(LIST_BYTES / 2);
        for _ in 0..3 {
            insert_message(&conn, &big).unwrap();
        }
        assert_eq!(latest_messages(&conn, 10).unwrap().len(), 2);
        insert_message(&conn, &"y".repeat(LIST_BYTES + 1)).unwrap();
        let list = latest_messages(&conn, 10).unwrap();
        assert_eq!(
            list.len(),
            1,
            "the newest comes back even when over the budget"
        );
    }

    #[test]
    fn messages_come_back_newest_first() {
        let mut conn = fresh();
        migrations().to_latest(&mut conn).unwrap();
        for body in ["one", "two", "three"] {
            insert_message(&conn, body).unwrap();
        }
        let bodies: Vec<_> = latest_messages(&conn, 2)
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(bodies, ["three", "two"]);
    }

    fn file_db(readers: usize) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open(&path).unwrap();
        migrations().to_latest(&mut conn).unwrap();
        let db = Db::with_readers(conn, &path, readers).unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn readers_see_what_the_writer_wrote() {
        let (_dir, db) = file_db(2);
        assert_eq!(db.readers(), 2);
        for body in ["one", "two"] {
            db.call(move |c| insert_message(c, body)).await.unwrap();
        }
        let list = db.read(|c| latest_messages(c, 10)).await.unwrap();
        let bodies: Vec<_> = list.into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["two", "one"]);
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let (_dir, db) = file_db(1);
        let err = db.read(|c| insert_message(c, "sneaky")).await.unwrap_err();
        assert!(format!("{err:#}").contains("readonly"), "{err:#}");
        assert!(
            db.read(|c| latest_messages(c, 10))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_database_without_wal_reads_through_the_writer() {
        let mut conn = fresh();
        migrations().to_latest(&mut conn).unwrap();
        let db = Db::with_readers(conn, Path::new(":memory:"), 2).unwrap();
        assert_eq!(db.readers(), 0);
        db.call(|c| insert_message(c, "kept")).await.unwrap();
        let list = db.read(|c| latest_messages(c, 10)).await.unwrap();
        assert_eq!(list.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reader_serves_one_thread_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (_dir, db) = file_db(1);
        db.call(|c| insert_message(c, "shared")).await.unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let reads = (0..64).map(|_| {
            let (db, inside) = (db.clone(), inside.clone());
            tokio::spawn(async move {
                db.read(move |c| {
                    let others = inside.fetch_add(1, Ordering::SeqCst);
                    let list = latest_messages(c, 10);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(others, 0, "two threads used one reader at once");
                    list
                })
                .await
            })
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.unwrap().unwrap().len(), 1);
        }
    }

    #[test]
    fn every_connection_keeps_its_plan_across_bindings() {
        let (_dir, db) = file_db(1);
        for conn in [lock(&db.writer), lock(&db.readers[0])] {
            assert!(
                conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                    .unwrap()
            );
        }
    }
}
