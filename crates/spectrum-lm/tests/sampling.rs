//! Batched sampling of several prompts gives what sampling each prompt alone gives.

use spectrum_lm::{DeviceSpec, LanguageModel, SamplingParams};

fn model() -> (tempfile::TempDir, spectrum_lm::LocalModel) {
    let dir = tempfile::tempdir().expect("tempdir");
    spectrum_lm::tiny::write_model(dir.path(), 32, 2, 7).expect("tiny model");
    let lm = spectrum_lm::load_local(dir.path(), DeviceSpec::Cpu).expect("load");
    (dir, lm)
}

fn params(n: usize, temperature: f64, seed: u64, max_tokens: usize) -> SamplingParams {
    SamplingParams {
        n,
        temperature,
        seed,
        max_tokens,
        ..SamplingParams::default()
    }
}

#[test]
fn prompts_of_different_lengths_sample_together_as_they_do_alone() {
    let (_dir, mut lm) = model();
    let short = lm.tokenizer.encode("ab").expect("encode");
    let long = lm.tokenizer.encode("a longer prompt here").expect("encode");
    assert!(short.len() < long.len());
    for temperature in [0.0, 1.0] {
        let a = params(3, temperature, 11, 12);
        let b = params(2, temperature, 5, 7);
        let alone = [
            lm.sample(&short, &a).expect("a"),
            lm.sample(&long, &b).expect("b"),
        ];
        let together = lm
            .sample_many(&[(&short, &a), (&long, &b)])
            .expect("together");
        assert_eq!(together.len(), 2);
        assert_eq!(together[0].len(), 3);
        assert_eq!(together[1].len(), 2);
        assert!(together[1].iter().all(|s| s.len() <= 7));
        // Left padding shifts absolute positions only; logits agree to rounding,
        // so the draws (greedy and seeded) are the same tokens.
        assert_eq!(together[0], alone[0], "temperature {temperature}");
        assert_eq!(together[1], alone[1], "temperature {temperature}");
    }
}

#[test]
fn a_split_request_with_shifted_seeds_samples_the_same_rows() {
    let (_dir, mut lm) = model();
    let prompt = lm.tokenizer.encode("hello").expect("encode");
    let whole = lm.sample(&prompt, &params(4, 1.0, 99, 8)).expect("whole");
    let first = lm.sample(&prompt, &params(2, 1.0, 99, 8)).expect("first");
    let shifted = 99u64.wrapping_add(2 * 0x9E37_79B9);
    let second = lm
        .sample(&prompt, &params(2, 1.0, shifted, 8))
        .expect("second");
    assert_eq!(whole, [first, second].concat());
}
