//! What the evaluation's two structural choices buy, on the default model
//! (SmolLM2-135M, f32, CPU), each against the usual way side by side in one run:
//!
//! - option scoring: one pass over the shared prompt, every option scored from
//!   its KV cache, against re-running prompt + option for every option as one
//!   padded batch (the way lm-evaluation-harness scores choices);
//! - steerability: every output's loss from one pass over the sequence, against
//!   re-scoring the prefix that ends with each output.
//!
//! Both ways must give the same numbers; the bench prints the largest difference.
//!
//!     cargo bench -p spectrum-eval --bench eval_speed
//!
//! Needs the default model (installed into target/tmp on first use, or
//! `SPECTRUM_BENCH_MODEL=DIR`).

use std::time::Instant;

use spectrum_eval::{dist, steer};
use spectrum_lm::template::PromptFormat;
use spectrum_lm::{DeviceSpec, LanguageModel};
use spectrum_suite::builtin::{self, SuiteConfig};
use spectrum_suite::{DistributionItem, Split};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

fn main() {
    spectrum_lm::fpu::flush_subnormals();
    println!("{}", spectrum_lm::machine::Machine::describe());
    let dir = spectrum_lm::default_model::for_benchmarks(env!("CARGO_TARGET_TMPDIR"));
    let mut lm = spectrum_lm::load_local(&dir, DeviceSpec::Cpu).expect("model");
    let tok = lm.tokenizer.clone();
    let format = PromptFormat::Spectrum;
    let suite = builtin::build(&SuiteConfig::default());
    println!(
        "model {}, {} threads",
        dir.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Option scoring on the suite's held-out distribution items, and on a long
    // prompt (a persona of about 400 tokens) with five Likert options.
    let held_out: Vec<&str> = suite
        .tasks
        .iter()
        .filter(|t| t.split == Split::HeldOut)
        .map(|t| t.task.as_str())
        .collect();
    let suite_items: Vec<DistributionItem> = suite
        .distribution
        .iter()
        .filter(|d| held_out.contains(&d.task.as_str()))
        .take(16)
        .cloned()
        .collect();
    let persona = "I grew up in a small town, worked as a nurse for twenty years, and care about my family, my health and my community. ".repeat(16);
    let likert: Vec<DistributionItem> = (0..4)
        .map(|i| DistributionItem {
            task: "likert".into(),
            description: format!("Answer as this person would. {persona}"),
            input: format!("Statement {i}: the government should spend more on public transport."),
            options: [
                "strongly disagree",
                "disagree",
                "neither agree nor disagree",
                "agree",
                "strongly agree",
            ]
            .map(String::from)
            .to_vec(),
            probs: vec![0.2; 5],
            ordinal: true,
            metadata: Default::default(),
        })
        .collect();
    println!(
        "\noption scoring               shared prompt   re-run per option   speed-up   max |diff| (log p)"
    );
    for (name, items) in [
        ("suite items (urns, spinners)", &suite_items),
        ("400-token prompt, 5 options", &likert),
    ] {
        let prepared: Vec<(Vec<u32>, Vec<Vec<u32>>)> = items
            .iter()
            .map(|item| {
                let (prompt, options, _) = dist::item_tokens(&tok, format, item).expect("tokens");
                (prompt, options)
            })
            .collect();
        // Warm up both paths once.
        let _ = lm.option_logprobs(&prepared[0].0, &prepared[0].1);
        let (shared, t_shared) = time(|| {
            prepared
                .iter()
                .map(|(p, o)| lm.option_logprobs(p, o).expect("score"))
                .collect::<Vec<_>>()
        });
        let (rerun, t_rerun) = time(|| {
            prepared
                .iter()
                .map(|(p, options)| {
                    let batch: Vec<Vec<u32>> =
                        options.iter().map(|o| [p.as_slice(), o].concat()).collect();
                    let scores = lm.score_tokens(&batch).expect("score");
                    scores
                        .iter()
                        .zip(options)
                        .map(|(s, o)| {
                            s.logprobs[p.len() - 1..p.len() - 1 + o.len()]
                                .iter()
                                .map(|&l| l as f64)
                                .sum::<f64>()
                        })
                        .collect::<Vec<f64>>()
                })
                .collect::<Vec<_>>()
        });
        let diff = shared
            .iter()
            .flatten()
            .zip(rerun.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{name:<28} {:>10.3} s   {:>14.3} s   {:>7.2}x   {diff:.1e}",
            t_shared,
            t_rerun,
            t_rerun / t_shared
        );
    }

    // Steerability: held-out sequences at the quick profile's budget.
    let settings = spectrum_eval::Profile::Quick.settings();
    let sequences: Vec<steer::EvalSequence> = suite
        .sequences
        .iter()
        .filter(|s| s.task == "sum_of_dice" || s.task == "zipf_rank")
        .take(12)
        .enumerate()
        .map(|(i, s)| steer::EvalSequence {
            id: i.to_string(),
            messages: s.messages.clone(),
        })
        .collect();
    let (k, chosen) =
        steer::prepare(&tok, &tok, format, "bench", &sequences, &settings).expect("prepare");
    let tokens: usize = chosen.iter().map(|c| c.1.ids.len()).sum();
    let (single, t_single) = time(|| {
        chosen
            .iter()
            .map(|(_, r)| {
                let s = lm
                    .score_tokens(std::slice::from_ref(&r.ids))
                    .expect("score");
                spectrum_lm::engine::output_scores(r, &s[0])
            })
            .collect::<Vec<_>>()
    });
    let (prefix, t_prefix) = time(|| {
        chosen
            .iter()
            .map(|(_, r)| {
                r.outputs
                    .iter()
                    .map(|span| {
                        // The prefix that ends with this output; its tokens are scored at
                        // entries start - 1 .. end - 1.
                        let s = lm
                            .score_tokens(&[r.ids[..span.end].to_vec()])
                            .expect("score");
                        let loss = -s[0].logprobs[span.start - 1..span.end - 1]
                            .iter()
                            .map(|&l| l as f64)
                            .sum::<f64>();
                        spectrum_lm::OutputScore {
                            index: span.index,
                            example: span.example,
                            loss: span.loss.then_some(loss),
                            acc: None,
                            all_acc: None,
                            first_acc: None,
                            tokens: span.end - span.start,
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    let diff = single
        .iter()
        .flatten()
        .zip(prefix.iter().flatten())
        .filter_map(|(a, b)| Some((a.loss? - b.loss?).abs()))
        .fold(0.0, f64::max);
    println!(
        "\nsteerability ({} sequences, k = {k}, {tokens} tokens)",
        chosen.len()
    );
    println!(
        "                             one pass        re-score prefixes   speed-up   max |diff| (loss)"
    );
    println!(
        "{:<28} {:>10.3} s   {:>14.3} s   {:>7.2}x   {diff:.1e}",
        "per-output losses",
        t_single,
        t_prefix,
        t_prefix / t_single
    );
}
