//! The urn task against the reference (tests/fixtures/paper/urn.generated.json,
//! 80 urns drawn by the reference's loader, recorded by
//! scripts/record_paper_tasks.py): the same colours and counts give the same
//! prompt, options and probabilities, exactly. Which urns are drawn is ours.

mod common;
use common::Item;

use regex::Regex;
use spectrum_suite::paper::urn;

#[derive(serde::Deserialize)]
struct Reference {
    output_name: String,
    items: Vec<Item>,
}

#[test]
fn the_same_urns_read_as_the_references() {
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/paper/urn.generated.json")).expect("fixture");
    assert_eq!(reference.output_name, urn::OUTPUT_NAME);
    assert_eq!(reference.items.len(), 80);
    let balls = Regex::new(r"(\d+) (\w+) balls?").expect("regex");
    for want in &reference.items {
        let (colors, counts): (Vec<&str>, Vec<u64>) = balls
            .captures_iter(&want.description)
            .map(|c| {
                let color = c.get(2).expect("colour").as_str();
                (color, c[1].parse::<u64>().expect("count"))
            })
            .unzip();
        assert!(colors.iter().all(|c| urn::COLORS.contains(c)));
        let ours = urn::item(&colors, &counts);
        assert_eq!(ours.description, want.description);
        assert_eq!(ours.input, want.input);
        assert_eq!(ours.options, want.options);
        assert_eq!(ours.probs, want.probs, "{}", want.description);
    }
}
