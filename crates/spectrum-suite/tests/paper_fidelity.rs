//! Every recipe against the reference: the fixture rows of its source
//! (tests/fixtures/paper/TASK.parquet, real schema) give the same example
//! texts, the same descriptions, the same name and the same sequence sizes as
//! the reference's generator gave on the same rows (TASK.reference.json,
//! recorded by scripts/record_paper_tasks.py at tsor13/spectrum 5a33588).
//!
//! Compared per task: every (input, output) text pair, the description list,
//! `n_per`/`n_iter`. Not compared: which examples share a sequence and in what
//! order (sampling is ours; its structure is tested in paper::engine).

use std::collections::BTreeSet;
use std::path::Path;

use spectrum_suite::paper::{self, recipe::Length};

#[derive(serde::Deserialize)]
struct Reference {
    task: String,
    name: Vec<String>,
    n_per: i64,
    n_iter: Option<usize>,
    descriptions: Vec<String>,
    pairs: Vec<(Option<String>, String)>,
}

#[test]
fn every_recipe_gives_the_references_texts_on_the_fixture_rows() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper");
    let catalog = paper::catalog().expect("catalog");
    let mut compared = Vec::new();
    for task in catalog.iter().filter(|t| t.recipe.is_some()) {
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
        assert_eq!(
            reference.name,
            vec![recipe.reference_name.clone().expect("reference_name")],
            "{}",
            task.name
        );
        assert_eq!(
            recipe.descriptions(),
            reference.descriptions,
            "{}: descriptions",
            task.name
        );
        let per = recipe.per_individual.map_or(-1, |n| n as i64);
        assert_eq!(per, reference.n_per, "{}: n_per", task.name);
        assert_eq!(
            Some(recipe.length),
            reference.n_iter.map(Length::Fixed),
            "{}: n_iter",
            task.name
        );
        let rows = paper::table::read_parquet(&fixtures.join(format!("{}.parquet", task.name)))
            .expect("fixture rows");
        let examples = paper::engine::examples(recipe, &rows).expect("examples");
        let ours: BTreeSet<(Option<String>, String)> =
            examples.iter().map(|e| recipe.texts(e)).collect();
        let theirs: BTreeSet<(Option<String>, String)> = reference.pairs.into_iter().collect();
        for (mine, want) in ours.iter().zip(&theirs) {
            assert_eq!(mine, want, "{}: first differing example", task.name);
        }
        assert_eq!(ours, theirs, "{}: example texts", task.name);
        compared.push(task.name.clone());
    }
    assert!(compared.len() >= 5, "compared {compared:?}");
}
