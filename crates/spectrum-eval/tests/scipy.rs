//! The metric functions against SciPy and NumPy on random inputs. The values
//! were recorded by `scripts/record_metric_reference.py` (see its conventions).

use serde_json::Value;
use spectrum_eval::metrics;

fn reference() -> Value {
    let text = include_str!("reference/metrics.json");
    serde_json::from_str(text).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn close(what: &str, ours: f64, theirs: &Value) {
    let theirs = theirs.as_f64().expect("number");
    let tol = 1e-9 * (1.0 + theirs.abs());
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours}, scipy {theirs}"
    );
}

#[test]
fn divergences_match_scipy() {
    let r = reference();
    let pairs = r["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 40);
    for case in pairs {
        let (p, q) = (floats(&case["p"]), floats(&case["q"]));
        close("js", metrics::js(&p, &q), &case["js"]);
        close("kl", metrics::kl(&p, &q), &case["kl"]);
        let reverse = metrics::kl(&q, &p);
        if case["reverse_kl"].is_null() {
            assert!(reverse.is_infinite(), "the target has a zero: {reverse}");
        } else {
            close("reverse kl", reverse, &case["reverse_kl"]);
        }
        close("tv", metrics::total_variation(&p, &q), &case["tv"]);
        close("ce", metrics::cross_entropy(&p, &q), &case["cross_entropy"]);
        close("w1", metrics::wasserstein1(&p, &q), &case["wasserstein"]);
    }
}

#[test]
fn item_alignment_matches_scipy() {
    let r = reference();
    for case in r["alignments"].as_array().expect("alignments") {
        let a = metrics::alignment(&floats(&case["logprobs"]), &floats(&case["target"]), true);
        close("coverage", a.coverage, &case["coverage"]);
        for (ours, theirs) in a.q.iter().zip(floats(&case["q"])) {
            assert!((ours - theirs).abs() < 1e-12);
        }
        close("js", a.js, &case["js"]);
        close("kl", a.kl, &case["kl"]);
        close("reverse kl", a.reverse_kl, &case["reverse_kl"]);
        close("tv", a.tv, &case["tv"]);
        close("ce", a.cross_entropy, &case["cross_entropy"]);
        close("w1", a.wasserstein.expect("ordinal"), &case["wasserstein"]);
        assert_eq!(Some(a.mode_match), case["mode_match"].as_bool());
    }
}

/// (The calibration error is the reference's: tests/conformance.rs checks
/// it against values the reference computed.)
#[test]
fn standard_errors_match_numpy_and_scipy() {
    let r = reference();
    for case in r["mean_se"].as_array().expect("mean_se") {
        let m = metrics::mean_se(&floats(&case["xs"]));
        close("mean", m.mean, &case["mean"]);
        close("se", m.se.expect("se"), &case["se"]);
    }
}
