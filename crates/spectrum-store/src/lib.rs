//! The experiment store: one SQLite file holding datasets, tasks, models and runs.
//!
//! Opening a store turns on WAL and foreign keys and runs pending migrations.
//! Writes that belong together (an import) happen in one transaction, so a crash
//! leaves either all of them or none. Only this crate speaks SQL.

mod datasets;
mod leases;
mod migrations;
mod models;
pub mod records;
mod runs;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use spectrum_core::{ErrorCode, Explain, Fix};

pub use datasets::{DatasetDetail, DatasetSummary, ImportTx, NewDataset, TaskFilter, TaskSummary};
pub use leases::{HEARTBEAT, Lease, RunHolder, STALE_AFTER};
pub use models::{ModelRecord, NewModel};
pub use records::{RECORD_VERSION, RowRecord, TaskRecord};
pub use runs::{
    DeviceSpec, EvalMetrics, EvalOutcome, EvalTaskRecord, Family, NewRun, RunDataset, RunKind,
    RunRecord, RunRef, RunStatus, StepMetrics,
};

/// `PRAGMA application_id` of a Spectrum Studio store ("SPEC").
const APPLICATION_ID: i32 = 0x5350_4543;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the folder for the store {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a SQLite database", path.display())]
    NotADatabase { path: PathBuf },
    #[error("{}: this SQLite database belongs to another program", path.display())]
    ForeignDatabase { path: PathBuf },
    #[error(
        "{}: the store was written by a newer Spectrum Studio (schema version {found}; this build knows up to {supported}); \
         it was left untouched",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A record this build cannot read back: `what` names it, `why` says how.
    #[error("{what}: {why}")]
    Corrupt { what: String, why: String },
    /// A run another process (or another job of this one) is running.
    #[error("run {run} ({name}) is being run by {holder}")]
    Busy {
        run: i64,
        name: String,
        holder: RunHolder,
    },
    /// This process's lease on a run was taken over: it was silent too long.
    #[error(
        "run {run} was taken over by another process: this one did not renew its lease for {} s, and stopped writing to it",
        STALE_AFTER.as_secs()
    )]
    LeaseLost { run: i64 },
    /// A name that several records share.
    #[error("{} {}s are named {name:?} (ids {})", ids.len(), what, join_ids(ids))]
    Ambiguous {
        what: &'static str,
        name: String,
        ids: Vec<i64>,
    },
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl StoreError {
    fn corrupt(what: impl Into<String>, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

impl Explain for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotADatabase { .. }
            | StoreError::ForeignDatabase { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::Ambiguous { .. } => ErrorCode::BadInput,
            StoreError::Busy { .. } => ErrorCode::Busy,
            StoreError::CreateDir { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::Sqlite { .. }
            | StoreError::Corrupt { .. } => ErrorCode::Internal,
        }
    }

    fn fix(&self) -> Option<Fix> {
        match self {
            StoreError::NotADatabase { .. } | StoreError::ForeignDatabase { .. } => {
                Some(Fix::OtherStore)
            }
            StoreError::NewerSchema { .. } => Some(Fix::Upgrade),
            StoreError::Ambiguous { .. } => Some(Fix::say("name one by its id")),
            StoreError::Busy { holder, .. } => Some(Fix::say(format!(
                "wait for it to finish, or stop that process (process {} on {}) and try again",
                holder.pid, holder.host
            ))),
            StoreError::CreateDir { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::Sqlite { .. }
            | StoreError::Corrupt { .. } => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let sqlite = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(sqlite)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure().map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                StoreError::NotADatabase {
                    path: path.to_path_buf(),
                }
            }
            other => sqlite(other),
        })?;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL with synchronous=NORMAL: a committed transaction survives a crash of
        // the process; readers never block the writer.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", true)?;
        Ok(())
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `sql`, whose one column holds JSON text, and parses every row;
    /// `what` names a row in the error when one does not parse.
    fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &str,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(params, |r| r.get::<_, String>(0))
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for text in rows {
            let text = text.map_err(|e| self.sqlite(e))?;
            out.push(
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::corrupt(what, format_args!("not valid JSON: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i64 = migrations::MIGRATIONS.len() as i64;

    fn migrate(&mut self) -> Result<()> {
        let pragma = |name: &str| {
            self.conn
                .pragma_query_value(None, name, |r| r.get::<_, i64>(0))
        };
        let version = pragma("user_version").map_err(|e| self.sqlite(e))?;
        let app_id = pragma("application_id").map_err(|e| self.sqlite(e))?;
        let has_tables: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))?;
        if app_id != APPLICATION_ID as i64 && (has_tables || app_id != 0) {
            return Err(StoreError::ForeignDatabase {
                path: self.path.clone(),
            });
        }
        if version > Self::SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: Self::SCHEMA_VERSION,
            });
        }
        for (i, sql) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .skip(version as usize)
        {
            let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "application_id", APPLICATION_ID))
                .and_then(|_| tx.pragma_update(None, "user_version", i as i64 + 1))
                .and_then(|_| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        Ok(())
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.sqlite(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_creates_schema_with_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/store.sqlite3");
        let store = Store::open(&path).expect("open");
        assert_eq!(
            store.schema_version().expect("version"),
            Store::SCHEMA_VERSION
        );
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("pragma");
        assert_eq!(fk, 1);
        drop(store);
        // Reopening is a no-op migration.
        assert_eq!(
            Store::open(&path)
                .expect("reopen")
                .schema_version()
                .expect("v"),
            Store::SCHEMA_VERSION
        );
    }

    /// A store written before provenance (schema 4) opens: its runs read
    /// back with no model hash and no datasets, its CUDA devices respelled.
    #[test]
    fn a_schema_4_store_opens_and_its_runs_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite3");
        {
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &migrations::MIGRATIONS[..4] {
                tx.execute_batch(sql).expect("old migration");
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("id");
            tx.pragma_update(None, "user_version", 4).expect("version");
            tx.execute_batch(
                "INSERT INTO runs (kind, status, spec, spec_hash, seed, device, app_version, created_at)
                 VALUES ('train', 'finished', '{}', 'h', 0, 'cuda(1)', '0.1.0', '2026-11-01T00:00:00Z'),
                        ('eval', 'cancelled', '{}', 'h', 0, 'cpu', '0.1.0', '2026-11-01T00:00:00Z');",
            )
            .expect("old runs");
            tx.commit().expect("commit");
        }
        let store = Store::open(&path).expect("open");
        assert_eq!(store.schema_version().expect("v"), Store::SCHEMA_VERSION);
        let runs = store.runs(None).expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].kind, runs[0].status, runs[0].device),
            (RunKind::Eval, RunStatus::Cancelled, DeviceSpec::Cpu)
        );
        assert_eq!(
            (runs[1].kind, runs[1].status, runs[1].device),
            (RunKind::Train, RunStatus::Finished, DeviceSpec::Cuda(1))
        );
        assert!(
            runs.iter()
                .all(|r| r.model_hash.is_none() && r.datasets.is_empty())
        );
    }

    /// Schema 6 recorded a skipped task as a `{"skipped": reason}` summary;
    /// schema 7 reads it as a skipped outcome, and a summary as done.
    #[test]
    fn a_schema_6_skip_reads_back_as_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.sqlite3");
        {
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &migrations::MIGRATIONS[..6] {
                tx.execute_batch(sql).expect("old migration");
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("id");
            tx.pragma_update(None, "user_version", 6).expect("version");
            tx.execute_batch(
                r#"INSERT INTO runs (kind, status, spec, spec_hash, seed, device, app_version, created_at)
                   VALUES ('eval', 'finished', '{}', 'h', 0, 'cpu', '0.1.0', '2026-11-01T00:00:00Z');
                   INSERT INTO eval_tasks (run_id, family, task, summary) VALUES
                     (1, 'steer', 'coin', '{"task": "coin", "skipped": "fewer than 10 sequences"}'),
                     (1, 'dist', 'urn', '{"task": "urn", "items": 1, "js": {"mean": 0.25, "se": null, "n": 1}, "kl": {"mean": 0.5, "se": null, "n": 1}, "reverse_kl": {"mean": 0.5, "se": null, "n": 1}, "tv": {"mean": 0.25, "se": null, "n": 1}, "cross_entropy": {"mean": 1.0, "se": null, "n": 1}, "mode_match": {"mean": 1.0, "se": null, "n": 1}, "coverage": {"mean": 0.9, "se": null, "n": 1}, "wasserstein": null, "unclean_boundaries": 0}');"#,
            )
            .expect("old results");
            tx.commit().expect("commit");
        }
        let store = Store::open(&path).expect("open");
        let tasks = store.eval_tasks(1).expect("tasks");
        let one = |mean| records::Stat {
            mean,
            se: None,
            n: 1,
        };
        assert_eq!(
            tasks
                .iter()
                .map(|t| (t.family, t.task.as_str(), &t.outcome))
                .collect::<Vec<_>>(),
            [
                (
                    Family::Steer,
                    "coin",
                    &EvalOutcome::Skipped {
                        reason: "fewer than 10 sequences".into()
                    }
                ),
                (
                    Family::Dist,
                    "urn",
                    &EvalOutcome::Done {
                        summary: Box::new(records::TaskRecord::Dist(records::DistTask {
                            task: "urn".into(),
                            items: 1,
                            js: one(0.25),
                            kl: one(0.5),
                            reverse_kl: one(0.5),
                            tv: one(0.25),
                            cross_entropy: one(1.0),
                            mode_match: one(1.0),
                            coverage: one(0.9),
                            wasserstein: None,
                            unclean_boundaries: 0,
                        }))
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_stored_spelling_this_build_does_not_know_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.sqlite3");
        let store = Store::open(&path).expect("open");
        // The CHECK constraint keeps SQL writers honest; without it, reading refuses.
        store
            .conn
            .execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 INSERT INTO runs (kind, status, spec, spec_hash, seed, device, app_version, created_at)
                 VALUES ('train', 'paused', '{}', 'h', 0, 'cpu', '0.1.0', '2026-11-01T00:00:00Z');",
            )
            .expect("insert");
        let err = store.runs(None).expect_err("unknown status");
        let chain: Vec<String> =
            std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
                .map(|e| e.to_string())
                .collect();
        assert!(
            chain
                .iter()
                .any(|e| e.contains("unknown RunStatus \"paused\"")),
            "{chain:?}"
        );
        for kind in RunKind::ALL {
            assert_eq!(RunKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).expect("json"),
                serde_json::json!(kind.as_str())
            );
        }
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(*status));
            assert_eq!(
                serde_json::to_value(status).expect("json"),
                serde_json::json!(status.as_str())
            );
        }
    }

    #[test]
    fn a_newer_store_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.sqlite3");
        drop(Store::open(&path).expect("open"));
        {
            let conn = Connection::open(&path).expect("raw open");
            conn.pragma_update(None, "user_version", Store::SCHEMA_VERSION + 1)
                .expect("bump");
        }
        let before = std::fs::read(&path).expect("read");
        let err = Store::open(&path).expect_err("newer schema must be refused");
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == Store::SCHEMA_VERSION + 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer Spectrum Studio"), "{err}");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "the file was modified"
        );
    }

    #[test]
    fn foreign_and_non_sqlite_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "this is not a database, just some text that is long enough to have a header",
        )
        .expect("write");
        assert!(matches!(
            Store::open(&text),
            Err(StoreError::NotADatabase { .. })
        ));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .expect("open")
            .execute_batch("CREATE TABLE t (x)")
            .expect("create");
        assert!(matches!(
            Store::open(&other),
            Err(StoreError::ForeignDatabase { .. })
        ));
    }
}
