//! Runs (training and, later, evaluation jobs): their spec, status, progress,
//! and per-step metrics. Metrics are written as the run goes, one row per
//! step, so a crash loses nothing that was recorded.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::leases::{self, HOLDER_COLUMNS, Lease, RunHolder};
use crate::records::{RECORD_VERSION, RowRecord, TaskRecord};
use crate::{Result, Store, StoreError};

pub use spectrum_core::{DeviceSpec, Family, RunKind, RunStatus};

/// A run as a user names it: its id, or its name (the newest run of that
/// name). Text parses digits as an id; over IPC a number is an id and a
/// string a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(untagged)]
pub enum RunRef {
    Id(i64),
    Name(String),
}

impl std::str::FromStr for RunRef {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<RunRef, Self::Err> {
        let s = s.trim();
        Ok(s.parse()
            .map_or_else(|_| RunRef::Name(s.to_string()), RunRef::Id))
    }
}

impl std::fmt::Display for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunRef::Id(id) => write!(f, "{id}"),
            RunRef::Name(name) => f.write_str(name),
        }
    }
}

impl From<i64> for RunRef {
    fn from(id: i64) -> RunRef {
        RunRef::Id(id)
    }
}

impl From<&str> for RunRef {
    fn from(text: &str) -> RunRef {
        let Ok(run) = text.parse();
        run
    }
}

impl From<&RunRecord> for RunRef {
    fn from(run: &RunRecord) -> RunRef {
        RunRef::Id(run.id)
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub kind: RunKind,
    pub name: String,
    pub spec: serde_json::Value,
    pub spec_hash: String,
    pub model_id: Option<i64>,
    /// The content hash of the model the run reads, when it is known.
    pub model_hash: Option<String>,
    /// The tasks the run reads: their datasets' names and content hashes are
    /// recorded with the run (provenance, as DESIGN.md promises).
    pub tasks: Vec<i64>,
    pub seed: i64,
    pub device: DeviceSpec,
    pub app_version: String,
    pub out_dir: String,
    pub total_steps: i64,
}

/// A dataset a run read, as it was when the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct RunDataset {
    /// The dataset's id; `None` once the dataset has been removed.
    pub id: Option<i64>,
    pub name: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct RunRecord {
    pub id: i64,
    pub kind: RunKind,
    pub name: String,
    pub status: RunStatus,
    /// The settings as the app stored them; it reads them typed
    /// (`spectrum_app::RunSettings`), so they are not part of the record
    /// front ends receive.
    #[serde(skip)]
    #[ts(skip)]
    pub spec: serde_json::Value,
    pub model: Option<String>,
    /// The content hash of the model when the run started (`None` for runs
    /// recorded before provenance was kept, and for remote models).
    pub model_hash: Option<String>,
    /// The datasets the run read (empty for runs recorded before provenance).
    pub datasets: Vec<RunDataset>,
    pub seed: i64,
    pub device: DeviceSpec,
    pub out_dir: String,
    pub step: i64,
    pub total_steps: i64,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// The registered model the run produced.
    pub result_model: Option<String>,
    /// The process running it now, if one is (its lease is alive).
    pub holder: Option<RunHolder>,
    /// Whether it can be resumed: it has not finished and no process runs
    /// it (cancelled, failed, or left `running` by a process that is gone).
    /// This is what "interrupted" means everywhere.
    pub resumable: bool,
}

impl RunRecord {
    /// A run that has not finished and that no live process holds.
    fn is_resumable(status: RunStatus, holder: Option<&RunHolder>) -> bool {
        status != RunStatus::Finished && holder.is_none()
    }
}

/// One optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ts_rs::TS)]
pub struct StepMetrics {
    pub step: i64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// Loss tokens in the step.
    pub tokens: i64,
    /// All tokens processed per second (context included).
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// A held-out evaluation during training (METHOD.md §4.1, outputs with index >= 1).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ts_rs::TS)]
pub struct EvalMetrics {
    pub step: i64,
    pub loss: f64,
    pub acc: f64,
    pub outputs: i64,
}

fn select() -> String {
    format!(
        "SELECT r.id, r.kind, COALESCE(r.name, 'run-' || r.id), r.status, r.spec, m.name, r.seed, r.device,
               COALESCE(r.out_dir, ''), r.step, r.total_steps, r.created_at, r.updated_at, r.finished_at,
               r.error, tm.name, r.model_hash,
               (SELECT json_group_array(json_object('id', rd.dataset_id, 'name', rd.name,
                                                    'content_hash', rd.content_hash))
                FROM (SELECT * FROM run_datasets WHERE run_id = r.id ORDER BY name, content_hash) rd),
               {HOLDER_COLUMNS}
        FROM runs r
        LEFT JOIN models m ON m.id = r.model_id
        LEFT JOIN models tm ON tm.id = r.result_model_id
        LEFT JOIN run_leases l ON l.run_id = r.id"
    )
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let spec: String = r.get(4)?;
    let status = r.get(3)?;
    let holder = leases::live_holder(r.get(18)?, r.get(19)?, r.get(20)?, r.get(21)?);
    Ok(RunRecord {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        status,
        spec: serde_json::from_str(&spec).unwrap_or(serde_json::Value::String(spec)),
        model: r.get(5)?,
        seed: r.get(6)?,
        device: r.get(7)?,
        out_dir: r.get(8)?,
        step: r.get(9)?,
        total_steps: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        finished_at: r.get(13)?,
        error: r.get(14)?,
        result_model: r.get(15)?,
        model_hash: r.get(16)?,
        datasets: {
            let text: String = r.get(17)?;
            serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(17, rusqlite::types::Type::Text, e.into())
            })?
        },
        resumable: RunRecord::is_resumable(status, holder.as_ref()),
        holder,
    })
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

impl Store {
    /// Records a new run as `running`, with the datasets of its tasks, and
    /// its lease, held by this process until the [`Lease`] is dropped.
    pub fn create_run(&mut self, run: &NewRun) -> Result<(RunRecord, Lease)> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let insert = || -> rusqlite::Result<(i64, String)> {
            let id: i64 = tx.query_row(
                &format!(
                    "INSERT INTO runs (kind, name, status, spec, spec_hash, model_id, model_hash, seed, device,
                                       app_version, created_at, updated_at, out_dir, total_steps)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {NOW}, {NOW}, ?11, ?12) RETURNING id"
                ),
                params![
                    run.kind,
                    run.name,
                    RunStatus::Running,
                    run.spec.to_string(),
                    run.spec_hash,
                    run.model_id,
                    run.model_hash,
                    run.seed,
                    run.device,
                    run.app_version,
                    run.out_dir,
                    run.total_steps
                ],
                |r| r.get(0),
            )?;
            let mut datasets = tx.prepare_cached(
                "INSERT OR IGNORE INTO run_datasets (run_id, dataset_id, name, content_hash)
                 SELECT ?1, d.id, d.name, d.content_hash FROM tasks t JOIN datasets d ON d.id = t.dataset_id
                 WHERE t.id = ?2",
            )?;
            for task in &run.tasks {
                datasets.execute(params![id, task])?;
            }
            drop(datasets);
            // A new run has no holder yet.
            let token = leases::insert(&tx, id)?;
            Ok((id, token))
        };
        let (id, token) = insert()
            .and_then(|made| tx.commit().map(|()| made))
            .map_err(|e| self.sqlite(e))?;
        let lease = leases::start(self.path.clone(), id, token)?;
        let record = self
            .run(id)?
            .ok_or_else(|| StoreError::corrupt(format!("run {id}"), "vanished after insert"))?;
        Ok((record, lease))
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(&format!("{} WHERE r.id = ?1", select()), [id], row)
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    /// Finds a run by id or name (the newest of that name).
    /// The run `run` names. An id that is no run's id still finds a run
    /// whose name is those digits.
    pub fn find_run(&self, run: &RunRef) -> Result<Option<RunRecord>> {
        let (id, name) = match run {
            RunRef::Id(id) => (Some(*id), id.to_string()),
            RunRef::Name(name) => (None, name.clone()),
        };
        self.conn
            .query_row(
                &format!(
                    "{} WHERE r.id = ?1 OR r.name = ?2 ORDER BY r.id = ?1 DESC, r.id DESC LIMIT 1",
                    select()
                ),
                params![id, name],
                row,
            )
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    /// Runs, newest first; `kind` filters.
    pub fn runs(&self, kind: Option<RunKind>) -> Result<Vec<RunRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{} WHERE ?1 IS NULL OR r.kind = ?1 ORDER BY r.id DESC",
                select()
            ))
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt.query_map([kind], row).map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }

    /// Sets the status; a terminal status also sets `finished_at`.
    pub fn set_run_status(
        &mut self,
        id: i64,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()> {
        let terminal = status.is_terminal();
        self.conn
            .execute(
                &format!(
                    "UPDATE runs SET status = ?2, error = ?3, updated_at = {NOW},
                     finished_at = CASE WHEN ?4 THEN {NOW} ELSE NULL END WHERE id = ?1"
                ),
                params![id, status, error, terminal],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// Records where the run keeps its files and how far it is.
    pub fn set_run_progress(
        &mut self,
        id: i64,
        step: i64,
        total_steps: i64,
        out_dir: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                &format!("UPDATE runs SET step = ?2, total_steps = ?3, out_dir = ?4, updated_at = {NOW} WHERE id = ?1"),
                params![id, step, total_steps, out_dir],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    pub fn set_run_result_model(&mut self, id: i64, model_id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET result_model_id = ?2 WHERE id = ?1",
                params![id, model_id],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// Records a step's metrics (replacing a row of the same step, as a resumed
    /// run recomputes the steps after its checkpoint) and the run's progress.
    pub fn record_step(&mut self, run_id: i64, m: &StepMetrics) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        tx.execute(
            "INSERT OR REPLACE INTO run_steps (run_id, step, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![run_id, m.step, m.loss, m.lr, m.grad_norm, m.tokens, m.tokens_per_s, m.elapsed_s],
        )
        .and_then(|_| {
            tx.execute(
                &format!("UPDATE runs SET step = ?2, updated_at = {NOW} WHERE id = ?1"),
                params![run_id, m.step],
            )
        })
        .and_then(|_| tx.commit())
        .map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })
    }

    pub fn record_eval(&mut self, run_id: i64, m: &EvalMetrics) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO run_evals (run_id, step, loss, acc, outputs) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, m.step, m.loss, m.acc, m.outputs],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// Forgets metrics after `step` (a resumed run recomputes them) and sets
    /// the run's progress back to `step`.
    pub fn rewind_run(&mut self, run_id: i64, step: i64) -> Result<()> {
        self.conn
            .execute_batch("BEGIN")
            .and_then(|_| {
                self.conn.execute(
                    "DELETE FROM run_steps WHERE run_id = ?1 AND step > ?2",
                    params![run_id, step],
                )
            })
            .and_then(|_| {
                self.conn.execute(
                    "DELETE FROM run_evals WHERE run_id = ?1 AND step > ?2",
                    params![run_id, step],
                )
            })
            .and_then(|_| {
                self.conn.execute(
                    "UPDATE runs SET step = ?2 WHERE id = ?1",
                    params![run_id, step],
                )
            })
            .and_then(|_| self.conn.execute_batch("COMMIT"))
            .map_err(|e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.sqlite(e)
            })
    }

    pub fn run_steps(&self, run_id: i64) -> Result<Vec<StepMetrics>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT step, loss, lr, grad_norm, tokens, tokens_per_s, elapsed_s FROM run_steps
                 WHERE run_id = ?1 ORDER BY step",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(StepMetrics {
                    step: r.get(0)?,
                    loss: r.get(1)?,
                    lr: r.get(2)?,
                    grad_norm: r.get(3)?,
                    tokens: r.get(4)?,
                    tokens_per_s: r.get(5)?,
                    elapsed_s: r.get(6)?,
                })
            })
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }

    pub fn run_evals(&self, run_id: i64) -> Result<Vec<EvalMetrics>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT step, loss, acc, outputs FROM run_evals WHERE run_id = ?1 ORDER BY step",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(EvalMetrics {
                    step: r.get(0)?,
                    loss: r.get(1)?,
                    acc: r.get(2)?,
                    outputs: r.get(3)?,
                })
            })
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }
}

/// How one task of an evaluation run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalOutcome {
    /// Evaluated: the task's summary, its rows beside it (`eval_rows`).
    Done { summary: Box<TaskRecord> },
    /// The family could not evaluate the task (too few sequences within the
    /// budget, no options...): why.
    Skipped { reason: String },
}

/// One finished task of an evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalTaskRecord {
    pub family: Family,
    pub task: String,
    pub outcome: EvalOutcome,
}

impl Store {
    /// Records one finished task of an evaluation run, how it ended and
    /// every row behind it, in one transaction (replacing an earlier record
    /// of it).
    pub fn record_eval_task(
        &mut self,
        run_id: i64,
        family: Family,
        task: &str,
        outcome: &EvalOutcome,
        rows: &[RowRecord],
    ) -> Result<()> {
        let unlike = |what: &str, other: Family| {
            StoreError::corrupt(
                format!("the {family} results of {task}"),
                format_args!("{what} of family {other}"),
            )
        };
        let (summary, skipped) = match outcome {
            EvalOutcome::Done { summary } if summary.family() != family => {
                return Err(unlike("a summary", summary.family()));
            }
            EvalOutcome::Done { summary } => (
                summary
                    .to_json()
                    .map_err(|e| StoreError::corrupt("a task summary", e))?,
                None,
            ),
            EvalOutcome::Skipped { reason } => ("null".to_string(), Some(reason.as_str())),
        };
        let rows = rows
            .iter()
            .map(|r| match r.family() {
                f if f != family => Err(unlike("a row", f)),
                _ => r
                    .to_json()
                    .map_err(|e| StoreError::corrupt("an evaluation row", e)),
            })
            .collect::<Result<Vec<String>>>()?;
        let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let write = move || -> rusqlite::Result<()> {
            let key = params![run_id, family, task];
            tx.execute(
                "DELETE FROM eval_rows WHERE run_id = ?1 AND family = ?2 AND task = ?3",
                key,
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO eval_tasks (run_id, family, task, summary, skipped, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run_id, family, task, summary, skipped, RECORD_VERSION],
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO eval_rows (run_id, family, task, position, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, row) in rows.iter().enumerate() {
                insert.execute(params![run_id, family, task, i as i64, row])?;
            }
            drop(insert);
            tx.commit()
        };
        write().map_err(|e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        })
    }

    /// The finished tasks of an evaluation run, by family then task.
    pub fn eval_tasks(&self, run_id: i64) -> Result<Vec<EvalTaskRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT family, task, summary, skipped, version FROM eval_tasks WHERE run_id = ?1
                 ORDER BY CASE family WHEN 'steer' THEN 0 WHEN 'dist' THEN 1 ELSE 2 END, task",
            )
            .map_err(|e| self.sqlite(e))?;
        type Stored = (Family, String, String, Option<String>, u32);
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(|e| self.sqlite(e))?
            .collect::<rusqlite::Result<Vec<Stored>>>()
            .map_err(|e| self.sqlite(e))?;
        rows.into_iter()
            .map(|(family, task, summary, skipped, version)| {
                let outcome = match skipped {
                    Some(reason) => EvalOutcome::Skipped { reason },
                    None => {
                        let what = format!("the {family} summary of {task} in run {run_id}");
                        newer_refused(version, &what)?;
                        EvalOutcome::Done {
                            summary: Box::new(
                                TaskRecord::from_json(family, &summary)
                                    .map_err(|e| StoreError::corrupt(what.as_str(), e))?,
                            ),
                        }
                    }
                };
                Ok(EvalTaskRecord {
                    family,
                    task,
                    outcome,
                })
            })
            .collect()
    }

    /// The rows (outputs, items or samples) behind one task of an evaluation run, in order.
    pub fn eval_rows(&self, run_id: i64, family: Family, task: &str) -> Result<Vec<RowRecord>> {
        let what = format!("a {family} row of {task} in run {run_id}");
        let version: Option<u32> = self
            .conn
            .query_row(
                "SELECT version FROM eval_tasks WHERE run_id = ?1 AND family = ?2 AND task = ?3",
                params![run_id, family, task],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        newer_refused(version.unwrap_or(RECORD_VERSION), &what)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT record FROM eval_rows WHERE run_id = ?1 AND family = ?2 AND task = ?3 ORDER BY position",
            )
            .map_err(|e| self.sqlite(e))?;
        let texts = stmt
            .query_map(params![run_id, family, task], |r| r.get::<_, String>(0))
            .map_err(|e| self.sqlite(e))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(|e| self.sqlite(e))?;
        texts
            .iter()
            .map(|t| {
                RowRecord::from_json(family, t).map_err(|e| StoreError::corrupt(what.as_str(), e))
            })
            .collect()
    }
}

/// A record of a version this build does not know: written by a newer
/// Spectrum Studio.
fn newer_refused(version: u32, what: &str) -> Result<()> {
    if version > RECORD_VERSION {
        return Err(StoreError::corrupt(
            what,
            format_args!(
                "it is a version {version} record, written by a newer Spectrum Studio (this one reads versions up to {RECORD_VERSION}); update Spectrum Studio to read it"
            ),
        ));
    }
    Ok(())
}
