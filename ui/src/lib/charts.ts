// ECharts options for the Results views, built from the engine's reports.
// Pure functions of their inputs (tested in charts.test.ts); Chart.svelte draws them.
import type { EChartsCoreOption } from "echarts/core";
import type { Comparison, DistItem, EvalReport, Family, Heatmap, RunDetail } from "./bindings";
import { colour } from "./palette";

export type Metric = "loss" | "acc";

/** One point of a curve: mean and standard error (null with one sequence). */
export interface Point {
  index: number;
  mean: number;
  se: number | null;
}

/**
 * A run's steerability curve: by output index, for one task or, without a
 * task, the mean over tasks (equal weight) of the task means at that index,
 * with the standard error over tasks.
 */
/**
 * One run's steerability curve: a task's, or (task null) the mean over tasks that
 * the engine computes once for the app and the PDF alike, over the example numbers
 * every task reaches (0..=the smallest k), ± s.e. over tasks.
 */
export function steerCurve(report: EvalReport, task: string | null, metric: Metric): Point[] {
  const curve = task == null ? report.steer?.curve : report.steer?.tasks.find((t) => t.task === task)?.curve;
  return (curve ?? []).map((p) => ({ index: p.index, mean: p[metric].mean, se: p[metric].se }));
}

const base = (title: string) => ({
  animation: false,
  title: { text: title, left: "center", textStyle: { fontSize: 13, fontWeight: 600 } },
  tooltip: { trigger: "axis" },
  legend: { bottom: 0, type: "scroll" },
  grid: { left: 56, right: 24, top: 40, bottom: 56, containLabel: false },
});

/** Loss or accuracy against the number of examples before the output, runs overlaid, ±1 s.e. bands. */
export function steerOption(reports: EvalReport[], task: string | null, metric: Metric): EChartsCoreOption {
  const curves = reports.map((r) => steerCurve(r, task, metric));
  const maxIndex = Math.max(0, ...curves.flatMap((c) => c.map((p) => p.index)));
  const xs = Array.from({ length: maxIndex + 1 }, (_, i) => i);
  const series = reports.flatMap((r, i) => {
    const at = new Map(curves[i].map((p) => [p.index, p]));
    const c = colour(i);
    const stack = `band-${i}`;
    const lower = xs.map((x) => {
      const p = at.get(x);
      return p ? p.mean - (p.se ?? 0) : null;
    });
    const width = xs.map((x) => {
      const p = at.get(x);
      return p ? 2 * (p.se ?? 0) : null;
    });
    return [
      { type: "line", data: lower, stack, symbol: "none", lineStyle: { opacity: 0 }, silent: true, tooltip: { show: false } },
      {
        type: "line", data: width, stack, symbol: "none", lineStyle: { opacity: 0 },
        areaStyle: { color: c, opacity: 0.15 }, silent: true, tooltip: { show: false },
      },
      {
        name: r.name, type: "line", data: xs.map((x) => at.get(x)?.mean ?? null),
        color: c, symbolSize: 5, connectNulls: true,
      },
    ];
  });
  return {
    ...base(`${metric === "loss" ? "Loss (nats per output)" : "Accuracy"} by examples in context${task ? `: ${task}` : ""}`),
    legend: { bottom: 0, type: "scroll", data: reports.map((r) => r.name) },
    xAxis: { type: "category", data: xs, name: "examples before the output", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "value", scale: true, name: metric, ...(metric === "acc" ? { min: 0, max: 1 } : {}) },
    series,
  };
}

/** One item's target distribution against each run's. `items[i]`: run i's row for the item. */
export function itemOption(items: (DistItem | null)[], names: string[]): EChartsCoreOption {
  const first = items.find((x) => x != null);
  const options = first?.options ?? [];
  return {
    ...base(first ? `Item ${first.id}` : "Item"),
    tooltip: { trigger: "axis", valueFormatter: (v: number) => (v == null ? "–" : v.toFixed(3)) },
    xAxis: { type: "category", data: options, axisLabel: { interval: 0, rotate: options.length > 8 ? 40 : 0 } },
    yAxis: { type: "value", name: "probability", min: 0 },
    series: [
      { name: "target", type: "bar", data: first?.target ?? [], color: "#999999" },
      ...items.map((it, i) => ({ name: names[i], type: "bar", data: it?.q ?? [], color: colour(i) })),
    ],
  };
}

/**
 * How items' Jensen-Shannon divergences (nats) spread, per run: the engine's
 * bins over [0, ln 2] (the PDF draws the same counts), for one task or all.
 */
export function jsHistogramOption(reports: EvalReport[], task: string | null): EChartsCoreOption {
  const hists = reports.map((r) => r.dist?.js_histogram ?? null);
  const shape = hists.find((h) => h != null);
  const counts = hists.map((h) =>
    h == null ? [] : task == null ? h.all : (h.tasks.find((t) => t.task === task)?.counts ?? h.all.map(() => 0)),
  );
  const labels = shape?.edges.map((e) => `${e.toFixed(2)}–${(e + shape.width).toFixed(2)}`) ?? [];
  return {
    ...base(`Jensen-Shannon divergence per item${task ? `: ${task}` : ""}`),
    xAxis: { type: "category", data: labels, name: "JS (nats)", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "value", name: "items", minInterval: 1 },
    series: reports.map((r, i) => ({ name: r.name, type: "bar", data: counts[i], color: colour(i) })),
  };
}

/** Percent valid against yield, one line per run and setting through the temperature sweep. */
export function validityOption(reports: EvalReport[]): EChartsCoreOption {
  const series = reports.flatMap((r, i) =>
    (r.valid?.frontier ?? []).map((line, j) => ({
      name: `${r.name} · ${line.setting}`,
      type: "line",
      color: colour(i),
      lineStyle: { type: ["solid", "dashed", "dotted"][j % 3] },
      symbolSize: 7,
      label: { show: true, formatter: (p: { data: number[] }) => `T=${p.data[2]}`, fontSize: 9, position: "top" },
      data: line.points.map((p) => [p.yield, p.percent_valid, p.temperature]),
    })),
  );
  return {
    ...base("Validity against diversity (temperature sweep)"),
    tooltip: { trigger: "item", formatter: (p: { seriesName: string; data: number[] }) =>
      `${p.seriesName}<br/>T=${p.data[2]}: yield ${p.data[0].toFixed(1)}, valid ${p.data[1].toFixed(1)}%` },
    xAxis: { type: "value", name: "yield (unique valid samples)", nameLocation: "middle", nameGap: 28, scale: true },
    yAxis: { type: "value", name: "% valid", min: 0, max: 100 },
    series,
  };
}

/** The engine's heatmap of a family (tasks x runs, the baseline first), if the runs have one. */
export function heatmapOf(c: Comparison, family: Family): Heatmap | null {
  return c.heatmaps.find((h) => h.family === family) ?? null;
}

/**
 * Tasks x candidate runs, coloured by the difference from the baseline, signed
 * so that positive means better (lower loss or JS, higher yield): the same
 * task means the PDF's heatmap prints.
 */
export function heatmapOption(c: Comparison, family: Family): EChartsCoreOption {
  const h = heatmapOf(c, family);
  const tasks = h?.tasks ?? [];
  const data: [number, number, number][] = [];
  tasks.forEach((_, y) => {
    c.candidates.forEach((_, x) => {
      const better = h!.improvement[y][x + 1];
      if (better == null) return;
      data.push([x, y, Number(better.toFixed(4))]);
    });
  });
  const extent = Math.max(1e-6, ...data.map((d) => Math.abs(d[2])));
  return {
    animation: false,
    title: { text: `Improvement over ${c.baseline.name} (${family}: ${h?.metric ?? ""})`, left: "center", textStyle: { fontSize: 13, fontWeight: 600 } },
    tooltip: { formatter: (p: { data: number[] }) => `${tasks[p.data[1]]}: ${p.data[2] > 0 ? "+" : ""}${p.data[2]}` },
    grid: { left: 150, right: 24, top: 40, bottom: 80 },
    xAxis: { type: "category", data: c.candidates.map((x) => x.run.name), axisLabel: { interval: 0 } },
    yAxis: { type: "category", data: tasks, axisLabel: { interval: 0 } },
    visualMap: {
      min: -extent, max: extent, calculable: true, orient: "horizontal", left: "center", bottom: 0,
      inRange: { color: ["#D55E00", "#f4f4f4", "#009E73"] }, text: ["better", "worse"],
    },
    series: [{ type: "heatmap", data, label: { show: true, fontSize: 10 } }],
  };
}

/**
 * Training loss per step (mean nats per loss token), held-out loss at its
 * evaluations (mean summed nats per output with index >= 1: another scale, so
 * its own axis) and the learning rate.
 */
export function trainingOption(d: Pick<RunDetail, "run" | "steps" | "evals">): EChartsCoreOption {
  return {
    ...base(`Training: ${d.run.name}`),
    grid: { left: 56, right: 130, top: 40, bottom: 56 },
    xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 28, min: 0 },
    yAxis: [
      { type: "value", name: "train loss", scale: true, axisLine: { show: true, lineStyle: { color: colour(0) } } },
      { type: "value", name: "held-out", scale: true, splitLine: { show: false }, axisLine: { show: true, lineStyle: { color: colour(1) } } },
      {
        type: "value", name: "lr", offset: 64, splitLine: { show: false }, axisLine: { show: true },
        axisLabel: { formatter: (v: number) => v.toExponential(0) },
      },
    ],
    series: [
      { name: "train loss (per token)", type: "line", showSymbol: false, color: colour(0), data: d.steps.map((s) => [s.step, s.loss]) },
      { name: "held-out loss (per output, index ≥ 1)", type: "line", yAxisIndex: 1, color: colour(1), symbolSize: 7, data: d.evals.map((e) => [e.step, e.loss]) },
      { name: "learning rate", type: "line", yAxisIndex: 2, showSymbol: false, color: "#999999", lineStyle: { type: "dashed" }, data: d.steps.map((s) => [s.step, s.lr]) },
    ],
  };
}
