//! The command-line grammar. The help texts are the CLI's manual.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Run the main job on the built-in defaults: build the suite and import it.
    Demo(DemoArgs),
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
    /// Probability that a sequence starts with its task description.
    #[arg(long, default_value_t = 0.8, value_parser = probability)]
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
}
