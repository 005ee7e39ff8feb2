//! Our reading of each downloadable word list against the reference's: the
//! probe files `scripts/record_diverse_valid.py` writes in each source's own
//! format (tests/fixtures/word_lists/) give the entries the reference's
//! loaders read from them (recorded in tests/fixtures/diverse_valid_reference.json).

use std::collections::BTreeMap;
use std::path::Path;

use spectrum_suite::paper::lists;

#[test]
fn every_list_reads_as_the_reference_reads_it() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/diverse_valid_reference.json"))
            .expect("fixture");
    let mut expected: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for task in fixture["tasks"].as_array().expect("tasks") {
        if let Some(list) = task.get("word_list") {
            expected.insert(
                list["name"].as_str().expect("name").to_string(),
                serde_json::from_value(list["rows"].clone()).expect("rows"),
            );
        }
    }
    // Where the reference keeps each downloaded file.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/word_lists");
    let cars: Vec<std::path::PathBuf> = {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("us-car-models-data"))
            .expect("car files")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
    };
    let files = BTreeMap::from([
        ("color-names", vec![dir.join("colornames.csv")]),
        (
            "en-verbs-present-participles",
            vec![dir.join("en-verbs.txt")],
        ),
        (
            "periodic-table-names",
            vec![dir.join("periodic_table_elements.csv")],
        ),
        (
            "periodic-table-symbols",
            vec![dir.join("periodic_table_elements.csv")],
        ),
        ("us-car-makes", cars.clone()),
        ("us-car-make-models", cars),
    ]);
    let specs = lists::specs().expect("catalog");
    assert_eq!(specs.len(), files.len());
    for spec in specs {
        let mut ours = Vec::new();
        for file in &files[spec.name.as_str()] {
            let text = std::fs::read_to_string(file).expect("probe file");
            ours.extend(lists::entries(&spec, &text).expect("entries"));
        }
        let mut want = expected[&spec.name].clone();
        if spec.numbers.is_some() {
            // Several files: the reference's order is the folder's; compare as sets.
            ours.sort();
            want.sort();
        }
        assert_eq!(ours, want, "{}", spec.name);
    }
}
