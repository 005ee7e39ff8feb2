//! Who runs a run. A process that trains or evaluates a run holds its lease:
//! one row of `run_leases` with the process id, the host, when it started and
//! a heartbeat that a thread of the holder renews every [`HEARTBEAT`]. A lease
//! is alive while its heartbeat is fresh (younger than [`STALE_AFTER`]) and,
//! on the holder's own host, its process exists; a dead lease is taken over.
//!
//! "Interrupted" means exactly this: a run that has not finished and that no
//! live lease holds. Resuming takes the lease first, in one write
//! transaction with the check, so two processes can never both own a run.
//! Each acquisition has its own token: two jobs of one process (the desktop
//! app) are as distinct as two processes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::{Result, Store, StoreError};

/// How often the holder renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A lease whose heartbeat is older than this is dead, wherever its holder
/// runs (a process on another host, or one that hangs). Long enough that a
/// heartbeat queued behind another writer (a large import) is never missed.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// The process that holds a run's lease, as front ends show it.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct RunHolder {
    pub pid: u32,
    pub host: String,
    /// When it took the lease (UTC, ISO 8601).
    pub since: String,
    /// Seconds since its last heartbeat when the record was read.
    pub heartbeat_age_s: f64,
}

impl std::fmt::Display for RunHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} on {} (since {}, last heard from {:.0} s ago)",
            self.pid, self.host, self.since, self.heartbeat_age_s
        )
    }
}

impl RunHolder {
    /// Whether the holder runs on this machine (so that it can be signalled).
    pub fn is_on_this_host(&self) -> bool {
        self.host == this_host()
    }
}

/// This process as a lease holder.
fn this_host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Whether process `pid` exists on this host. Where the OS cannot tell us
/// (no `/proc`), only the heartbeat decides.
fn process_exists(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// The holder of a lease row, if the lease is alive.
pub(crate) fn live_holder(
    pid: Option<i64>,
    host: Option<String>,
    since: Option<String>,
    heartbeat_age_s: Option<f64>,
) -> Option<RunHolder> {
    let (pid, host, since, age) = (pid?, host?, since?, heartbeat_age_s?);
    let pid = u32::try_from(pid).ok()?;
    if age > STALE_AFTER.as_secs_f64() {
        return None;
    }
    if host == this_host() && !process_exists(pid) {
        return None;
    }
    Some(RunHolder {
        pid,
        host,
        since,
        heartbeat_age_s: age.max(0.0),
    })
}

/// SQL for "now" in seconds since the epoch, with fractions.
const NOW_S: &str = "((julianday('now') - 2440587.5) * 86400.0)";

/// The columns a run's select adds for its lease: pid, host, since, heartbeat age.
pub(crate) const HOLDER_COLUMNS: &str = "l.pid, l.host, l.started_at, \
    ((julianday('now') - 2440587.5) * 86400.0) - l.heartbeat_at";

/// A held lease on a run. Its thread renews the heartbeat until the lease is
/// dropped, which gives the run up.
#[derive(Debug)]
pub struct Lease {
    run_id: i64,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lease {
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// `Err` once the heartbeat found the lease gone: another process took
    /// the run over (this one was silent longer than [`STALE_AFTER`]), so
    /// this one must stop writing to it.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::Acquire) {
            return Err(StoreError::LeaseLost { run: self.run_id });
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which deletes the row.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes `run_id`'s lease inside `tx` (which must be a write transaction):
/// refused with [`StoreError::Busy`] while a live lease holds it.
pub(crate) fn acquire(
    tx: &Transaction<'_>,
    run_id: i64,
    run_name: &str,
) -> rusqlite::Result<Result<String>> {
    let current = tx
        .query_row(
            &format!("SELECT {HOLDER_COLUMNS} FROM run_leases l WHERE l.run_id = ?1"),
            [run_id],
            |r| Ok(live_holder(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?
        .flatten();
    if let Some(holder) = current {
        return Ok(Err(StoreError::Busy {
            run: run_id,
            name: run_name.to_string(),
            holder,
        }));
    }
    insert(tx, run_id).map(Ok)
}

/// Writes a lease of `run_id` for this process, replacing a dead one; returns its token.
pub(crate) fn insert(tx: &Transaction<'_>, run_id: i64) -> rusqlite::Result<String> {
    let token = new_token();
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO run_leases (run_id, token, pid, host, started_at, heartbeat_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), {NOW_S})"
        ),
        params![run_id, token, std::process::id(), this_host()],
    )?;
    Ok(token)
}

/// Starts the heartbeat of a lease just written with `token`.
pub(crate) fn start(path: PathBuf, run_id: i64, token: String) -> Result<Lease> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.clone(),
        source,
    };
    let conn = Connection::open(&path).map_err(sqlite)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite)?;
    let lost = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = {
        let lost = lost.clone();
        std::thread::Builder::new()
            .name(format!("lease-{run_id}"))
            .spawn(move || heartbeat(&conn, run_id, &token, &lost, &stopped))
            .map_err(|e| StoreError::corrupt(format!("run {run_id}'s lease"), e))?
    };
    Ok(Lease {
        run_id,
        lost,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn heartbeat(
    conn: &Connection,
    run_id: i64,
    token: &str,
    lost: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
        let renewed = conn.execute(
            &format!(
                "UPDATE run_leases SET heartbeat_at = {NOW_S} WHERE run_id = ?1 AND token = ?2"
            ),
            params![run_id, token],
        );
        // A busy store is retried at the next beat; a missing row means the
        // lease was taken over.
        if let Ok(0) = renewed {
            lost.store(true, Ordering::Release);
            return;
        }
    }
    let _ = conn.execute(
        "DELETE FROM run_leases WHERE run_id = ?1 AND token = ?2",
        params![run_id, token],
    );
}

impl Store {
    /// Takes the lease of run `run_id` for this process: refused with
    /// [`StoreError::Busy`], naming the holder, while another process (or
    /// another job of this one) holds it alive.
    pub fn take_lease(&mut self, run_id: i64) -> Result<Lease> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let name: String = tx
            .query_row(
                "SELECT COALESCE(name, 'run-' || id) FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .map_err(sqlite)?;
        let token = acquire(&tx, run_id, &name).map_err(sqlite)??;
        tx.commit().map_err(sqlite)?;
        start(self.path.clone(), run_id, token)
    }

    /// Removes run `run_id` and everything recorded of it (steps, evaluations,
    /// results, provenance); refused with [`StoreError::Busy`], naming the
    /// holder, while a process runs it. `false` when there is no such run.
    pub fn remove_run(&mut self, run_id: i64) -> Result<bool> {
        let path = self.path.clone();
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let Some(name) = tx
            .query_row(
                "SELECT COALESCE(name, 'run-' || id) FROM runs WHERE id = ?1",
                [run_id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(sqlite)?
        else {
            return Ok(false);
        };
        // Taking the lease is the check that nobody runs it; the row goes with the run.
        acquire(&tx, run_id, &name).map_err(sqlite)??;
        tx.execute("DELETE FROM runs WHERE id = ?1", [run_id])
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_heartbeat_or_a_gone_process_is_no_holder() {
        let me = std::process::id() as i64;
        let here = || Some(this_host());
        let since = || Some("2026-12-05T00:00:00Z".to_string());
        assert!(live_holder(Some(me), here(), since(), Some(1.0)).is_some());
        assert!(live_holder(Some(me), here(), since(), Some(31.0)).is_none());
        // No process has pid 2^31 - 1 here (pid_max is at most 2^22).
        let gone = i64::from(i32::MAX);
        if std::path::Path::new("/proc").is_dir() {
            assert!(live_holder(Some(gone), here(), since(), Some(1.0)).is_none());
        }
        // Another host's process is trusted while its heartbeat is fresh.
        assert!(live_holder(Some(gone), Some("elsewhere".into()), since(), Some(1.0)).is_some());
        assert!(live_holder(None, None, None, None).is_none());
    }
}
