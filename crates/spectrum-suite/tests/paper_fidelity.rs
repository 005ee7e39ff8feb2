//! Every recipe against the reference: the fixture rows of its source
//! (tests/fixtures/paper/TASK.parquet, real schema) give the same example
//! texts, the same descriptions, the same name and the same sequence sizes as
//! the reference's generator gave on the same rows (TASK.reference.json,
//! recorded by scripts/record_paper_tasks.py at tsor13/spectrum 5a33588).
//!
//! Sources the reference reads as CSV files have TASK.csv instead, read as
//! our CSV reader types it; the files a recipe joins are joins/NAME; a
//! survey's SPSS file is TASK.sav.
//!
//! Compared per task: every (input, output) text pair, the description list,
//! `n_per`, `n_iter`, `permutations_per_iter`; for a task of individuals
//! whose sequence is all of an individual's examples, which examples share a
//! sequence; for individuals described one by one, each one's descriptions. Not compared otherwise: which examples share a sequence and in
//! what order (sampling is ours; its structure is tested in paper::engine).

mod common;
use common::Item;

use std::collections::BTreeSet;
use std::path::Path;

use spectrum_suite::paper::{self, recipe::Length};

#[derive(serde::Deserialize)]
struct Reference {
    task: String,
    name: Vec<String>,
    n_per: i64,
    n_iter: Option<Length>,
    permutations: usize,
    max_inds: Option<usize>,
    descriptions: Vec<String>,
    descriptions_by_name: std::collections::BTreeMap<String, Vec<String>>,
    pairs: Vec<(Option<String>, String)>,
    groups: Vec<Vec<(Option<String>, String)>>,
    /// For a task whose individuals are described one by one (a survey's
    /// respondents): each one's descriptions and pairs.
    #[serde(default)]
    individuals: Vec<ReferenceIndividual>,
}

#[derive(serde::Deserialize)]
struct ReferenceIndividual {
    descriptions: Vec<String>,
    pairs: Vec<(Option<String>, String)>,
}

/// The (input, output) pairs of a sequence, sorted.
fn pairs_of(sequence: &spectrum_suite::Sequence) -> Vec<(Option<String>, String)> {
    use spectrum_core::Role;
    let mut pairs = Vec::new();
    let mut pending = None;
    for m in &sequence.messages {
        match m.role {
            Role::Input => pending = Some(m.content.clone()),
            Role::Output => pairs.push((pending.take(), m.content.clone())),
            _ => {}
        }
    }
    pairs.sort();
    pairs
}

/// A multiple-choice example with its choices sorted and its answer letter
/// replaced by the answer's text: the prompt's trailing `X. text` lines are
/// its choices.
fn choices_as_set(pair: &(Option<String>, String)) -> (Option<String>, String) {
    let prompt = pair.0.clone().unwrap_or_default();
    let lines: Vec<&str> = prompt.split('\n').collect();
    let is_choice = |l: &str| {
        let b = l.as_bytes();
        b.len() >= 3 && b[0].is_ascii_uppercase() && b[1] == b'.' && b[2] == b' '
    };
    let mut first = lines.len();
    while first > 0 && is_choice(lines[first - 1]) {
        first -= 1;
    }
    let choices: Vec<(&str, &str)> = lines[first..].iter().map(|l| (&l[..1], &l[3..])).collect();
    let answer = choices
        .iter()
        .find(|(letter, _)| *letter == pair.1)
        .map_or("(no such choice)", |(_, text)| text)
        .to_string();
    let mut texts: Vec<&str> = choices.iter().map(|(_, t)| *t).collect();
    texts.sort();
    let mut head = lines[..first].to_vec();
    head.extend(texts);
    (Some(head.join("\n")), answer)
}

/// A task's fixture rows (TASK.parquet or TASK.csv, as its source is read)
/// and the files its recipe joins (joins/NAME).
fn fixture_rows(
    fixtures: &Path,
    task: &str,
    recipe: &paper::Recipe,
) -> (
    Vec<serde_json::Map<String, serde_json::Value>>,
    paper::engine::Joined,
) {
    if let Ok(paper::Place::Inline(rows)) = recipe.source.place() {
        return (rows.to_vec(), paper::engine::Joined::new());
    }
    let (extension, format) = match recipe.source.format() {
        Some(paper::Format::Csv) => ("csv", paper::Format::Csv),
        Some(paper::Format::Json) => ("json", paper::Format::Json),
        _ => ("parquet", paper::Format::Parquet),
    };
    let rows = paper::table::read(&fixtures.join(format!("{}.{extension}", task)), format)
        .expect("fixture rows");
    let mut joined = paper::engine::Joined::new();
    for join in recipe.joins() {
        let name = join.url.rsplit('/').next().expect("a file name");
        let format = join.format().expect("a known format");
        let path = fixtures.join("joins").join(name);
        joined.insert(
            join.url.clone(),
            paper::table::read(&path, format).expect("joined rows"),
        );
    }
    (rows, joined)
}

#[test]
fn every_recipe_gives_the_references_texts_on_the_fixture_rows() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper");
    let catalog = paper::catalog().expect("catalog");
    let (mut compared, mut grouped) = (Vec::new(), Vec::new());
    for task in catalog
        .iter()
        .filter(|t| t.recipe.as_ref().is_some_and(|r| r.distribution.is_none()))
    {
        let recipe = task.recipe.as_ref().expect("recipe");
        let path = fixtures.join(format!("{}.reference.json", task.name));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: every recipe needs a fixture (scripts/record_paper_tasks.py)",
                path.display()
            )
        });
        let reference: Reference = serde_json::from_str(&text).expect("reference JSON");
        assert_eq!(reference.task, task.name);
        let reference_name = recipe.reference_name.clone().expect("reference_name");

        let per = recipe.per_individual.map_or(-1, |n| n as i64);
        assert_eq!(per, reference.n_per, "{}: n_per", task.name);
        // n_iter = None is generate_many's 5000.
        let n_iter = reference.n_iter.unwrap_or(Length::Fixed(5000));
        assert_eq!(recipe.length, n_iter, "{}: n_iter", task.name);
        assert_eq!(
            recipe.permutations, reference.permutations,
            "{}: permutations",
            task.name
        );
        let examples = if recipe.survey.is_some() {
            // A survey's SPSS file, read as the app reads it.
            let path = fixtures.join(format!("{}.sav", task.name));
            paper::survey::read(recipe, &path).expect("survey examples")
        } else {
            let (rows, joined) = fixture_rows(&fixtures, &task.name, recipe);
            paper::engine::examples_joined(recipe, &rows, &joined).expect("examples")
        };
        let rendered = paper::engine::descriptions(recipe, &examples).expect("descriptions render");
        let described = recipe
            .individual
            .as_ref()
            .and_then(|i| Some((&i.id_column, i.description_column.as_ref()?)));
        if let Some((id_column, description_column)) = described {
            // Each individual's own descriptions: found by their examples.
            let mut ours: std::collections::BTreeMap<String, (String, BTreeSet<_>)> =
                Default::default();
            for e in &examples {
                let description = paper::py::str_of(&e[description_column]);
                ours.entry(paper::py::str_of(&e[id_column]))
                    .or_insert_with(|| (description, BTreeSet::new()))
                    .1
                    .insert(recipe.texts(e));
            }
            assert_eq!(
                ours.len(),
                reference.individuals.len(),
                "{}: individuals",
                task.name
            );
            for theirs in &reference.individuals {
                let pairs: BTreeSet<_> = theirs.pairs.iter().cloned().collect();
                let (description, _) = ours
                    .values()
                    .find(|(_, p)| *p == pairs)
                    .unwrap_or_else(|| panic!("{}: no individual with {pairs:?}", task.name));
                let mine: Vec<String> = rendered
                    .iter()
                    .map(|d| d.replace("{description}", description))
                    .collect();
                assert_eq!(mine, theirs.descriptions, "{}: descriptions", task.name);
            }
        } else {
            match reference_name.split_once("{individual}") {
                // One class per individual: each with its own descriptions.
                Some((prefix, suffix)) => {
                    assert!(!reference.descriptions_by_name.is_empty());
                    for (name, descriptions) in &reference.descriptions_by_name {
                        let id = name
                            .strip_prefix(prefix)
                            .and_then(|n| n.strip_suffix(suffix))
                            .expect("a name of the pattern");
                        let ours: Vec<String> = rendered
                            .iter()
                            .map(|d| d.replace("{individual}", id))
                            .collect();
                        assert_eq!(&ours, descriptions, "{}: descriptions of {id}", task.name);
                    }
                }
                None => assert_eq!(
                    rendered, reference.descriptions,
                    "{}: descriptions",
                    task.name
                ),
            }
        }
        let names: BTreeSet<String> = match &recipe.individual {
            Some(i) if reference_name.contains("{individual}") => examples
                .iter()
                .map(|e| {
                    reference_name.replace("{individual}", &paper::py::str_of(&e[&i.id_column]))
                })
                .collect(),
            _ => BTreeSet::from([reference_name.clone()]),
        };
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            reference.name,
            "{}: name",
            task.name
        );
        assert_eq!(
            recipe.individual.as_ref().and_then(|i| i.max),
            reference.max_inds,
            "{}: max_inds",
            task.name
        );
        // Choices in an order of our own: compared as a set, the answer by its text.
        let compare = |pair: (Option<String>, String)| {
            if recipe.shuffled_choices {
                choices_as_set(&pair)
            } else {
                pair
            }
        };
        let ours: BTreeSet<(Option<String>, String)> =
            examples.iter().map(|e| compare(recipe.texts(e))).collect();
        let theirs: BTreeSet<(Option<String>, String)> =
            reference.pairs.iter().cloned().map(compare).collect();
        for (mine, want) in ours.iter().zip(&theirs) {
            assert_eq!(mine, want, "{}: first differing example", task.name);
        }
        assert_eq!(ours, theirs, "{}: example texts", task.name);
        // A task of individuals: every sequence of the reference's is one
        // individual's, here too; and when a sequence holds all of an
        // individual's examples, the same examples share a sequence.
        if let Some(individual) = &recipe.individual {
            let mut theirs_by_individual: std::collections::BTreeMap<String, BTreeSet<_>> =
                Default::default();
            for e in &examples {
                theirs_by_individual
                    .entry(paper::py::str_of(&e[&individual.id_column]))
                    .or_default()
                    .insert(recipe.texts(e));
            }
            for group in &reference.groups {
                assert!(
                    theirs_by_individual
                        .values()
                        .any(|pairs| group.iter().all(|p| pairs.contains(p))),
                    "{}: a reference sequence spans individuals here: {group:?}",
                    task.name
                );
            }
        }
        if recipe.individual.is_some() && recipe.length == Length::Fixed(5000) {
            let sequences =
                paper::engine::sequences(recipe, &examples, &paper::BuildConfig::default());
            let ours: BTreeSet<_> = sequences.iter().map(pairs_of).collect();
            let theirs: BTreeSet<_> = reference
                .groups
                .iter()
                .cloned()
                .map(|mut g| {
                    g.sort();
                    g
                })
                .collect();
            assert_eq!(ours, theirs, "{}: who shares a sequence", task.name);
            grouped.push(task.name.clone());
        }
        compared.push(task.name.clone());
    }
    assert!(compared.len() >= 21, "compared {compared:?}");
    assert!(!grouped.is_empty(), "no grouping compared");
}

#[derive(serde::Deserialize)]
struct ReferenceItems {
    task: String,
    output_name: String,
    items: Vec<Item>,
}

/// Every distributional recipe against the reference's loader on the same
/// fixture rows (TASK.distribution.json): the same prompts with the same
/// options and the same target probabilities, exactly.
#[test]
fn every_distributional_recipe_gives_the_references_items() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper");
    let mut compared = Vec::new();
    for task in paper::catalog().expect("catalog") {
        let Some(recipe) = task.recipe.as_ref().filter(|r| r.distribution.is_some()) else {
            continue;
        };
        let path = fixtures.join(format!("{}.distribution.json", task.name));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/record_paper_tasks.py)", path.display()));
        let reference: ReferenceItems = serde_json::from_str(&text).expect("reference JSON");
        assert_eq!(reference.task, task.name);
        let (rows, joined) = fixture_rows(&fixtures, &task.name, recipe);
        let items = paper::engine::distribution_items(recipe, &rows, &joined).expect("items");
        let spec = recipe.distribution.as_ref().expect("distribution");
        assert_eq!(spec.output_name, reference.output_name, "{}", task.name);
        let mut ours: Vec<Item> = items
            .into_iter()
            .map(|i| Item {
                description: i.description,
                input: i.input,
                options: i.options,
                probs: i.probs,
            })
            .collect();
        ours.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let mut theirs = reference.items;
        theirs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        assert_eq!(ours, theirs, "{}: items", task.name);
        assert!(!ours.is_empty(), "{}: the fixture gives items", task.name);
        compared.push(task.name.clone());
    }
    assert!(compared.len() >= 4, "compared {compared:?}");
}
