//! A task of the paper's suite as data: where its rows come from, how a row
//! becomes the texts of one example, and how examples are grouped into
//! sequences. One TOML file per task under `crates/spectrum-suite/recipes/`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Split;

/// Where a task's rows come from: exactly one of `hf`, `url` or `file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A Hugging Face dataset (`owner/name`), read as the hub's Parquet
    /// conversion of `config`/`split`.
    #[serde(default)]
    pub hf: Option<String>,
    #[serde(default = "default_config")]
    pub config: String,
    #[serde(default)]
    pub split: Option<String>,
    /// A public file (`.csv` or `.parquet`), as the reference's
    /// `data/download.sh` fetches it.
    #[serde(default)]
    pub url: Option<String>,
    /// For a `url` that is a zip archive: the file in it that is read, and
    /// the archive's password, if it has one (published with the data).
    #[serde(default)]
    pub member: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A file that must be got by hand, read from `--data-dir DIR/<file>`;
    /// `from` says where.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    /// Rows written in the recipe itself (a task generated from constants).
    #[serde(default)]
    pub rows: Option<Vec<Map<String, Value>>>,
    /// The columns the recipe reads: a source without one of them is refused
    /// with the column named (the dataset changed its schema).
    pub columns: Vec<String>,
    /// Accepting the dataset's terms on its page is needed before download.
    #[serde(default)]
    pub gated: bool,
}

fn default_config() -> String {
    "default".into()
}

/// A source's place, checked: what [`Source`] says, as one choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    Hub {
        repo: &'a str,
        config: &'a str,
        split: &'a str,
    },
    Url(&'a str),
    /// The recipe's own rows.
    Inline(&'a [Map<String, Value>]),
    File {
        path: &'a str,
        from: &'a str,
    },
}

/// How a downloaded or given file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    /// An array of records, or an object of records by name (the name in
    /// the column `key`).
    Json,
    /// CSV with tabs between fields.
    Tsv,
    /// An SPSS system file (`.sav`, `.zsav`).
    Sav,
}

impl Format {
    /// By the file's extension.
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else if lower.ends_with(".sav") || lower.ends_with(".zsav") {
            Some(Format::Sav)
        } else {
            None
        }
    }
}

impl Source {
    /// Where the rows are, or what is wrong with the recipe's `[source]`.
    pub fn place(&self) -> Result<Place<'_>, String> {
        let file_format = |name: &str| {
            Format::of(name).map(|_| ()).ok_or_else(|| {
                format!("{name}: only .csv, .json, .parquet and .sav files are read")
            })
        };
        match (&self.hf, &self.url, &self.file) {
            (None, None, None) if self.rows.is_some() => {
                Ok(Place::Inline(self.rows.as_deref().unwrap_or_default()))
            }
            _ if self.rows.is_some() => Err("[source] has rows and a place".into()),
            (Some(repo), None, None) => Ok(Place::Hub {
                repo,
                config: &self.config,
                split: self.split.as_deref().ok_or("a hub source needs `split`")?,
            }),
            (None, Some(url), None) => {
                match &self.member {
                    Some(member) if url.to_ascii_lowercase().ends_with(".zip") => {
                        file_format(member)?
                    }
                    Some(_) => return Err("`member` reads a file of a .zip `url`".into()),
                    None => file_format(url)?,
                }
                Ok(Place::Url(url))
            }
            (None, None, Some(path)) => {
                file_format(path)?;
                Ok(Place::File {
                    path,
                    from: self
                        .from
                        .as_deref()
                        .ok_or("a file source needs `from`: where a user gets it")?,
                })
            }
            _ => Err("[source] needs exactly one of hf, url, file, rows".into()),
        }
    }

    /// How the source's file (or the archive's member) is read.
    pub fn format(&self) -> Option<Format> {
        match self.place().ok()? {
            Place::Hub { .. } => Some(Format::Parquet),
            Place::Url(url) => Format::of(self.member.as_deref().unwrap_or(url)),
            Place::File { path, .. } => Format::of(path),
            Place::Inline(_) => None,
        }
    }

    /// The page that names the source's terms, or the file itself.
    pub fn page(&self) -> String {
        match self.place() {
            Ok(Place::Hub { repo, .. }) => format!("https://huggingface.co/datasets/{repo}"),
            Ok(Place::Url(url)) => url.to_string(),
            Ok(Place::File { from, .. }) => from.to_string(),
            Ok(Place::Inline(_)) | Err(_) => String::new(),
        }
    }

    /// One line naming the source, e.g. `cais/mmlu all/test`.
    pub fn label(&self) -> String {
        match self.place() {
            Ok(Place::Hub {
                repo,
                config,
                split,
            }) => format!("{repo} {config}/{split}"),
            Ok(Place::Url(url)) => url.to_string(),
            Ok(Place::File { path, .. }) => path.to_string(),
            Ok(Place::Inline(_)) => "the recipe's own rows".into(),
            Err(e) => e,
        }
    }
}

/// How many examples a sequence has.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Length {
    Fixed(usize),
    /// The reference's `geom_and_poisson_iter(mean)`: a geometric draw with
    /// mean `mean/2` plus a Poisson draw with mean `mean/2`.
    GeomAndPoisson {
        geom_and_poisson: f64,
    },
}

/// The reference's `IndividualMultivariate`: every example of a sequence
/// comes from one individual (a respondent, an annotator, a user).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Individual {
    pub id_column: String,
    /// A column describing the individual: its value (in their first row)
    /// stands for `{description}` in the task's descriptions.
    #[serde(default)]
    pub description_column: Option<String>,
    /// At most this many individuals, drawn at random (`max_inds`).
    #[serde(default)]
    pub max: Option<usize>,
}

/// One task of the paper's suite.
///
/// Without `individual`, the reference's `GenericMultivariate`: examples are
/// drawn from the whole table; with `group_by`, rows sharing those columns
/// stay together, in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The reference's name (`default_data_map` key), so figures line up with the paper's.
    pub task: String,
    pub split: Split,
    /// The name the reference's generator gives its rows (`arc_arc_challenge_test`);
    /// `{individual}` stands for the individual's id where it names each
    /// individual's rows apart (`globaloqa_{individual}`).
    #[serde(default)]
    pub reference_name: Option<String>,
    pub source: Source,
    #[serde(default)]
    pub individual: Option<Individual>,
    #[serde(default)]
    pub group_by: Vec<String>,
    /// What is done to the source table, in order, before the templates.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Columns every example gets: a MiniJinja template over the source row
    /// (whose columns are the template's variables), rendered to text.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// What the model is given and what it generates, by column.
    #[serde(default)]
    pub given: Vec<String>,
    #[serde(default)]
    pub generated: Vec<String>,
    /// A distributional task: each row (after the steps) is one prompt with
    /// its target distribution, not an example.
    #[serde(default)]
    pub distribution: Option<DistributionSpec>,
    /// Descriptions a sequence may start with; none: the reference's defaults
    /// for the class. `{individual}` stands for the sequence's individual.
    #[serde(default)]
    pub descriptions: Vec<String>,
    /// Sequences per individual (`n_per`); absent: every example once, in
    /// sequences of `length` (the reference's `n_per = -1`).
    #[serde(default)]
    pub per_individual: Option<usize>,
    /// Examples per sequence (`n_iter`; absent: `generate_many`'s 5000).
    #[serde(default = "Length::all")]
    pub length: Length,
    /// The order of each example's choices is drawn by us, not the
    /// reference's (the fidelity test compares choices as a set).
    #[serde(default)]
    pub shuffled_choices: bool,
    /// Each sequence's examples appear this many times, in a new order each
    /// (`permutations_per_iter`).
    #[serde(default = "one")]
    pub permutations: usize,
    /// The source is a survey file (SPSS `.sav`) whose respondents are the
    /// individuals: its rows become examples by [`super::survey`], not by
    /// steps and templates.
    #[serde(default)]
    pub survey: Option<Survey>,
}

/// What the reference's `wvs.py` does with a survey: each of the first
/// `respondents` respondents (in the order of pandas'
/// `sample(frac=1, random_state=seed)`) answers each question (a column whose
/// name starts with `question_prefix`) as a letter among the question's value
/// labels, reversed; their `demographics` (variable label: value label)
/// describe them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    pub seed: u32,
    pub respondents: usize,
    pub question_prefix: String,
    /// Questions left out by name.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Questions with more value labels than this are left out.
    pub max_options: usize,
    pub demographics: Vec<String>,
}

fn one() -> usize {
    1
}

/// One step of a recipe's table pipeline, written `[[steps]]` and one key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// pandas' `merge(how="left")`: each row gets `columns` of every row of
    /// the public file `url` equal on `on` (one row per match, in the file's
    /// order); a row without a match gets NaN.
    Join(Join),
    /// New or replaced columns, each the value of a MiniJinja expression
    /// over the row (a value, not text: `options | literal` is a list).
    Derive(BTreeMap<String, String>),
    /// Each row becomes one row per item of the dict (or list) in `column`:
    /// the item's key (or index) in `key`, its value in `value`.
    Explode(Explode),
    /// Only the rows where this MiniJinja expression is true (the row's
    /// columns are its variables, and `row["a.b"]` reaches a dotted name;
    /// `x is missing` is true for None and NaN).
    Keep(String),
    /// Only rows of groups (equal on `by`) of at least `rows` rows, as
    /// `df[df[c].isin(counts[counts >= rows].index)]` keeps (a missing key
    /// belongs to no group).
    MinGroup(MinGroup),
    /// Only rows whose `column` holds a value found in the column `among`
    /// of some row (`for m in df[among].unique(): ... df[column] == m`).
    KeepSeen(KeepSeen),
    /// Each row becomes one row per column whose name matches `pattern`, in
    /// the row's order: the column's name in `key`, its cell in `value`
    /// (the other columns are dropped).
    Unpivot(Unpivot),
    /// pandas' `dropna(subset=...)`: rows missing any of these columns go.
    DropMissing(Vec<String>),
    /// Only the first row of each distinct value of these columns is kept
    /// (`unique()`, `drop_duplicates(subset=...)`).
    Distinct(Vec<String>),
    /// Rows grouped on `by` become one row, each of `lists` the list of its
    /// group's values (`groupby(by)[lists].apply(list)`: groups sorted by
    /// key, rows with a missing key dropped).
    Collect(Collect),
}

/// How a row of a distributional task becomes a prompt and its target
/// (`description_text`, `input_text`, `target_outputs`, `target_probs` of
/// the reference's loaders).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionSpec {
    /// MiniJinja templates over the row.
    #[serde(default)]
    pub description: String,
    pub input: String,
    /// MiniJinja expressions over the row: a list of options (written as
    /// Python's `str` writes them) and a list of probabilities.
    pub options: String,
    pub probs: String,
    /// The loader's `output_name` (`Answer (Likert 1-7)`).
    pub output_name: String,
    /// Options in a natural order (Likert items): enables Wasserstein-1.
    #[serde(default)]
    pub ordinal: bool,
}

/// See [`Step::MinGroup`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinGroup {
    pub by: Vec<String>,
    pub rows: usize,
}

/// See [`Step::KeepSeen`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepSeen {
    pub column: String,
    pub among: String,
}

/// See [`Step::Explode`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explode {
    pub column: String,
    pub key: String,
    pub value: String,
}

/// See [`Step::Join`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    pub url: String,
    pub on: Vec<String>,
    pub columns: Vec<String>,
    /// The file's fields are separated by tabs (whatever its extension).
    #[serde(default)]
    pub tab_separated: bool,
    /// A column added to the joined file's rows: each row's 0-based position
    /// (to join by position, as `df.iloc[i]` reads).
    #[serde(default)]
    pub number: Option<String>,
}

impl Join {
    /// How the joined file is read.
    pub fn format(&self) -> Option<Format> {
        if self.tab_separated {
            Some(Format::Tsv)
        } else {
            Format::of(&self.url)
        }
    }
}

/// See [`Step::Unpivot`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unpivot {
    /// A regular expression the whole column name matches.
    pub pattern: String,
    pub key: String,
    pub value: String,
}

/// See [`Step::Collect`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    pub by: Vec<String>,
    pub lists: Vec<String>,
}

impl Length {
    /// `n_iter = None`: at most 5000 examples, all of them in practice.
    pub fn all() -> Length {
        Length::Fixed(5000)
    }
}

impl Recipe {
    /// The descriptions a sequence draws from: the recipe's, or the ones the
    /// reference's `GenericMultivariate` writes when given none.
    pub fn descriptions(&self) -> Vec<String> {
        if !self.descriptions.is_empty() {
            return self.descriptions.clone();
        }
        let (given, generated) = (self.given.join(", "), self.generated.join(", "));
        vec![
            format!("The following are given: {given}. You must generate {generated}."),
            format!("Given: {given}. Generate: {generated}."),
            format!("Inputs: {given}. Outputs: {generated}."),
        ]
    }

    /// The public files the recipe's joins read.
    pub fn joins(&self) -> impl Iterator<Item = &Join> {
        self.steps.iter().filter_map(|s| match s {
            Step::Join(j) => Some(j),
            _ => None,
        })
    }

    /// Every column an example must have once derived.
    pub fn example_columns(&self) -> impl Iterator<Item = &String> {
        self.given.iter().chain(&self.generated)
    }

    /// The texts of one example, as the reference's `format_sample` writes
    /// them: one variable is its `str()`, several are a `json.dumps` object.
    pub fn texts(&self, example: &Map<String, Value>) -> (Option<String>, String) {
        let text = |vars: &[String]| -> String {
            match vars {
                [one] => super::py::str_of(example.get(one).unwrap_or(&Value::Null)),
                many => {
                    let object: Map<String, Value> = many
                        .iter()
                        .map(|v| (v.clone(), example.get(v).cloned().unwrap_or(Value::Null)))
                        .collect();
                    super::py::json_dumps(&Value::Object(object))
                }
            }
        };
        let input = (!self.given.is_empty()).then(|| text(&self.given));
        (input, text(&self.generated))
    }
}
