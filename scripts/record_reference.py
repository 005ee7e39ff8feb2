#!/usr/bin/env python3
"""Records reference values from Hugging Face transformers (PyTorch) for the
spectrum-lm tests. The tests compare our candle implementation against them.

Tiny models: weights follow a formula both sides compute (see `formula_weight`
here and `tiny::weight` in crates/spectrum-lm/tests/reference.rs), so no weights
are stored; only the recorded logits are.

    bench/.venv/bin/pip install torch transformers
    bench/.venv/bin/python scripts/record_reference.py [--default-model DIR]

DIR is the default model as `spectrum model default` installs it (an HF folder
converted from the GGUF); with it, the script also records per-token
log-probabilities of a fixed token sequence under that model.
"""

import argparse
import json
import math
from pathlib import Path

import torch
import transformers

OUT = Path(__file__).resolve().parent.parent / "crates" / "spectrum-lm" / "tests" / "reference"

TINY = {
    "llama": dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
                  max_position_embeddings=64, tie_word_embeddings=False, hidden_act="silu"),
    "qwen2": dict(model_type="qwen2", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  max_position_embeddings=64, tie_word_embeddings=True, hidden_act="silu"),
    "qwen3": dict(model_type="qwen3", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  max_position_embeddings=64, tie_word_embeddings=False, hidden_act="silu"),
    # Llama 3.1+ RoPE scaling; theta 500 and head_dim 8 put one frequency in each of its three bands.
    "llama3_rope": dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500.0,
                        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                          original_max_position_embeddings=32),
                        max_position_embeddings=64, tie_word_embeddings=False, hidden_act="silu"),
    # Gemma 3 as the 4B+ checkpoints are: five sliding layers then a global one, linear RoPE scaling there.
    "gemma3": dict(model_type="gemma3_text", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=6,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=1000000.0,
                   rope_local_base_freq=10000.0, sliding_window=4, query_pre_attn_scalar=16,
                   rope_scaling=dict(rope_type="linear", factor=8.0),
                   layer_types=["sliding_attention"] * 5 + ["full_attention"],
                   max_position_embeddings=64, tie_word_embeddings=True, hidden_activation="gelu_pytorch_tanh"),
}

# Two sequences; the second is shorter and right-padded with id 0 (mask 0).
IDS = [[1, 5, 9, 13, 2, 40, 63, 7], [3, 3, 17, 29, 51, 0, 0, 0]]
MASK = [[1] * 8, [1] * 5 + [0] * 3]


def formula_weight(name: str, shape) -> torch.Tensor:
    """value[k] = scale * sin(0.37 k + phase(name)) (+1 for norm weights), in float64, then float32."""
    phase = (sum(name.encode()) % 1000) * 0.1
    n = math.prod(shape)
    k = torch.arange(n, dtype=torch.float64)
    values = torch.sin(0.37 * k + phase)
    if name.endswith("norm.weight"):
        values = 1.0 + 0.1 * values  # Gemma's (1 + w) norms then scale by about 2: fine for a test
    elif name.endswith(".bias"):
        values = 0.05 * values
    else:
        values = 0.08 * values
    return values.reshape(shape).to(torch.float32)


def tiny(family: str) -> None:
    cfg_dict = TINY[family]
    cls = {"llama": transformers.LlamaConfig, "llama3_rope": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config,
           "gemma3": transformers.Gemma3TextConfig}[family]
    config = cls(**{k: v for k, v in cfg_dict.items() if k != "model_type"})
    config._attn_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    state = {name: formula_weight(name, tuple(t.shape)) for name, t in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    model.load_state_dict(state, strict=False)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK))
    record = {
        "source": f"transformers {transformers.__version__}, torch {torch.__version__}, eager attention, float32",
        "config": cfg_dict,
        # The config as transformers >= 5 saves it (`rope_parameters`), which must load the same.
        "saved_config": json.loads(config.to_json_string()),
        "shapes": {name: list(t.shape) for name, t in sorted(state.items())},
        "ids": IDS,
        "mask": MASK,
        "logits": out.logits.tolist(),
    }
    if family == "gemma3":
        record["gguf"] = gemma3_gguf(model, state, config)
    (OUT / f"tiny_{family}.json").write_text(json.dumps(record))
    print(f"tiny {family}: {len(state)} tensors, logits {tuple(out.logits.shape)}")


def gemma3_gguf(model, state, config) -> dict:
    """How llama.cpp's convert_hf_to_gguf.py writes a Gemma 3 model: tensor names
    from gguf-py's map, RMSNorm weights stored as 1 + w, the hyper-parameters
    under `gemma3.*`. Checked here by loading the written file with transformers'
    own GGUF reader; the Rust test writes the same file and imports it."""
    import tempfile

    import gguf
    import numpy as np

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, config.num_hidden_layers)
    tensors = {}
    for name, t in state.items():
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gname, name
        tensors[name] = gname
    k = gguf.Keys
    meta = {
        k.LLM.CONTEXT_LENGTH: config.max_position_embeddings,
        k.LLM.EMBEDDING_LENGTH: config.hidden_size,
        k.LLM.BLOCK_COUNT: config.num_hidden_layers,
        k.LLM.FEED_FORWARD_LENGTH: config.intermediate_size,
        k.Attention.HEAD_COUNT: config.num_attention_heads,
        k.Attention.HEAD_COUNT_KV: config.num_key_value_heads,
        k.Attention.KEY_LENGTH: config.head_dim,
        k.Attention.VALUE_LENGTH: config.head_dim,
        k.Attention.LAYERNORM_RMS_EPS: config.rms_norm_eps,
        k.Rope.FREQ_BASE: config.rope_parameters["full_attention"]["rope_theta"],
        k.Attention.SLIDING_WINDOW: config.sliding_window,
        k.Rope.SCALING_TYPE: "linear",
        k.Rope.SCALING_FACTOR: config.rope_parameters["full_attention"]["factor"],
    }
    meta = {key.format(arch="gemma3"): value for key, value in meta.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.gguf"
        writer = gguf.GGUFWriter(str(path), "gemma3")
        for key, value in meta.items():
            if isinstance(value, str):
                writer.add_string(key, value)
            elif isinstance(value, float):
                writer.add_float32(key, value)
            else:
                writer.add_uint32(key, value)
        writer.add_tokenizer_model("llama")
        writer.add_token_list([f"<t{i}>" for i in range(config.vocab_size)])
        writer.add_token_scores([0.0] * config.vocab_size)
        writer.add_token_types([1] * config.vocab_size)
        for name, gname in tensors.items():
            data = state[name].numpy()
            if name.endswith("norm.weight"):
                data = data + 1  # llama.cpp's RMSNorm multiplies by the weight itself
            writer.add_tensor(gname, data.astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp, gguf_file="tiny.gguf", torch_dtype=torch.float32)
    loaded_state = loaded.state_dict()
    for name, t in state.items():
        assert torch.allclose(loaded_state[name], t, atol=1e-6), f"transformers reads {name} differently"
    for field in ("hidden_size", "num_hidden_layers", "head_dim", "sliding_window", "num_key_value_heads"):
        assert getattr(loaded.config, field) == getattr(config, field), field
    return {"tensors": tensors, "metadata": meta, "norms_plus_one": True}


def default_model(path: Path) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    text = "<|im_start|>description\nFlip a fair coin.<|im_end|>\n<|im_start|>output\nheads<|im_end|>\n<|im_start|>output\ntails<|im_end|>\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits, dim=-1)
    record = {
        "source": f"transformers {transformers.__version__}, torch {torch.__version__}, float32, {path.name}",
        "text": text,
        "ids": ids,
        # Entry i is about token i + 1.
        "token_logprobs": [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)],
        "argmax": logits.argmax(-1).tolist(),
        "logits_head": logits[:, :16].tolist(),
        "logsumexp": torch.logsumexp(logits, -1).tolist(),
        "greedy": tok.decode(model.generate(torch.tensor([tok("The capital of France is")["input_ids"]]),
                                            max_new_tokens=8, do_sample=False)[0]),
    }
    (OUT / "default_model.json").write_text(json.dumps(record))
    print(f"default model: {len(ids)} tokens; greedy: {record['greedy']!r}")


def gguf_dequant(path: Path) -> None:
    """Dequantises a few tensors of the default GGUF with the `gguf` package."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    record = {"source": f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else ''} GGUFReader + quants.dequantize", "tensors": {}}
    wanted = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.3.attn_k.weight", "output_norm.weight"}
    for t in reader.tensors:
        if t.name in wanted:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            record["tensors"][t.name] = {
                "type": t.tensor_type.name,
                "count": int(values.size),
                "sum": float(values.sum()),
                "sum_abs": float(np.abs(values).sum()),
                "head": values[:64].tolist(),
            }
    (OUT / "gguf_dequant.json").write_text(json.dumps(record))
    print("gguf:", {k: v["type"] for k, v in record["tensors"].items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--default-model", type=Path)
    parser.add_argument("--gguf", type=Path, help="the default model's GGUF file, for the dequantisation check")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for family in TINY:
        tiny(family)
    if args.default_model:
        default_model(args.default_model)
    if args.gguf:
        gguf_dequant(args.gguf)


if __name__ == "__main__":
    main()
