//! Progress on stderr: a bar on a terminal, plain lines when stderr is a file
//! or a pipe (a hidden bar drops what is printed through it). One type per
//! kind of long work, fed by the engine's progress values, so a single job and
//! the demo's sequence of jobs show the same thing.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use spectrum_app::{EvalProgress, Progress, TrainProgress};

use crate::output::{self, Output};

fn bar(out: &Output, template: &str, shown: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    if shown && !out.json {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    bar
}

/// Prints a line above the bar, or as a plain line.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Steps, loss and ETA; held-out losses and checkpoints above the bar.
pub struct TrainBar(ProgressBar);

impl TrainBar {
    pub fn new(out: &Output) -> TrainBar {
        TrainBar(bar(
            out,
            "{spinner} step {pos}/{len} [{bar:30}] {msg}",
            true,
        ))
    }

    pub fn say(&self, line: &str) {
        say(&self.0, line.to_string());
    }

    pub fn progress(&self, p: &TrainProgress) {
        let bar = &self.0;
        match p {
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
                say(
                    bar,
                    format!(
                        "{verb} run {run} ({name}) at step {start_step}/{total_steps}: {:.2}M trainable parameters, {train_sequences} training sequences",
                        *trainable_parameters as f64 / 1e6
                    ),
                );
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
                    say(
                        bar,
                        format!("step {}/{}: {line}", metrics.step, total_steps),
                    );
                }
                bar.set_message(line);
            }
            TrainProgress::Eval(m) => say(
                bar,
                format!(
                    "step {:>5}: held-out loss {:.4} (acc {:.3}, {} outputs with index >= 1)",
                    m.step, m.loss, m.acc, m.outputs
                ),
            ),
            TrainProgress::Checkpoint { step, path } => say(
                bar,
                format!("step {step:>5}: checkpoint {}", path.display()),
            ),
            TrainProgress::Registering { name } => {
                say(bar, format!("registering the tuned model as {name:?}"))
            }
        }
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Progress over an evaluation's (family, task) pairs.
pub struct EvalBar {
    bar: ProgressBar,
    current: RefCell<String>,
    started: Instant,
}

impl EvalBar {
    const UNIT: u64 = 1000;

    pub fn new(out: &Output) -> EvalBar {
        EvalBar {
            bar: bar(out, "{spinner} [{bar:30}] {msg} ({eta} left)", true),
            current: RefCell::new(String::new()),
            started: Instant::now(),
        }
    }

    pub fn say(&self, line: &str) {
        say(&self.bar, line.to_string());
    }

    pub fn progress(&self, p: &EvalProgress) {
        let bar = &self.bar;
        bar.set_length(p.tasks_total as u64 * Self::UNIT);
        let within = (p.done as u64 * Self::UNIT) / p.total.max(1) as u64;
        bar.set_position(p.tasks_done as u64 * Self::UNIT + within);
        let what = format!(
            "{}/{} {} {}",
            p.tasks_done + 1,
            p.tasks_total,
            p.family.as_str(),
            p.task
        );
        let mut current = self.current.borrow_mut();
        if what != *current {
            if bar.is_hidden() {
                // Plain lines: the estimate from the pace so far.
                let done = p.tasks_done as f64 / p.tasks_total.max(1) as f64;
                let elapsed = self.started.elapsed().as_secs_f64();
                if done > 0.0 {
                    let left = elapsed * (1.0 - done) / done;
                    eprintln!("{what} (about {} left)", output::duration(left));
                } else {
                    eprintln!("{what}");
                }
            }
            current.clone_from(&what);
        }
        bar.set_message(format!("{what} {}/{}", p.done, p.total));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Bytes and rows read; only imports that last more than a second get a bar.
pub struct ImportBar {
    bar: ProgressBar,
    started: Instant,
    json: bool,
    shown: Cell<bool>,
}

impl ImportBar {
    pub fn new(out: &Output) -> ImportBar {
        ImportBar {
            bar: bar(
                out,
                "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {msg} ({eta} left)",
                false,
            ),
            started: Instant::now(),
            json: out.json,
            shown: Cell::new(false),
        }
    }

    pub fn progress(&self, p: Progress) {
        let bar = &self.bar;
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{} rows", p.rows));
        if !self.shown.get() && !self.json && self.started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown.set(true);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Bytes of each download; tasks built and missing above the bar.
pub struct FetchBar {
    bar: ProgressBar,
    file: RefCell<String>,
}

impl FetchBar {
    pub fn new(out: &Output) -> FetchBar {
        FetchBar {
            bar: bar(
                out,
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta} left)",
                true,
            ),
            file: RefCell::new(String::new()),
        }
    }

    pub fn event(&self, e: &spectrum_app::PaperEvent) {
        use spectrum_app::PaperEvent;
        match e {
            PaperEvent::Downloading { file, done, total } => {
                if *self.file.borrow() != *file {
                    say(&self.bar, format!("downloading {file}"));
                    self.bar.set_message(file.clone());
                    self.file.replace(file.clone());
                }
                self.bar.set_length(total.unwrap_or(*done));
                self.bar.set_position(*done);
            }
            PaperEvent::Built {
                task,
                sequences,
                left_out,
            } => say(
                &self.bar,
                match left_out {
                    Some(what) => format!("built {task}: {sequences} (left out: {what})"),
                    None => format!("built {task}: {sequences}"),
                },
            ),
            PaperEvent::Missing { task, reason } => {
                say(&self.bar, format!("not built: {task}: {reason}"))
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
