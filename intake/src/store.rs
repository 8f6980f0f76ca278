//! The embedded SQLite store: one writer thread that commits requests in groups (one
//! transaction per group of requests waiting at the same time), WAL mode, de-duplication by
//! the `UNIQUE` `event_id`. A request is answered only after its group has committed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::body::Valid;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "beacon.db";

/// The table every event lands in. `data` holds the whole event as canonical JSON, so any
/// attribute can be read with `json_extract(data, '$.plan')`.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    event_time  TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    event_name  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    data        TEXT NOT NULL
);";

/// How hard SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `synchronous=FULL`: a commit survives a power loss (one fsync per group of requests).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a crash of the process, not of the machine.
    Normal,
}

/// Why a write was not done. Both are answered with 503 and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Too many items are waiting for the writer: shed load.
    Busy {
        /// Items waiting.
        pending: usize,
    },
    /// SQLite failed (disk full, I/O error, …).
    Failed(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Busy { pending } => write!(
                f,
                "store busy: {pending} items are waiting to be written; retry later"
            ),
            StoreError::Failed(e) => write!(f, "store write failed: {e}"),
        }
    }
}

/// What one request's write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inserted {
    /// Rows added.
    pub accepted: usize,
    /// Items whose `event_id` was already stored (or repeated in the same request).
    pub duplicates: usize,
}

struct Job {
    rows: Vec<Valid>,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// Handle to the writer thread.
pub struct Store {
    tx: Option<mpsc::Sender<Job>>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// Opens (creating if needed) the database for writing and applies the schema.
pub fn open_writer(path: &Path, sync: SyncMode) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        },
    )?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Opens the database read-only (for `beacon tail` and `beacon query`).
pub fn open_reader(path: &Path) -> Result<Connection, String> {
    if !path.exists() {
        return Err(format!(
            "no store at {}: start `beacon serve` first, or pass --data-dir",
            path.display()
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "query_only", "ON")
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Most rows committed in one transaction (a group may hold several requests).
const MAX_GROUP_ROWS: usize = 50_000;

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    beacon::schema::format_rfc3339_ms(ms)
}

fn write_group(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Inserted>> {
    let tx = conn.transaction()?;
    let received = now_rfc3339();
    let mut out = Vec::with_capacity(jobs.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO events
             (event_id, event_time, event_type, event_name, received_at, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for job in jobs {
            let mut r = Inserted::default();
            for v in &job.rows {
                let n = stmt.execute(params![
                    v.event_id,
                    v.event_time,
                    v.event_type,
                    v.event_name,
                    received,
                    v.json
                ])?;
                if n == 1 {
                    r.accepted += 1;
                } else {
                    r.duplicates += 1;
                }
            }
            out.push(r);
        }
    }
    tx.commit()?;
    Ok(out)
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, pending: Arc<AtomicUsize>) {
    while let Ok(first) = rx.recv() {
        let mut rows = first.rows.len();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.rows.len();
                    group.push(j);
                }
                Err(_) => break,
            }
        }
        let result = write_group(&mut conn, &group);
        pending.fetch_sub(rows, Ordering::AcqRel);
        match result {
            Ok(counts) => {
                for (job, r) in group.into_iter().zip(counts) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in group {
                    let _ = job.reply.send(Err(StoreError::Failed(msg.clone())));
                }
            }
        }
    }
    // Every sender is gone: the server has stopped. Fold the WAL into the database.
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

impl Store {
    /// Opens `<data_dir>/beacon.db` (creating the directory) and starts the writer thread.
    /// At most `max_pending` items wait for the writer; past that, writes are refused as busy.
    pub fn open(data_dir: &Path, sync: SyncMode, max_pending: usize) -> Result<Store, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let conn =
            open_writer(&path, sync).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let p = pending.clone();
        let thread = std::thread::Builder::new()
            .name("beacon-store".into())
            .spawn(move || writer_loop(conn, rx, p))
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(Store {
            tx: Some(tx),
            pending,
            max_pending,
            thread: Some(thread),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Items waiting for the writer.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Stores the items; resolves after the commit.
    pub async fn insert(&self, rows: Vec<Valid>) -> Result<Inserted, StoreError> {
        if rows.is_empty() {
            return Ok(Inserted::default());
        }
        let n = rows.len();
        let before = self.pending.fetch_add(n, Ordering::AcqRel);
        // A request larger than the bound still goes through when nothing else waits.
        if before > 0 && before + n > self.max_pending {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            return Err(StoreError::Busy { pending: before });
        }
        let (reply, rx) = oneshot::channel();
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(Job { rows, reply }).is_ok())
            .unwrap_or(false);
        if !sent {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            return Err(StoreError::Failed("the store is shut down".into()));
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Failed("the store thread stopped".into())))
    }

    /// Lets the writer finish what is queued, checkpoints, and waits for it.
    pub fn close(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Valid {
        Valid {
            index: 0,
            event_id: id.into(),
            event_time: "2026-01-01T00:00:00.000Z".into(),
            event_type: "behavioral".into(),
            event_name: "x".into(),
            json: format!("{{\"event_id\":\"{id}\"}}"),
        }
    }

    #[tokio::test]
    async fn duplicates_are_counted_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SyncMode::Normal, 1000).unwrap();
        let r = store
            .insert(vec![row("a"), row("b"), row("a")])
            .await
            .unwrap();
        assert_eq!(
            r,
            Inserted {
                accepted: 2,
                duplicates: 1
            }
        );
        let r = store.insert(vec![row("b"), row("c")]).await.unwrap();
        assert_eq!(
            r,
            Inserted {
                accepted: 1,
                duplicates: 1
            }
        );
        let path = store.path().to_owned();
        store.close();
        let conn = open_reader(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert!(conn.execute("DELETE FROM events", []).is_err());
    }
}
