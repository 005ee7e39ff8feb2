// Generated from the Rust types by crates/spectrum-app/src/bindings.rs: do not edit.
// Regenerate: SPECTRUM_BLESS=1 cargo test --workspace --lib bindings

export type AddModelRequest = { source: ModelSource, 
/**
 * The name in the registry (default: from the source).
 */
name: string | null, remote: RemoteOptions, };

export type AppError = { code: ErrorCode, message: string, fix: Fix | null, };

export type AppInfo = { version: string, store: string, 
/**
 * Nothing imported yet: the UI offers the tour.
 */
first_run: boolean, 
/**
 * How far the store is along the main job, for the tour's checklist.
 */
tour: Tour, 
/**
 * Training and evaluation runs left `running` by a process that is gone.
 */
interrupted: Array<RunRecord>, };

export type CandidateComparison = { run: ComparedRun, rows: Array<CompareRow>, 
/**
 * Per family, over the headline rows.
 */
tally: { [key in Family]?: Tally }, };

export type Cell = { setting: Setting, temperature: number, n: number, valid: number, 
/**
 * valid / n.
 */
percent_valid: number, 
/**
 * Distinct valid strings / valid (0 when nothing is valid).
 */
unique_pct: number, 
/**
 * Number of distinct valid strings among the n.
 */
yield: number, 
/**
 * Distinct valid / size of the valid set, for closed-set tasks.
 */
coverage_pct: number | null, 
/**
 * Distinct valid / n (`usable_unique_pct`).
 */
usable_unique_pct: number, 
/**
 * Distinct samples, valid or not, and that / n.
 */
raw_unique_count: number, raw_unique_pct: number, 
/**
 * Pairs of valid samples, and those that are the same string; their
 * ratio; 1 - it; its binomial standard error sqrt(p (1 - p) / pairs).
 * With fewer than two valid samples: 0 pairs, collision 0, uniqueness 1.
 */
possible_collisions: number, actual_collisions: number, pairwise_collision: number, pairwise_uniqueness: number, pairwise_collision_sem: number, };

export type CompareRow = { family: Family, task: string, metric: string, lower_is_better: boolean, baseline: number, candidate: number, interval: Interval, verdict: Verdict, 
/**
 * Whether this row counts in the win/tie/loss tally (one headline metric
 * per family and task: steer loss, dist JS, valid yield at temperature 1).
 */
headline: boolean, };

export type ComparedRun = { run: number, name: string, model: string, template: PromptFormat, };

export type Comparison = { baseline: ComparedRun, candidates: Array<CandidateComparison>, 
/**
 * Paired units (sequences, items) that only one of two runs had.
 */
unpaired_units: number, 
/**
 * Tasks x runs (the baseline first) of each family's headline metric,
 * for the breakdown heatmaps the app and the PDF draw alike.
 */
heatmaps: Array<Heatmap>, };

export type Counts = { tasks: number, sequences: number, distribution_items: number, validity_tasks: number, };

export type CurvePoint = { 
/**
 * The example number j (j examples precede it in context).
 */
index: number, loss: MeanSe, acc: MeanSe, };

export type DatasetSummary = { id: number, name: string, source: string, content_hash: string, imported_at: string, tasks: number, sequences: number, distribution_items: number, validity_tasks: number, };

export type Decay = "linear" | "cosine" | "constant";

export type DemoOutcome = { dataset: number, base_model: string, tuned_model: string, train_run: number, 
/**
 * The instruct model with its chat template, then the tuned model with
 * the spectrum template.
 */
eval_runs: Array<number>, report: string, };

export type DeviceSpec = "cpu" | { "cuda": number } | "metal";

export type DistItem = { id: string, options: Array<string>, 
/**
 * The target distribution, as given.
 */
target: Array<number>, 
/**
 * False where tokenising prompt + option as one string would split the
 * boundary differently from our segment-wise tokens (METHOD.md §4.2 asks
 * to say so rather than guess); the scores are the segment-wise ones, the
 * same tokens training sees.
 */
boundary_clean: boolean, 
/**
 * Option probabilities before normalising: p(o) = exp(sum of token log-probs).
 */
p: Array<number>, 
/**
 * Mass on the valid options: sum of `p`.
 */
coverage: number, 
/**
 * The model distribution p / coverage.
 */
q: Array<number>, 
/**
 * JS(target, q) after smoothing, natural log.
 */
js: number, 
/**
 * KL(target || q) after smoothing.
 */
kl: number, 
/**
 * KL(q || target) after smoothing.
 */
reverse_kl: number, tv: number, 
/**
 * H(target, q) after smoothing.
 */
cross_entropy: number, 
/**
 * Whether the most likely option of the model is the target's.
 */
mode_match: boolean, 
/**
 * Wasserstein-1 over option positions, for ordinal options only.
 */
wasserstein: number | null, };

export type DistReport = { 
/**
 * Means over tasks (equal weight).
 */
js: MeanSe, tv: MeanSe, coverage: MeanSe, tasks: Array<DistSummary>, 
/**
 * Every item, with its task.
 */
items: Array<TaskRow<DistItem>>, 
/**
 * The items' JS divergences, binned ([`crate::figures::js_histogram`]).
 */
js_histogram: JsHistogram, };

export type DistSummary = { task: string, items: number, js: MeanSe, kl: MeanSe, reverse_kl: MeanSe, tv: MeanSe, cross_entropy: MeanSe, mode_match: MeanSe, coverage: MeanSe, 
/**
 * Ordinal tasks only.
 */
wasserstein: MeanSe | null, 
/**
 * Items whose prompt/option token boundary is not clean.
 */
unclean_boundaries: number, };

export type Dropped = { paths: Array<string>, 
/**
 * The models, when every path is a GGUF file or a model folder (has
 * config.json): the Models view adds them; otherwise (empty) the
 * Library's import preview takes the paths.
 */
models: Array<ModelSource>, };

export type Dtype = "f32" | "bf16" | "f16";

export type ErrorCode = "bad_input" | "not_found" | "not_allowed" | "busy" | "cancelled" | "internal";

export type EvalDefaults = { profiles: Array<[Profile, Settings]>, };

export type EvalDone = { run: number, name: string, };

export type EvalMetrics = { step: number, loss: number, acc: number, outputs: number, };

export type EvalProgress = { run_id: number, family: Family, task: string, 
/**
 * Units (sequences, items, sample batches) of this task done, of `total`.
 */
done: number, total: number, 
/**
 * Tasks finished before this one, of `tasks_total`.
 */
tasks_done: number, tasks_total: number, };

export type EvalReport = { run: number, name: string, status: RunStatus, model: string, 
/**
 * The model folder the run evaluated.
 */
model_path: string, 
/**
 * The model's content hash and the datasets the run read, recorded when
 * it started (absent for runs from before provenance was kept).
 */
model_hash: string | null, datasets: Array<RunDataset>, template: PromptFormat, profile: Profile, settings: Settings, steer: SteerReport | null, dist: DistReport | null, valid: ValidReport | null, skipped: Array<Skipped>, 
/**
 * Planned (family, task) pairs not finished (a cancelled or failed run).
 */
unfinished: number, };

export type EvalRequest = { model: ModelSource, families: Array<Family>, 
/**
 * Task selectors: `held-out` (the default when empty), `train`, `all`,
 * task names, categories or dataset names.
 */
tasks: Array<string>, format: PromptFormat, profile: Profile, 
/**
 * The profile's settings with the user's overrides; `None`: the profile's own.
 */
settings: Settings | null, device: DeviceSpec, name: string | null, };

export type Family = "steer" | "dist" | "valid";

export type FileReport = { path: string, format: Format, shape: Shape, 
/**
 * Whether the shape was detected (true) or forced with `--as` (false).
 */
detected: boolean, rows: number, imported: number, rejected: number, };

export type Fix = { "kind": "list", what: Listing, } | { "kind": "import" } | { "kind": "add_model" } | { "kind": "other_store" } | { "kind": "upgrade" } | { "kind": "resume", run: number, run_kind: RunKind, } | { "kind": "setting", setting: string, advice: string, } | { "kind": "say", text: string, };

export type Format = "jsonl" | "json" | "csv" | "tsv" | "parquet";

export type FrontierLine = { setting: Setting, points: Array<FrontierPoint>, };

export type FrontierPoint = { temperature: number, yield: number, percent_valid: number, };

export type FrozenMatmul = "f32" | "bf16";

export type Heatmap = { family: Family, metric: string, lower_is_better: boolean, 
/**
 * Every task any run has, in the order the runs list them.
 */
tasks: Array<string>, 
/**
 * `values[task][run]`; `None` where a run lacks the task.
 */
values: Array<Array<number | null>>, 
/**
 * `improvement[task][run]`: how much better the run is than the
 * baseline (run 0) on the task, signed so that positive is better (what
 * the app and the PDF colour cells by); `None` where either lacks it.
 */
improvement: Array<Array<number | null>>, };

export type ImportOptions = { 
/**
 * Force a shape instead of detecting it from the first row.
 */
shape: Shape | null, 
/**
 * Import the valid rows and report the rest, instead of importing nothing.
 */
skip_invalid: boolean, 
/**
 * How many bad rows to describe; the rest are only counted.
 */
error_limit: number, 
/**
 * Task name for rows without a `task` field (default: the file's stem).
 */
task: string | null, 
/**
 * Split and category of tasks that no task definition row describes.
 */
split: Split, category: string, };

export type ImportOutcome = { "outcome": "imported", dataset: DatasetSummary, report: ImportReport, } | { "outcome": "already_imported", dataset: DatasetSummary, };

export type ImportPreview = { 
/**
 * Per file: format, detected shape, rows; every rejected row with its reason
 * (the preview reads with `skip_invalid` so that it can list them all).
 */
report: ImportReport, 
/**
 * The tasks the files hold, by name.
 */
tasks: Array<PreviewTask>, 
/**
 * Whether this content was imported before with the same options.
 */
already_imported: string | null, };

export type ImportProgress = { bytes_done: number, bytes_total: number, rows: number, };

export type ImportReport = { files: Array<FileReport>, counts: Counts, 
/**
 * Rows left out (only with `skip_invalid`).
 */
rejected: number, 
/**
 * The first `error_limit` of them.
 */
errors: Array<RowError>, };

export type ImportRequest = { 
/**
 * Files or folders of files; one import makes one dataset.
 */
paths: Array<string>, 
/**
 * Dataset name (default, or blank: the first path's file or folder name).
 */
name: string | null, options: ImportOptions, };

export type Interval = { diff: number, lo: number, hi: number, 
/**
 * Units (paired sequences or items; samples per run when unpaired).
 */
n: number, };

export type JobEvent = { "type": "note", text: string, } | { "type": "import", progress: ImportProgress, } | { "type": "train", progress: TrainProgress, } | { "type": "eval", progress: EvalProgress, } | { "type": "suite", progress: PaperEvent, } | { "type": "done", result: JobResult, } | { "type": "failed", error: AppError, } | { "type": "cancelled" };

export type JobInfo = { id: number, kind: JobKind, label: string, };

export type JobKind = "preview" | "import" | "model" | "train" | "eval" | "report" | "demo" | "suite";

export type JobResult = { "kind": "preview", "value": ImportPreview } | { "kind": "import", "value": ImportOutcome } | { "kind": "model", "value": ModelRecord } | { "kind": "train", "value": TrainOutcome } | { "kind": "eval", "value": EvalDone } | { "kind": "report", "value": string } | { "kind": "demo", "value": DemoOutcome } | { "kind": "suite", "value": PaperFetched };

export type JsHistogram = { 
/**
 * The bins' lower edges; each is `width` wide.
 */
edges: Array<number>, width: number, all: Array<number>, tasks: Array<TaskCounts>, };

export type Kernels = "fused" | "composed";

export type Length = { "steps": number } | { "epochs": number };

export type ListMatch = "exact" | "ignore_case" | "lowercase_output" | "every_field_within";

export type Listing = "datasets" | "tasks" | "models" | "runs";

export type Location = { "unit": "line", "number": number } | { "unit": "element", "number": { index: number, line: number, } } | { "unit": "row", "number": number };

export type LoraConfig = { rank: number, alpha: number, dropout: number, 
/**
 * Projection names: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`.
 */
targets: Array<string>, };

export type MeanSe = { mean: number, 
/**
 * `None` with fewer than two values.
 */
se: number | null, n: number, };

export type MemoryEstimate = { weights: number, 
/**
 * Gradients, AdamW moments and master weights of what trains.
 */
optimizer: number, activations: number, logits: number, 
/**
 * What the optimiser step holds beside the state (after the backward
 * pass has freed the activations; the peak is the larger of the two).
 */
step: number, runtime: number, total: number, 
/**
 * Trainable parameters.
 */
trainable: number, 
/**
 * Tokens of the largest forward pass.
 */
tokens_per_pass: number, };

export type MemoryFit = { estimate: MemoryEstimate, 
/**
 * `cpu`, `cuda:0`, ...
 */
device: DeviceSpec, 
/**
 * Free memory where it can be read (the CPU's `MemAvailable`; a GPU's is
 * not read yet).
 */
free: number | null, 
/**
 * False only when the free memory is known and the estimate exceeds it:
 * then the run is refused.
 */
fits: boolean, 
/**
 * One-setting changes that would fit, when this does not.
 */
suggestions: Array<Suggestion>, };

export type Message = { role: Role, content: string, };

export type Method = { "lora": LoraConfig } | "full";

export type ModelFamily = "llama" | "qwen2" | "qwen3" | "gemma3" | "unknown" | "remote";

export type ModelRecord = { id: number, name: string, family: ModelFamily, 
/**
 * Its weights are here (not a remote model): it can be trained.
 */
trainable: boolean, source: string, path: string, parameters: number, dtype: string, content_hash: string, added_at: string, };

export type ModelSource = { "kind": "default" } | { "kind": "registered", name: string, } | { "kind": "folder", path: string, } | { "kind": "gguf", path: string, } | { "kind": "hub", repo: string, } | { "kind": "remote", endpoints: Array<string>, model: string, };

export type PaperEvent = { "event": "downloading", file: string, done: number, total: number | null, } | { "event": "built", task: string, 
/**
 * Sequences (or prompts, for a distributional task) built.
 */
sequences: number, 
/**
 * What was left out of it, and why (prompts the importer would
 * refuse), if anything.
 */
left_out: string | null, } | { "event": "missing", task: string, reason: string, };

export type PaperFetchRequest = { 
/**
 * Task names; empty: every task that can be built.
 */
tasks: Array<string>, 
/**
 * Where files that must be requested from their authors are
 * (`DIR/wvs/...`, `DIR/numbergame/...`; `suite list` names each).
 */
data_dir: string | null, 
/**
 * Sequences per task at most (default 200).
 */
max_sequences: number | null, seed: number, };

export type PaperFetched = { 
/**
 * Tasks built, with their sequence counts.
 */
built: Array<[string, number]>, 
/**
 * Tasks not built, and why.
 */
missing: Array<[string, string]>, 
/**
 * The dataset they were imported as (none when nothing was built).
 */
dataset: DatasetSummary | null, };

export type PaperStatus = "imported" | "downloaded" | "needs_download" | "needs_terms" | "needs_file" | "no_recipe" | "unusable";

export type PaperTaskView = { name: string, 
/**
 * `held_out`, `distributional` or `diverse_valid`.
 */
suite: string, family: Family, 
/**
 * Where its data comes from, in words.
 */
source: string, status: PaperStatus, 
/**
 * What to do next, or what is there.
 */
detail: string, };

export type PickKind = "data_files" | "data_folder" | "model_folder" | "gguf_file";

export type Preset = { name: string, spec: RunSpec, };

export type PreviewTask = { name: string, 
/**
 * From the task's definition row; `None` when the file has none and the
 * import options decide.
 */
category: string | null, split: string | null, sequences: number, distribution_items: number, validity_tasks: number, };

export type Profile = "quick" | "standard" | "full";

export type PromptFormat = "spectrum" | "colon" | "chat";

export type PromptOption = { text: string, ids: Array<number>, };

export type PromptView = { task: string, family: Family, format: PromptFormat, 
/**
 * The ids, decoded.
 */
text: string, ids: Array<number>, 
/**
 * Each id's text.
 */
tokens: Array<string>, 
/**
 * Steerability: which tokens carry loss (are scored).
 */
loss: Array<boolean>, 
/**
 * Distributions: the options scored after the prompt.
 */
options: Array<PromptOption>, 
/**
 * Validity: where a sample stops, and how long it may run.
 */
stop_strings: Array<string>, max_new_tokens: number | null, 
/**
 * What was chosen: the sequence or item, k and the tokenizer it was measured with.
 */
note: string, };

export type RemoteOptions = { 
/**
 * Where its tokenizer is: a folder holding `tokenizer.json` (and
 * `tokenizer_config.json`), the GGUF file the server runs, or a hub
 * repository; default: asked of the server, then the hub when the
 * served name is ORG/NAME.
 */
tokenizer: ModelSource | null, 
/**
 * The environment variable holding the API key (default `OPENAI_API_KEY`).
 */
api_key_env: string | null, 
/**
 * Requests in flight per endpoint (default 4).
 */
concurrency: number | null, 
/**
 * Seconds before a request is retried (default 300).
 */
timeout_s: number | null, };

export type ReportOptions = { sections: Array<ReportSection>, };

export type ReportRequest = { 
/**
 * Evaluation and training runs.
 */
runs: Array<RunRef>, 
/**
 * The run differences are taken against (default: the first evaluation run).
 */
baseline: RunRef | null, 
/**
 * Sections to include (empty: all, in [`ReportSection::ALL`]'s order).
 */
sections: Array<ReportSection>, 
/**
 * Where the PDF goes; `None`: [`Studio::default_report_path`].
 */
out: string | null, };

export type ReportSection = "summary" | "steer" | "dist" | "valid" | "tasks" | "training" | "templates" | "appendix";

export type Role = "description" | "input" | "output";

export type RowError = { file: string, location: Location, field: string | null, message: string, fix: string, };

export type RunDataset = { 
/**
 * The dataset's id; `None` once the dataset has been removed.
 */
id: number | null, name: string, content_hash: string, };

export type RunDetail = { run: RunRecord, settings: RunSettings, steps: Array<StepMetrics>, evals: Array<EvalMetrics>, checkpoints: Array<string>, };

export type RunHolder = { pid: number, host: string, 
/**
 * When it took the lease (UTC, ISO 8601).
 */
since: string, 
/**
 * Seconds since its last heartbeat when the record was read.
 */
heartbeat_age_s: number, };

export type RunKind = "train" | "eval";

export type RunRecord = { id: number, kind: RunKind, name: string, status: RunStatus, model: string | null, 
/**
 * The content hash of the model when the run started (`None` for runs
 * recorded before provenance was kept, and for remote models).
 */
model_hash: string | null, 
/**
 * The datasets the run read (empty for runs recorded before provenance).
 */
datasets: Array<RunDataset>, seed: number, device: DeviceSpec, out_dir: string, step: number, total_steps: number, created_at: string, updated_at: string | null, finished_at: string | null, error: string | null, 
/**
 * The registered model the run produced.
 */
result_model: string | null, 
/**
 * The process running it now, if one is (its lease is alive).
 */
holder: RunHolder | null, 
/**
 * Whether it can be resumed: it has not finished and no process runs
 * it (cancelled, failed, or left `running` by a process that is gone).
 * This is what "interrupted" means everywhere.
 */
resumable: boolean, };

export type RunRef = number | string;

export type RunSettings = { "kind": "train", spec: RunSpec, 
/**
 * The dtype it trains in (`spec.dtype`, or the device's default).
 */
dtype: Dtype, 
/**
 * The base model's folder.
 */
model_path: string, 
/**
 * Store ids of the tasks it trains on and holds out.
 */
train_tasks: Array<number>, held_out_tasks: Array<number>, } | { "kind": "eval", model: string, model_path: string, template: PromptFormat, profile: Profile, settings: Settings, families: Array<Family>, tasks: Array<string>, device: DeviceSpec, };

export type RunSpec = { tasks: TaskSelection, format: PromptFormat, 
/**
 * Token budget per sequence (examples are cut at example boundaries).
 */
max_tokens: number, 
/**
 * Probability that a sequence keeps its description (0.6, the reference's).
 */
description_prob: number, method: Method, learning_rate: number, warmup_steps: number, decay: Decay, 
/**
 * Sequences per forward pass.
 */
micro_batch: number, 
/**
 * Micro-batches per optimiser step (effective batch = micro_batch x grad_accum).
 */
grad_accum: number, 
/**
 * Padded tokens per forward pass at most: a micro-batch of long sequences
 * runs in pieces (the same gradient, less memory).
 */
max_batch_tokens: number, length: Length, 
/**
 * Clip the global gradient norm to this (0: no clipping).
 */
max_grad_norm: number, weight_decay: number, 
/**
 * The weights' number format; `None`: f32 on the CPU, bf16 on GPUs
 * ([`RunSpec::resolved_dtype`]).
 */
dtype: Dtype | null, device: DeviceSpec, 
/**
 * `composed`: run the composed candle operations a GPU runs instead of
 * the CPU's custom f32 kernels (for testing that path on a CPU).
 */
kernels?: Kernels, 
/**
 * `bf16`: LoRA's products with the frozen weights (and the LM head) in
 * bf16 with f32 sums, on Intel's AMX units (2.5-3.4x faster products on
 * a Sapphire Rapids core) or with AVX512-BF16 (AMD Zen 4 and newer;
 * 1.9x faster products on a Zen 5); `f32` (the default) everywhere else.
 */
frozen_matmul?: FrozenMatmul, 
/**
 * Recompute each decoder layer's activations in the backward pass
 * instead of keeping them: activation memory falls to the layers' inputs
 * plus one layer's, for about a third more compute. Gradients are
 * unchanged (bit for bit on the CPU's kernels). On by default for GPU
 * presets.
 */
gradient_checkpointing?: boolean, seed: number, 
/**
 * Held-out loss every this many steps (and at the start and the end).
 */
eval_every: number, 
/**
 * Held-out sequences in the fixed evaluation sample.
 */
eval_sequences: number, checkpoint_every: number, 
/**
 * Checkpoints kept on disk (the newest ones).
 */
keep_checkpoints: number, };

export type RunStatus = "running" | "finished" | "failed" | "cancelled";

export type Sample = { setting: Setting, temperature: number, index: number, text: string, valid: boolean, };

export type Setting = "description" | "examples" | "both";

export type Settings = { 
/**
 * Tokens within which the k rule counts a steerability sequence's
 * examples, in the spectrum format with the k tokenizer (the
 * reference's 2048).
 */
budget: number, 
/**
 * Steerability sequences per task, at most.
 */
max_sequences: number, 
/**
 * Distributional items per task, at most.
 */
max_items: number, 
/**
 * Samples per task, prompt setting and temperature.
 */
samples: number, 
/**
 * The temperature sweep; 1.0 is the headline setting.
 */
temperatures: Array<number>, 
/**
 * Tokens a sample may run to before it is cut.
 */
max_new_tokens: number, 
/**
 * Padded tokens per scoring forward pass.
 */
batch_tokens: number, 
/**
 * Seed of every choice of sequences, items and samples.
 */
seed: number, 
/**
 * A tokenizer folder that measures steerability's k (the reference uses
 * google/gemma-3-1b-it's); `None`: that one from the Hugging Face cache
 * if it is there, else the default model's.
 */
k_tokenizer: string | null, };

export type Shape = "tasks" | "messages" | "rows" | "distribution" | "diverse_valid";

export type Skipped = { family: Family, task: string, reason: string, };

export type Split = "train" | "held_out";

export type SteerOutput = { sequence: string, 
/**
 * Position among the sequence's outputs (0-based).
 */
index: number, 
/**
 * The reference's example number (`None`: the output carries no loss).
 */
example: number | null, 
/**
 * Summed NLL of the output's loss tokens (end of turn included).
 */
loss: number | null, 
/**
 * Fraction of the loss tokens that are the arg-max.
 */
acc: number | null, 
/**
 * 1 if every loss token is the arg-max.
 */
all_acc: number | null, 
/**
 * 1 if the first loss token is the arg-max.
 */
first_acc: number | null, tokens: number, };

export type SteerReport = { 
/**
 * Means over tasks (equal weight) of the task means of examples 1..k (the reference's loss_geq_1).
 */
loss: MeanSe, acc: MeanSe, 
/**
 * The curve over tasks: at each example number every task reaches
 * (0..=the smallest k), the mean of the tasks' means ± s.e. over tasks
 * ([`crate::figures::steer_mean_curve`]).
 */
curve: Array<CurvePoint>, tasks: Array<SteerSummary>, 
/**
 * Every scored output, with its task.
 */
outputs: Array<TaskRow<SteerOutput>>, };

export type SteerSummary = { task: string, 
/**
 * The number of the last example scored: sequences hold examples 0..=k.
 */
k: number, sequences: number, 
/**
 * `eval/loss_geq_1`: mean loss of examples 1..=k, standard error over
 * those examples (pandas `sem`).
 */
loss: MeanSe, 
/**
 * Ours: the standard error of `loss` over per-sequence means (the
 * examples of one sequence are not independent).
 */
loss_se_sequences: number | null, 
/**
 * `eval/acc_geq_1`: per-example fraction of arg-max tokens.
 */
acc: MeanSe, 
/**
 * `eval/all_acc_geq_1`: every token of the example is the arg-max.
 */
all_acc: MeanSe | null, 
/**
 * `eval/first_acc_geq_1`: the example's first token is the arg-max.
 */
first_acc: MeanSe | null, 
/**
 * `eval/loss`: mean loss of every example, example 0 included.
 */
loss_all: MeanSe | null, 
/**
 * `calibration/ece`: every example's loss tokens.
 */
ece: number | null, 
/**
 * `calibration/geq1.ece`: examples 1..=k.
 */
ece_geq_1: number | null, 
/**
 * The tokenizer k was measured with.
 */
k_tokenizer: string | null, curve: Array<CurvePoint>, };

export type StepMetrics = { step: number, loss: number, lr: number, grad_norm: number, 
/**
 * Loss tokens in the step.
 */
tokens: number, 
/**
 * All tokens processed per second (context included).
 */
tokens_per_s: number, elapsed_s: number, };

export type Suggestion = { 
/**
 * The setting's name (`gradient_checkpointing`, `max_batch_tokens`,
 * `micro_batch`, `method`).
 */
setting: string, 
/**
 * Its new value, as a front end would write it.
 */
value: string, total: number, };

export type Tally = { win: number, tie: number, loss: number, };

export type TaskCounts = { task: string, counts: Array<number>, };

export type TaskDetail = { task: TaskSummary, descriptions: Array<string>, 
/**
 * Up to `limit` sequences: (id, messages).
 */
sequences: Array<TaskSequence>, distribution_items: Array<TaskItem>, validity: Array<TaskValidity>, };

export type TaskItem = { 
/**
 * The id evaluation rows carry (`id` field, else `task/position`).
 */
id: string, description: string, input: string, options: Array<string>, probs: Array<number>, ordinal: boolean, };

export type TaskKind = "sequence" | "distribution" | "diverse_valid";

export type TaskRow<T> = { task: string, } & T;

export type TaskSelection = { 
/**
 * Only tasks of this dataset (id or name); all datasets when `None`.
 */
dataset: string | null, names: Array<string>, categories: Array<string>, };

export type TaskSequence = { id: string, messages: Array<Message>, };

export type TaskSummary = { id: number, dataset_id: number, dataset: string, name: string, category: string, split: Split, kind: TaskKind, descriptions: number, sequences: number, distribution_items: number, validity_tasks: number, };

export type TaskValidity = { description: string, examples: Array<string>, rule: ValidityRule, };

export type Tour = { datasets: number, models: number, 
/**
 * Finished training runs.
 */
trained: number, 
/**
 * Finished evaluation runs.
 */
evaluated: number, };

export type TrainDefaults = { presets: Array<Preset>, };

export type TrainOutcome = { run: RunRecord, cancelled: boolean, 
/**
 * The registered tuned model (absent when cancelled).
 */
model: ModelRecord | null, evals: Array<EvalMetrics>, };

export type TrainProgress = { "event": "started", run: number, name: string, start_step: number, total_steps: number, trainable_parameters: number, train_sequences: number, } | { "event": "step", total_steps: number, 
/**
 * Seconds left at this session's pace.
 */
eta_s: number, metrics: StepMetrics, } | { "event": "eval" } & EvalMetrics | { "event": "checkpoint", step: number, path: string, } | { "event": "registering", name: string, };

export type TrainRequest = { spec: RunSpec, model: ModelSource, 
/**
 * The run's name (default: MODEL-spectrum); also the tuned model's.
 */
name: string | null, 
/**
 * For a base model without the spectrum format's turn tokens: the
 * instruct sibling whose rows for them are copied (default: the mean row).
 */
init_tokens_from: ModelSource | null, };

export type ValidOverall = { setting: Setting, temperature: number, tasks: number, percent_valid: number, unique_pct: number, yield: number, 
/**
 * Over the closed-set tasks only.
 */
coverage_pct: number | null, };

export type ValidReport = { overall: Array<ValidOverall>, 
/**
 * `overall` as lines through the temperature sweep, per setting
 * ([`crate::figures::validity_frontier`]).
 */
frontier: Array<FrontierLine>, tasks: Array<ValidSummary>, 
/**
 * Every sample with its verdict and task.
 */
samples: Array<TaskRow<Sample>>, };

export type ValidSummary = { task: string, 
/**
 * Size of the valid set for closed-set tasks.
 */
valid_set_size: number | null, cells: Array<Cell>, };

export type ValidityRule = { "type": "closed_set", values: Array<string>, case_sensitive?: boolean, } | { "type": "integer_range", min: number, max: number, } | { "type": "prime", min?: number | null, max?: number | null, } | { "type": "regex", pattern: string, } | { "type": "email" } | { "type": "phone" } | { "type": "all_of", rules: Array<ValidityRule>, } | { "type": "python_int", min?: number | null, max?: number | null, prime?: boolean, no_leading_zero?: boolean, } | { "type": "word_list", 
/**
 * The list's name: its key in [`WordLists`].
 */
list: string, 
/**
 * Where the list comes from and which part of it is meant, for a person.
 */
source: string, 
/**
 * How an output is compared with the entries.
 */
matching: ListMatch, 
/**
 * The list's entries, once fetched (`spectrum suite fetch` writes
 * them in): a rule with them needs no [`WordLists`].
 */
entries?: Array<Array<string>>, };

export type Verdict = "win" | "tie" | "loss";
