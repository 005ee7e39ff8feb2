// Typed calls into the Rust shell. Every type comes from bindings.ts, which is
// generated from the Rust types (crates/spectrum-app/src/bindings.rs).
import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  AddModelRequest, AppInfo, Comparison, DatasetSummary, DemoOutcome, EvalDefaults, EvalReport, EvalRequest, Family,
  ImportRequest, ImportOutcome, ImportPreview, JobEvent, JobInfo, JobResult, ModelRecord, ModelSource, PickKind,
  ReportOptions, RemoteOptions, ReportRequest, RunDetail, RunRecord, RunRef, Split, TaskDetail, TaskItem, TaskSummary,
  TrainDefaults, PromptView, Setting, TrainOutcome, TrainRequest, AppError, MemoryFit, PaperFetchRequest, PaperTaskView,
} from "./bindings";

/** What every command rejects with: a code, the message, the fix as data (`fixText`). */
export type UiError = AppError;

/** Whatever a command rejects with, as a UiError. */
export function asUiError(e: unknown): UiError {
  if (e && typeof e === "object" && "code" in e && "message" in e) return e as UiError;
  return { code: "internal", message: String(e), fix: null };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asUiError(e);
  }
}

/** A background job: its id, its events as they come, its result at the end. */
export interface Job<T> {
  id: number;
  result: Promise<T>;
  cancel: () => Promise<boolean>;
}

export type Progress = Exclude<JobEvent, { type: "done" } | { type: "failed" } | { type: "cancelled" }>;

export class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}

/** A finished job's result of kind `K`, and its value. */
export type ResultOf<K extends JobResult["kind"]> = Extract<JobResult, { kind: K }>;
type ValueOf = { [R in JobResult as R["kind"]]: R["value"] };

/** Starts a job whose result is one of `kinds`; any other result rejects. */
async function job<K extends JobResult["kind"]>(
  cmd: string,
  args: Record<string, unknown>,
  onProgress: (p: Progress) => void,
  kinds: readonly K[],
): Promise<Job<ResultOf<K>>> {
  let settle!: { resolve: (v: ResultOf<K>) => void; reject: (e: unknown) => void };
  const result = new Promise<ResultOf<K>>((resolve, reject) => (settle = { resolve, reject }));
  const channel = new Channel<JobEvent>();
  channel.onmessage = (event) => {
    switch (event.type) {
      case "done":
        if (isKind(event.result, kinds)) settle.resolve(event.result);
        else settle.reject(asUiError(`${cmd} finished with a ${event.result.kind} result, not ${kinds.join(" or ")}`));
        break;
      case "failed":
        settle.reject(event.error);
        break;
      case "cancelled":
        settle.reject(new Cancelled());
        break;
      default:
        onProgress(event);
    }
  };
  const id = await call<number>(cmd, { ...args, channel });
  return { id, result, cancel: () => call<boolean>("cancel_job", { id }) };
}

function isKind<K extends JobResult["kind"]>(r: JobResult, kinds: readonly K[]): r is ResultOf<K> {
  return (kinds as readonly string[]).includes(r.kind);
}

/** A job with one kind of result, resolved to its value. */
async function valueJob<K extends JobResult["kind"]>(
  cmd: string,
  args: Record<string, unknown>,
  onProgress: (p: Progress) => void,
  kind: K,
): Promise<Job<ValueOf[K]>> {
  const started = await job(cmd, args, onProgress, [kind]);
  // `job` checked the kind; TypeScript cannot narrow a generic union's field.
  return { ...started, result: started.result.then((r) => r.value as ValueOf[K]) };
}

/** A registered model, by name. */
export const registered = (name: string): ModelSource => ({ kind: "registered", name });

/** A model added from disk or the default: no remote settings. */
export const noRemote: RemoteOptions = { tokenizer: null, api_key_env: null, concurrency: null, timeout_s: null };

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
  jobs: () => call<JobInfo[]>("jobs"),
  pick: (kind: PickKind) => call<string[]>("pick", { kind }),
  pickSave: (fileName: string) => call<string | null>("pick_save", { fileName }),
  tourSuite: () => call<string[]>("tour_suite"),
  runDemo: (on: (p: Progress) => void) => valueJob("run_demo", {}, on, "demo"),
  previewImport: (request: ImportRequest, on: (p: Progress) => void) =>
    valueJob("preview_import", { request }, on, "preview"),
  import: (request: ImportRequest, on: (p: Progress) => void) => valueJob("import", { request }, on, "import"),
  paperSuite: (dataDir: string | null) => call<PaperTaskView[]>("paper_suite", { dataDir }),
  fetchPaperSuite: (request: PaperFetchRequest, on: (p: Progress) => void) =>
    valueJob("fetch_paper_suite", { request }, on, "suite"),
  datasets: () => call<DatasetSummary[]>("datasets"),
  removeDataset: (id: number) => call<DatasetSummary>("remove_dataset", { id }),
  tasks: (split: Split | null = null) => call<TaskSummary[]>("tasks", { split }),
  taskDetail: (id: number) => call<TaskDetail>("task_detail", { id }),
  distributionItem: (task: string, id: string) => call<TaskItem | null>("distribution_item", { task, id }),
  runPrompt: (run: RunRef, family: Family, task: string, pick: string | null, setting: Setting | null = null) =>
    call<PromptView>("run_prompt", { run, family, task, pick, setting }),
  models: () => call<ModelRecord[]>("models"),
  removeModel: (name: string) => call<ModelRecord>("remove_model", { name }),
  addModel: (request: AddModelRequest, on: (p: Progress) => void) => valueJob("add_model", { request }, on, "model"),
  trainDefaults: () => call<TrainDefaults>("train_defaults"),
  trainMemory: (request: TrainRequest) => call<MemoryFit>("train_memory", { request }),
  train: (request: TrainRequest, on: (p: Progress) => void) =>
    valueJob("train", { request }, on, "train"),
  removeRun: (run: RunRef) => call<RunRecord>("remove_run", { run }),
  resumeRun: (run: RunRef, on: (p: Progress) => void) => job("resume_run", { run }, on, ["train", "eval"]),
  evalDefaults: () => call<EvalDefaults>("eval_defaults"),
  evaluate: (request: EvalRequest, on: (p: Progress) => void) =>
    valueJob("evaluate", { request }, on, "eval"),
  runs: () => call<RunRecord[]>("runs"),
  runDetail: (run: RunRef) => call<RunDetail>("run_detail", { run }),
  evalReport: (run: RunRef) => call<EvalReport>("eval_report", { run }),
  compare: (runs: RunRef[]) => call<Comparison>("compare", { runs }),
  reportOptions: () => call<ReportOptions>("report_options"),
  exportReport: (request: ReportRequest, on: (p: Progress) => void) =>
    valueJob("export_report", { request }, on, "report"),
  openPath: (path: string) => call<void>("open_path", { path }),
};
