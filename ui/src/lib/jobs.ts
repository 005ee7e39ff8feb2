// Starting a job from a view: tracked in the header, errors shown, the store
// reloaded when it ends.
import { asUiError, Cancelled, type Job, type Progress } from "./api";
import type { JobKind } from "./bindings";
import { bytes, duration } from "./format";
import { changed, endJob, showError, trackJob, updateJob } from "./state.svelte";

/** A progress event as one line of text and a fraction done (null: unknown). */
export function describe(p: Progress): { status: string; fraction: number | null } {
  switch (p.type) {
    case "note":
      return { status: p.text, fraction: null };
    case "import": {
      const f = p.progress.bytes_total > 0 ? p.progress.bytes_done / p.progress.bytes_total : null;
      return {
        status: `${p.progress.rows} rows, ${bytes(p.progress.bytes_done)} of ${bytes(p.progress.bytes_total)}`,
        fraction: f,
      };
    }
    case "train": {
      const t = p.progress;
      switch (t.event) {
        case "started":
          return { status: `step ${t.start_step} of ${t.total_steps}`, fraction: t.start_step / Math.max(1, t.total_steps) };
        case "step":
          return {
            status: `step ${t.metrics.step} of ${t.total_steps} · loss ${t.metrics.loss.toFixed(3)} · ${duration(t.eta_s)} left`,
            fraction: t.metrics.step / Math.max(1, t.total_steps),
          };
        case "eval":
          return { status: `held-out loss ${t.loss.toFixed(3)} at step ${t.step}`, fraction: null };
        case "checkpoint":
          return { status: `checkpoint at step ${t.step}`, fraction: null };
        case "registering":
          return { status: `registering ${t.name}`, fraction: 1 };
      }
      break;
    }
    case "suite": {
      const s = p.progress;
      if (s.event === "downloading") {
        return {
          status: `downloading ${s.file}: ${bytes(s.done)}${s.total != null ? ` of ${bytes(s.total)}` : ""}`,
          fraction: s.total ? s.done / s.total : null,
        };
      }
      if (s.event === "built") {
        const note = s.left_out ? ` (left out: ${s.left_out})` : "";
        return { status: `built ${s.task}: ${s.sequences}${note}`, fraction: null };
      }
      return { status: `not built: ${s.task}: ${s.reason}`, fraction: null };
    }
    case "eval": {
      const e = p.progress;
      const within = e.total > 0 ? e.done / e.total : 0;
      return {
        status: `${e.family} · ${e.task} (${e.done}/${e.total}) · task ${e.tasks_done + 1} of ${e.tasks_total}`,
        fraction: (e.tasks_done + within) / Math.max(1, e.tasks_total),
      };
    }
  }
  return { status: "", fraction: null };
}

/**
 * Starts a job and follows it. Resolves with the result, or null when it
 * failed (the error is shown) or was cancelled.
 */
export async function follow<T>(
  kind: JobKind,
  label: string,
  start: (on: (p: Progress) => void) => Promise<Job<T>>,
  onProgress?: (p: Progress) => void,
): Promise<T | null> {
  let id = -1;
  const pending: Progress[] = [];
  const on = (p: Progress) => {
    if (id < 0) pending.push(p);
    else {
      const d = describe(p);
      if (d.status) updateJob(id, d.status, d.fraction);
    }
    onProgress?.(p);
  };
  let job: Job<T>;
  try {
    job = await start(on);
  } catch (e) {
    showError(asUiError(e));
    return null;
  }
  id = job.id;
  trackJob({ id, kind, label, status: "starting", fraction: null, cancel: job.cancel });
  for (const p of pending) on(p);
  try {
    return await job.result;
  } catch (e) {
    if (!(e instanceof Cancelled)) showError(asUiError(e));
    return null;
  } finally {
    endJob(id);
    changed();
  }
}
