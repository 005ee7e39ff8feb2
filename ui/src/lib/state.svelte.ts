// App-wide state: the current view, the theme, dropped files, errors, and the
// jobs this window started (so that every view can show their progress).
import type { AppError as UiError, JobKind, ModelSource } from "./bindings";

export type View = "library" | "models" | "train" | "evaluate" | "results" | "report";

export const VIEWS: { id: View; label: string; key: string }[] = [
  { id: "library", label: "Library", key: "1" },
  { id: "models", label: "Models", key: "2" },
  { id: "train", label: "Train", key: "3" },
  { id: "evaluate", label: "Evaluate", key: "4" },
  { id: "results", label: "Results", key: "5" },
  { id: "report", label: "Report", key: "6" },
];

export interface ActiveJob {
  id: number;
  kind: JobKind;
  label: string;
  status: string;
  fraction: number | null;
  cancel: () => Promise<boolean>;
}

const prefersDark =
  typeof window !== "undefined" && window.matchMedia?.("(prefers-color-scheme: dark)").matches;
const saved = typeof localStorage !== "undefined" ? localStorage.getItem("theme") : null;

export const ui = $state({
  view: "library" as View,
  dark: saved ? saved === "dark" : Boolean(prefersDark),
  /** Files dropped on the window (or built by the tour), waiting for the import preview. */
  dropped: [] as string[],
  /** Model files or folders dropped, waiting in the Models view. */
  droppedModels: [] as ModelSource[],
  dragging: false,
  errors: [] as UiError[],
  jobs: [] as ActiveJob[],
  /** Runs picked in Results, carried to Report. */
  selectedRuns: [] as number[],
  /** Bumped after anything changes the store, so views reload. */
  revision: 0,
});

export function showError(e: UiError) {
  if (e.code === "cancelled") return;
  ui.errors = [...ui.errors, e];
}

export function setTheme(dark: boolean) {
  ui.dark = dark;
  localStorage.setItem("theme", dark ? "dark" : "light");
}

export function changed() {
  ui.revision++;
}

export function trackJob(job: ActiveJob) {
  ui.jobs = [...ui.jobs, job];
}

export function updateJob(id: number, status: string, fraction: number | null) {
  const j = ui.jobs.find((x) => x.id === id);
  if (j) {
    j.status = status;
    j.fraction = fraction;
  }
}

export function endJob(id: number) {
  ui.jobs = ui.jobs.filter((j) => j.id !== id);
}
