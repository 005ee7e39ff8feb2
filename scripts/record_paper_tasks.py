#!/usr/bin/env python3
"""Fixture rows for the paper's tasks, and what the reference's generators make of them.

For every task with a recipe (crates/spectrum-suite/recipes/held_out/), this writes
a few rows with the real schema of the task's source (the columns the reference
reads, the dtypes the dataset card gives, awkward rows included: whitespace,
unicode, long texts, empty fields, many choices) as
crates/spectrum-suite/tests/fixtures/paper/TASK.parquet, then runs the reference's
generator (tsor13/spectrum at the pinned commit) on exactly those rows, its
`load_dataset` answered with the fixture, and records in TASK.reference.json:

- name: the name the reference gives its rows,
- n_per, n_iter: what its generator passes to generate_many,
- descriptions: the descriptions its ICL class draws from,
- pairs: every distinct (input, output) text pair of its sequences, sorted.

The Rust test (crates/spectrum-suite/tests/paper_fidelity.rs) builds the same
rows with our recipes and compares. Run from the repository root:

    python3 -m pip install pandas pyarrow numpy
    git clone https://github.com/tsor13/spectrum /tmp/spectrum   # or a bare mirror
    python3 scripts/record_paper_tasks.py --reference /tmp/spectrum

The reference's heavy imports that these generators never call (transformers,
torch, datasets) are replaced by small stand-ins before it is imported.
"""

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COMMIT = "5a33588"
OUT = Path("crates/spectrum-suite/tests/fixtures/paper")
LONG = "A long passage. " * 120

# One table per source: (schema, rows). Dtypes as the hub's Parquet conversion has them.
FIXTURES = {
    "mmlu": (
        pa.schema([("question", pa.string()), ("subject", pa.string()),
                   ("choices", pa.list_(pa.string())), ("answer", pa.int64())]),
        [
            {"question": "What is 2 + 2?", "subject": "elementary_mathematics",
             "choices": ["3", "4", "5", "22"], "answer": 1},
            {"question": "  Which gas do plants absorb?  ", "subject": "biology",
             "choices": ["Oxygen", " Carbon dioxide ", "Nitrogen", "Helium"], "answer": 1},
            {"question": "Ünïcödé: which is «correct»?\nSecond line.", "subject": "misc",
             "choices": ["α", "β", "γ", "δ — 😀"], "answer": 3},
            {"question": LONG, "subject": "reading", "choices": ["a", "b", "c", "d"], "answer": 0},
            {"question": "Empty choice?", "subject": "misc", "choices": ["", "x", "y", "z"], "answer": 2},
        ],
    ),
    "arc": (
        pa.schema([("id", pa.string()), ("question", pa.string()),
                   ("choices", pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])),
                   ("answerKey", pa.string())]),
        [
            {"id": "Mercury_1", "question": "Which is a metal?",
             "choices": {"text": ["Iron", "Wood", "Glass", "Water"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
            {"id": "Mercury_2", "question": "  Numbered labels?  ",
             "choices": {"text": [" one ", "two", "three", "four"], "label": ["1", "2", "3", "4"]}, "answerKey": "3"},
            {"id": "Mercury_3", "question": "Five choices, unicode: ½ or ¾?",
             "choices": {"text": ["½", "¾", "1", "2", "none"], "label": ["A", "B", "C", "D", "E"]}, "answerKey": "E"},
            {"id": "Mercury_4", "question": "Three choices?",
             "choices": {"text": ["x", "y", "z"], "label": ["A", "B", "C"]}, "answerKey": " B "},
        ],
    ),
    "hellaswag": (
        pa.schema([("ind", pa.int32()), ("activity_label", pa.string()), ("ctx_a", pa.string()),
                   ("ctx_b", pa.string()), ("ctx", pa.string()), ("endings", pa.list_(pa.string())),
                   ("source_id", pa.string()), ("split", pa.string()), ("split_type", pa.string()),
                   ("label", pa.string())]),
        [
            {"ind": 1, "activity_label": "Removing ice from car", "ctx_a": "Then, the man writes.",
             "ctx_b": "then", "ctx": "Then, the man writes. then",
             "endings": [", the man scrapes.", ", he drives.", " is shown.", ", stops."],
             "source_id": "a", "split": "val", "split_type": "indomain", "label": "3"},
            {"ind": 2, "activity_label": "", "ctx_a": "Only context.", "ctx_b": "",
             "ctx": "Only context.", "endings": ["a", "b", "c", "d"],
             "source_id": "b", "split": "val", "split_type": "zeroshot", "label": "0"},
            {"ind": 3, "activity_label": "Cooking — crêpes", "ctx_a": "", "ctx_b": "",
             "ctx": "", "endings": ["é", "ü", "ñ", "ø"],
             "source_id": "c", "split": "val", "split_type": "indomain", "label": "2"},
        ],
    ),
    "winogrande": (
        pa.schema([("sentence", pa.string()), ("option1", pa.string()),
                   ("option2", pa.string()), ("answer", pa.string())]),
        [
            {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
             "option1": "Sarah", "option2": "Maria", "answer": "1"},
            {"sentence": "No blank in this one.", "option1": "A", "option2": "B", "answer": "2"},
            {"sentence": "Two _ blanks _ here, ünïcödé.", "option1": " x ", "option2": "ÿ", "answer": "2"},
        ],
    ),
    "truthful_qa": (
        pa.schema([("question", pa.string()), ("choices", pa.list_(pa.string())), ("label", pa.int32())]),
        [
            {"question": "What happens if you eat watermelon seeds?",
             "choices": ["Nothing happens", "You grow watermelons", "You get sick", "You die"], "label": 0},
            {"question": "  Padded question?  ", "choices": ["  a  ", "b", "c", "d"], "label": 3},
            {"question": "Ünïcödé?", "choices": ["α", "β", "γ", "δ"], "label": 2},
        ],
    ),
}

# The reference's generator of each task, and the call the paper makes.
GENERATORS = {
    "mmlu": ("mmlu", "generate_mmlu"),
    "arc": ("arc", "generate_arc"),
    "hellaswag": ("hellaswag", "generate_hellaswag"),
    "winogrande": ("winogrande", "generate_winogrande"),
    "truthful_qa": ("truthful_qa", "generate_truthful_qa_mc"),
}


class FakeDataset:
    """What the generators use of a `datasets.Dataset`."""

    def __init__(self, table):
        self.table = table

    def to_pandas(self):
        return self.table.to_pandas()

    def __iter__(self):
        return iter(self.table.to_pylist())

    def __getitem__(self, split):
        return self


def reference_source(repo: str) -> Path:
    """The reference's `src` at COMMIT, unpacked from a checkout or a bare mirror."""
    out = Path(tempfile.mkdtemp(prefix="spectrum-ref-"))
    archive = out / "src.tar"
    subprocess.run(["git", "-C", repo, "archive", "-o", str(archive), COMMIT, "src"], check=True)
    with tarfile.open(archive) as t:
        t.extractall(out, filter="data")
    return out / "src"


def stub_heavy_imports(current):
    transformers = types.ModuleType("transformers")
    transformers.AutoTokenizer = object
    sys.modules["transformers"] = transformers
    datasets = types.ModuleType("datasets")
    datasets.load_dataset = lambda *args, **kwargs: FakeDataset(current["table"])
    sys.modules["datasets"] = datasets


def record(task, module_name, function, current):
    import importlib

    from spectrum.icl_classes import icl_class

    seen = {"descriptions": None, "generate_many": None}
    original_init = icl_class.ICLClass.__init__
    original_many = icl_class.ICLClass.generate_many

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        seen["descriptions"] = list(self.descriptions)

    def many(self, seed, n_per=1, n_iter=None, **kwargs):
        seen["generate_many"] = {"n_per": n_per, "n_iter": n_iter}
        # Small n_per keeps recording fast; the texts do not depend on it.
        return original_many(self, seed, n_per=min(n_per, 20) if n_per > 0 else n_per, n_iter=n_iter, **kwargs)

    icl_class.ICLClass.__init__ = init
    icl_class.ICLClass.generate_many = many
    try:
        module = importlib.import_module(f"spectrum.icl_classes.icl_dataset_classes.{module_name}")
        data = getattr(module, function)()
    finally:
        icl_class.ICLClass.__init__ = original_init
        icl_class.ICLClass.generate_many = original_many
    pairs = set()
    for messages in data["messages"]:
        pending = None
        for m in messages:
            if m["role"] == "input":
                pending = m["content"]
            elif m["role"] == "output":
                pairs.add((pending, m["content"]))
                pending = None
    return {
        "task": task,
        "name": sorted(set(data["name"])),
        "n_per": seen["generate_many"]["n_per"],
        "n_iter": seen["generate_many"]["n_iter"],
        "descriptions": seen["descriptions"],
        "pairs": sorted([list(p) for p in pairs], key=lambda p: (p[0] or "", p[1])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="a clone (or bare mirror) of tsor13/spectrum")
    args = parser.parse_args()
    src = reference_source(args.reference)
    sys.path.insert(0, str(src))
    current = {}
    stub_heavy_imports(current)
    OUT.mkdir(parents=True, exist_ok=True)
    for task, (schema, rows) in FIXTURES.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, OUT / f"{task}.parquet")
        current["table"] = table
        module_name, function = GENERATORS[task]
        result = record(task, module_name, function, current)
        (OUT / f"{task}.reference.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{task}: {len(rows)} rows, {len(result['pairs'])} pairs, name {result['name']}")


if __name__ == "__main__":
    main()
