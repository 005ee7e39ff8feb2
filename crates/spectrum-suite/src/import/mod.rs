//! Importers: files (JSONL, JSON arrays, CSV/TSV, Parquet) or folders of them in,
//! validated suite values out, streamed to an [`ItemSink`] one at a time.
//!
//! The importer validates every row and reports each bad one with its file,
//! line, field and a fix. It never decides what happens to the values it has
//! already passed on: the sink (the store) holds them in one transaction, and
//! the caller commits only if [`import`] returns `Ok`. By default a single bad
//! row makes `import` fail after listing every bad row (up to a limit);
//! with `skip_invalid` bad rows are reported and left out.

mod error;
mod fast;
mod fields;
mod read;
mod shape;

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use serde_json::{Map, Value};

pub use error::{ImportError, Location, RowError, RowProblem, SinkError};
pub use read::Format;
pub use shape::{Item, SHAPE_NAMES, Shape};

use crate::model::{Split, TaskDef};
use fields::Fields;
use read::RowVisitor;

/// How to read the files of one import.
#[derive(Debug, Clone, serde::Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct ImportOptions {
    /// Force a shape instead of detecting it from the first row.
    pub shape: Option<Shape>,
    /// Import the valid rows and report the rest, instead of importing nothing.
    pub skip_invalid: bool,
    /// How many bad rows to describe; the rest are only counted.
    pub error_limit: usize,
    /// Task name for rows without a `task` field (default: the file's stem).
    pub task: Option<String>,
    /// Split and category of tasks that no task definition row describes.
    pub split: Split,
    pub category: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            shape: None,
            skip_invalid: false,
            error_limit: 50,
            task: None,
            split: Split::Train,
            category: "imported".into(),
        }
    }
}

/// Where the validated values go (the store, or a `Vec` in tests).
pub trait ItemSink {
    fn accept(&mut self, item: Item) -> Result<(), SinkError>;
}

impl ItemSink for Vec<Item> {
    fn accept(&mut self, item: Item) -> Result<(), SinkError> {
        self.push(item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rows: u64,
}

/// What one file held.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct FileReport {
    pub path: String,
    pub format: Format,
    pub shape: Shape,
    /// Whether the shape was detected (true) or forced with `--as` (false).
    pub detected: bool,
    pub rows: u64,
    pub imported: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct Counts {
    pub tasks: u64,
    pub sequences: u64,
    pub distribution_items: u64,
    pub validity_tasks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, ts_rs::TS)]
pub struct ImportReport {
    pub files: Vec<FileReport>,
    pub counts: Counts,
    /// Rows left out (only with `skip_invalid`).
    pub rejected: usize,
    /// The first `error_limit` of them.
    pub errors: Vec<RowError>,
}

/// Checks a sequence against METHOD.md §1 (role order, at least one output).
pub fn check_sequence(sequence: &crate::Sequence) -> Result<(), RowProblem> {
    shape::check_order(&sequence.messages)
}

/// The data files an import of `paths` reads, in order: folders are expanded to
/// their supported files, task definition files (`tasks.*`) first, then by name.
pub fn files_to_import(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| ImportError::Io {
            path: path.clone(),
            source: e,
        })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ImportError::Io {
                    path: path.clone(),
                    source: e,
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && Format::from_path(p).is_some())
                .collect();
            if found.is_empty() {
                return Err(ImportError::NoFiles { path: path.clone() });
            }
            found.sort_by_key(|p| (p.file_stem().is_none_or(|s| s != "tasks"), p.clone()));
            files.extend(found);
        } else {
            if Format::from_path(path).is_none() {
                return Err(ImportError::UnknownFormat { path: path.clone() });
            }
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// A hash of the files' bytes (BLAKE3, hex): the same content gives the same hash.
pub fn content_hash(files: &[PathBuf]) -> Result<String, ImportError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in files {
        let mut f = std::fs::File::open(path).map_err(|e| ImportError::Io {
            path: path.clone(),
            source: e,
        })?;
        let len = f
            .metadata()
            .map_err(|e| ImportError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        hasher.update(&len.to_le_bytes());
        loop {
            let n = f.read(&mut buf).map_err(|e| ImportError::Io {
                path: path.clone(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Imports `files` (see [`files_to_import`]) into `sink`.
///
/// Reading, parsing and validation run on a worker thread; `sink` and
/// `progress` are called on the calling thread, so the two overlap.
/// `progress` is called every few thousand rows; setting `cancel` stops the
/// import with [`ImportError::Cancelled`] at the next such point.
pub fn import(
    files: &[PathBuf],
    options: &ImportOptions,
    sink: &mut dyn ItemSink,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    let bytes_total = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Message>(8);
        let reader = std::thread::Builder::new().name("import-reader".into());
        let producer = reader.spawn_scoped(scope, move || {
            let mut run = Run {
                options,
                out: Emitter {
                    sender,
                    batch: Vec::with_capacity(BATCH),
                },
                cancel,
                state: Progress {
                    bytes_done: 0,
                    bytes_total,
                    rows: 0,
                },
                report: ImportReport::default(),
                tasks_seen: HashSet::new(),
                tasks_defined: HashSet::new(),
                failed: false,
            };
            for path in files {
                run.file(path)?;
            }
            run.out.flush()?;
            run.out.send(Message::Progress(run.state))?;
            Ok((run.report, run.failed))
        });
        let producer = match producer {
            Ok(handle) => handle,
            Err(e) => return Err(ImportError::Sink(Box::new(e))),
        };
        let mut sink_error = None;
        'receive: for message in receiver.iter() {
            match message {
                Message::Items(items) => {
                    for item in items {
                        if let Err(e) = sink.accept(item) {
                            sink_error = Some(e);
                            break 'receive;
                        }
                    }
                }
                Message::Progress(p) => progress(p),
            }
        }
        drop(receiver); // unblocks the producer if the sink failed
        let produced = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(e) = sink_error {
            return Err(ImportError::Sink(e));
        }
        let (report, failed) = produced?;
        if failed && !options.skip_invalid {
            return Err(ImportError::Invalid {
                first_file: report
                    .errors
                    .first()
                    .map(|e| e.file.clone())
                    .unwrap_or_default(),
                rejected: report.rejected,
                errors: report.errors,
            });
        }
        Ok(report)
    })
}

/// Items travel to the sink in batches, to keep channel overhead off the hot path.
const BATCH: usize = 256;

enum Message {
    Items(Vec<Item>),
    Progress(Progress),
}

struct Emitter {
    sender: mpsc::SyncSender<Message>,
    batch: Vec<Item>,
}

impl Emitter {
    fn push(&mut self, item: Item) -> Result<(), ImportError> {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ImportError> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.send(Message::Items(batch))
    }

    /// Fails only when the receiving side stopped, i.e. the sink failed; the
    /// caller reports the sink's error instead.
    fn send(&self, message: Message) -> Result<(), ImportError> {
        self.sender
            .send(message)
            .map_err(|_| ImportError::Cancelled)
    }
}

struct Run<'a> {
    options: &'a ImportOptions,
    out: Emitter,
    cancel: &'a AtomicBool,
    state: Progress,
    report: ImportReport,
    tasks_seen: HashSet<String>,
    tasks_defined: HashSet<String>,
    failed: bool,
}

impl Run<'_> {
    fn file(&mut self, path: &Path) -> Result<(), ImportError> {
        let format = Format::from_path(path).ok_or_else(|| ImportError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
        let default_task = match &self.options.task {
            Some(t) => t.clone(),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into()),
        };
        let bytes_before = self.state.bytes_done;
        let mut file = FileRun {
            run: self,
            path,
            name: path.display().to_string(),
            default_task,
            shape: None,
            detected: false,
            bytes_before,
            imported: 0,
            rejected: 0,
        };
        let rows = match format {
            Format::Jsonl => read::read_jsonl(path, &mut file)?,
            Format::Json => read::read_json(path, &mut file)?,
            Format::Csv => read::read_csv(path, b',', &mut file)?,
            Format::Tsv => read::read_csv(path, b'\t', &mut file)?,
            Format::Parquet => read::read_parquet(path, &mut file)?,
        };
        let (shape, detected, imported, rejected) =
            (file.shape, file.detected, file.imported, file.rejected);
        if rows == 0 {
            return Err(ImportError::Empty {
                path: path.to_path_buf(),
            });
        }
        self.report.files.push(FileReport {
            path: path.display().to_string(),
            format,
            // No row was readable: the errors are listed; report the shape asked for.
            shape: shape.or(self.options.shape).unwrap_or(Shape::Messages),
            detected,
            rows,
            imported,
            rejected,
        });
        self.state.bytes_done = bytes_before + std::fs::metadata(path).map_or(0, |m| m.len());
        Ok(())
    }

    fn accept(&mut self, item: Item, shape: Shape) -> Result<(), ImportError> {
        if self.failed && !self.options.skip_invalid {
            return Ok(()); // nothing will be kept: only validate the rest
        }
        let counts = &mut self.report.counts;
        match &item {
            Item::Task(_) => {}
            Item::Sequence(_) => counts.sequences += 1,
            Item::Distribution(_) => counts.distribution_items += 1,
            Item::Validity(_) => counts.validity_tasks += 1,
        }
        if !self.tasks_seen.contains(item.task()) {
            self.tasks_seen.insert(item.task().to_string());
            self.report.counts.tasks += 1;
            if !matches!(item, Item::Task(_)) {
                let implied = TaskDef {
                    task: item.task().to_string(),
                    category: self.options.category.clone(),
                    split: self.options.split,
                    kind: shape.implied_kind(),
                    descriptions: match &item {
                        Item::Validity(v) => vec![v.description.clone()],
                        _ => Vec::new(),
                    },
                };
                self.out.push(Item::Task(implied))?;
            }
        }
        self.out.push(item)
    }

    fn reject(&mut self, error: RowError) {
        self.failed = true;
        self.report.rejected += 1;
        if self.report.errors.len() < self.options.error_limit {
            self.report.errors.push(error);
        }
    }
}

struct FileRun<'r, 'a> {
    run: &'r mut Run<'a>,
    path: &'r Path,
    name: String,
    default_task: String,
    shape: Option<Shape>,
    detected: bool,
    bytes_before: u64,
    imported: u64,
    rejected: u64,
}

impl FileRun<'_, '_> {
    fn set_shape<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k str> + Clone,
    ) -> Result<Shape, ImportError> {
        if let Some(shape) = self.shape {
            return Ok(shape);
        }
        let (shape, detected) = match self.run.options.shape {
            Some(forced) => (forced, false),
            None => match Shape::detect(keys.clone()) {
                Some(s) => (s, true),
                None => {
                    let fields = keys
                        .into_iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(ImportError::UnknownShape {
                        path: self.path.to_path_buf(),
                        fields,
                    });
                }
            },
        };
        self.shape = Some(shape);
        self.detected = detected;
        Ok(shape)
    }

    fn tick(&mut self, bytes_done: u64) -> Result<(), ImportError> {
        let run = &mut self.run;
        run.state.rows += 1;
        if run.state.rows.is_multiple_of(4096) {
            if run.cancel.load(Ordering::Relaxed) {
                return Err(ImportError::Cancelled);
            }
            run.state.bytes_done = self.bytes_before + bytes_done;
            run.out.send(Message::Progress(run.state))?;
        }
        Ok(())
    }
}

impl RowVisitor for FileRun<'_, '_> {
    fn fast_row(&mut self, text: &str, bytes_done: u64) -> Result<bool, ImportError> {
        if self.shape != Some(Shape::Messages) {
            return Ok(false);
        }
        let Some(sequence) = fast::messages_row(text, &self.default_task) else {
            return Ok(false);
        };
        self.tick(bytes_done)?;
        self.run.accept(Item::Sequence(sequence), Shape::Messages)?;
        self.imported += 1;
        Ok(true)
    }

    fn columns(&mut self, columns: &[String]) -> Result<(), ImportError> {
        let shape = self.set_shape(columns.iter().map(String::as_str))?;
        let missing: Vec<String> = shape
            .required_columns()
            .iter()
            .filter(|group| !group.iter().any(|c| columns.iter().any(|have| have == c)))
            .map(|group| format!("`{}`", group[0]))
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::Unreadable {
                path: self.path.to_path_buf(),
                message: format!(
                    "line 1 (header): missing column(s) {} for the {} shape; the file has {}",
                    missing.join(", "),
                    shape.as_str(),
                    columns
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                fix: "add the missing columns to the header (or import the file as another shape)"
                    .into(),
            });
        }
        Ok(())
    }

    fn row(
        &mut self,
        at: Location,
        row: Result<Map<String, Value>, RowProblem>,
        bytes_done: u64,
    ) -> Result<(), ImportError> {
        self.tick(bytes_done)?;
        let parsed = match row {
            Ok(map) => {
                let shape = self.set_shape(map.keys().map(String::as_str))?;
                shape::parse_row(shape, Fields { map }, &self.default_task)
                    .map(|item| (shape, item))
            }
            Err(problem) => Err(problem),
        };
        let (shape, item) = match parsed {
            Ok(ok) => ok,
            Err(problem) => {
                self.reject(problem, at);
                return Ok(());
            }
        };
        if let Item::Task(def) = &item
            && !self.run.tasks_defined.insert(def.task.clone())
        {
            let problem = RowProblem::new(
                Some("task"),
                format!("task {:?} is defined twice", def.task),
                "keep one definition per task",
            );
            self.reject(problem, at);
            return Ok(());
        }
        self.run.accept(item, shape)?;
        self.imported += 1;
        Ok(())
    }
}

impl FileRun<'_, '_> {
    fn reject(&mut self, problem: RowProblem, at: Location) {
        self.run.reject(problem.at(&self.name, at));
        self.rejected += 1;
    }
}
