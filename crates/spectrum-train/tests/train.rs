//! Training on tiny models built in code, with the built-in suite as data.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use spectrum_lm::lora::LoraConfig;
use spectrum_suite::Split;
use spectrum_suite::builtin::{SuiteConfig, build};
use spectrum_train::{
    Checkpoint, Event, Length, Method, RunSpec, SourceSequence, StepMetrics, TrainJob, checkpoint,
    export, train,
};

struct Data {
    train: Vec<SourceSequence>,
    held_out: Vec<Vec<spectrum_suite::Message>>,
}

fn data() -> Data {
    let suite = build(&SuiteConfig {
        size: 4,
        min_examples: 4,
        max_examples: 10,
        ..SuiteConfig::default()
    });
    let split: HashMap<&str, Split> = suite
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), t.split))
        .collect();
    let mut d = Data {
        train: Vec::new(),
        held_out: Vec::new(),
    };
    for s in &suite.sequences {
        match split[s.task.as_str()] {
            Split::Train => d.train.push(SourceSequence {
                task: s.task.clone(),
                messages: s.messages.clone(),
                fallback_descriptions: Vec::new(),
            }),
            Split::HeldOut if d.held_out.len() < 8 => d.held_out.push(s.messages.clone()),
            Split::HeldOut => {}
        }
    }
    d
}

fn tiny_model(dir: &Path) {
    spectrum_lm::tiny::write_model(dir, 32, 2, 1).expect("tiny model");
}

fn spec(method: Method, steps: usize) -> RunSpec {
    RunSpec {
        method,
        learning_rate: 1e-2,
        warmup_steps: 2,
        micro_batch: 4,
        grad_accum: 2,
        max_tokens: 192,
        length: Length::Steps(steps),
        eval_every: steps,
        checkpoint_every: 2,
        keep_checkpoints: 2,
        ..RunSpec::default()
    }
}

struct Log {
    steps: Vec<StepMetrics>,
    evals: Vec<f64>,
}

fn run(
    spec: &RunSpec,
    model: &Path,
    run_dir: &Path,
    d: &Data,
    cancel_after: Option<usize>,
) -> (Log, spectrum_train::Outcome) {
    let mut log = Log {
        steps: Vec::new(),
        evals: Vec::new(),
    };
    let cancel = AtomicBool::new(false);
    let job = TrainJob {
        spec,
        model_dir: model,
        train: &d.train,
        held_out: &d.held_out,
        run_dir,
    };
    let outcome = train(
        &job,
        &mut |e| {
            match e {
                Event::Step(m) => {
                    if Some(m.step) == cancel_after {
                        cancel.store(true, Ordering::Relaxed);
                    }
                    log.steps.push(m);
                }
                Event::Eval(m) => log.evals.push(m.loss),
                _ => {}
            }
            Ok(())
        },
        &cancel,
    )
    .expect("train");
    (log, outcome)
}

/// The largest relative difference between the losses of two runs' steps,
/// each asserted below `tol` (`what` names the second run in a failure).
fn largest_loss_difference(a: &Log, b: &Log, tol: f64, what: &str) -> f64 {
    assert_eq!(a.steps.len(), b.steps.len());
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
    a.steps
        .iter()
        .zip(&b.steps)
        .map(|(x, y)| {
            let d = rel(y.loss, x.loss);
            assert!(
                d < tol,
                "{what}: step {} loss {} vs {}",
                x.step,
                y.loss,
                x.loss
            );
            d
        })
        .fold(0.0, f64::max)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[test]
fn full_fine_tuning_lowers_training_and_held_out_loss() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let (log, outcome) = run(
        &spec(Method::Full, 16),
        &model,
        &tmp.path().join("run"),
        &d,
        None,
    );
    assert_eq!(outcome.step, 16);
    assert!(!outcome.cancelled);
    let losses: Vec<f64> = log.steps.iter().map(|m| m.loss).collect();
    assert!(
        mean(&losses[12..]) < 0.8 * mean(&losses[..4]),
        "training loss did not fall: {losses:?}"
    );
    assert_eq!(log.evals.len(), 2, "held-out loss before and after");
    assert!(
        log.evals[1] < log.evals[0],
        "held-out loss did not fall: {:?}",
        log.evals
    );
    assert!(
        log.steps
            .iter()
            .all(|m| m.grad_norm.is_finite() && m.tokens > 0)
    );
}

#[test]
fn lora_changes_only_the_adapted_projections() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let method = Method::Lora(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["q_proj".into(), "v_proj".into()],
    });
    let run_dir = tmp.path().join("run");
    let (log, outcome) = run(&spec(method.clone(), 6), &model, &run_dir, &data(), None);
    assert!(log.steps.last().expect("steps").loss < log.steps[0].loss);
    let ckpt = Checkpoint {
        dir: outcome.checkpoint.clone(),
    };
    let trained = ckpt.trainable().expect("weights");
    assert_eq!(trained.len(), 2 * 2 * 2, "2 layers x 2 targets x (A, B)");
    assert!(
        trained
            .keys()
            .all(|k| k.starts_with("base_model.model.model.layers.")
                && (k.contains(".lora_A.") || k.contains(".lora_B.")))
    );

    let merged = tmp.path().join("merged");
    export::export_merged(&ckpt, &method, &model, &merged).expect("merge");
    let load = |dir: &Path| -> HashMap<String, Tensor> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).expect("load")
    };
    let (base, tuned) = (load(&model), load(&merged));
    assert_eq!(base.len(), tuned.len());
    for (name, b) in &base {
        let diff = (b - &tuned[name])
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_dtype(DType::F32))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff");
        let adapted = name.contains("q_proj") || name.contains("v_proj");
        assert_eq!(diff > 0.0, adapted, "{name}: changed by {diff}");
    }
    // The merged folder loads like any model and the adapter folder loads as base + adapter.
    let peft = tmp.path().join("peft");
    export::export_peft(&ckpt, &method, &model, &peft).expect("peft");
    let ids = vec![vec![1u32, 40, 41, 42, 2, 10, 11]];
    let logits = |dir: &Path| {
        use spectrum_lm::LanguageModel;
        let mut m = spectrum_lm::load_local(dir, spectrum_lm::DeviceSpec::Cpu).expect("load");
        m.score_tokens(&ids).expect("score")[0].logprobs.clone()
    };
    let (a, b) = (logits(&merged), logits(&peft));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    assert_ne!(logits(&model), a, "the tuned model differs from the base");
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let method = Method::Lora(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    });
    let s = spec(method, 7);
    let (whole, whole_out) = run(&s, &model, &tmp.path().join("whole"), &d, None);

    let parts = tmp.path().join("parts");
    let (first, first_out) = run(&s, &model, &parts, &d, Some(3));
    assert!(first_out.cancelled);
    assert_eq!(first_out.step, 3, "cancel stops within one step");
    assert_eq!(
        Checkpoint::step_of(&first_out.checkpoint),
        Some(3),
        "a cancelled run leaves a checkpoint of its last step"
    );
    let (second, second_out) = run(&s, &model, &parts, &d, None);
    assert_eq!(second_out.step, 7);
    assert_eq!(second.steps[0].step, 4, "resumed after the checkpoint");

    let losses = |l: &[StepMetrics]| {
        l.iter()
            .map(|m| (m.step, m.loss, m.grad_norm))
            .collect::<Vec<_>>()
    };
    let mut resumed = losses(&first.steps);
    resumed.extend(losses(&second.steps));
    assert_eq!(resumed, losses(&whole.steps), "same losses, bit for bit");

    let w1 = Checkpoint {
        dir: whole_out.checkpoint,
    }
    .trainable()
    .expect("w");
    let w2 = Checkpoint {
        dir: second_out.checkpoint,
    }
    .trainable()
    .expect("w");
    for (k, a) in &w1 {
        let a: Vec<f32> = a.flatten_all().and_then(|t| t.to_vec1()).expect("v");
        let b: Vec<f32> = w2[k].flatten_all().and_then(|t| t.to_vec1()).expect("v");
        assert_eq!(a, b, "{k}");
    }
    // Only the newest checkpoints are kept.
    let kept = checkpoint::list(&parts.join("checkpoints")).expect("list");
    assert_eq!(kept.len(), 2);
}

#[test]
fn a_resume_with_other_settings_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let run_dir = tmp.path().join("run");
    run(&spec(Method::Full, 2), &model, &run_dir, &d, None);
    let other = RunSpec {
        learning_rate: 0.5,
        ..spec(Method::Full, 4)
    };
    let job = TrainJob {
        spec: &other,
        model_dir: &model,
        train: &d.train,
        held_out: &d.held_out,
        run_dir: &run_dir,
    };
    let e = train(&job, &mut |_| Ok(()), &AtomicBool::new(false)).expect_err("refused");
    assert!(e.to_string().contains("other settings"), "{e}");
}

#[test]
fn splitting_micro_batches_by_tokens_gives_the_same_steps() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let whole = spec(Method::Full, 3);
    let split = RunSpec {
        max_batch_tokens: 100,
        ..whole.clone()
    };
    let (a, _) = run(&whole, &model, &tmp.path().join("a"), &d, None);
    let (b, _) = run(&split, &model, &tmp.path().join("b"), &d, None);
    for (x, y) in a.steps.iter().zip(&b.steps) {
        assert!((x.loss - y.loss).abs() < 1e-5, "{} vs {}", x.loss, y.loss);
        assert!(
            (x.grad_norm - y.grad_norm).abs() < 1e-4,
            "{} vs {}",
            x.grad_norm,
            y.grad_norm
        );
    }
}

/// A model given turn tokens (METHOD.md §2) trains their rows under LoRA: the
/// adapter holds them as PEFT's trainable tokens, the merged model has them
/// trained, every other embedding row is as it was.
#[test]
fn lora_trains_the_rows_of_added_tokens() {
    use spectrum_lm::added_tokens::{RowInit, add_tokens};
    let tmp = tempfile::tempdir().expect("tmp");
    let (bare, model) = (tmp.path().join("bare"), tmp.path().join("model"));
    tiny_model(&bare);
    spectrum_lm::tiny::strip_turn_tokens(&bare).expect("strip");
    let tokens = vec!["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    let added = add_tokens(&bare, &model, &tokens, RowInit::Mean).expect("add");
    let method = Method::Lora(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["q_proj".into(), "v_proj".into()],
    });
    let (log, outcome) = run(
        &spec(method.clone(), 4),
        &model,
        &tmp.path().join("run"),
        &data(),
        None,
    );
    assert!(log.steps.last().expect("steps").loss < log.steps[0].loss);
    let ckpt = Checkpoint {
        dir: outcome.checkpoint.clone(),
    };
    let trained = ckpt.trainable().expect("weights");
    assert_eq!(trained[spectrum_lm::lora::EMBED_ROWS].dims(), [2, 32]);

    let merged = tmp.path().join("merged");
    export::export_merged(&ckpt, &method, &model, &merged).expect("merge");
    let embed = |dir: &Path| -> Vec<Vec<f32>> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).expect("load")
            ["model.embed_tokens.weight"]
            .to_vec2()
            .expect("rows")
    };
    let (before, after) = (embed(&model), embed(&merged));
    for (id, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(added.ids().contains(&id), a != b, "row {id}");
    }
    let peft_dir = tmp.path().join("peft");
    export::export_peft(&ckpt, &method, &model, &peft_dir).expect("peft");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(peft_dir.join("adapter_config.json")).expect("config"),
    )
    .expect("json");
    let ids: Vec<usize> = added.ids().collect();
    assert_eq!(
        cfg["trainable_token_indices"]["embed_tokens"],
        serde_json::json!(ids)
    );
    // The adapter folder loads as base + adapter (rows included): as the merged model.
    let seq = vec![vec![
        added.first_id as u32,
        40,
        41,
        42,
        added.first_id as u32 + 1,
        10,
    ]];
    let logits = |dir: &Path| {
        use spectrum_lm::LanguageModel;
        let mut m = spectrum_lm::load_local(dir, spectrum_lm::DeviceSpec::Cpu).expect("load");
        m.score_tokens(&seq).expect("score")[0].logprobs.clone()
    };
    let (a, b) = (logits(&merged), logits(&peft_dir));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

/// bf16, as GPU runs train (here on the CPU, through the same non-fused ops and
/// the optimizer's f32 master weights): the loss falls, and a cancelled run
/// resumes to the uninterrupted one's losses, bit for bit.
#[test]
fn a_bf16_run_trains_and_resumes_exactly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let s = RunSpec {
        dtype: Some(spectrum_train::Dtype::Bf16),
        learning_rate: 3e-3,
        ..spec(Method::Full, 12)
    };
    let (whole, _) = run(&s, &model, &tmp.path().join("whole"), &d, None);
    let losses: Vec<f64> = whole.steps.iter().map(|m| m.loss).collect();
    assert!(
        mean(&losses[8..]) < 0.9 * mean(&losses[..4]),
        "bf16 training loss did not fall: {losses:?}"
    );

    let parts = tmp.path().join("parts");
    let (first, first_out) = run(&s, &model, &parts, &d, Some(5));
    assert!(first_out.cancelled);
    let (second, second_out) = run(&s, &model, &parts, &d, None);
    assert_eq!(second_out.step, 12);
    let key = |l: &[StepMetrics]| l.iter().map(|m| (m.step, m.loss)).collect::<Vec<_>>();
    let mut resumed = key(&first.steps);
    resumed.extend(key(&second.steps));
    assert_eq!(resumed, key(&whole.steps), "same losses, bit for bit");
}

/// Where the composed-path test runs its composed and bf16 runs:
/// `SPECTRUM_TEST_DEVICE` (`cuda:0` on a GPU machine, with a build that has
/// `--features spectrum-lm/cuda`: `scripts/gpu-session.sh`), else the CPU.
/// The fused reference run is always the CPU's.
fn device_under_test() -> spectrum_lm::DeviceSpec {
    match std::env::var("SPECTRUM_TEST_DEVICE") {
        Ok(text) => spectrum_lm::DeviceSpec::parse(&text).unwrap_or_else(|| {
            panic!("SPECTRUM_TEST_DEVICE={text:?} is not a device: cpu, cuda:N or metal")
        }),
        Err(_) => spectrum_lm::DeviceSpec::Cpu,
    }
}

/// The composed operations a GPU runs, on the CPU (`kernels: composed`) or
/// on the device under test, against the CPU's custom f32 kernels: the same
/// run, step by step.
#[test]
fn the_composed_gpu_path_trains_as_the_custom_kernels_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
    for (i, method) in [Method::Full, Method::Lora(LoraConfig::default())]
        .into_iter()
        .enumerate()
    {
        let fused = spec(method, 4);
        let composed = RunSpec {
            kernels: spectrum_lm::ops::Kernels::Composed,
            device: device_under_test(),
            ..fused.clone()
        };
        let (a, _) = run(
            &fused,
            &model,
            &tmp.path().join(format!("fused{i}")),
            &d,
            None,
        );
        let (b, _) = run(
            &composed,
            &model,
            &tmp.path().join(format!("composed{i}")),
            &d,
            None,
        );
        assert_eq!(a.steps.len(), b.steps.len());
        for (x, y) in a.steps.iter().zip(&b.steps) {
            // Losses carry every earlier update, so they check the gradients'
            // effect too; the global gradient norm checks their size.
            assert!(
                rel(y.loss, x.loss) < 1e-4,
                "step {} loss {} vs {}",
                x.step,
                y.loss,
                x.loss
            );
            assert!(
                rel(y.grad_norm, x.grad_norm) < 1e-4,
                "step {} gradient norm {} vs {}",
                x.step,
                y.grad_norm,
                x.grad_norm
            );
        }
        // Another path really ran: the sums are ordered differently.
        assert!(
            a.steps
                .iter()
                .zip(&b.steps)
                .any(|(x, y)| x.loss != y.loss || x.grad_norm != y.grad_norm),
            "the composed run is bit for bit the fused one: the switch did nothing"
        );
        // bf16 on the composed path (what a GPU runs) against f32: bf16 keeps
        // 8 significant bits (unit roundoff 2^-8 = 3.9e-3 per rounding); the
        // loss is a mean over many tokens, so rounding errors mostly average
        // out (3.8e-4 seen for this model): 5e-3, about one rounding, is what a
        // correct bf16 path stays within; a wrong op is off by far more.
        let bf16 = RunSpec {
            dtype: Some(spectrum_train::Dtype::Bf16),
            ..composed.clone()
        };
        let (c, _) = run(
            &bf16,
            &model,
            &tmp.path().join(format!("bf16{i}")),
            &d,
            None,
        );
        let largest = largest_loss_difference(&a, &c, 5e-3, "bf16");
        eprintln!("largest bf16 loss difference: {largest:.2e}");
    }
    // Only the run's thread changes, and only for the run.
    assert_eq!(
        spectrum_lm::ops::kernels(),
        spectrum_lm::ops::Kernels::Fused
    );
}

/// LoRA with the frozen weights' products in bf16 (`frozen_matmul: bf16`,
/// on AMX or AVX512-BF16, whichever this CPU offers first) against the same
/// run in f32, step by step: within the bf16 bound of the test above (5e-3
/// of the loss, about one rounding), and not bit for bit (the bf16 unit
/// ran). Where the CPU has neither the setting is refused by name; full
/// fine-tuning (nothing frozen) is refused everywhere.
#[test]
fn bf16_frozen_products_train_as_f32_does() {
    use spectrum_lm::ops::FrozenMatmul;
    let full = RunSpec {
        frozen_matmul: FrozenMatmul::Bf16,
        ..spec(Method::Full, 4)
    };
    let refused = full
        .validate()
        .expect_err("full fine-tuning has no frozen weight");
    assert_eq!(refused.setting, "frozen_matmul");
    assert!(refused.message.contains("LoRA"), "{}", refused.message);
    let f32_run = spec(Method::Lora(LoraConfig::default()), 4);
    let bf16_run = RunSpec {
        frozen_matmul: FrozenMatmul::Bf16,
        ..f32_run.clone()
    };
    if spectrum_lm::bf16::Bf16Unit::get().is_none() {
        let refused = bf16_run.validate().expect_err("no bf16 unit here");
        assert!(
            refused.message.contains("AVX512-BF16"),
            "{}",
            refused.message
        );
        eprintln!("this CPU has no bf16 unit (AMX, AVX512-BF16): only the refusal is tested");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    let (a, _) = run(&f32_run, &model, &tmp.path().join("f32"), &d, None);
    let (b, _) = run(&bf16_run, &model, &tmp.path().join("bf16"), &d, None);
    let largest = largest_loss_difference(&a, &b, 5e-3, "bf16 frozen products");
    assert!(
        a.steps.iter().zip(&b.steps).any(|(x, y)| x.loss != y.loss),
        "the bf16 run is bit for bit the f32 one: the bf16 unit did not run"
    );
    eprintln!("largest loss difference with bf16 frozen products: {largest:.2e}");
}

/// Gradient checkpointing changes memory, not the run: full fine-tuning and
/// LoRA with `gradient_checkpointing` take the same steps as without it, bit
/// for bit (losses, gradient norms and the held-out evaluations).
#[test]
fn a_checkpointed_run_takes_the_same_steps_bit_for_bit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("model");
    tiny_model(&model);
    let d = data();
    for (i, method) in [Method::Full, Method::Lora(LoraConfig::default())]
        .into_iter()
        .enumerate()
    {
        let plain = spec(method, 4);
        let checkpointed = RunSpec {
            gradient_checkpointing: true,
            ..plain.clone()
        };
        let (a, _) = run(
            &plain,
            &model,
            &tmp.path().join(format!("plain{i}")),
            &d,
            None,
        );
        let (b, _) = run(
            &checkpointed,
            &model,
            &tmp.path().join(format!("checkpointed{i}")),
            &d,
            None,
        );
        let bits = |l: &[StepMetrics]| {
            l.iter()
                .map(|m| (m.step, m.loss.to_bits(), m.grad_norm.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&a.steps), bits(&b.steps), "{i}: steps differ");
        assert_eq!(a.evals.len(), b.evals.len());
        for (x, y) in a.evals.iter().zip(&b.evals) {
            assert_eq!(x.to_bits(), y.to_bits(), "{i}: held-out loss");
        }
    }
}
