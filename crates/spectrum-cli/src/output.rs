//! Everything the CLI prints: aligned tables or JSON on stdout, notes and
//! errors on stderr.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use spectrum_app::{
    AppError, Comparison, DatasetDetail, DatasetSummary, EvalReport, Fix, ImportError,
    ImportOutcome, Listing, MeanSe, ModelRecord, OutputScore, RowError, RunDetail, RunKind,
    RunRecord, RunSettings, RunStatus, ScoredRow, TaskSummary, TrainOutcome, Verdict,
};

pub struct Output {
    pub json: bool,
}

/// `1h 02m`, `3m 05s`, `42s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    rows.into_iter().for_each(line);
}

impl Output {
    fn print_json<T: Serialize>(&self, value: &T) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    pub fn note(&self, message: &str) {
        eprintln!("{message}");
    }

    pub fn error(&self, error: &anyhow::Error) {
        // The first line is the reason; invalid imports list their rows below it.
        let rows = match error.downcast_ref::<ImportError>() {
            Some(ImportError::Invalid {
                errors, rejected, ..
            }) => Some((errors, *rejected)),
            _ => None,
        };
        let shown = AppError::of(error);
        let fix = shown.fix.as_ref().map(fix_text);
        if self.json {
            let value = serde_json::json!({
                "error": {
                    "code": shown.code,
                    "message": shown.message,
                    "fix": fix,
                    "rejected": rows.map(|(_, n)| n),
                    "rows": rows.map(|(e, _)| e),
                }
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        match fix {
            Some(fix) => eprintln!("error: {} (fix: {fix})", shown.message),
            None => eprintln!("error: {}", shown.message),
        }
        if let Some((errors, rejected)) = rows {
            eprintln!("{}", row_lines(errors, rejected));
        }
    }

    pub fn import(&self, outcome: &ImportOutcome) -> Result<()> {
        if self.json {
            return self.print_json(outcome);
        }
        match outcome {
            ImportOutcome::AlreadyImported { dataset } => {
                self.note(&format!(
                    "already imported: this content is dataset {} {:?} (imported {}); nothing to do",
                    dataset.id, dataset.name, dataset.imported_at
                ));
            }
            ImportOutcome::Imported { dataset, report } => {
                for f in &report.files {
                    let how = if f.detected { "detected" } else { "forced" };
                    let rejected = if f.rejected > 0 {
                        format!(", {} rejected", f.rejected)
                    } else {
                        String::new()
                    };
                    self.note(&format!(
                        "{}: {} as {} ({how}): {} rows, {} imported{rejected}",
                        f.path,
                        f.format.as_str(),
                        f.shape.as_str(),
                        f.rows,
                        f.imported
                    ));
                }
                if report.rejected > 0 {
                    self.note(&format!("{} invalid row(s) skipped:", report.rejected));
                    self.note(&row_lines(&report.errors, report.rejected));
                }
                let c = &report.counts;
                println!(
                    "imported dataset {} {:?}: {} tasks, {} sequences, {} distribution items, {} diverse-valid tasks",
                    dataset.id,
                    dataset.name,
                    c.tasks,
                    c.sequences,
                    c.distribution_items,
                    c.validity_tasks
                );
            }
        }
        Ok(())
    }

    pub fn datasets(&self, datasets: &[DatasetSummary]) -> Result<()> {
        if self.json {
            return self.print_json(&datasets);
        }
        if datasets.is_empty() {
            self.note("no datasets yet: `spectrum import FILE` or `spectrum demo` adds one");
            return Ok(());
        }
        let rows = datasets
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.name.clone(),
                    d.tasks.to_string(),
                    d.sequences.to_string(),
                    d.distribution_items.to_string(),
                    d.validity_tasks.to_string(),
                    d.imported_at.clone(),
                    d.source.clone(),
                ]
            })
            .collect();
        table(
            &[
                "ID",
                "NAME",
                "TASKS",
                "SEQUENCES",
                "DIST_ITEMS",
                "VALIDITY",
                "IMPORTED",
                "SOURCE",
            ],
            rows,
        );
        Ok(())
    }

    pub fn dataset(&self, d: &DatasetDetail) -> Result<()> {
        if self.json {
            return self.print_json(d);
        }
        let s = &d.summary;
        println!("dataset {} {:?}", s.id, s.name);
        println!("  source:   {}", s.source);
        println!("  imported: {}", s.imported_at);
        println!("  content:  blake3 {}", s.content_hash);
        println!("  files:");
        for f in &d.files {
            println!(
                "    {} ({}, {} shape): {} rows, {} imported, {} rejected",
                f.path,
                f.format.as_str(),
                f.shape.as_str(),
                f.rows,
                f.imported,
                f.rejected
            );
        }
        println!();
        self.tasks(&d.tasks)
    }

    pub fn system(&self, report: &spectrum_app::SystemReport) -> Result<()> {
        if self.json {
            return self.print_json(report);
        }
        let m = &report.machine;
        let flush = |on: bool| {
            if on {
                "flushed to zero"
            } else {
                "KEPT (slow on Intel and ARM CPUs)"
            }
        };
        println!("CPU          {}", m.cpu);
        println!("vector       {}", m.simd);
        println!(
            "kernels      {} (matrix multiply and our row kernels, chosen at run time)",
            m.kernels
        );
        match m.bf16_unit {
            Some(unit) => println!(
                "bf16         {unit}: LoRA can run its frozen products in bf16 (--frozen-matmul bf16)"
            ),
            None => println!("bf16         no unit (AMX or AVX512-BF16): frozen products stay f32"),
        }
        println!("threads      {}", m.threads);
        println!(
            "subnormals   {} (main thread), {} (compute pool)",
            flush(m.flushes_here),
            flush(m.pool_flushes)
        );
        println!("devices      {}", report.backends.join(", "));
        let env: Vec<String> = report
            .environment
            .iter()
            .map(|s| format!("{}={}", s.name, s.value.as_deref().unwrap_or("(unset)")))
            .collect();
        println!("environment  {}", env.join(" "));
        if let Some(g) = &report.gemm {
            println!(
                "matmul       {:.1} GFLOP/s ({n}x{n} f32); subnormal operand {:.1}, underflowing products {:.1}: ratio {:.2}",
                g.ordinary,
                g.subnormal,
                g.underflowing,
                g.ratio(),
                n = g.n
            );
        }
        Ok(())
    }

    pub fn removed(&self, d: &DatasetSummary) -> Result<()> {
        if self.json {
            return self.print_json(d);
        }
        println!(
            "removed dataset {} {:?} ({} tasks, {} sequences)",
            d.id, d.name, d.tasks, d.sequences
        );
        Ok(())
    }

    pub fn tasks(&self, tasks: &[TaskSummary]) -> Result<()> {
        if self.json {
            return self.print_json(&tasks);
        }
        if tasks.is_empty() {
            self.note("no tasks match");
            return Ok(());
        }
        let rows = tasks
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.dataset.clone(),
                    t.category.clone(),
                    t.split.as_str().to_string(),
                    t.kind.as_str().to_string(),
                    t.descriptions.to_string(),
                    t.sequences.to_string(),
                    t.distribution_items.to_string(),
                    t.validity_tasks.to_string(),
                ]
            })
            .collect();
        table(
            &[
                "TASK",
                "DATASET",
                "CATEGORY",
                "SPLIT",
                "KIND",
                "DESCR",
                "SEQUENCES",
                "DIST_ITEMS",
                "VALIDITY",
            ],
            rows,
        );
        Ok(())
    }

    pub fn suite_files(&self, files: &[PathBuf]) -> Result<()> {
        if self.json {
            return self.print_json(&files);
        }
        for f in files {
            println!("{}", f.display());
        }
        self.note("import them with: spectrum import <that folder>");
        Ok(())
    }

    /// The paper's tasks: suite, family, status, what to do next.
    pub fn paper_suite(&self, tasks: &[spectrum_app::PaperTaskView]) -> Result<()> {
        if self.json {
            return self.print_json(&tasks);
        }
        let rows = tasks
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.suite.clone(),
                    t.family.to_string(),
                    t.status.to_string(),
                    t.detail.clone(),
                ]
            })
            .collect();
        table(&["TASK", "SUITE", "FAMILY", "STATUS", "NEXT"], rows);
        Ok(())
    }

    pub fn paper_fetched(&self, f: &spectrum_app::PaperFetched) -> Result<()> {
        if self.json {
            return self.print_json(f);
        }
        println!(
            "built {} tasks, {} not built",
            f.built.len(),
            f.missing.len()
        );
        for (task, reason) in &f.missing {
            println!("  {task}: {reason}");
        }
        if let Some(d) = &f.dataset {
            println!("imported as dataset {} ({} tasks)", d.name, d.tasks);
            self.note(&format!(
                "evaluate them with: spectrum eval --tasks {}",
                d.name
            ));
        }
        Ok(())
    }
}

/// Running totals for the human-readable score table.
#[derive(Debug, Default)]
pub struct ScoreTable {
    rows: usize,
    loss_sum: f64,
    acc_sum: f64,
    scored: usize,
}

impl Output {
    /// The URL goes to stdout (JSON: `{"url", "models"}`) so scripts can read the port.
    pub fn serving(&self, url: &str, models: &[String]) {
        if self.json {
            println!("{}", serde_json::json!({"url": url, "models": models}));
        } else {
            println!("serving {} at {url}", models.join(", "));
        }
        eprintln!("Ctrl-C or SIGTERM stops the server after the requests in flight");
    }

    pub fn planned(&self, run: &RunRecord) -> Result<()> {
        if self.json {
            return self.print_json(run);
        }
        println!("planned run {} {:?} (not started)", run.id, run.name);
        println!(
            "  next: `spectrum export-job {} --out DIR`, or `spectrum train --resume {}`",
            run.id, run.id
        );
        Ok(())
    }

    pub fn job_bundle(&self, b: &spectrum_app::JobBundle) -> Result<()> {
        if self.json {
            return self.print_json(b);
        }
        println!("job bundle {}", b.dir.display());
        println!(
            "  {} steps, {} micro-batches, {} sequences, {} loss tokens; {} held-out sequences",
            b.steps, b.micro_batches, b.train_sequences, b.loss_tokens, b.held_out_sequences
        );
        println!("  next: see {}", b.dir.join("README.md").display());
        Ok(())
    }

    pub fn model(&self, m: &ModelRecord) -> Result<()> {
        if self.json {
            return self.print_json(m);
        }
        println!("model {} {:?}", m.id, m.name);
        println!("  family:     {}", m.family);
        if m.family == spectrum_app::ModelFamily::Remote {
            println!("  parameters: (served remotely)");
        } else {
            println!("  parameters: {:.1}M", m.parameters as f64 / 1e6);
            println!("  dtype:      {}", m.dtype);
        }
        println!("  path:       {}", m.path);
        println!("  source:     {}", m.source);
        println!("  sha256:     {}", m.content_hash);
        Ok(())
    }

    pub fn models(&self, models: &[ModelRecord]) -> Result<()> {
        if self.json {
            return self.print_json(&models);
        }
        if models.is_empty() {
            self.note("no models yet: `spectrum model default` installs the default one");
            return Ok(());
        }
        let rows = models
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    m.name.clone(),
                    m.family.to_string(),
                    format!("{:.1}M", m.parameters as f64 / 1e6),
                    m.dtype.clone(),
                    m.source.clone(),
                ]
            })
            .collect();
        table(&["ID", "NAME", "FAMILY", "PARAMS", "DTYPE", "SOURCE"], rows);
        Ok(())
    }

    pub fn removed_run(&self, r: &RunRecord) -> Result<()> {
        if self.json {
            return self.print_json(r);
        }
        println!("removed run {} {:?}", r.id, r.name);
        if !r.out_dir.is_empty() {
            println!("its files stay in {}", r.out_dir);
        }
        Ok(())
    }

    pub fn stopped_run(&self, s: &spectrum_app::StopOutcome) -> Result<()> {
        if self.json {
            return self.print_json(s);
        }
        let r = &s.run;
        if s.released {
            println!(
                "stopped run {} {:?} ({}): {}",
                r.id, r.name, s.holder, r.status
            );
            if r.resumable {
                let resume = Fix::Resume {
                    run: r.id,
                    run_kind: r.kind,
                };
                println!("{}", fix_text(&resume));
            }
        } else {
            println!(
                "asked {} to stop run {} {:?}; it still holds the run (it stops at the end of its current step or task)",
                s.holder, r.id, r.name
            );
        }
        Ok(())
    }

    pub fn removed_model(&self, m: &ModelRecord) -> Result<()> {
        if self.json {
            return self.print_json(m);
        }
        println!("removed model {} {:?}", m.id, m.name);
        Ok(())
    }

    /// One line per row: JSON with --json, else id, outputs, mean loss and accuracy over outputs 1..
    pub fn scored_row(&self, row: &ScoredRow, totals: &mut ScoreTable) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(row)?);
            return Ok(());
        }
        if totals.rows == 0 {
            println!(
                "{:<16} {:>7} {:>10} {:>8}",
                "ID", "OUTPUTS", "MEAN_LOSS", "MEAN_ACC"
            );
        }
        totals.rows += 1;
        // METHOD.md §4.1, as the reference: means over examples numbered 1 and
        // up; accuracy is the fraction of arg-max tokens.
        let scored: Vec<&OutputScore> = row
            .outputs
            .iter()
            .filter(|o| o.example.is_some_and(|e| e >= 1) && o.loss.is_some())
            .collect();
        let n = scored.len() as f64;
        // No output numbered 1 or up (a lone example 0): no mean to print.
        let mean = |v: f64, width: usize, digits: usize| {
            if scored.is_empty() {
                format!("{:>width$}", "-")
            } else {
                format!("{:>width$.digits$}", v / n)
            }
        };
        let loss_sum = scored.iter().filter_map(|o| o.loss).sum::<f64>();
        let acc_sum = scored.iter().filter_map(|o| o.acc).sum::<f64>();
        let (loss, acc) = (mean(loss_sum, 10, 4), mean(acc_sum, 8, 3));
        totals.loss_sum += loss_sum;
        totals.acc_sum += acc_sum;
        totals.scored += scored.len();
        let id = row.id.as_ref().map_or_else(
            || format!("#{}", totals.rows),
            |v| v.as_str().map_or_else(|| v.to_string(), str::to_string),
        );
        println!("{id:<16} {:>7} {loss} {acc}", row.outputs.len());
        Ok(())
    }

    pub fn score_summary(&self, totals: &ScoreTable) {
        if !self.json && totals.scored > 0 {
            let n = totals.scored as f64;
            println!(
                "{:<16} {:>7} {:>10.4} {:>8.3}",
                "all",
                totals.scored,
                totals.loss_sum / n,
                totals.acc_sum / n
            );
        }
    }

    /// A prompt as the evaluation feeds it: what was chosen, the text (loss
    /// tokens in [[ ]]), then one line per token: position, id, text.
    pub fn prompt(&self, p: &spectrum_app::PromptView) -> Result<()> {
        if self.json {
            return self.print_json(p);
        }
        println!(
            "{} · {} · {:?} format · {} tokens",
            p.task,
            p.family.as_str(),
            p.format,
            p.ids.len()
        );
        println!("{}\n", p.note);
        let mut text = String::new();
        let mut in_loss = false;
        for (i, t) in p.tokens.iter().enumerate() {
            let loss = p.loss.get(i).copied().unwrap_or(false);
            if loss != in_loss {
                text.push_str(if loss { "[[" } else { "]]" });
                in_loss = loss;
            }
            text.push_str(t);
        }
        if in_loss {
            text.push_str("]]");
        }
        println!("{text}\n");
        for (i, (id, t)) in p.ids.iter().zip(&p.tokens).enumerate() {
            let mark = if p.loss.get(i).copied().unwrap_or(false) {
                "*"
            } else {
                " "
            };
            println!("{i:>5} {mark} {id:>7}  {t:?}");
        }
        for o in &p.options {
            println!("option {:?}: {:?}", o.text, o.ids);
        }
        if let Some(n) = p.max_new_tokens {
            println!(
                "samples run to {n} tokens; cleaned at the first of {:?}",
                p.stop_strings
            );
        }
        Ok(())
    }

    pub fn verdicts(&self, verdicts: &[spectrum_app::TextVerdict]) -> Result<()> {
        if self.json {
            return self.print_json(&verdicts);
        }
        for v in verdicts {
            let verdict = if v.valid { "valid  " } else { "invalid" };
            if v.cleaned == v.text {
                println!("{verdict} {:?}", v.text);
            } else {
                println!("{verdict} {:?} (cleaned: {:?})", v.text, v.cleaned);
            }
        }
        Ok(())
    }

    pub fn samples(&self, samples: &[String]) -> Result<()> {
        if self.json {
            return self.print_json(&samples);
        }
        for s in samples {
            println!("{s}");
        }
        Ok(())
    }

    pub fn trained(&self, o: &TrainOutcome) -> Result<()> {
        if self.json {
            return self.print_json(o);
        }
        let r = &o.run;
        if o.cancelled {
            self.note(&format!(
                "cancelled run {} ({}) at step {}/{}; a checkpoint of that step is kept. Continue with `spectrum train --resume {}`",
                r.id, r.name, r.step, r.total_steps, r.id
            ));
            return Ok(());
        }
        if let (Some(first), Some(last)) = (o.evals.first(), o.evals.last()) {
            self.note(&format!(
                "held-out loss (outputs with index >= 1): {:.4} at step {} -> {:.4} at step {}",
                first.loss, first.step, last.loss, last.step
            ));
        }
        if let Some(m) = &o.model {
            self.note(&format!(
                "finished run {} ({} steps); the tuned model is registered as {:?} ({})",
                r.id, r.step, m.name, m.path
            ));
            self.note(&format!(
                "next: `spectrum generate --model {} --task us_state -n 5`, or `spectrum export {} --merged DIR`",
                m.name, r.id
            ));
        }
        Ok(())
    }

    pub fn runs(&self, runs: &[RunRecord]) -> Result<()> {
        if self.json {
            return self.print_json(&runs);
        }
        if runs.is_empty() {
            self.note("no runs yet: `spectrum train` starts one");
            return Ok(());
        }
        let rows = runs
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.name.clone(),
                    r.kind.to_string(),
                    shown_status(r),
                    format!("{}/{}", r.step, r.total_steps),
                    r.model.clone().unwrap_or_else(|| "-".into()),
                    r.result_model.clone().unwrap_or_else(|| "-".into()),
                    r.updated_at.clone().unwrap_or_else(|| r.created_at.clone()),
                ]
            })
            .collect();
        table(
            &[
                "ID",
                "NAME",
                "KIND",
                "STATUS",
                "STEP",
                "BASE",
                "TUNED MODEL",
                "UPDATED",
            ],
            rows,
        );
        Ok(())
    }

    pub fn run_detail(&self, d: &RunDetail) -> Result<()> {
        if self.json {
            return self.print_json(d);
        }
        let r = &d.run;
        println!(
            "run {} ({}): {} {}, step {}/{}",
            r.id,
            r.name,
            r.kind,
            shown_status(r),
            r.step,
            r.total_steps
        );
        if let Some(holder) = &r.holder {
            println!("run by {holder}");
        }
        println!(
            "base model: {} (content hash {})",
            r.model.as_deref().unwrap_or("-"),
            r.model_hash.as_deref().unwrap_or("not recorded")
        );
        println!("tuned model: {}", r.result_model.as_deref().unwrap_or("-"));
        for d in &r.datasets {
            println!("read dataset {} (content hash {})", d.name, d.content_hash);
        }
        println!(
            "created {}, updated {}",
            r.created_at,
            r.updated_at.as_deref().unwrap_or("-")
        );
        if let Some(e) = &r.error {
            println!("error: {e}");
        }
        if r.kind == RunKind::Train && r.resumable {
            println!(
                "interrupted: continue it with `spectrum train --resume {}`",
                r.id
            );
        }
        println!("folder: {}", r.out_dir);
        // Evaluation runs are shown as their report (`eval_report`).
        if let RunSettings::Train { spec, .. } = &d.settings {
            println!("settings: {}", serde_json::to_string(spec)?);
        }
        if !d.evals.is_empty() {
            println!();
            table(
                &["STEP", "HELD-OUT LOSS", "ACC", "OUTPUTS"],
                d.evals
                    .iter()
                    .map(|e| {
                        vec![
                            e.step.to_string(),
                            format!("{:.4}", e.loss),
                            format!("{:.3}", e.acc),
                            e.outputs.to_string(),
                        ]
                    })
                    .collect(),
            );
        }
        if !d.steps.is_empty() {
            println!();
            table(
                &["STEP", "LOSS", "LR", "GRAD NORM", "TOKENS/S", "ELAPSED"],
                d.steps
                    .iter()
                    .map(|m| {
                        vec![
                            m.step.to_string(),
                            format!("{:.4}", m.loss),
                            format!("{:.2e}", m.lr),
                            format!("{:.3}", m.grad_norm),
                            format!("{:.0}", m.tokens_per_s),
                            duration(m.elapsed_s),
                        ]
                    })
                    .collect(),
            );
        }
        for c in &d.checkpoints {
            println!("checkpoint {}", c.display());
        }
        Ok(())
    }
}

fn mean_se(m: &MeanSe, digits: usize) -> String {
    m.text(digits)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

impl Output {
    /// An evaluation run: per-family tables (all rows with --json).
    pub fn eval_report(&self, r: &EvalReport) -> Result<()> {
        if self.json {
            return self.print_json(r);
        }
        println!(
            "evaluation run {} ({}): {}, model {}, template {}, profile {}",
            r.run,
            r.name,
            r.status,
            r.model,
            r.template.as_str(),
            r.profile.as_str()
        );
        if let Some(s) = &r.steer {
            println!(
                "\nSTEERABILITY: loss and accuracy of examples 1..k, as the reference (mean ± its standard error over examples; SE/SEQ: ours, over sequences)"
            );
            let rows = s
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.task.clone(),
                        t.k.to_string(),
                        t.sequences.to_string(),
                        mean_se(&t.loss, 3),
                        opt(t.loss_se_sequences, 3),
                        mean_se(&t.acc, 3),
                        opt(t.ece, 3),
                    ]
                })
                .collect();
            table(
                &["TASK", "K", "SEQUENCES", "LOSS", "SE/SEQ", "ACC", "ECE"],
                rows,
            );
            println!(
                "all tasks: loss {}, acc {}",
                mean_se(&s.loss, 3),
                mean_se(&s.acc, 3)
            );
        }
        if let Some(d) = &r.dist {
            println!(
                "\nDISTRIBUTIONAL ALIGNMENT: model vs target over the options (JS in nats; lower is better)"
            );
            let rows = d
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.task.clone(),
                        t.items.to_string(),
                        mean_se(&t.js, 4),
                        format!("{:.4}", t.kl.mean),
                        format!("{:.4}", t.reverse_kl.mean),
                        format!("{:.4}", t.tv.mean),
                        format!("{:.4}", t.cross_entropy.mean),
                        format!("{:.2}", t.mode_match.mean),
                        format!("{:.3}", t.coverage.mean),
                        opt(t.wasserstein.map(|w| w.mean), 4),
                    ]
                })
                .collect();
            table(
                &[
                    "TASK", "ITEMS", "JS", "KL", "REV KL", "TV", "CE", "MODE", "COVERAGE", "W1",
                ],
                rows,
            );
            println!(
                "all tasks: JS {}, TV {}, coverage {}",
                mean_se(&d.js, 4),
                mean_se(&d.tv, 4),
                mean_se(&d.coverage, 3)
            );
            for t in d.tasks.iter().filter(|t| t.unclean_boundaries > 0) {
                println!(
                    "note: {}: {} items where tokenising prompt + option as one string splits the boundary differently (scored segment by segment, as in training)",
                    t.task, t.unclean_boundaries
                );
            }
        }
        if let Some(v) = &r.valid {
            println!(
                "\nVALIDITY AND DIVERSITY: averaged over tasks (valid, unique and coverage as fractions)"
            );
            let rows = v
                .overall
                .iter()
                .map(|c| {
                    vec![
                        c.setting.as_str().to_string(),
                        format!("{}", c.temperature),
                        c.tasks.to_string(),
                        format!("{:.3}", c.percent_valid),
                        format!("{:.3}", c.unique_pct),
                        format!("{:.1}", c.yield_),
                        opt(c.coverage_pct, 3),
                    ]
                })
                .collect();
            table(
                &[
                    "PROMPT",
                    "TEMPERATURE",
                    "TASKS",
                    "VALID",
                    "UNIQUE",
                    "YIELD",
                    "COVERAGE",
                ],
                rows,
            );
            let rows = v
                .tasks
                .iter()
                .flat_map(|t| {
                    t.cells.iter().filter(|c| c.temperature == 1.0).map(|c| {
                        vec![
                            t.task.clone(),
                            c.setting.as_str().to_string(),
                            format!("{}/{}", c.stats.valid, c.stats.n),
                            c.stats.yield_.to_string(),
                            opt(c.stats.coverage_pct, 3),
                        ]
                    })
                })
                .collect::<Vec<_>>();
            if !rows.is_empty() {
                println!();
                table(
                    &["TASK (T=1)", "PROMPT", "VALID", "YIELD", "COVERAGE"],
                    rows,
                );
            }
        }
        for s in &r.skipped {
            println!("skipped: {} {}: {}", s.family.as_str(), s.task, s.reason);
        }
        if r.unfinished > 0 {
            println!(
                "{} planned task evaluations did not finish ({})",
                r.unfinished, r.status
            );
        }
        Ok(())
    }

    /// Runs against a baseline: per-task differences with intervals, and tallies.
    pub fn comparison(&self, c: &Comparison) -> Result<()> {
        if self.json {
            return self.print_json(c);
        }
        let b = &c.baseline;
        println!(
            "baseline: run {} ({}), {} with the {} template",
            b.run,
            b.name,
            b.model,
            b.template.as_str()
        );
        for cand in &c.candidates {
            let r = &cand.run;
            println!(
                "\nrun {} ({}), {} with the {} template, minus the baseline (95% bootstrap interval):",
                r.run,
                r.name,
                r.model,
                r.template.as_str()
            );
            let rows = cand
                .rows
                .iter()
                .map(|row| {
                    let better = if row.lower_is_better {
                        "lower"
                    } else {
                        "higher"
                    };
                    vec![
                        row.family.as_str().to_string(),
                        row.task.clone(),
                        format!("{} ({better} is better)", row.metric),
                        format!("{:.4}", row.baseline),
                        format!("{:.4}", row.candidate),
                        format!(
                            "{:+.4} [{:+.4}, {:+.4}]",
                            row.interval.diff, row.interval.lo, row.interval.hi
                        ),
                        match row.verdict {
                            Verdict::Win => "win",
                            Verdict::Tie => "tie",
                            Verdict::Loss => "loss",
                        }
                        .to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "FAMILY",
                    "TASK",
                    "METRIC",
                    "BASELINE",
                    "RUN",
                    "DIFFERENCE",
                    "VERDICT",
                ],
                rows,
            );
            for (family, t) in &cand.tally {
                println!(
                    "{}: {} wins, {} ties, {} losses",
                    family.as_str(),
                    t.win,
                    t.tie,
                    t.loss
                );
            }
        }
        if c.unpaired_units > 0 {
            println!(
                "note: {} sequences or items were in only one of two runs and were left out of the pairing",
                c.unpaired_units
            );
        }
        Ok(())
    }
}

/// An error as one line with its fix, for the argument parser's messages.
pub fn explain(error: &anyhow::Error) -> String {
    let shown = AppError::of(error);
    match shown.fix.as_ref().map(fix_text) {
        Some(fix) => format!("{} (fix: {fix})", shown.message),
        None => shown.message,
    }
}

/// A fix in the command line's words.
fn fix_text(fix: &Fix) -> String {
    match fix {
        Fix::List { what } => {
            let command = match what {
                Listing::Models => "model",
                other => other.as_str(),
            };
            format!("`spectrum {command} list` shows them")
        }
        Fix::Import => "`spectrum import FILES`, or `spectrum demo` for the built-in suite".into(),
        Fix::AddModel => {
            "`spectrum model add PATH` adds one, `spectrum model default` installs the default"
                .into()
        }
        Fix::OtherStore => "point --store at a Spectrum Studio store, or at a new file".into(),
        Fix::Upgrade => "upgrade Spectrum Studio, or use another --store".into(),
        Fix::Resume { run, run_kind } => {
            let command = match run_kind {
                RunKind::Train => "train",
                RunKind::Eval => "eval",
            };
            format!("`spectrum {command} --resume {run}` continues it")
        }
        Fix::Setting { setting, advice } => format!("{}: {advice}", flag(setting)),
        Fix::Say { text } => text.clone(),
    }
}

/// The command-line flag of a run or evaluation setting.
fn flag(setting: &str) -> String {
    match setting {
        "template" => "--template (--format for score and generate)".into(),
        "runs" => "the RUN arguments".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// Rejected import rows, one per line with its fix, and how many more there are.
fn row_lines(errors: &[RowError], rejected: usize) -> String {
    let mut lines: Vec<String> = errors
        .iter()
        .map(|e| match e.fix.as_str() {
            "" => format!("  {e}"),
            fix => format!("  {e} (fix: {fix})"),
        })
        .collect();
    if rejected > errors.len() {
        lines.push(format!("  ... and {} more", rejected - errors.len()));
    }
    lines.join("\n")
}

/// A run's status as the tables show it: a run left `running` by a process
/// that is gone is interrupted.
fn shown_status(r: &RunRecord) -> String {
    if r.status == RunStatus::Running && r.holder.is_none() {
        "interrupted".into()
    } else {
        r.status.to_string()
    }
}
