// Small pure helpers shared by the views; tested in format.test.ts.
import type { DeviceSpec, Fix, MeanSe, RunSettings } from "./bindings";

/** `0.1234 ± 0.0100`, with the standard error when there is one. */
export function meanSe(m: MeanSe | null | undefined, digits = 3): string {
  if (!m) return "–";
  const mean = m.mean.toFixed(digits);
  return m.se == null ? mean : `${mean} ± ${m.se.toFixed(digits)}`;
}

/** Seconds as `1 h 02 min`, `3 min 05 s` or `12 s`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** 134515008 -> `135M`; 7241732096 -> `7.2B`. */
export function params(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${Math.round(n / 1e6)}M`;
  if (n >= 1e3) return `${Math.round(n / 1e3)}K`;
  return String(n);
}

/** Rows sorted by a key, strings and numbers alike, nulls last. */
export function sortBy<T>(rows: T[], key: keyof T, ascending: boolean): T[] {
  const sign = ascending ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[key] as unknown;
    const y = b[key] as unknown;
    if (x == null && y == null) return 0;
    if (x == null) return 1;
    if (y == null) return -1;
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x).localeCompare(String(y), undefined, { numeric: true });
  });
}

/** Case-insensitive match of every word of `query` against any of `fields`. */
export function matches(query: string, ...fields: (string | number | null | undefined)[]): boolean {
  const hay = fields.map((f) => String(f ?? "").toLowerCase()).join(" ");
  return query
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => hay.includes(w));
}

/** The devices a run can be put on, as the menus list them. */
export const DEVICES: { label: string; device: DeviceSpec }[] = [
  { label: "CPU", device: "cpu" },
  { label: "CUDA GPU 0", device: { cuda: 0 } },
  { label: "CUDA GPU 1", device: { cuda: 1 } },
  { label: "Metal (Apple)", device: "metal" },
];

/** `cpu`, `cuda:N` or `metal`: how the CLI and the store spell a device. */
export function deviceName(d: DeviceSpec): string {
  return typeof d === "object" ? `cuda:${d.cuda}` : d;
}

/** The menu's device of that name (a menu's value is the name). */
export function deviceNamed(name: string): DeviceSpec {
  return DEVICES.find((d) => deviceName(d.device) === name)?.device ?? "cpu";
}

/** A training run's settings in one line (what the Results view shows under its curves). */
export function trainSettings(s: RunSettings): string | null {
  if (s.kind !== "train") return null;
  const t = s.spec;
  const method = t.method === "full"
    ? "full fine-tuning"
    : `LoRA rank ${t.method.lora.rank}, alpha ${t.method.lora.alpha}`;
  const length = "steps" in t.length ? `${t.length.steps} steps` : `${t.length.epochs} epochs`;
  return [
    method,
    `learning rate ${t.learning_rate}, ${t.decay} after ${t.warmup_steps} warm-up steps`,
    `${length} of ${t.micro_batch} × ${t.grad_accum} sequences up to ${t.max_tokens} tokens`,
    t.gradient_checkpointing ? "gradient checkpointing" : null,
    `${s.dtype} on ${deviceName(t.device)}`,
    `seed ${t.seed}`,
  ].filter(Boolean).join(" · ");
}

/** An error's fix in the app's words (the CLI phrases the same fix as a command). */
export function fixText(fix: Fix | null): string | null {
  if (fix == null) return null;
  switch (fix.kind) {
    case "list":
      return `Pick one of the ${fix.what} the ${fix.what === "runs" ? "Results" : fix.what === "models" ? "Models" : "Library"} view lists.`;
    case "import":
      return "Import task files (drop them on the window), or build the built-in suite from the guide.";
    case "add_model":
      return "Add a model in the Models view, or install the default one.";
    case "other_store":
      return "Start the app with another store file: this one is not a Spectrum Studio store.";
    case "upgrade":
      return "Install a newer Spectrum Studio: this store was written by one.";
    case "resume":
      return `Resume run ${fix.run} from the list of interrupted runs.`;
    case "setting":
      return `Change the ${fix.setting.replaceAll("_", " ")} setting: ${fix.advice}.`;
    case "say":
      return fix.text;
  }
}

/** The view that offers an error's fix, if one does. */
export function fixView(fix: Fix | null): "library" | "models" | "results" | null {
  if (fix == null) return null;
  if (fix.kind === "import") return "library";
  if (fix.kind === "add_model") return "models";
  if (fix.kind === "list") return fix.what === "models" ? "models" : fix.what === "runs" ? "results" : "library";
  return null;
}
