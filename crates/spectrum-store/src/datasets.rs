//! Datasets and what they hold: the import transaction and the queries that
//! list datasets and tasks.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use spectrum_suite::import::{FileReport, Item, ItemSink, SinkError};
use spectrum_suite::{Split, TaskDef, TaskKind};

use crate::{Result, Store, StoreError};

/// What the store records about an import before its rows arrive.
#[derive(Debug, Clone)]
pub struct NewDataset {
    pub name: String,
    pub source: String,
    pub content_hash: String,
    /// The content hash plus every option that changes what the import produces.
    pub import_key: String,
    /// Seconds since the Unix epoch.
    pub imported_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct DatasetSummary {
    pub id: i64,
    pub name: String,
    pub source: String,
    pub content_hash: String,
    pub imported_at: String,
    pub tasks: i64,
    pub sequences: i64,
    pub distribution_items: i64,
    pub validity_tasks: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct DatasetDetail {
    #[serde(flatten)]
    pub summary: DatasetSummary,
    /// Per-file format, shape and row counts, as the importer reported them.
    pub files: Vec<FileReport>,
    pub tasks: Vec<TaskSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct TaskSummary {
    pub id: i64,
    pub dataset_id: i64,
    pub dataset: String,
    pub name: String,
    pub category: String,
    pub split: Split,
    pub kind: TaskKind,
    pub descriptions: i64,
    pub sequences: i64,
    pub distribution_items: i64,
    pub validity_tasks: i64,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub split: Option<Split>,
    pub dataset_id: Option<i64>,
}

/// An import in progress: one SQLite transaction. Values arrive through
/// [`ItemSink`]; [`ImportTx::commit`] makes them visible, dropping the value
/// rolls everything back.
#[derive(Debug)]
pub struct ImportTx<'s> {
    conn: &'s Connection,
    store: &'s Store,
    dataset_id: i64,
    tasks: HashMap<String, i64>,
    done: bool,
}

const SUMMARY_SELECT: &str = "
    SELECT d.id, d.name, d.source, d.content_hash, d.imported_at,
           (SELECT COUNT(*) FROM tasks t WHERE t.dataset_id = d.id),
           (SELECT COUNT(*) FROM sequences s JOIN tasks t ON s.task_id = t.id WHERE t.dataset_id = d.id),
           (SELECT COUNT(*) FROM distribution_items x JOIN tasks t ON x.task_id = t.id WHERE t.dataset_id = d.id),
           (SELECT COUNT(*) FROM validity_tasks v JOIN tasks t ON v.task_id = t.id WHERE t.dataset_id = d.id)
    FROM datasets d";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DatasetSummary> {
    Ok(DatasetSummary {
        id: r.get(0)?,
        name: r.get(1)?,
        source: r.get(2)?,
        content_hash: r.get(3)?,
        imported_at: r.get(4)?,
        tasks: r.get(5)?,
        sequences: r.get(6)?,
        distribution_items: r.get(7)?,
        validity_tasks: r.get(8)?,
    })
}

impl Store {
    /// The dataset imported under this key, if any (see [`NewDataset::import_key`]).
    pub fn dataset_by_import_key(&self, key: &str) -> Result<Option<DatasetSummary>> {
        let sql = format!("{SUMMARY_SELECT} WHERE d.import_key = ?1");
        self.conn
            .query_row(&sql, [key], summary_row)
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    /// Starts an import. Nothing is visible to other readers until `commit`.
    pub fn begin_import(&mut self, dataset: &NewDataset) -> Result<ImportTx<'_>> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.sqlite(e))?;
        let inserted = self.conn.query_row(
            "INSERT INTO datasets (name, source, import_key, content_hash, imported_at)
             VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%SZ', ?5, 'unixepoch')) RETURNING id",
            params![
                dataset.name,
                dataset.source,
                dataset.import_key,
                dataset.content_hash,
                dataset.imported_at
            ],
            |r| r.get(0),
        );
        match inserted {
            Ok(dataset_id) => Ok(ImportTx {
                conn: &self.conn,
                store: self,
                dataset_id,
                tasks: HashMap::new(),
                done: false,
            }),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.sqlite(e))
            }
        }
    }

    pub fn datasets(&self) -> Result<Vec<DatasetSummary>> {
        let sql = format!("{SUMMARY_SELECT} ORDER BY d.id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], summary_row)
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }

    /// Finds a dataset by id (`3`) or by name; a name shared by several datasets is ambiguous.
    pub fn find_dataset(&self, id_or_name: &str) -> Result<Option<DatasetSummary>> {
        let by_id = id_or_name.parse::<i64>().ok();
        let sql = format!("{SUMMARY_SELECT} WHERE d.id = ?1 OR d.name = ?2 ORDER BY d.id");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sqlite(e))?;
        let found: Vec<DatasetSummary> = stmt
            .query_map(params![by_id, id_or_name], summary_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sqlite(e))?;
        if let Some(exact) = found.iter().find(|d| Some(d.id) == by_id) {
            return Ok(Some(exact.clone()));
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next()),
            _ => Err(StoreError::Ambiguous {
                what: "dataset",
                name: id_or_name.to_string(),
                ids: found.iter().map(|d| d.id).collect(),
            }),
        }
    }

    pub fn dataset_detail(&self, id: i64) -> Result<Option<DatasetDetail>> {
        let sql = format!("{SUMMARY_SELECT} WHERE d.id = ?1");
        let Some(summary) = self
            .conn
            .query_row(&sql, [id], summary_row)
            .optional()
            .map_err(|e| self.sqlite(e))?
        else {
            return Ok(None);
        };
        let files: String = self
            .conn
            .query_row("SELECT files FROM datasets WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| self.sqlite(e))?;
        let files = serde_json::from_str(&files).map_err(|e| {
            StoreError::corrupt(
                format!("dataset {id}"),
                format_args!("bad files record: {e}"),
            )
        })?;
        let tasks = self.tasks(&TaskFilter {
            dataset_id: Some(id),
            split: None,
        })?;
        Ok(Some(DatasetDetail {
            summary,
            files,
            tasks,
        }))
    }

    /// Removes a dataset and everything it holds. Returns whether it existed.
    pub fn remove_dataset(&mut self, id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM datasets WHERE id = ?1", [id])
            .map_err(|e| self.sqlite(e))?;
        Ok(n > 0)
    }

    pub fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskSummary>> {
        let sql = "
            SELECT t.id, t.dataset_id, d.name, t.name, t.category, t.split, t.kind,
                   json_array_length(t.descriptions),
                   (SELECT COUNT(*) FROM sequences s WHERE s.task_id = t.id),
                   (SELECT COUNT(*) FROM distribution_items x WHERE x.task_id = t.id),
                   (SELECT COUNT(*) FROM validity_tasks v WHERE v.task_id = t.id)
            FROM tasks t JOIN datasets d ON d.id = t.dataset_id
            WHERE (?1 IS NULL OR t.split = ?1) AND (?2 IS NULL OR t.dataset_id = ?2)
            ORDER BY t.dataset_id, t.id";
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map(
                params![filter.split.map(Split::as_str), filter.dataset_id],
                |r| {
                    Ok(TaskSummary {
                        id: r.get(0)?,
                        dataset_id: r.get(1)?,
                        dataset: r.get(2)?,
                        name: r.get(3)?,
                        category: r.get(4)?,
                        split: parsed(r, 5, Split::parse)?,
                        kind: parsed(r, 6, TaskKind::parse)?,
                        descriptions: r.get(7)?,
                        sequences: r.get(8)?,
                        distribution_items: r.get(9)?,
                        validity_tasks: r.get(10)?,
                    })
                },
            )
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.sqlite(e))
    }
}

impl ImportTx<'_> {
    pub fn dataset_id(&self) -> i64 {
        self.dataset_id
    }

    /// Records the per-file report and commits the whole import.
    pub fn commit(mut self, files: &[FileReport]) -> Result<i64> {
        let files = serde_json::to_string(files).expect("file reports serialise");
        let result = self
            .conn
            .execute(
                "UPDATE datasets SET files = ?1 WHERE id = ?2",
                params![files, self.dataset_id],
            )
            .and_then(|_| self.conn.execute_batch("COMMIT"));
        self.done = result.is_ok();
        result.map_err(|e| self.store.sqlite(e))?;
        Ok(self.dataset_id)
    }

    fn upsert_task(&mut self, def: &TaskDef) -> rusqlite::Result<i64> {
        let descriptions = serde_json::to_string(&def.descriptions).expect("strings serialise");
        let id = self.conn.prepare_cached(
            "INSERT INTO tasks (dataset_id, name, category, split, kind, descriptions) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (dataset_id, name) DO UPDATE SET
                 category = excluded.category, split = excluded.split, kind = excluded.kind,
                 descriptions = excluded.descriptions
             RETURNING id",
        )?
        .query_row(
            params![self.dataset_id, def.task, def.category, def.split.as_str(), def.kind.as_str(), descriptions],
            |r| r.get(0),
        )?;
        self.tasks.insert(def.task.clone(), id);
        Ok(id)
    }

    fn task_id(&self, name: &str) -> Result<i64, SinkError> {
        self.tasks
            .get(name)
            .copied()
            .ok_or_else(|| format!("task {name:?} was not defined before its rows").into())
    }
}

fn metadata_json(m: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    (!m.is_empty()).then(|| serde_json::Value::Object(m.clone()).to_string())
}

impl ItemSink for ImportTx<'_> {
    fn accept(&mut self, item: Item) -> Result<(), SinkError> {
        match item {
            Item::Task(def) => {
                self.upsert_task(&def)?;
            }
            Item::Sequence(seq) => {
                let task_id = self.task_id(&seq.task)?;
                let messages = serde_json::to_string(&seq.messages)?;
                self.conn
                    .prepare_cached("INSERT INTO sequences (task_id, messages, examples, metadata) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![task_id, messages, seq.examples() as i64, metadata_json(&seq.metadata)])?;
            }
            Item::Distribution(d) => {
                let task_id = self.task_id(&d.task)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO distribution_items (task_id, description, input, options, probs, ordinal, metadata)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        task_id,
                        d.description,
                        d.input,
                        serde_json::to_string(&d.options)?,
                        serde_json::to_string(&d.probs)?,
                        d.ordinal,
                        metadata_json(&d.metadata)
                    ])?;
            }
            Item::Validity(v) => {
                let task_id = self.task_id(&v.task)?;
                self.conn
                    .prepare_cached("INSERT INTO validity_tasks (task_id, description, examples, rule, max_new_tokens) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![task_id, v.description, serde_json::to_string(&v.examples)?, serde_json::to_string(&v.rule)?, v.max_new_tokens.map(|n| n as i64)])?;
            }
        }
        Ok(())
    }
}

impl Drop for ImportTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing of a failed or cancelled import stays behind.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Store {
    /// A description to prompt a task with: from its first sequence that has one,
    /// else its diverse-valid definition, else its first listed description.
    /// `None` if no task has this name.
    pub fn task_description(&self, task: &str) -> Result<Option<String>> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM tasks WHERE name = ?1 ORDER BY id")
                .map_err(|e| self.sqlite(e))?;
            stmt.query_map([task], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.sqlite(e))?
        };
        let Some(&task_id) = ids.first() else {
            return Ok(None);
        };
        let from_sequence: Option<String> = self
            .conn
            .query_row(
                "SELECT json_extract(messages, '$[0].content') FROM sequences
                 WHERE task_id = ?1 AND json_extract(messages, '$[0].role') = 'description' ORDER BY id LIMIT 1",
                [task_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        if from_sequence.is_some() {
            return Ok(from_sequence);
        }
        let from_validity: Option<String> = self
            .conn
            .query_row(
                "SELECT description FROM validity_tasks WHERE task_id = ?1 LIMIT 1",
                [task_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        if from_validity.is_some() {
            return Ok(from_validity);
        }
        self.conn
            .query_row(
                "SELECT json_extract(descriptions, '$[0]') FROM tasks WHERE id = ?1",
                [task_id],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))
    }
}

impl Store {
    /// The sequences of a task, in import order.
    pub fn task_sequences(&self, task_id: i64) -> Result<Vec<Vec<spectrum_suite::Message>>> {
        self.json_rows(
            "SELECT messages FROM sequences WHERE task_id = ?1 ORDER BY id",
            [task_id],
            &format!("a sequence of task {task_id}"),
        )
    }

    pub fn task_name(&self, task_id: i64) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT name FROM tasks WHERE id = ?1", [task_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.sqlite(e))
    }

    /// The alternative descriptions listed for a task.
    pub fn task_descriptions(&self, task_id: i64) -> Result<Vec<String>> {
        let text: String = self
            .conn
            .query_row(
                "SELECT descriptions FROM tasks WHERE id = ?1",
                [task_id],
                |r| r.get(0),
            )
            .map_err(|e| self.sqlite(e))?;
        serde_json::from_str(&text).map_err(|e| {
            StoreError::corrupt(
                format!("task {task_id}"),
                format_args!("descriptions are not a JSON list: {e}"),
            )
        })
    }
}

/// Parses a JSON column, naming the table and task when it is not what it should be.
fn column<T: serde::de::DeserializeOwned>(text: &str, what: &str, task_id: i64) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::corrupt(
            format!("{what} of task {task_id}"),
            format_args!("not valid: {e}"),
        )
    })
}

fn metadata(
    text: Option<String>,
    task_id: i64,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    text.map_or(Ok(serde_json::Map::new()), |t| {
        column(&t, "metadata", task_id)
    })
}

impl Store {
    /// The sequences of a task with their ids (the `id` field of the source
    /// row, else `#<row id>`), in import order.
    pub fn task_sequences_with_ids(
        &self,
        task_id: i64,
    ) -> Result<Vec<(String, Vec<spectrum_suite::Message>)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, messages, json_extract(metadata, '$.id') FROM sequences WHERE task_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([task_id], |r| {
                let id: i64 = r.get(0)?;
                let named: Option<rusqlite::types::Value> = r.get(2)?;
                let name = match named {
                    Some(rusqlite::types::Value::Text(s)) => s,
                    Some(rusqlite::types::Value::Integer(i)) => i.to_string(),
                    Some(rusqlite::types::Value::Real(x)) => x.to_string(),
                    _ => format!("#{id}"),
                };
                Ok((name, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, text) = row.map_err(|e| self.sqlite(e))?;
            out.push((name, column(&text, "a sequence", task_id)?));
        }
        Ok(out)
    }

    /// The distribution items of a task, in import order.
    pub fn task_distribution_items(
        &self,
        task_id: i64,
    ) -> Result<Vec<spectrum_suite::DistributionItem>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, x.description, x.input, x.options, x.probs, x.ordinal, x.metadata
                 FROM distribution_items x JOIN tasks t ON t.id = x.task_id WHERE x.task_id = ?1 ORDER BY x.id",
            )
            .map_err(|e| self.sqlite(e))?;
        type Row = (String, String, String, String, String, bool, Option<String>);
        let rows = stmt
            .query_map([task_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (task, description, input, options, probs, ordinal, meta): Row =
                row.map_err(|e| self.sqlite(e))?;
            out.push(spectrum_suite::DistributionItem {
                task,
                description,
                input,
                options: column(&options, "the options of an item", task_id)?,
                probs: column(&probs, "the probabilities of an item", task_id)?,
                ordinal,
                metadata: metadata(meta, task_id)?,
            });
        }
        Ok(out)
    }

    /// The diverse-valid definitions of a task (description, examples, rule).
    pub fn task_validity(&self, task_id: i64) -> Result<Vec<spectrum_suite::ValidityTask>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.name, v.description, v.examples, v.rule, v.max_new_tokens
                 FROM validity_tasks v JOIN tasks t ON t.id = v.task_id WHERE v.task_id = ?1 ORDER BY v.id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([task_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (task, description, examples, rule, max_new_tokens) =
                row.map_err(|e| self.sqlite(e))?;
            out.push(spectrum_suite::ValidityTask {
                task,
                description,
                examples: column(&examples, "the examples of a diverse-valid task", task_id)?,
                rule: column(&rule, "the validity rule", task_id)?,
                max_new_tokens: max_new_tokens.map(|n| n.max(1) as usize),
            });
        }
        Ok(out)
    }
}

/// Column `at` of `r` read by `parse`; a spelling it does not know is an
/// error naming the column, never a default.
fn parsed<T>(
    r: &rusqlite::Row<'_>,
    at: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(at)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            at,
            rusqlite::types::Type::Text,
            format!("unknown value {text:?}").into(),
        )
    })
}
