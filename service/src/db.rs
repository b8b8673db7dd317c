//! The service's SQLite database: schema migrations and the message log.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, params};
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
    // Temporary tables and indices (large RETURNING results, sorts) stay in memory: the
    // scratch image has no /tmp and a read-only root, where SQLite's temporary files fail.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
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

/// The connection shared by the handlers. SQLite calls block, so they run on tokio's
/// blocking pool, one at a time (a single writer is what SQLite allows anyway).
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    pub fn new(conn: Connection) -> Db {
        Db(Arc::new(Mutex::new(conn)))
    }

    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.0.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave SQLite half-written (statements are
            // atomic), so a poisoned lock is still usable.
            let conn = db.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .context("database task failed")?
        .context("database query failed")
    }
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
}
