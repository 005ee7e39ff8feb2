import { describe, expect, it } from "vitest";
import { bytes, duration, fixText, fixView, matches, meanSe, params, sortBy } from "./format";
import type { RunSettings } from "./bindings";

describe("format", () => {
  it("prints a mean with its standard error", () => {
    expect(meanSe({ mean: 1.23456, se: 0.01, n: 4 })).toBe("1.235 ± 0.010");
    expect(meanSe({ mean: 2, se: null, n: 1 }, 1)).toBe("2.0");
    expect(meanSe(null)).toBe("–");
  });

  it("prints durations, sizes and parameter counts", () => {
    expect(duration(12.4)).toBe("12 s");
    expect(duration(185)).toBe("3 min 05 s");
    expect(duration(3720)).toBe("1 h 02 min");
    expect(duration(-1)).toBe("–");
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 KB");
    expect(params(134515008)).toBe("135M");
    expect(params(7241732096)).toBe("7.2B");
  });

  it("sorts numbers and strings, nulls last either way", () => {
    const rows = [{ a: 2, b: "x10" }, { a: null, b: "x9" }, { a: 1, b: "x1" }];
    expect(sortBy(rows, "a", true).map((r) => r.a)).toEqual([1, 2, null]);
    expect(sortBy(rows, "a", false).map((r) => r.a)).toEqual([2, 1, null]);
    expect(sortBy(rows, "b", true).map((r) => r.b)).toEqual(["x1", "x9", "x10"]);
  });

  it("matches every word of a query", () => {
    expect(matches("coin held", "coin_flip", "held_out")).toBe(true);
    expect(matches("coin dice", "coin_flip", "held_out")).toBe(false);
    expect(matches("", "anything")).toBe(true);
  });
});

describe("devices", () => {
  it("names every menu device as the CLI spells it, and finds it back", async () => {
    const { DEVICES, deviceName, deviceNamed } = await import("./format");
    expect(DEVICES.map((d) => deviceName(d.device))).toEqual(["cpu", "cuda:0", "cuda:1", "metal"]);
    for (const d of DEVICES) expect(deviceNamed(deviceName(d.device))).toEqual(d.device);
  });
});

describe("run settings", () => {
  it("says a training run's settings in one line", async () => {
    const { trainSettings } = await import("./format");
    const spec = {
      method: { lora: { rank: 16, alpha: 32, dropout: 0, targets: [] } }, learning_rate: 0.001, decay: "cosine",
      warmup_steps: 4, length: { steps: 12 }, micro_batch: 4, grad_accum: 2, max_tokens: 1024,
      gradient_checkpointing: true, dtype: null, device: { cuda: 1 }, seed: 0,
    };
    // The engine resolves the dtype (bf16 on a GPU when none is set); the UI shows it.
    const s = { kind: "train", spec, dtype: "bf16", model_path: "/m", train_tasks: [], held_out_tasks: [] } as unknown as RunSettings;
    expect(trainSettings(s)).toBe(
      "LoRA rank 16, alpha 32 · learning rate 0.001, cosine after 4 warm-up steps · 12 steps of 4 × 2 sequences up to 1024 tokens · gradient checkpointing · bf16 on cuda:1 · seed 0",
    );
    const full = { ...s, dtype: "f16", spec: { ...spec, method: "full", length: { epochs: 1.5 }, gradient_checkpointing: false, dtype: "f16" } } as RunSettings;
    expect(trainSettings(full)).toBe(
      "full fine-tuning · learning rate 0.001, cosine after 4 warm-up steps · 1.5 epochs of 4 × 2 sequences up to 1024 tokens · f16 on cuda:1 · seed 0",
    );
    expect(trainSettings({ kind: "eval" } as RunSettings)).toBeNull();
  });
});

describe("fixes", () => {
  it("phrases every fix in the app's words and opens the view that offers it", () => {
    expect(fixText(null)).toBeNull();
    expect(fixText({ kind: "say", text: "use 3" })).toBe("use 3");
    expect(fixText({ kind: "list", what: "models" })).toContain("Models view");
    expect(fixText({ kind: "resume", run: 4, run_kind: "train" })).toContain("run 4");
    expect(fixView({ kind: "list", what: "runs" })).toBe("results");
    expect(fixView({ kind: "import" })).toBe("library");
    expect(fixView({ kind: "add_model" })).toBe("models");
    expect(fixView({ kind: "upgrade" })).toBeNull();
    expect(fixText({ kind: "setting", setting: "learning_rate", advice: "a lower learning rate" })).toBe(
      "Change the learning rate setting: a lower learning rate.",
    );
    // Nothing the app shows names a command-line flag.
    for (const fix of [
      { kind: "other_store" },
      { kind: "upgrade" },
      { kind: "import" },
      { kind: "setting", setting: "k_tokenizer", advice: "a tokenizer folder" },
    ] as const) {
      expect(fixText(fix)).not.toMatch(/--|spectrum /);
    }
  });
});
