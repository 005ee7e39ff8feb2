// Typed calls into the Rust shell. Every type comes from bindings.ts, which is
// generated from the Rust types (src-tauri/src/bindings.rs).
import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  AppInfo, Comparison, DatasetSummary, DemoOutcome, EvalDefaults, EvalReport, EvalRequestDto, Family, ImportOptionsDto,
  ImportOutcome, ImportPreview, JobEvent, JobInfo, ModelRecord, PickKind, ReportOptions,
  RemoteModelRequest, ReportRequestDto, RunDetail, RunRecord, Split, TaskDetail, TaskItem, TaskSummary, TrainDefaults,
  PromptView, Setting, TrainOutcome, TrainRequestDto, AppError,
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

async function job<T>(
  cmd: string,
  args: Record<string, unknown>,
  onProgress: (p: Progress) => void,
): Promise<Job<T>> {
  let settle!: { resolve: (v: T) => void; reject: (e: unknown) => void };
  const result = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  const channel = new Channel<JobEvent>();
  channel.onmessage = (event) => {
    switch (event.type) {
      case "done":
        settle.resolve(event.result as T);
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

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
  jobs: () => call<JobInfo[]>("jobs"),
  pick: (kind: PickKind) => call<string[]>("pick", { kind }),
  pickSave: (fileName: string) => call<string | null>("pick_save", { fileName }),
  tourSuite: () => call<string[]>("tour_suite"),
  runDemo: (on: (p: Progress) => void) => job<DemoOutcome>("run_demo", {}, on),
  previewImport: (paths: string[], options: ImportOptionsDto, on: (p: Progress) => void) =>
    job<ImportPreview>("preview_import", { paths, options }, on),
  import: (paths: string[], options: ImportOptionsDto, on: (p: Progress) => void) =>
    job<ImportOutcome>("import", { paths, options }, on),
  datasets: () => call<DatasetSummary[]>("datasets"),
  removeDataset: (id: number) => call<DatasetSummary>("remove_dataset", { id }),
  tasks: (split: Split | null = null) => call<TaskSummary[]>("tasks", { split }),
  taskDetail: (id: number) => call<TaskDetail>("task_detail", { id }),
  distributionItem: (task: string, id: string) => call<TaskItem | null>("distribution_item", { task, id }),
  runPrompt: (run: number, family: Family, task: string, pick: string | null, setting: Setting | null = null) =>
    call<PromptView>("run_prompt", { run, family, task, pick, setting }),
  models: () => call<ModelRecord[]>("models"),
  removeModel: (name: string) => call<ModelRecord>("remove_model", { name }),
  addModel: (path: string | null, name: string | null, on: (p: Progress) => void) =>
    job<ModelRecord>("add_model", { path, name }, on),
  addRemoteModel: (request: RemoteModelRequest, on: (p: Progress) => void) =>
    job<ModelRecord>("add_remote_model", { request }, on),
  trainDefaults: () => call<TrainDefaults>("train_defaults"),
  train: (request: TrainRequestDto, on: (p: Progress) => void) =>
    job<TrainOutcome>("train", { request }, on),
  resumeRun: (run: number, on: (p: Progress) => void) => job<unknown>("resume_run", { run }, on),
  evalDefaults: () => call<EvalDefaults>("eval_defaults"),
  evaluate: (request: EvalRequestDto, on: (p: Progress) => void) =>
    job<{ run: number; name: string }>("evaluate", { request }, on),
  runs: () => call<RunRecord[]>("runs"),
  runDetail: (run: number) => call<RunDetail>("run_detail", { run }),
  evalReport: (run: number) => call<EvalReport>("eval_report", { run }),
  compare: (runs: number[]) => call<Comparison>("compare", { runs }),
  reportOptions: () => call<ReportOptions>("report_options"),
  exportReport: (request: ReportRequestDto, on: (p: Progress) => void) =>
    job<string>("export_report", { request }, on),
  openPath: (path: string) => call<void>("open_path", { path }),
};
