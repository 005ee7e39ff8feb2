//! `spectrum`: the command line of Spectrum Studio. Parses arguments, calls the
//! `spectrum-app` facade, and prints results: tables for people, JSON (`--json`)
//! for programs. Messages and progress go to stderr, results to stdout.

mod args;
mod output;
mod progress;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::Parser;
use spectrum_app::{
    Cancelled, ChartKind, ChartRequest, DemoEvent, EvalProgress, EvalReport, GenerateRequest,
    ImportOutcome, ImportRequest, PromptSource, ReportRequest, RunKind, RunRef, SamplingParams,
    ScoreRequest, Studio, TrainOutcome, TrainProgress, TrainRequest,
};

use args::{Cli, Command, DatasetsCommand, ModelCommand, RunsCommand, SuiteCommand, TasksCommand};
use output::Output;

// The importer parses on one thread and stores on another: mimalloc frees
// memory across threads without the lock contention of the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    spectrum_app::settle_environment();
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
        Command::Suite {
            command: SuiteCommand::List { data_dir },
        } => out.paper_suite(&studio.paper_suite(data_dir.as_deref())?),
        Command::Suite {
            command: SuiteCommand::Fetch(a),
        } => {
            let bar = progress::FetchBar::new(out);
            let fetched = studio.fetch_paper_suite(&a.request(), &mut |e| bar.event(e), cancel);
            bar.finish();
            out.paper_fetched(&fetched?)
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
                let request = spectrum_app::AddModelRequest {
                    source,
                    name,
                    remote: spectrum_app::RemoteOptions {
                        tokenizer,
                        api_key_env: Some(api_key_env),
                        concurrency: Some(concurrency),
                        timeout_s: Some(timeout),
                    },
                };
                out.model(&studio.add_model(&request, &mut note)?)
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
                match studio.add_turn_tokens(&model, from.as_ref(), &mut |m| out.note(m))? {
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
                out: Some(a.out),
                created: a.created,
            };
            let path = studio.report(&request, &mut note)?;
            out.note(&format!("wrote {}", path.display()));
            Ok(())
        }
        Command::Chart(a) => {
            // A heatmap's --task names the family whose metric it shows.
            let family = match (a.kind, &a.task) {
                (ChartKind::Heatmap, Some(family)) => {
                    Some(spectrum_app::Family::named(family).ok_or_else(|| {
                        spectrum_app::Problem::setting(
                            format!("no family {family:?} for a heatmap"),
                            "task",
                            "steer, dist or valid",
                        )
                    })?)
                }
                _ => None,
            };
            let chart = ChartRequest {
                kind: a.kind,
                runs: a.runs.clone(),
                task: a.task.clone().filter(|_| family.is_none()),
                family,
                baseline: a.baseline.clone(),
                metric: a.metric,
            };
            studio.chart(&chart, &a.out)?;
            out.note(&format!("wrote {}", a.out.display()));
            Ok(())
        }
        Command::Runs { command } => match command {
            RunsCommand::List => out.runs(&studio.runs()?),
            RunsCommand::Show { run } => {
                let detail = studio.run_detail(&run)?;
                if detail.run.kind == RunKind::Eval {
                    out.eval_report(&studio.eval_report(&RunRef::Id(detail.run.id))?)
                } else {
                    out.run_detail(&detail)
                }
            }
            RunsCommand::Remove { run } => out.removed_run(&studio.remove_run(&run)?),
            RunsCommand::Stop { run, wait } => {
                out.note(&format!("asking the process that runs {run} to stop"));
                out.stopped_run(&studio.stop_run(&run, std::time::Duration::from_secs(wait))?)
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
    let bar = progress::TrainBar::new(out);
    let result = job(&mut |p| bar.progress(p), &mut |m| bar.say(m));
    bar.finish();
    result
}

/// Runs an evaluation with a progress bar over its (family, task) pairs.
fn eval_with_progress(
    out: &Output,
    job: impl FnOnce(&mut dyn FnMut(&EvalProgress), &mut dyn FnMut(&str)) -> Result<EvalReport>,
) -> Result<EvalReport> {
    let bar = progress::EvalBar::new(out);
    let result = job(&mut |p| bar.progress(p), &mut |m| bar.say(m));
    bar.finish();
    result
}

fn import_with_progress(
    studio: &Studio,
    request: &ImportRequest,
    out: &Output,
    cancel: &AtomicBool,
) -> Result<ImportOutcome> {
    let bar = progress::ImportBar::new(out);
    let result = studio.import(request, &mut |p| bar.progress(p), cancel);
    bar.finish();
    result
}

/// `spectrum demo`: `Studio::demo`, shown as the single commands show their work.
fn demo(studio: &Studio, a: args::DemoArgs, out: &Output, cancel: &AtomicBool) -> Result<()> {
    let request = a.request();
    let import = progress::ImportBar::new(out);
    let mut train: Option<progress::TrainBar> = None;
    let mut eval: Option<progress::EvalBar> = None;
    // Printing to stdout can fail (a closed pipe); the first failure ends the demo's output.
    let mut printed: Result<()> = Ok(());
    let outcome = studio.demo(
        &request,
        &mut |event| {
            let shown = match event {
                DemoEvent::Step { step, of, text } => {
                    out.note(&format!("{step}/{of} {text}"));
                    Ok(())
                }
                DemoEvent::Note(text) => {
                    match (&train, &eval) {
                        (Some(bar), _) => bar.say(text),
                        (_, Some(bar)) => bar.say(text),
                        _ => out.note(text),
                    }
                    Ok(())
                }
                DemoEvent::Import(p) => {
                    import.progress(p);
                    Ok(())
                }
                DemoEvent::Imported { outcome, tasks } => {
                    import.finish();
                    out.import(outcome).and_then(|()| out.tasks(tasks))
                }
                DemoEvent::Model(m) => out.model(m),
                DemoEvent::Train(p) => {
                    train
                        .get_or_insert_with(|| progress::TrainBar::new(out))
                        .progress(p);
                    Ok(())
                }
                DemoEvent::Trained(o) => {
                    if let Some(bar) = train.take() {
                        bar.finish();
                    }
                    out.trained(o)
                }
                DemoEvent::Eval(p) => {
                    eval.get_or_insert_with(|| progress::EvalBar::new(out))
                        .progress(p);
                    Ok(())
                }
                DemoEvent::Evaluated(_) => {
                    if let Some(bar) = eval.take() {
                        bar.finish();
                    }
                    Ok(())
                }
                DemoEvent::Compared(c) => out.comparison(c),
            };
            if printed.is_ok() {
                printed = shown;
            }
        },
        cancel,
    )?;
    printed?;
    out.note(&format!(
        "next: open {}; `spectrum runs show {}` shows the tuned model's evaluation; `spectrum eval --help` evaluates any model;",
        outcome.report.display(),
        outcome.eval_runs[1]
    ));
    out.note(&format!(
        "      `spectrum generate --model {} --task us_state -n 5` samples the tuned model",
        outcome.tuned_model
    ));
    Ok(())
}
