//! The flight task against the reference (tests/fixtures/paper/flight.reference.json,
//! recorded by scripts/record_paper_tasks.py): for flights and profiles drawn by
//! the reference's own sampler, and some at the grid's edges, the same text and
//! the same preferred flight; the same name and description. Which flights are
//! drawn is ours.

use spectrum_suite::paper::flight;

#[derive(serde::Deserialize)]
struct Reference {
    name: String,
    descriptions: Vec<String>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    flights: Vec<[f64; 4]>,
    profile: [f64; 4],
    text: String,
    rating: String,
}

#[test]
fn the_same_flights_read_and_rank_as_the_references() {
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/paper/flight.reference.json"))
            .expect("fixture");
    assert_eq!(reference.name, flight::REFERENCE_NAME);
    assert_eq!(reference.descriptions, [flight::DESCRIPTION]);
    assert!(reference.cases.len() >= 40);
    for case in &reference.cases {
        assert_eq!(flight::flights_text(&case.flights), case.text);
        assert_eq!(
            (flight::best(&case.flights, &case.profile) + 1).to_string(),
            case.rating,
            "{}",
            case.text
        );
    }
}
