//! The paper's urn task of its distributional suite (reference:
//! distributional_tasks/urn.py, load_urn_dataset): an urn of two to five
//! colours, one to ten balls of each; the target is the chance of drawing
//! each colour. Generated with our random stream; the prompt and target are
//! written exactly as the reference writes the same urn (tests/paper_urn.rs).

use serde_json::{Map, Value};

use crate::{DistributionItem, Rng};

pub const TASK: &str = "urn";
/// Prompts, as the reference's default `n`.
pub const ITEMS: usize = 1000;
pub const INPUT: &str = "Draw a ball at random, and tell me the color (lowercase).";
pub const OUTPUT_NAME: &str = "Response (color)";
pub const COLORS: [&str; 9] = [
    "red", "blue", "green", "yellow", "purple", "orange", "brown", "black", "white",
];

/// The prompt and target of an urn holding `counts[i]` balls of `colors[i]`.
pub fn item(colors: &[&str], counts: &[u64]) -> DistributionItem {
    let balls: Vec<String> = colors
        .iter()
        .zip(counts)
        .map(|(c, n)| {
            if *n == 1 {
                format!("{n} {c} ball")
            } else {
                format!("{n} {c} balls")
            }
        })
        .collect();
    let (last, rest) = balls.split_last().expect("an urn has balls");
    let description = format!(
        "There is an urn with the following balls shuffled together: {} and {last}.",
        rest.join(", ")
    );
    let total: u64 = counts.iter().sum();
    let mut metadata = Map::new();
    metadata.insert("output_name".into(), Value::String(OUTPUT_NAME.into()));
    DistributionItem {
        task: TASK.into(),
        description,
        input: INPUT.into(),
        options: colors.iter().map(|c| c.to_string()).collect(),
        probs: counts.iter().map(|n| *n as f64 / total as f64).collect(),
        ordinal: false,
        metadata,
    }
}

/// `n` urns: 2 to 5 distinct colours, for each a bound of 1 to 10 balls and
/// a count of 1 to that bound (the reference's two draws).
pub fn items(seed: u64, n: usize) -> Vec<DistributionItem> {
    let mut rng = Rng::derive(seed, TASK);
    (0..n)
        .map(|_| {
            let k = rng.range(2, 5) as usize;
            let mut colors = COLORS.to_vec();
            rng.shuffle(&mut colors);
            colors.truncate(k);
            let counts: Vec<u64> = (0..k)
                .map(|_| {
                    let bound = rng.range(1, 10);
                    rng.range(1, bound) as u64
                })
                .collect();
            item(&colors, &counts)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_hold_two_to_five_colours_of_one_to_ten_balls() {
        for it in items(7, 300) {
            assert!((2..=5).contains(&it.options.len()));
            let mut distinct = it.options.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), it.options.len());
            assert!((it.probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(it.probs.iter().all(|p| *p > 0.0));
        }
    }
}
