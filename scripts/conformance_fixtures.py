#!/usr/bin/env python3
"""Extract the conformance fixtures the tests read from a reference set.

The reference set (values recorded by running tsor13/spectrum @ 5a33588 with
transformers on SmolLM2-135M-Instruct; its README says how) is too large to
keep whole: this keeps, per item and format, exactly the fields our tests
compare. Nothing here is computed: every value is copied from the set.

    python3 scripts/conformance_fixtures.py ../shared/reference
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/spectrum-eval/tests/reference/conformance"


def main(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    render = json.loads((src / "dist_render.json").read_text())
    scores = json.loads((src / "dist_scores.json").read_text())
    by_key = {(s["item_id"], s["format"]): s for s in scores["scores"] if not s.get("summary")}
    items = []
    for it in render["items"]:
        s = by_key.get((it["item_id"], it["format"]), {})
        items.append(
            {
                "item_id": it["item_id"],
                "task": it["task"],
                "format": it["format"],
                "output_name": it["output_name"],
                "description": it["description_text"],
                "input": it["input_text"],
                "targets": it["target_outputs"],
                "target_probs": it["target_probs"],
                "generic_prompt_text": it["prompt_text_messages_to_text"],
                "scored_prompt_text": it["scored_prompt_text"],
                "prompt_ids": it["prompt_ids"],
                "option_ids": [o["option_ids"] for o in it["options"]],
                "option_logprobs": s.get("option_logprobs"),
                "coverage": s.get("coverage"),
                "js": s.get("js"),
                "kl": s.get("kl"),
                "reverse_kl": s.get("reverse_kl"),
                "cross_entropy": s.get("cross_entropy"),
                "mode_match": s.get("mode_match"),
            }
        )
    doc = {
        "source": "extracted by scripts/conformance_fixtures.py from the reference set "
        f"{render['set']} (dist_render.json, dist_scores.json), recorded by running "
        f"tsor13/spectrum @ {render['reference_commit']} on {render['model']}",
        "items": items,
    }
    (OUT / "dist.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT / 'dist.json'}: {len(items)} item x format rows")

    valid = json.loads((src / "valid_render.json").read_text())
    prompts = [
        {
            "task": p["task"],
            "setting": p["setting"],
            "format": p["format"],
            "description": p["description"] if p["include_description"] else None,
            "examples": p["examples"] if p["include_examples"] else [],
            "prompt_text": p["prompt_text"],
            "prompt_ids": p["prompt_ids"],
            "max_new_tokens": p["max_new_tokens"],
        }
        for p in valid["prompts"]
    ]
    doc = {
        "source": "extracted by scripts/conformance_fixtures.py from the reference set "
        f"{valid['set']} (valid_render.json), recorded by running tsor13/spectrum @ "
        f"{valid['reference_commit']} on {valid['model']}",
        "top_k": valid["effective_sampling"]["generation_config"]["top_k"],
        "prompts": prompts,
    }
    metrics = json.loads((src / "valid_metrics.json").read_text())
    doc["lists"] = [
        {
            "task": it["task"],
            "list_index": it["list_index"],
            "closed_set": it["task_type"] == "InclusionTask",
            "stop_strings": it["stop_strings"],
            "raw": it["raw_generations"],
            "cleaned": it["cleaned_generations"],
            "validity": it["validity"],
            "metrics": {k: v for k, v in it["metrics"].items() if k != "prompt_components"},
        }
        for it in metrics["items"]
    ]
    (OUT / "valid.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT / 'valid.json'}: {len(prompts)} prompts, {len(doc['lists'])} lists")
    steer(src)


def steer(src: Path) -> None:
    render = json.loads((src / "steer_render.json").read_text())
    scores = json.loads((src / "steer_scores.json").read_text())
    tasks = []
    for t in render["tasks"]:
        sel = t["k_selection"]["spectrum"]
        tasks.append(
            {
                "task": t["task"],
                "k": sel["k"],
                "best_val": sel["best_val"],
                "n_keep": sel["n_keep"],
                # The reference's rule: k always measured in the spectrum format.
                "max_example_ind_hist": sel["max_example_ind_hist"],
            }
        )
    sequences = [
        {
            "seq_id": q["seq_id"],
            "task": q["task"],
            "max_example_ind_spectrum_2048": q["max_example_ind_spectrum_2048"],
            "messages": [{"role": m["role"], "content": m["content"]} for m in q["messages"]],
        }
        for q in render["sequences"]
    ]
    renders = []
    for r in render["renders"]:
        n = r["eval_truncated_len"]
        renders.append(
            {
                "seq_id": r["seq_id"],
                "format": r["format"],
                "k": r["k"],
                "eval_truncated_len": n,
                "ids": r["input_ids"][:n],
                "loss_mask": "".join(str(b) for b in r["loss_mask"][:n]),
                "output_example_ind": r["output_example_ind"],
            }
        )
    keep = ["eval/loss", "eval/loss_sem", "eval/loss_geq_1", "eval/loss_geq_1_sem",
            "eval/acc_geq_1", "eval/acc_geq_1_sem", "eval/all_acc_geq_1", "eval/first_acc_geq_1",
            "calibration/ece", "calibration/n_all", "calibration/n_correct",
            "calibration/geq1.ece", "calibration/geq1.n_all"]
    rows = []
    for sc in scores["scores"]:
        seqs = []
        for q in sc["sequences"]:
            outs = []
            for o in q["outputs"]:
                out = {k: o[k] for k in ["example_ind", "loss", "acc", "all_acc", "first_acc",
                                          "n_tokens", "min_top1_top2_logit_gap"]}
                # The calibration inputs, kept for one format (they are large).
                if sc["format"] == "spectrum":
                    out["correct_logprobs"] = o["correct_logprobs"]
                    out["incorrect_logprobs"] = o["incorrect_logprobs_gt_0.01"]
                outs.append(out)
            seqs.append({"seq_id": q["seq_id"], "eval_len": q["eval_len"], "outputs": outs})
        rows.append(
            {
                "task": sc["task"],
                "format": sc["format"],
                "k": sc["k"],
                "metrics": {k: sc["wandb_logged"][k] for k in keep},
                "sequences": seqs,
            }
        )
    doc = {
        "source": "extracted by scripts/conformance_fixtures.py from the reference set "
        f"{render['set']} (steer_render.json, steer_scores.json), recorded by running "
        f"tsor13/spectrum @ {render['reference_commit']} on {render['model']}; k measured "
        "with the SmolLM2 tokenizer (the reference's gemma-3-1b-it is not available offline)",
        "tasks": tasks,
        "sequences": sequences,
        "renders": renders,
        "scores": rows,
    }
    (OUT / "steer.json").write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {OUT / 'steer.json'}: {len(renders)} renders, {len(rows)} task x format scores")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/reference"))
