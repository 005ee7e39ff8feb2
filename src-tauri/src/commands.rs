//! The commands the UI calls: thin wrappers over `spectrum_app::Studio`.
//! Quick reads return their value; long work starts a job and returns its id,
//! with progress and the result on the channel the UI passes in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spectrum_app::{
    DemoEvent, DemoRequest, Fix, Overview, PRESETS, PaperFetchRequest, PaperTaskView, Profile,
    ReportSection, RunEvent, RunSpec, Split, Studio,
};
use tauri::ipc::Channel;
use tauri::{AppHandle, Emitter, Manager, State};
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::jobs::{Context, Jobs};
use spectrum_app::dto::*;

type Res<T> = Result<T, UiError>;

/// Everything the commands share.
#[derive(Debug)]
pub struct Shell {
    pub studio: Studio,
    pub jobs: Arc<Jobs>,
    granted: Mutex<BTreeSet<PathBuf>>,
}

impl Shell {
    pub fn new(studio: Studio) -> Shell {
        Shell {
            studio,
            jobs: Arc::default(),
            granted: Mutex::default(),
        }
    }

    /// Paths the user chose (dialog) or dropped: the only ones commands accept.
    pub fn grant(&self, paths: &[PathBuf]) {
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        for p in paths {
            granted.insert(p.canonicalize().unwrap_or_else(|_| p.clone()));
        }
    }

    /// `path` itself, or a file inside a granted folder.
    fn check(&self, path: &str) -> Res<PathBuf> {
        let path = PathBuf::from(path);
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        let granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        if granted.iter().any(|g| canonical.starts_with(g)) {
            Ok(path)
        } else {
            Err(not_allowed(&path))
        }
    }

    /// A save path: its folder must exist; the file is granted when the dialog returns it.
    fn check_save(&self, path: &str) -> Res<PathBuf> {
        let path = PathBuf::from(path);
        let granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        if granted.contains(&path) {
            Ok(path)
        } else {
            Err(not_allowed(&path))
        }
    }
}

/// Hands dropped (or tour-built) files to the UI: the same path for both.
pub fn accept_dropped(app: &AppHandle, shell: &Shell, paths: Vec<PathBuf>) {
    shell.grant(&paths);
    let _ = app.emit("files-dropped", Dropped::of(&paths));
}

fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Res<T> {
    f().map_err(UiError::from)
}

#[tauri::command]
pub fn app_info(shell: State<'_, Shell>) -> Res<AppInfo> {
    let Overview { tour, interrupted } = shell.studio.overview()?;
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        store: shell.studio.store_path().display().to_string(),
        first_run: tour.datasets == 0,
        tour,
        interrupted,
    })
}

#[tauri::command]
pub fn jobs(shell: State<'_, Shell>) -> Vec<JobInfo> {
    shell.jobs.list()
}

#[tauri::command]
pub fn cancel_job(shell: State<'_, Shell>, id: u64) -> bool {
    shell.jobs.cancel(id)
}

/// Opens a file or folder dialog; the chosen paths become usable by the other commands.
#[tauri::command]
pub async fn pick(app: AppHandle, kind: PickKind) -> Res<Vec<String>> {
    let dialog = app.dialog().file();
    let picked = match kind {
        PickKind::DataFiles => dialog
            .set_title("Import task files")
            .add_filter(
                "Task files",
                &["jsonl", "json", "csv", "tsv", "parquet", "gz", "zst"],
            )
            .blocking_pick_files()
            .unwrap_or_default(),
        PickKind::DataFolder => dialog
            .set_title("Import a folder of task files")
            .blocking_pick_folder()
            .into_iter()
            .collect(),
        PickKind::ModelFolder => dialog
            .set_title("Add a Hugging Face model folder")
            .blocking_pick_folder()
            .into_iter()
            .collect(),
        PickKind::GgufFile => dialog
            .set_title("Add a GGUF model")
            .add_filter("GGUF", &["gguf"])
            .blocking_pick_file()
            .into_iter()
            .collect(),
    };
    let paths: Vec<PathBuf> = picked
        .into_iter()
        .filter_map(|p| p.into_path().ok())
        .collect();
    let shell = app.state::<Shell>();
    shell.grant(&paths);
    Ok(paths.iter().map(|p| p.display().to_string()).collect())
}

/// A save dialog for the PDF report; `None` when the user cancels.
#[tauri::command]
pub async fn pick_save(app: AppHandle, file_name: String) -> Res<Option<String>> {
    let chosen = app
        .dialog()
        .file()
        .set_title("Save the report")
        .set_file_name(file_name)
        .add_filter("PDF", &["pdf"])
        .blocking_save_file()
        .and_then(|p| p.into_path().ok());
    let Some(path) = chosen else { return Ok(None) };
    let shell = app.state::<Shell>();
    shell
        .granted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.clone());
    Ok(Some(path.display().to_string()))
}

/// The first-run tour: writes the built-in suite to a folder and hands it to
/// the UI exactly as if the user had dropped that folder on the window.
#[tauri::command]
pub async fn tour_suite(app: AppHandle) -> Res<Vec<String>> {
    let shell = app.state::<Shell>();
    let out = shell
        .studio
        .store_path()
        .parent()
        .unwrap_or(Path::new("."))
        .join("builtin-suite");
    let studio = shell.studio.clone();
    let dir = out.clone();
    blocking(move || studio.build_suite(&spectrum_app::SuiteConfig::default(), &dir))?;
    accept_dropped(&app, &shell, vec![out.clone()]);
    Ok(vec![out.display().to_string()])
}

/// `request` with every path checked as granted.
fn import_request(shell: &Shell, mut request: ImportRequest) -> Res<ImportRequest> {
    if request.paths.is_empty() {
        return Err(UiError::bad_input("no files to import").with_fix(Fix::Import));
    }
    for path in &mut request.paths {
        *path = shell.check(&path.display().to_string())?;
    }
    Ok(request)
}

fn import_label(request: &ImportRequest) -> String {
    let paths: Vec<String> = request
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    paths.join(", ")
}

fn import_progress(p: spectrum_app::Progress) -> JobEvent {
    JobEvent::Import {
        progress: ImportProgress {
            bytes_done: p.bytes_done as f64,
            bytes_total: p.bytes_total as f64,
            rows: p.rows as f64,
        },
    }
}

/// Job result: `ImportPreview`.
#[tauri::command]
pub fn preview_import(
    shell: State<'_, Shell>,
    request: ImportRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let request = import_request(&shell, request)?;
    let studio = shell.studio.clone();
    shell.jobs.start(
        JobKind::Preview,
        import_label(&request),
        channel,
        move |ctx| {
            studio
                .preview_import(&request, &mut |p| ctx.send(import_progress(p)), &ctx.cancel)
                .map(|r| JobResult::Preview(Box::new(r)))
        },
    )
}

/// The whole demo as one job, as `spectrum demo` runs it (the tour's "Run
/// the whole demo"); running it again resumes or reuses what is done. Job
/// result: `DemoOutcome`.
#[tauri::command]
pub fn run_demo(shell: State<'_, Shell>, channel: Channel<JobEvent>) -> Res<u64> {
    let studio = shell.studio.clone();
    shell
        .jobs
        .start(JobKind::Demo, "demo".into(), channel, move |ctx| {
            studio
                .demo(
                    &DemoRequest::default(),
                    &mut |event| match event {
                        DemoEvent::Step { step, of, text } => {
                            ctx.note(&format!("{step}/{of} {text}"))
                        }
                        DemoEvent::Note(text) => ctx.note(text),
                        DemoEvent::Import(p) => ctx.send(import_progress(p)),
                        DemoEvent::Train(p) => ctx.send(JobEvent::Train {
                            progress: p.clone(),
                        }),
                        DemoEvent::Eval(p) => ctx.send(JobEvent::Eval {
                            progress: p.clone(),
                        }),
                        DemoEvent::Imported { .. }
                        | DemoEvent::Model(_)
                        | DemoEvent::Trained(_)
                        | DemoEvent::Evaluated(_)
                        | DemoEvent::Compared(_) => {}
                    },
                    &ctx.cancel,
                )
                .map(|r| JobResult::Demo(Box::new(r)))
        })
}

/// Job result: `ImportOutcome`.
#[tauri::command]
pub fn import(
    shell: State<'_, Shell>,
    request: ImportRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let request = import_request(&shell, request)?;
    let studio = shell.studio.clone();
    shell.jobs.start(
        JobKind::Import,
        import_label(&request),
        channel,
        move |ctx| {
            studio
                .import(&request, &mut |p| ctx.send(import_progress(p)), &ctx.cancel)
                .map(|r| JobResult::Import(Box::new(r)))
        },
    )
}

/// The paper's suite: every task, its source and what it still needs.
#[tauri::command]
pub fn paper_suite(shell: State<'_, Shell>, data_dir: Option<PathBuf>) -> Res<Vec<PaperTaskView>> {
    Ok(shell.studio.paper_suite(data_dir.as_deref())?)
}

/// Job result: `PaperFetched`. Downloads, builds and imports the paper's tasks.
#[tauri::command]
pub fn fetch_paper_suite(
    shell: State<'_, Shell>,
    request: PaperFetchRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let studio = shell.studio.clone();
    let label = match request.tasks.as_slice() {
        [] => "the paper's suite".to_string(),
        [one] => one.clone(),
        many => format!("{} paper tasks", many.len()),
    };
    shell
        .jobs
        .start(JobKind::Suite, label, channel, move |ctx| {
            studio
                .fetch_paper_suite(
                    &request,
                    &mut |e| {
                        ctx.send(JobEvent::Suite {
                            progress: e.clone(),
                        })
                    },
                    &ctx.cancel,
                )
                .map(|r| JobResult::Suite(Box::new(r)))
        })
}

#[tauri::command]
pub fn datasets(shell: State<'_, Shell>) -> Res<Vec<DatasetSummary>> {
    Ok(shell.studio.datasets()?)
}

#[tauri::command]
pub fn remove_dataset(shell: State<'_, Shell>, id: i64) -> Res<DatasetSummary> {
    Ok(shell.studio.remove_dataset(&id.to_string())?)
}

#[tauri::command]
pub fn tasks(shell: State<'_, Shell>, split: Option<Split>) -> Res<Vec<TaskSummary>> {
    Ok(shell.studio.tasks(split, None)?)
}

#[tauri::command]
pub fn task_detail(shell: State<'_, Shell>, id: i64) -> Res<TaskDetail> {
    Ok(shell.studio.task_detail(id, 50)?)
}

/// The prompt and target of the distribution item an evaluation row names.
#[tauri::command]
pub async fn distribution_item(
    shell: State<'_, Shell>,
    task: String,
    id: String,
) -> Res<Option<TaskItem>> {
    Ok(shell.studio.distribution_item(&task, &id)?)
}

/// The prompt an evaluation run scored (steer: `pick` = sequence id; dist:
/// item id) or sampled (valid: `setting`), exactly as the run built it.
#[tauri::command]
pub async fn run_prompt(
    shell: State<'_, Shell>,
    run: RunRef,
    family: spectrum_app::Family,
    task: String,
    pick: Option<String>,
    setting: Option<spectrum_app::eval_rows::Setting>,
) -> Res<PromptView> {
    Ok(shell
        .studio
        .run_prompt(&run, family, &task, pick, setting)?)
}

#[tauri::command]
pub fn models(shell: State<'_, Shell>) -> Res<Vec<ModelRecord>> {
    Ok(shell.studio.models()?)
}

#[tauri::command]
pub fn remove_run(shell: State<'_, Shell>, run: RunRef) -> Res<RunRecord> {
    Ok(shell.studio.remove_run(&run)?)
}

#[tauri::command]
pub fn remove_model(shell: State<'_, Shell>, name: String) -> Res<ModelRecord> {
    Ok(shell.studio.remove_model(&name)?)
}

/// Job result: `ModelRecord`. Folders, GGUF files and tokenizer folders
/// must have been granted (picked in a dialog or dropped).
#[tauri::command]
pub fn add_model(
    shell: State<'_, Shell>,
    request: AddModelRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    for source in std::iter::once(&request.source).chain(request.remote.tokenizer.as_ref()) {
        if let ModelSource::Folder { path } | ModelSource::Gguf { path } = source {
            shell.check(&path.display().to_string())?;
        }
    }
    let studio = shell.studio.clone();
    shell.jobs.start(
        JobKind::Model,
        request.source.to_string(),
        channel,
        move |ctx| {
            studio
                .add_model(&request, &mut |s| ctx.note(s))
                .map(|r| JobResult::Model(Box::new(r)))
        },
    )
}

#[tauri::command]
pub fn train_defaults() -> TrainDefaults {
    TrainDefaults {
        presets: PRESETS
            .iter()
            .filter_map(|name| {
                RunSpec::preset(name).map(|spec| Preset {
                    name: (*name).into(),
                    spec,
                })
            })
            .collect(),
    }
}

/// The run's estimated peak memory beside the device's free memory, and the
/// settings that would fit when it does not (the Train view shows it as the
/// settings change).
#[tauri::command]
pub fn train_memory(shell: State<'_, Shell>, request: TrainRequest) -> Res<MemoryFit> {
    Ok(shell.studio.train_memory(&request)?)
}

/// Job result: `TrainOutcome`.
#[tauri::command]
pub fn train(
    shell: State<'_, Shell>,
    request: TrainRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let studio = shell.studio.clone();
    let label = request
        .name
        .clone()
        .unwrap_or_else(|| request.model.to_string());
    shell
        .jobs
        .start(JobKind::Train, label, channel, move |ctx| {
            studio
                .train(
                    &request,
                    &mut train_events(ctx),
                    &mut |s| ctx.note(s),
                    &ctx.cancel,
                )
                .map(|r| JobResult::Train(Box::new(r)))
        })
}

/// Resumes a training or evaluation run. Job result: `TrainOutcome` or `EvalDone`.
#[tauri::command]
pub fn resume_run(shell: State<'_, Shell>, run: RunRef, channel: Channel<JobEvent>) -> Res<u64> {
    let record = shell.studio.run_detail(&run)?.run;
    let studio = shell.studio.clone();
    shell
        .jobs
        .start(record.kind.into(), record.name, channel, move |ctx| {
            let mut events = |event: RunEvent<'_>| match event {
                RunEvent::Train(p) => ctx.send(JobEvent::Train {
                    progress: p.clone(),
                }),
                RunEvent::Eval(p) => ctx.send(JobEvent::Eval {
                    progress: p.clone(),
                }),
                RunEvent::Note(text) => ctx.note(text),
            };
            Ok(studio
                .resume_run(&RunRef::Id(record.id), &mut events, &ctx.cancel)?
                .into())
        })
}

#[tauri::command]
pub fn eval_defaults() -> EvalDefaults {
    EvalDefaults {
        profiles: [Profile::Quick, Profile::Standard, Profile::Full]
            .into_iter()
            .map(|p| (p, p.settings()))
            .collect(),
    }
}

/// Job result: `{run, name}` of the evaluation run.
#[tauri::command]
pub fn evaluate(
    shell: State<'_, Shell>,
    request: EvalRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let studio = shell.studio.clone();
    let label = request
        .name
        .clone()
        .unwrap_or_else(|| request.model.to_string());
    shell.jobs.start(JobKind::Eval, label, channel, move |ctx| {
        let report = studio.evaluate(
            &request,
            &mut eval_events(ctx),
            &mut |s| ctx.note(s),
            &ctx.cancel,
        )?;
        Ok(JobResult::Eval(EvalDone::from(&report)))
    })
}

#[tauri::command]
pub fn runs(shell: State<'_, Shell>) -> Res<Vec<RunRecord>> {
    Ok(shell.studio.runs()?)
}

#[tauri::command]
pub async fn run_detail(shell: State<'_, Shell>, run: RunRef) -> Res<RunDetail> {
    Ok(shell.studio.run_detail(&run)?)
}

#[tauri::command]
pub async fn eval_report(shell: State<'_, Shell>, run: RunRef) -> Res<EvalReport> {
    Ok(shell.studio.eval_report(&run)?)
}

#[tauri::command]
pub async fn compare(shell: State<'_, Shell>, runs: Vec<RunRef>) -> Res<Comparison> {
    Ok(shell.studio.compare(&runs)?)
}

#[tauri::command]
pub fn report_options() -> ReportOptions {
    ReportOptions {
        sections: ReportSection::ALL.to_vec(),
    }
}

/// Job result: the PDF's path. Without `out` (a path the save dialog
/// returned), the report goes where `Studio` puts reports by default.
#[tauri::command]
pub fn export_report(
    shell: State<'_, Shell>,
    mut request: ReportRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let out = match &request.out {
        Some(path) => shell.check_save(&path.display().to_string())?,
        None => shell.studio.default_report_path(),
    };
    shell
        .granted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(out.clone());
    request.out = Some(out.clone());
    let studio = shell.studio.clone();
    shell.jobs.start(
        JobKind::Report,
        out.display().to_string(),
        channel,
        move |ctx| {
            studio
                .report(&request, &mut |s| ctx.note(s))
                .map(|path| JobResult::Report(path.display().to_string()))
        },
    )
}

/// A job's training progress, sent as events.
fn train_events(ctx: &Context) -> impl FnMut(&TrainProgress) + '_ {
    |p| {
        ctx.send(JobEvent::Train {
            progress: p.clone(),
        })
    }
}

/// A job's evaluation progress, sent as events.
fn eval_events(ctx: &Context) -> impl FnMut(&EvalProgress) + '_ {
    |p| {
        ctx.send(JobEvent::Eval {
            progress: p.clone(),
        })
    }
}

/// Opens a report this session wrote in the system's PDF viewer.
#[tauri::command]
pub fn open_path(app: AppHandle, shell: State<'_, Shell>, path: String) -> Res<()> {
    let path = shell.check_save(&path)?;
    app.opener()
        .open_path(path.display().to_string(), None::<&str>)
        .map_err(|e| UiError::internal(format!("cannot open {}: {e}", path.display())))
}
