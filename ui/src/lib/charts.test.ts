import { describe, expect, it } from "vitest";
import type { Comparison, CompareRow, DistItem, EvalReport, RunDetail, SteerSummary, TaskRow } from "./bindings";
import { heatmapOf, heatmapOption, itemOption, jsHistogramOption, steerCurve, steerOption, trainingOption, validityOption } from "./charts";

const ms = (mean: number, se: number | null = null) => ({ mean, se, n: 3 });

function task(name: string, losses: number[]): SteerSummary {
  return {
    task: name, k: losses.length, sequences: 3, loss: ms(0), loss_se_sequences: null, acc: ms(0),
    all_acc: null, first_acc: null, loss_all: null, ece: null, ece_geq_1: null, k_tokenizer: null,
    curve: losses.map((l, index) => ({ index, loss: ms(l, 0.1), acc: ms(1 - l / 10) })),
  };
}

function report(name: string, run: number, steer: SteerSummary[], extra: Partial<EvalReport> = {}): EvalReport {
  return {
    run, name, status: "finished", model: "m", model_path: "/m", template: "spectrum", profile: "quick",
    settings: { budget: 1, max_sequences: 1, max_items: 1, samples: 1, temperatures: [1], max_new_tokens: 1, batch_tokens: 1, seed: 0 },
    steer: { loss: ms(0), acc: ms(0), curve: [], tasks: steer, outputs: [] }, dist: null, valid: null, skipped: [],
    ...extra,
  } as EvalReport;
}

describe("steerability curves", () => {
  it("takes one task's curve as stored", () => {
    const r = report("a", 1, [task("t1", [3, 2, 1]), task("t2", [5, 4])]);
    expect(steerCurve(r, "t1", "loss")).toEqual([
      { index: 0, mean: 3, se: 0.1 }, { index: 1, mean: 2, se: 0.1 }, { index: 2, mean: 1, se: 0.1 },
    ]);
  });

  it("takes the mean over tasks from the engine, never recomputing it", () => {
    const r = report("a", 1, [task("t1", [3, 2, 1]), task("t2", [5, 4])]);
    // The engine's mean curve stops where the shortest task stops (crates/spectrum-app/src/figures.rs).
    r.steer!.curve = [
      { index: 0, loss: ms(4, 1), acc: ms(0.6) },
      { index: 1, loss: ms(3, 1), acc: ms(0.7) },
    ];
    expect(steerCurve(r, null, "loss")).toEqual([
      { index: 0, mean: 4, se: 1 }, { index: 1, mean: 3, se: 1 },
    ]);
    expect(steerCurve(r, null, "acc").map((p) => p.mean)).toEqual([0.6, 0.7]);
  });

  it("draws a band (lower + width) and a line per run", () => {
    const a = report("a", 1, [task("t", [3, 2])]);
    const b = report("b", 2, [task("t", [3, 1, 0.5])]);
    const o = steerOption([a, b], "t", "loss") as { series: { name?: string; data: (number | null)[] }[]; xAxis: { data: number[] } };
    expect(o.xAxis.data).toEqual([0, 1, 2]);
    expect(o.series).toHaveLength(6);
    expect(o.series[0].data[0]).toBeCloseTo(2.9);
    expect(o.series[1].data[0]).toBeCloseTo(0.2);
    expect(o.series[2]).toMatchObject({ name: "a", data: [3, 2, null] });
    expect(o.series[5]).toMatchObject({ name: "b", data: [3, 1, 0.5] });
  });
});

describe("distributions and validity", () => {
  const item = (taskName: string, id: string, js: number): TaskRow<DistItem> => ({
    task: taskName, id, options: ["x", "y"], target: [0.5, 0.5], q: [0.9, 0.1], p: [0.9, 0.1], js,
    coverage: 1, kl: 0, reverse_kl: 0, tv: 0, cross_entropy: 0, mode_match: false, wasserstein: null, boundary_clean: true,
  });

  it("draws the engine's JS bins, for all items or one task", () => {
    const js_histogram = { edges: [0, 0.35], width: 0.35, all: [2, 1], tasks: [{ task: "u", counts: [1, 1] }, { task: "v", counts: [1, 0] }] };
    const items = [item("u", "1", 0.05), item("u", "2", 0.6), item("v", "3", 0.1)];
    const a = report("a", 1, [], { dist: { js: ms(0), tv: ms(0), coverage: ms(1), tasks: [], items, js_histogram } });
    const o = jsHistogramOption([a], "u") as { series: { data: number[] }[]; xAxis: { data: string[] } };
    expect(o.series[0].data).toEqual([1, 1]);
    expect(o.xAxis.data).toEqual(["0.00–0.35", "0.35–0.70"]);
    expect((jsHistogramOption([a], null) as { series: { data: number[] }[] }).series[0].data).toEqual([2, 1]);
    // A task the run lacks counts nothing.
    expect((jsHistogramOption([a], "w") as { series: { data: number[] }[] }).series[0].data).toEqual([0, 0]);
  });

  it("puts the target beside each run's distribution", () => {
    const o = itemOption([item("u", "1", 0.1) as never, null], ["a", "b"]) as { series: { name: string; data: number[] }[] };
    expect(o.series.map((s) => s.name)).toEqual(["target", "a", "b"]);
    expect(o.series[1].data).toEqual([0.9, 0.1]);
    expect(o.series[2].data).toEqual([]);
  });

  it("draws the engine's frontier: one temperature line per setting", () => {
    const frontier = [
      { setting: "examples", points: [{ temperature: 0.5, yield: 2, percent_valid: 95 }, { temperature: 1.5, yield: 5, percent_valid: 60 }] },
      { setting: "both", points: [{ temperature: 1, yield: 4, percent_valid: 80 }] },
    ] as const;
    const a = report("a", 1, [], { valid: { overall: [], frontier: [...frontier].map((l) => ({ ...l, points: [...l.points] })), tasks: [], samples: [] } });
    const o = validityOption([a]) as { series: { name: string; data: number[][] }[] };
    expect(o.series.map((s) => s.name)).toEqual(["a · examples", "a · both"]);
    expect(o.series[0].data).toEqual([[2, 95, 0.5], [5, 60, 1.5]]);
  });
});

describe("breakdown and training", () => {
  it("draws the engine's improvement cells (positive is better), not its own", () => {
    const c = {
      baseline: { run: 1, name: "base" }, unpaired_units: 0,
      candidates: [{ run: { run: 2, name: "tuned" }, rows: [], tally: {} }],
      heatmaps: [
        { family: "steer", metric: "loss", lower_is_better: true, tasks: ["t1", "t2", "t3"], values: [[3, 2], [1, 1.5], [2, null]], improvement: [[0, 1], [0, -0.5], [0, null]] },
        { family: "valid", metric: "yield", lower_is_better: false, tasks: ["v"], values: [[4, 9]], improvement: [[0, 5]] },
      ],
    } as unknown as Comparison;
    const o = heatmapOption(c, "steer") as { series: { data: number[][] }[]; yAxis: { data: string[] } };
    expect(o.yAxis.data).toEqual(["t1", "t2", "t3"]);
    // A task the candidate lacks has no cell.
    expect(o.series[0].data).toEqual([[0, 0, 1], [0, 1, -0.5]]);
    expect((heatmapOption(c, "valid") as { series: { data: number[][] }[] }).series[0].data).toEqual([[0, 0, 5]]);
    expect(heatmapOf(c, "dist")).toBeNull();
  });

  it("plots loss and learning rate by step, held-out loss at its evaluations", () => {
    const d = {
      run: { name: "r" }, checkpoints: [],
      steps: [{ step: 1, loss: 3, lr: 1e-4, grad_norm: 1, tokens: 10, tokens_per_s: 5, elapsed_s: 1 }],
      evals: [{ step: 0, loss: 3.5, acc: 0.1, outputs: 4 }],
    } as unknown as RunDetail;
    const o = trainingOption(d) as { series: { data: number[][] }[] };
    expect(o.series[0].data).toEqual([[1, 3]]);
    expect(o.series[1].data).toEqual([[0, 3.5]]);
    expect(o.series[2].data).toEqual([[1, 1e-4]]);
  });
});
