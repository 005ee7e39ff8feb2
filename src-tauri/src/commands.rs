//! The commands the UI calls: thin wrappers over `spectrum_app::Studio`.
//! Quick reads return their value; long work starts a job and returns its id,
//! with progress and the result on the channel the UI passes in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use spectrum_app::{
    DemoEvent, DemoRequest, EvalRequest, Fix, ImportOptions, ImportRequest, Listing, Overview,
    PRESETS, Profile, ReportRequest, RunKind, RunSpec, SECTIONS, Shape, Split, Studio,
    TrainRequest,
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
    let model = !paths.is_empty()
        && paths.iter().all(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
                || p.join("config.json").is_file()
        });
    let paths = paths.iter().map(|p| p.display().to_string()).collect();
    let _ = app.emit("files-dropped", Dropped { paths, model });
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

fn import_request(shell: &Shell, paths: &[String], o: &ImportOptionsDto) -> Res<ImportRequest> {
    let paths = paths
        .iter()
        .map(|p| shell.check(p))
        .collect::<Res<Vec<_>>>()?;
    if paths.is_empty() {
        return Err(UiError::bad_input("no files to import").with_fix(Fix::Import));
    }
    let shape = match o.shape.as_deref() {
        None | Some("") | Some("auto") => None,
        Some(s) => Some(Shape::parse(s).ok_or_else(|| {
            UiError::bad_input(format!("unknown shape {s:?}")).with_fix(Fix::Say {
                text: format!("one of {}", spectrum_app::SHAPE_NAMES),
            })
        })?),
    };
    let defaults = ImportOptions::default();
    Ok(ImportRequest {
        paths,
        name: o.name.clone().filter(|n| !n.trim().is_empty()),
        options: ImportOptions {
            shape,
            skip_invalid: o.skip_invalid,
            error_limit: 1000,
            task: None,
            split: o.split,
            category: o.category.clone().unwrap_or(defaults.category),
        },
    })
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
    paths: Vec<String>,
    options: ImportOptionsDto,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let request = import_request(&shell, &paths, &options)?;
    let studio = shell.studio.clone();
    shell
        .jobs
        .start(JobKind::Preview, paths.join(", "), channel, move |ctx| {
            studio
                .preview_import(&request, &mut |p| ctx.send(import_progress(p)), &ctx.cancel)
                .map(|r| JobResult::Preview(Box::new(r)))
        })
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
    paths: Vec<String>,
    options: ImportOptionsDto,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let request = import_request(&shell, &paths, &options)?;
    let studio = shell.studio.clone();
    shell
        .jobs
        .start(JobKind::Import, paths.join(", "), channel, move |ctx| {
            studio
                .import(&request, &mut |p| ctx.send(import_progress(p)), &ctx.cancel)
                .map(|r| JobResult::Import(Box::new(r)))
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
    run: i64,
    family: spectrum_app::Family,
    task: String,
    pick: Option<String>,
    setting: Option<spectrum_app::eval_rows::Setting>,
) -> Res<PromptView> {
    Ok(shell
        .studio
        .run_prompt(&run.to_string(), family, &task, pick, setting)?)
}

#[tauri::command]
pub fn models(shell: State<'_, Shell>) -> Res<Vec<ModelRecord>> {
    Ok(shell.studio.models()?)
}

#[tauri::command]
pub fn remove_model(shell: State<'_, Shell>, name: String) -> Res<ModelRecord> {
    Ok(shell.studio.remove_model(&name)?)
}

/// Job result: `ModelRecord`. `path`: a granted folder or GGUF file; `None`:
/// the built-in default model.
#[tauri::command]
pub fn add_model(
    shell: State<'_, Shell>,
    path: Option<String>,
    name: Option<String>,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let path = path.map(|p| shell.check(&p)).transpose()?;
    let studio = shell.studio.clone();
    let label = path
        .as_ref()
        .map_or("default model".into(), |p| p.display().to_string());
    shell
        .jobs
        .start(JobKind::Model, label, channel, move |ctx| {
            let mut note = |s: &str| ctx.note(s);
            match path {
                None => studio.install_default_model(&mut note),
                Some(p) => {
                    let spec = p.display().to_string();
                    let name = name.filter(|n| !n.trim().is_empty());
                    studio.add_model(&spec, name.as_deref(), &mut note)
                }
            }
            .map(|r| JobResult::Model(Box::new(r)))
        })
}

/// Job result: `ModelRecord`.
#[tauri::command]
pub fn add_remote_model(
    shell: State<'_, Shell>,
    request: RemoteModelRequest,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let tokenizer = request
        .tokenizer
        .as_deref()
        .map(|p| shell.check(p))
        .transpose()?;
    let endpoints: Vec<&str> = request
        .endpoints
        .split([',', ' ', '\n'])
        .filter(|u| !u.trim().is_empty())
        .collect();
    let spec = format!("openai:{}#{}", endpoints.join(","), request.model.trim());
    let options = spectrum_app::RemoteOptions {
        tokenizer: tokenizer.map(|p| p.display().to_string()),
        api_key_env: request.api_key_env.filter(|v| !v.trim().is_empty()),
        concurrency: request.concurrency.map(|c| c as usize),
        timeout_s: None,
    };
    let name = request.name.filter(|n| !n.trim().is_empty());
    let studio = shell.studio.clone();
    shell
        .jobs
        .start(JobKind::Model, spec.clone(), channel, move |ctx| {
            let mut note = |s: &str| ctx.note(s);
            studio
                .add_remote_model(&spec, name.as_deref(), &options, &mut note)
                .map(|r| JobResult::Model(Box::new(r)))
        })
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
pub fn train_memory(shell: State<'_, Shell>, request: TrainRequestDto) -> Res<MemoryFit> {
    let request = TrainRequest {
        spec: request.spec,
        model: request.model,
        name: None,
        init_tokens_from: None,
    };
    Ok(shell.studio.train_memory(&request)?)
}

/// Job result: `TrainOutcome`.
#[tauri::command]
pub fn train(
    shell: State<'_, Shell>,
    request: TrainRequestDto,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    request
        .spec
        .validate()
        .map_err(|e| UiError::bad_input(e.to_string()))?;
    let studio = shell.studio.clone();
    let label = request
        .name
        .clone()
        .unwrap_or_else(|| request.model.clone());
    let request = TrainRequest {
        spec: request.spec,
        model: request.model,
        name: request.name.filter(|n| !n.trim().is_empty()),
        init_tokens_from: request.init_tokens_from.filter(|n| !n.trim().is_empty()),
    };
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

/// Resumes a training or evaluation run. Job result: `TrainOutcome` or `EvalReport`.
#[tauri::command]
pub fn resume_run(shell: State<'_, Shell>, run: i64, channel: Channel<JobEvent>) -> Res<u64> {
    let record = shell
        .studio
        .runs()?
        .into_iter()
        .find(|r| r.id == run)
        .ok_or_else(|| UiError::not_found(format!("no run {run}"), Listing::Runs))?;
    let studio = shell.studio.clone();
    let id = run.to_string();
    shell
        .jobs
        .start(record.kind.into(), record.name, channel, move |ctx| {
            Ok(match record.kind {
                RunKind::Eval => JobResult::Eval(EvalDone::from(&studio.resume_eval(
                    &id,
                    &mut eval_events(ctx),
                    &mut |s| ctx.note(s),
                    &ctx.cancel,
                )?)),
                RunKind::Train => {
                    let outcome = studio.resume(&id, &mut train_events(ctx), &ctx.cancel)?;
                    JobResult::Train(Box::new(outcome))
                }
            })
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
    request: EvalRequestDto,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    if request.families.is_empty() {
        return Err(
            UiError::bad_input("no evaluation family chosen").with_fix(Fix::Say {
                text: "tick steerability, distributions or validity".into(),
            }),
        );
    }
    let studio = shell.studio.clone();
    let label = request
        .name
        .clone()
        .unwrap_or_else(|| request.model.clone());
    let request = EvalRequest {
        model: request.model,
        families: request.families,
        tasks: request.tasks,
        format: request.format,
        profile: request.profile,
        settings: request.settings.unwrap_or(request.profile.settings()),
        device: request.device,
        name: request.name.filter(|n| !n.trim().is_empty()),
    };
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
pub async fn run_detail(shell: State<'_, Shell>, run: i64) -> Res<RunDetail> {
    Ok(shell.studio.run_detail(&run.to_string())?)
}

#[tauri::command]
pub async fn eval_report(shell: State<'_, Shell>, run: i64) -> Res<EvalReport> {
    Ok(shell.studio.eval_report(&run.to_string())?)
}

#[tauri::command]
pub async fn compare(shell: State<'_, Shell>, runs: Vec<i64>) -> Res<Comparison> {
    let runs: Vec<String> = runs.iter().map(i64::to_string).collect();
    Ok(shell.studio.compare(&runs)?)
}

#[tauri::command]
pub fn report_options() -> ReportOptions {
    ReportOptions {
        sections: SECTIONS.iter().map(|s| (*s).to_string()).collect(),
    }
}

/// Job result: the PDF's path. Without `out` (or a path the save dialog
/// returned), the report goes to `reports/` beside the store.
#[tauri::command]
pub fn export_report(
    shell: State<'_, Shell>,
    request: ReportRequestDto,
    channel: Channel<JobEvent>,
) -> Res<u64> {
    let out = match request.out.as_deref() {
        Some(path) => shell.check_save(path)?,
        None => {
            let dir = shell
                .studio
                .store_path()
                .parent()
                .unwrap_or(Path::new("."))
                .join("reports");
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let out = dir.join(format!("report-{stamp}.pdf"));
            shell
                .granted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(out.clone());
            out
        }
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| UiError::bad_input(format!("cannot create {}: {e}", dir.display())))?;
    }
    let studio = shell.studio.clone();
    let request = ReportRequest {
        runs: request.runs,
        baseline: request.baseline,
        sections: request.sections,
        out: out.clone(),
        created: None,
    };
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
