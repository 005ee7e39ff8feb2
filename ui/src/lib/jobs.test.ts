import { describe, expect, it } from "vitest";
import { describe as describeProgress } from "./jobs";

describe("job progress lines", () => {
  it("describes training steps with ETA and fraction", () => {
    const d = describeProgress({
      type: "train",
      progress: { event: "step", total_steps: 40, eta_s: 65, metrics: { step: 10, loss: 2.5, lr: 1e-4, grad_norm: 1, tokens: 100, tokens_per_s: 900, elapsed_s: 20 } },
    });
    expect(d.status).toBe("step 10 of 40 · loss 2.500 · 1 min 05 s left");
    expect(d.fraction).toBe(0.25);
  });

  it("counts finished tasks and the current one's share in evaluation", () => {
    const d = describeProgress({
      type: "eval",
      progress: { run_id: 1, family: "dist", task: "urn", done: 5, total: 10, tasks_done: 1, tasks_total: 4 },
    });
    expect(d.fraction).toBeCloseTo(1.5 / 4);
    expect(d.status).toContain("task 2 of 4");
  });

  it("reports import bytes, and no fraction for an empty file", () => {
    expect(describeProgress({ type: "import", progress: { bytes_done: 512, bytes_total: 1024, rows: 7 } }).fraction).toBe(0.5);
    expect(describeProgress({ type: "import", progress: { bytes_done: 0, bytes_total: 0, rows: 0 } }).fraction).toBeNull();
  });

  it("reports a suite download's bytes, and tasks built or missing", () => {
    const down = describeProgress({ type: "suite", progress: { event: "downloading", file: "cais/mmlu 0000.parquet", done: 256, total: 1024 } });
    expect(down.fraction).toBe(0.25);
    expect(down.status).toContain("cais/mmlu");
    const missing = describeProgress({ type: "suite", progress: { event: "missing", task: "wvs_individual", reason: "needs a file" } });
    expect(missing.status).toBe("not built: wvs_individual: needs a file");
    const built = describeProgress({ type: "suite", progress: { event: "built", task: "global_oqa", sequences: 4, left_out: "1 prompt(s)" } });
    expect(built.status).toBe("built global_oqa: 4 (left out: 1 prompt(s))");
  });
});
