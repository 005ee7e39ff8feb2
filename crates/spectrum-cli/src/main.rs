//! `spectrum`: the command line of Spectrum Studio. Parses arguments, calls the
//! `spectrum-app` facade, and prints results: tables for people, JSON (`--json`)
//! for programs. Messages and progress go to stderr, results to stdout.

mod args;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spectrum_app::{
    Cancelled, ChartRequest, EvalProgress, EvalReport, EvalRequest, Family, GenerateRequest,
    ImportOutcome, ImportRequest, Progress, PromptFormat, PromptSource, ReportRequest,
    SamplingParams, ScoreRequest, Studio, TrainOutcome, TrainProgress, TrainRequest,
};

use args::{Cli, Command, DatasetsCommand, ModelCommand, RunsCommand, SuiteCommand, TasksCommand};
use output::Output;

// The importer parses on one thread and stores on another: mimalloc frees
// memory across threads without the lock contention of the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    spectrum_app::keep_freed_memory();
    // Before any thread starts: every later thread inherits the mode, and
    // the call reaches rayon's pool too.
    spectrum_app::flush_subnormals();
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // First Ctrl-C asks the running job to stop cleanly; a second one exits at once.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ncancelling... (press Ctrl-C again to quit at once)");
        });
    }
    match run(cli, &out, &cancel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cancelled = spectrum_app::is_cancelled(&e);
            out.error(&e);
            if cancelled {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli, out: &Output, cancel: &AtomicBool) -> Result<()> {
    // Needs no store: answers on a machine where none can be opened.
    if let Command::System { no_measure } = cli.command {
        return out.system(&spectrum_app::system(!no_measure)?);
    }
    let studio = Studio::new(cli.store)?.with_python(cli.python);
    let mut note = |m: &str| out.note(m);
    match cli.command {
        Command::Import(a) => {
            let request = ImportRequest {
                paths: a.paths.clone(),
                name: a.name.clone(),
                options: a.options()?,
            };
            let outcome = import_with_progress(&studio, &request, out, cancel)?;
            out.import(&outcome)
        }
        Command::Datasets { command } => match command {
            DatasetsCommand::List => out.datasets(&studio.datasets()?),
            DatasetsCommand::Show { dataset } => out.dataset(&studio.dataset(&dataset)?),
            DatasetsCommand::Remove { dataset } => {
                let removed = studio.remove_dataset(&dataset)?;
                out.removed(&removed)
            }
        },
        Command::Tasks {
            command: TasksCommand::List { split, dataset },
        } => out.tasks(&studio.tasks(split.map(Into::into), dataset.as_deref())?),
        Command::Suite {
            command: SuiteCommand::Build(a),
        } => {
            let files = studio.build_suite(&a.knobs.config(), &a.out)?;
            out.suite_files(&files)
        }
        Command::Model { command } => match command {
            ModelCommand::Default => out.model(&studio.install_default_model(&mut note)?),
            ModelCommand::Add {
                source,
                name,
                tokenizer,
                api_key_env,
                concurrency,
                timeout,
            } => {
                let record = if source.starts_with("openai:") {
                    let options = spectrum_app::RemoteOptions {
                        tokenizer,
                        api_key_env: Some(api_key_env),
                        concurrency: Some(concurrency),
                        timeout_s: Some(timeout),
                    };
                    studio.add_remote_model(&source, name.as_deref(), &options, &mut note)?
                } else {
                    studio.add_model(&source, name.as_deref(), &mut note)?
                };
                out.model(&record)
            }
            ModelCommand::Key { url } => {
                eprintln!("API key for {url} (read from stdin, stored in the OS keyring):");
                let mut key = String::new();
                std::io::stdin().read_line(&mut key)?;
                spectrum_app::store_api_key(&url, key.trim())?;
                eprintln!("stored");
                Ok(())
            }
            ModelCommand::AddTokens { model, from } => {
                match studio.add_turn_tokens(&model, from.as_deref(), &mut |m| out.note(m))? {
                    Some(record) => out.model(&record),
                    None => anyhow::bail!(
                        "{model} has turn tokens already (ChatML, Gemma or Llama 3): the spectrum format works as it is"
                    ),
                }
            }
            ModelCommand::List => out.models(&studio.models()?),
            ModelCommand::Show { model } => out.model(&studio.model(&model)?),
            ModelCommand::Remove { model } => out.removed_model(&studio.remove_model(&model)?),
        },
        Command::Serve(a) => {
            let api_key = match &a.api_key_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "--api-key-env {var}: ${var} is not set (fix: export {var}=KEY)"
                    )
                })?),
                None => None,
            };
            let options = spectrum_app::ServeOptions {
                host: a.host.clone(),
                port: a.port,
                api_key,
                max_batch_tokens: a.max_batch_tokens,
                max_batch_rows: a.max_batch_rows,
                max_queue: a.max_queue,
            };
            let server = studio.serve(&a.models, a.device, &options, &mut note)?;
            let url = format!("http://{}/v1", server.addr());
            out.serving(&url, &server.models);
            while !cancel.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            eprintln!("stopping: finishing the requests in flight");
            server.stop()?;
            Ok(())
        }
        Command::Score(a) => {
            let request = ScoreRequest {
                model: a.model.model.clone(),
                format: a.model.format(),
                file: a.file.clone(),
                budget: a.budget,
                batch_tokens: a.batch_tokens,
                device: a.model.device,
            };
            let mut table = output::ScoreTable::default();
            studio.score(
                &request,
                &mut note,
                &mut |row| out.scored_row(&row, &mut table),
                cancel,
            )?;
            out.score_summary(&table);
            Ok(())
        }
        Command::Generate(a) => {
            let prompt = match (&a.prompt, &a.task) {
                (Some(text), _) => PromptSource::Text(text.clone()),
                (None, Some(task)) => PromptSource::Task(task.clone()),
                (None, None) => anyhow::bail!("give --prompt TEXT or --task NAME"),
            };
            let params = SamplingParams {
                n: a.n,
                temperature: a.temperature,
                top_p: a.top_p,
                top_k: a.top_k,
                seed: a.seed,
                max_tokens: a.max_tokens,
                ..SamplingParams::default()
            };
            let request = GenerateRequest {
                model: a.model.model.clone(),
                format: a.model.format(),
                prompt,
                params,
                device: a.model.device,
            };
            out.samples(&studio.generate(&request, &mut note)?)
        }
        Command::Train(a) if a.no_start => {
            let request = TrainRequest {
                spec: a.run_spec()?,
                model: a.model.clone(),
                name: a.name.clone(),
                init_tokens_from: a.init_tokens_from.clone(),
            };
            let run = studio.plan_run(&request, &mut note)?;
            out.planned(&run)
        }
        Command::ExportJob {
            run,
            engine,
            out: dir,
            model,
        } => {
            let bundle = studio.export_job(&run, &engine, &dir, model.as_deref())?;
            out.job_bundle(&bundle)
        }
        Command::Train(a) => {
            let outcome = match &a.resume {
                Some(run) => train_with_progress(out, |p, _| studio.resume(run, p, cancel))?,
                None => {
                    let request = TrainRequest {
                        spec: a.run_spec()?,
                        model: a.model.clone(),
                        name: a.name.clone(),
                        init_tokens_from: a.init_tokens_from.clone(),
                    };
                    train_with_progress(out, |p, n| studio.train(&request, p, n, cancel))?
                }
            };
            out.trained(&outcome)?;
            if outcome.cancelled {
                return Err(Cancelled("training").into());
            }
            Ok(())
        }
        Command::Eval(a) => {
            let result = match &a.resume {
                Some(run) => eval_with_progress(out, |p, n| studio.resume_eval(run, p, n, cancel)),
                None => {
                    let request = a.request();
                    eval_with_progress(out, |p, n| studio.evaluate(&request, p, n, cancel))
                }
            };
            match result {
                Ok(report) => out.eval_report(&report),
                Err(e) if spectrum_app::is_cancelled(&e) => {
                    out.note("cancelled: the finished tasks are kept; `spectrum eval --resume RUN` continues (`spectrum runs list` shows the run)");
                    Err(e)
                }
                Err(e) => Err(e),
            }
        }
        Command::Compare { runs } => out.comparison(&studio.compare(&runs)?),
        Command::Report(a) => {
            let request = ReportRequest {
                runs: a.runs,
                baseline: a.baseline,
                sections: a.sections,
                out: a.out,
                created: a.created,
            };
            let path = studio.report(&request, &mut note)?;
            out.note(&format!("wrote {}", path.display()));
            Ok(())
        }
        Command::Chart(a) => {
            let chart = ChartRequest {
                kind: a.kind.clone(),
                runs: a.runs.clone(),
                task: a.task.clone(),
                baseline: a.baseline.clone(),
                metric: a.metric.clone(),
            };
            studio.chart(&chart, &a.out)?;
            out.note(&format!("wrote {}", a.out.display()));
            Ok(())
        }
        Command::Runs { command } => match command {
            RunsCommand::List => out.runs(&studio.runs()?),
            RunsCommand::Show { run } => {
                let detail = studio.run_detail(&run)?;
                if detail.run.kind == "eval" {
                    out.eval_report(&studio.eval_report(&detail.run.id.to_string())?)
                } else {
                    out.run_detail(&detail)
                }
            }
        },
        Command::Export(a) => {
            let run = studio.export_run(&a.run, a.peft.as_deref(), a.merged.as_deref())?;
            for (what, dir) in [("PEFT adapter", &a.peft), ("merged model", &a.merged)] {
                if let Some(dir) = dir {
                    out.note(&format!(
                        "wrote the {what} of run {} to {}",
                        run.id,
                        dir.display()
                    ));
                }
            }
            Ok(())
        }
        Command::Prompt(a) => out.prompt(&studio.prompt(&a.request(), &mut note)?),
        Command::Validate { task, texts } => out.verdicts(&studio.validate(&task, &texts)?),
        Command::Demo(a) => demo(&studio, a, out, cancel),
        Command::System { .. } => unreachable!("answered above"),
    }
}

/// Runs a training job with a progress bar (steps, loss, ETA) on stderr;
/// held-out losses and checkpoints are printed above it.
fn train_with_progress(
    out: &Output,
    job: impl FnOnce(&mut dyn FnMut(&TrainProgress), &mut dyn FnMut(&str)) -> Result<TrainOutcome>,
) -> Result<TrainOutcome> {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if !out.json {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    // Above the bar on a terminal; plain lines when stderr is a file or a pipe
    // (a hidden bar drops what is printed through it).
    let say = |m: String| {
        if bar.is_hidden() {
            eprintln!("{m}");
        } else {
            bar.println(m);
        }
    };
    let mut on_progress = |p: &TrainProgress| match p {
        TrainProgress::Started {
            run,
            name,
            start_step,
            total_steps,
            trainable_parameters,
            train_sequences,
        } => {
            bar.set_length(*total_steps as u64);
            bar.set_position(*start_step as u64);
            let verb = if *start_step > 0 {
                "resuming"
            } else {
                "training"
            };
            say(format!(
                "{verb} run {run} ({name}) at step {start_step}/{total_steps}: {:.2}M trainable parameters, {train_sequences} training sequences",
                *trainable_parameters as f64 / 1e6
            ));
        }
        TrainProgress::Step {
            metrics,
            eta_s,
            total_steps,
        } => {
            bar.set_position(metrics.step as u64);
            let line = format!(
                "loss {:.3}  lr {:.2e}  {:.0} tok/s  {} left",
                metrics.loss,
                metrics.lr,
                metrics.tokens_per_s,
                output::duration(*eta_s)
            );
            if bar.is_hidden() {
                say(format!("step {}/{}: {line}", metrics.step, total_steps));
            }
            bar.set_message(line);
        }
        TrainProgress::Eval(m) => say(format!(
            "step {:>5}: held-out loss {:.4} (acc {:.3}, {} outputs with index >= 1)",
            m.step, m.loss, m.acc, m.outputs
        )),
        TrainProgress::Checkpoint { step, path } => {
            say(format!("step {step:>5}: checkpoint {}", path.display()))
        }
        TrainProgress::Registering { name } => {
            say(format!("registering the tuned model as {name:?}"))
        }
    };
    let mut on_note = |m: &str| say(m.to_string());
    let result = job(&mut on_progress, &mut on_note);
    bar.finish_and_clear();
    result
}

/// Runs an evaluation with a progress bar over its (family, task) pairs.
fn eval_with_progress(
    out: &Output,
    job: impl FnOnce(&mut dyn FnMut(&EvalProgress), &mut dyn FnMut(&str)) -> Result<EvalReport>,
) -> Result<EvalReport> {
    const UNIT: u64 = 1000;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if !out.json {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    let mut current = String::new();
    let started = Instant::now();
    let mut on_progress = |p: &EvalProgress| {
        bar.set_length(p.tasks_total as u64 * UNIT);
        let within = (p.done as u64 * UNIT) / p.total.max(1) as u64;
        bar.set_position(p.tasks_done as u64 * UNIT + within);
        let what = format!(
            "{}/{} {} {}",
            p.tasks_done + 1,
            p.tasks_total,
            p.family.as_str(),
            p.task
        );
        if what != current {
            if bar.is_hidden() {
                // Plain lines (stderr is not a terminal): the estimate from the pace so far.
                let done = p.tasks_done as f64 / p.tasks_total.max(1) as f64;
                let elapsed = started.elapsed().as_secs_f64();
                if done > 0.0 {
                    let left = elapsed * (1.0 - done) / done;
                    eprintln!("{what} (about {} left)", output::duration(left));
                } else {
                    eprintln!("{what}");
                }
            }
            current = what.clone();
        }
        bar.set_message(format!("{what} {}/{}", p.done, p.total));
    };
    let mut on_note = |m: &str| {
        if bar.is_hidden() {
            eprintln!("{m}");
        } else {
            bar.println(m);
        }
    };
    let result = job(&mut on_progress, &mut on_note);
    bar.finish_and_clear();
    result
}

fn import_with_progress(
    studio: &Studio,
    request: &ImportRequest,
    out: &Output,
    cancel: &AtomicBool,
) -> Result<ImportOutcome> {
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {msg} ({eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut shown = false;
    let mut on_progress = |p: Progress| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{} rows", p.rows));
        // Only imports that last more than a second get a bar.
        if !shown && !out.json && started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
    };
    let result = studio.import(request, &mut on_progress, cancel);
    bar.finish_and_clear();
    result
}

fn demo(studio: &Studio, a: args::DemoArgs, out: &Output, cancel: &AtomicBool) -> Result<()> {
    let dir = match a.out.clone() {
        Some(dir) => dir,
        None => studio
            .store_path()
            .parent()
            .map(|p| p.join("demo-suite"))
            .unwrap_or_else(|| "demo-suite".into()),
    };
    let config = a.knobs.config();
    out.note(&format!(
        "1/6 building the built-in suite (seed {}, {} sequences per task) in {}",
        config.seed,
        config.size,
        dir.display()
    ));
    studio.build_suite(&config, &dir)?;
    out.note(&format!(
        "2/6 importing it into {}",
        studio.store_path().display()
    ));
    let request = ImportRequest {
        paths: vec![dir],
        name: Some("builtin-suite".into()),
        options: Default::default(),
    };
    let outcome = import_with_progress(studio, &request, out, cancel)?;
    out.import(&outcome)?;
    let dataset = match &outcome {
        ImportOutcome::Imported { dataset, .. } | ImportOutcome::AlreadyImported { dataset } => {
            dataset
        }
    };
    let tasks = studio.tasks(None, Some(&dataset.id.to_string()))?;
    out.tasks(&tasks)?;
    out.note("3/6 installing the default model (SmolLM2-135M-Instruct)");
    let model = studio.install_default_model(&mut |m| out.note(m))?;
    out.model(&model)?;
    let spec = a.run_spec(dataset.id);
    let steps = match spec.length {
        spectrum_app::Length::Steps(n) => n,
        spectrum_app::Length::Epochs(_) => 0,
    };
    out.note(&format!(
        "4/6 Spectrum-tuning it: LoRA on the train tasks, {steps} steps (cpu preset: about 10 minutes on 2 cores; Ctrl-C stops, running the demo again resumes)"
    ));
    let wanted = serde_json::to_value(&spec)?;
    let mut tuned = None;
    let mut tuned_run = 0;
    let earlier = studio.runs()?.into_iter().find(|r| {
        r.kind == "train" && r.model.as_deref() == Some(&model.name) && r.spec["spec"] == wanted
    });
    let outcome = match earlier {
        Some(run) if run.status == "finished" => {
            out.note(&format!("already tuned: run {} ({})", run.id, run.name));
            tuned = run.result_model.clone();
            tuned_run = run.id;
            None
        }
        Some(run) => Some(train_with_progress(out, |p, _| {
            studio.resume(&run.id.to_string(), p, cancel)
        })?),
        None => {
            let request = TrainRequest {
                spec,
                model: model.name.clone(),
                name: None,
                init_tokens_from: None,
            };
            Some(train_with_progress(out, |p, n| {
                studio.train(&request, p, n, cancel)
            })?)
        }
    };
    if let Some(outcome) = outcome {
        out.trained(&outcome)?;
        if outcome.cancelled {
            return Err(Cancelled("the demo").into());
        }
        tuned = outcome.model.map(|m| m.name);
        tuned_run = outcome.run.id;
    }
    let tuned = tuned.context("the tuning run registered no model")?;
    let profile = spectrum_app::Profile::Quick;
    let mut settings = profile.settings();
    if let Some(n) = a.eval_size {
        (settings.max_sequences, settings.max_items, settings.samples) = (n, n, n);
        settings.temperatures = vec![1.0];
    }
    out.note(&format!(
        "5/6 evaluating on the held-out tasks ({} profile): the instruct model with its chat template, then the tuned model with the spectrum template",
        format!("{profile:?}").to_lowercase()
    ));
    let mut runs = Vec::new();
    for (model, format) in [
        (model.name.clone(), PromptFormat::Chat),
        (tuned.clone(), PromptFormat::Spectrum),
    ] {
        let request = EvalRequest {
            model,
            families: Family::ALL.to_vec(),
            tasks: vec!["held-out".into()],
            format,
            profile,
            settings: settings.clone(),
            device: Default::default(),
            name: None,
        };
        let report = match studio.finished_eval(&request)? {
            Some(report) => {
                out.note(&format!(
                    "already evaluated: run {} ({})",
                    report.run, report.name
                ));
                report
            }
            None => eval_with_progress(out, |p, n| studio.evaluate(&request, p, n, cancel))?,
        };
        runs.push(report.run.to_string());
    }
    out.comparison(&studio.compare(&runs)?)?;
    let report = studio.store_path().parent().map_or_else(
        || PathBuf::from("demo-report.pdf"),
        |p| p.join("demo-report.pdf"),
    );
    out.note(&format!(
        "6/6 writing the PDF report to {}",
        report.display()
    ));
    let mut report_runs = runs.clone();
    report_runs.push(tuned_run.to_string());
    studio.report(
        &ReportRequest {
            runs: report_runs,
            baseline: None,
            sections: Vec::new(),
            out: report.clone(),
            created: None,
        },
        &mut |m| out.note(m),
    )?;
    out.note(&format!(
        "next: open {}; `spectrum runs show {}` shows the tuned model's evaluation; `spectrum eval --help` evaluates any model;",
        report.display(),
        runs[1]
    ));
    out.note(&format!(
        "      `spectrum generate --model {tuned} --task us_state -n 5` samples the tuned model"
    ));
    Ok(())
}
