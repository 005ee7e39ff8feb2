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
    (OUT / "valid.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT / 'valid.json'}: {len(prompts)} prompts")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/reference"))
