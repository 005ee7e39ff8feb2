#!/usr/bin/env python3
"""Records a SentencePiece reference for the GGUF import of Llama-style
("llama", SentencePiece BPE with byte fallback) tokenizers.

Trains a small SentencePiece BPE model the way Llama's was configured (byte
fallback, digits split, whitespace kept, no normalisation, a dummy prefix),
then writes what a GGUF file holds of it (pieces, scores, token types) and
SentencePiece's own ids for a set of texts to
crates/spectrum-lm/tests/reference/spm_tokenizer.json. The test builds a GGUF
from those fields, imports it, and must tokenise every text to the same ids.

    python3 -m pip install sentencepiece
    python3 scripts/record_spm_reference.py
"""

import json
import tempfile
from pathlib import Path

import sentencepiece as spm

OUT = Path(__file__).resolve().parent.parent / "crates/spectrum-lm/tests/reference/spm_tokenizer.json"

WORDS = (
    "the quick brown fox jumps over lazy dog coin heads tails urn red blue ball state "
    "Ohio Texas number between prime phone spectrum tuning model steer distribution "
    "output input description example sample temperature valid diverse answer"
).split()

TEXTS = [
    "The quick brown fox",
    "heads tails heads heads",
    " leading space and  two  spaces",
    "numbers 1234 and 3.14159",
    "a new\nline and a\ttab",
    "unicode: café, naïve, 東京, 🙂",
    "Description: Flip a coin that lands heads 70% of the time.",
    "<|im_start|>user\nhello<|im_end|>",
    "",
    "zzzz qqqq xylophone",
]


def corpus() -> str:
    lines = []
    for i in range(600):
        words = [WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(3 + i % 9)]
        if i % 5 == 0:
            words.append(str(i * 37))
        if i % 11 == 0:
            words[0] = words[0].capitalize()
        lines.append(" ".join(words) + ("." if i % 3 == 0 else ""))
    return "\n".join(lines)


def piece_type(sp: spm.SentencePieceProcessor, i: int) -> int:
    """llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte."""
    if sp.is_unknown(i):
        return 2
    if sp.is_control(i):
        return 3
    if sp.is_unused(i):
        return 5
    if sp.is_byte(i):
        return 6
    return 4 if sp.id_to_piece(i) in ("<|im_start|>", "<|im_end|>") else 1


def llama_cpp_ids(sp: spm.SentencePieceProcessor, text: str, specials: list[str]) -> list[int]:
    """What llama.cpp (and transformers' GGUF loader) give: special pieces are
    cut out first; every other non-empty fragment is encoded on its own, with
    its own space prefix. Without special pieces this is SentencePiece's encode."""
    import re

    if not specials:
        return sp.encode(text)
    ids = []
    for part in re.split("(" + "|".join(map(re.escape, specials)) + ")", text):
        if part in specials:
            ids.append(sp.piece_to_id(part))
        elif part:
            ids.extend(sp.encode(part))
    return ids


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text(corpus(), encoding="utf-8")
        prefix = str(Path(tmp) / "m")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=prefix,
            model_type="bpe",
            vocab_size=420,
            byte_fallback=True,
            split_digits=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=True,
            allow_whitespace_only_pieces=True,
            character_coverage=1.0,
            user_defined_symbols=["<|im_start|>", "<|im_end|>"],
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            minloglevel=2,
        )
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = sp.get_piece_size()
    record = {
        "source": f"sentencepiece {spm.__version__}, BPE, byte fallback, Llama-style settings",
        "tokens": [sp.id_to_piece(i) for i in range(n)],
        "scores": [sp.get_score(i) for i in range(n)],
        "token_type": [piece_type(sp, i) for i in range(n)],
        "bos": 1,
        "eos": 2,
        "unk": 0,
        "texts": TEXTS,
        "ids": [llama_cpp_ids(sp, t, ["<|im_start|>", "<|im_end|>", "<s>", "</s>"]) for t in TEXTS],
        "decoded": [sp.decode(sp.encode(t)) for t in TEXTS],
    }
    OUT.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{OUT}: {n} pieces, {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
