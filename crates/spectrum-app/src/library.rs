//! What the Library view shows: an import preview before anything is written,
//! and a task's content.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use serde::Serialize;
use spectrum_suite::import::{self, Item, ItemSink, Progress, SinkError};
use spectrum_suite::{Message, ValidityRule};

use crate::{AppError, ImportReport, ImportRequest, Listing, Studio, TaskSummary};

/// What an import would do, worked out without touching the store.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ImportPreview {
    /// Per file: format, detected shape, rows; every rejected row with its reason
    /// (the preview reads with `skip_invalid` so that it can list them all).
    pub report: ImportReport,
    /// The tasks the files hold, by name.
    pub tasks: Vec<PreviewTask>,
    /// Whether this content was imported before with the same options.
    pub already_imported: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, ts_rs::TS)]
pub struct PreviewTask {
    pub name: String,
    /// From the task's definition row; `None` when the file has none and the
    /// import options decide.
    pub category: Option<String>,
    pub split: Option<String>,
    pub sequences: usize,
    pub distribution_items: usize,
    pub validity_tasks: usize,
}

/// Counts items per task instead of storing them.
#[derive(Default)]
struct Tally(BTreeMap<String, PreviewTask>);

impl ItemSink for Tally {
    fn accept(&mut self, item: Item) -> Result<(), SinkError> {
        let name = item.task().to_string();
        let task = self.0.entry(name.clone()).or_insert_with(|| PreviewTask {
            name,
            ..PreviewTask::default()
        });
        match item {
            Item::Task(def) => {
                task.category = Some(def.category);
                task.split = Some(def.split.as_str().to_string());
            }
            Item::Sequence(_) => task.sequences += 1,
            Item::Distribution(_) => task.distribution_items += 1,
            Item::Validity(_) => task.validity_tasks += 1,
        }
        Ok(())
    }
}

/// A task and (the first rows of) what it holds.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TaskDetail {
    pub task: TaskSummary,
    pub descriptions: Vec<String>,
    /// Up to `limit` sequences: (id, messages).
    pub sequences: Vec<TaskSequence>,
    pub distribution_items: Vec<TaskItem>,
    pub validity: Vec<TaskValidity>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TaskSequence {
    pub id: String,
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TaskItem {
    /// The id evaluation rows carry (`id` field, else `task/position`).
    pub id: String,
    pub description: String,
    pub input: String,
    pub options: Vec<String>,
    pub probs: Vec<f64>,
    pub ordinal: bool,
}

#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct TaskValidity {
    pub description: String,
    pub examples: Vec<String>,
    pub rule: ValidityRule,
}

fn task_item(d: spectrum_suite::DistributionItem, position: usize) -> TaskItem {
    TaskItem {
        id: spectrum_eval::dist::item_id(&d, position),
        description: d.description,
        input: d.input,
        options: d.options,
        probs: d.probs,
        ordinal: d.ordinal,
    }
}

impl Studio {
    /// The distribution item an evaluation row names (task name and item id),
    /// with its prompt; `None` when no task of that name holds it any more.
    pub fn distribution_item(&self, task: &str, id: &str) -> Result<Option<TaskItem>> {
        let store = self.store()?;
        for t in store.tasks(&spectrum_store::TaskFilter::default())? {
            if t.name != task {
                continue;
            }
            let items = store.task_distribution_items(t.id)?;
            if let Some((i, d)) = items
                .into_iter()
                .enumerate()
                .find(|(i, d)| spectrum_eval::dist::item_id(d, *i) == id)
            {
                return Ok(Some(task_item(d, i)));
            }
        }
        Ok(None)
    }

    /// Reads the files as `import` would, without writing: shapes, counts per
    /// task, and every rejected row (up to `error_limit`) with its reason.
    pub fn preview_import(
        &self,
        request: &ImportRequest,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<ImportPreview> {
        let request = &request.cleaned();
        let files = import::files_to_import(&request.paths)?;
        let mut options = request.options.clone();
        options.skip_invalid = true;
        let mut tally = Tally::default();
        let report = import::import(&files, &options, &mut tally, progress, cancel)?;
        let content_hash = import::content_hash(&files)?;
        let key = crate::datasets::import_key(&content_hash, &request.options);
        let already_imported = self.store()?.dataset_by_import_key(&key)?.map(|d| d.name);
        Ok(ImportPreview {
            report,
            tasks: tally.0.into_values().collect(),
            already_imported,
        })
    }

    /// A task with its descriptions and its first `limit` rows of each kind.
    pub fn task_detail(&self, task_id: i64, limit: usize) -> Result<TaskDetail> {
        let store = self.store()?;
        let task = store
            .tasks(&spectrum_store::TaskFilter::default())?
            .into_iter()
            .find(|t| t.id == task_id)
            .ok_or_else(|| {
                AppError::not_found(format!("no task with id {task_id}"), Listing::Tasks)
            })?;
        let sequences = store
            .task_sequences_with_ids(task_id)?
            .into_iter()
            .take(limit)
            .map(|(id, messages)| TaskSequence { id, messages })
            .collect();
        let distribution_items = store
            .task_distribution_items(task_id)?
            .into_iter()
            .enumerate()
            .take(limit)
            .map(|(i, d)| task_item(d, i))
            .collect();
        let validity = store
            .task_validity(task_id)?
            .into_iter()
            .take(limit)
            .map(|v| TaskValidity {
                description: v.description,
                examples: v.examples,
                rule: v.rule,
            })
            .collect();
        Ok(TaskDetail {
            descriptions: store.task_descriptions(task_id)?,
            task,
            sequences,
            distribution_items,
            validity,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::{ImportOptions, ImportRequest};

    fn request(paths: Vec<std::path::PathBuf>) -> ImportRequest {
        ImportRequest {
            paths,
            name: None,
            options: ImportOptions::default(),
        }
    }

    #[test]
    fn a_preview_lists_tasks_and_every_bad_row_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let studio = Studio::new(Some(dir.path().join("store.sqlite3"))).expect("studio");
        let file = dir.path().join("chats.jsonl");
        std::fs::write(
            &file,
            concat!(
                r#"{"task": "a", "messages": [{"role": "output", "content": "1"}, {"role": "output", "content": "2"}]}"#,
                "\n",
                r#"{"task": "a", "messages": [{"role": "input", "content": "only input"}]}"#,
                "\n",
                "not json\n",
                r#"{"task": "b", "messages": [{"role": "output", "content": "x"}]}"#,
                "\n",
            ),
        )
        .expect("write");
        let never = AtomicBool::new(false);
        let preview = studio
            .preview_import(&request(vec![file.clone()]), &mut |_| {}, &never)
            .expect("preview");
        assert_eq!(preview.report.rejected, 2);
        assert_eq!(preview.report.errors.len(), 2);
        let lines: Vec<String> = preview
            .report
            .errors
            .iter()
            .map(|e| serde_json::to_string(&e.location).expect("json"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"{"unit":"line","number":2}"#,
                r#"{"unit":"line","number":3}"#
            ]
        );
        let names: Vec<(&str, usize)> = preview
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.sequences))
            .collect();
        assert_eq!(names, [("a", 1), ("b", 1)]);
        assert_eq!(preview.already_imported, None);
        // Nothing was written: the import itself still refuses the bad rows.
        assert!(studio.datasets().expect("datasets").is_empty());
        assert!(
            studio
                .import(&request(vec![file]), &mut |_| {}, &never)
                .is_err()
        );
        assert!(studio.datasets().expect("datasets").is_empty());
    }
}
