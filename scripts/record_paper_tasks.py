#!/usr/bin/env python3
"""Fixture rows for the paper's tasks, and what the reference's generators make of them.

For every task with a recipe (crates/spectrum-suite/recipes/held_out/), this writes
a few rows with the real schema of the task's source (the columns the reference
reads, the dtypes the dataset card gives, awkward rows included: whitespace,
unicode, long texts, empty fields, many choices) as
crates/spectrum-suite/tests/fixtures/paper/TASK.parquet (TASK.csv for the sources
the reference reads as CSV files from its data/ folder), then runs the reference's
generator (tsor13/spectrum at the pinned commit) on exactly those rows, its
`load_dataset` answered with the fixture, and records in TASK.reference.json:

- name: the name the reference gives its rows,
- n_per, n_iter, permutations: what its generator passes to generate_many
  (n_iter {"geom_and_poisson": mean} for geom_and_poisson_iter(mean)),
- descriptions: the descriptions its ICL class draws from,
- pairs: every distinct (input, output) text pair of its sequences, sorted,
- groups: the pairs of each sequence (which examples share a sequence: for a
  task of individuals whose sequence holds all of one individual's examples,
  the grouping by individual).

For the distributional tasks (recipes/distributional/) it runs the reference's
loader (distributional_alignment/distributional_tasks/) on the fixture file and
records TASK.distribution.json: the output name and every item's description,
input, options and probabilities.

For wvs_individual (an SPSS .sav file the reference reads with pyreadstat) it
writes the fixture with pyreadstat and records, besides the reference's output,
what pyreadstat reads from it (fixtures/sav/) and numpy's permutations, which
the reference's shuffles draw (record_wvs, record_numpy_permutation).

The Rust test (crates/spectrum-suite/tests/paper_fidelity.rs) builds the same
rows with our recipes and compares. Run from the repository root:

    python3 -m pip install pandas==2.3.3 "pyarrow>=21" "numpy>=2.3.4" tqdm pyreadstat   # the reference's uv.lock
    git clone https://github.com/tsor13/spectrum /tmp/spectrum   # or a bare mirror
    python3 scripts/record_paper_tasks.py --reference /tmp/spectrum

pandas must be the reference's (2.3.3): pandas 3 reads a missing text cell as NaN,
not None, and the texts differ. The reference's heavy imports that these generators never call (transformers,
torch, datasets) are replaced by small stand-ins before it is imported.
"""

import argparse
import json
import os
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

NOVACOMET = (
    pa.schema([("premise", pa.string()), ("hypothesis", pa.string())]),
    [
        {"premise": "PersonX drinks coffee", "hypothesis": "PersonX wants to stay awake"},
        {"premise": "PersonX drinks coffee", "hypothesis": "  PersonX is tired  "},
        {"premise": "PersonX drinks coffee", "hypothesis": None},
        {"premise": "A café in Zürich — 😀", "hypothesis": "It serves crêpes"},
        {"premise": "A café in Zürich — 😀", "hypothesis": 'He said "hi"\nand left'},
        {"premise": "  Padded premise  ", "hypothesis": "x"},
        {"premise": "Another premise", "hypothesis": "Another premise"},
        {"premise": "Another premise", "hypothesis": "Another premise"},
    ],
)
FIXTURES["novacomet_hypothesis"] = NOVACOMET
FIXTURES["novacomet_premise"] = NOVACOMET

SPANS = pa.struct([("spans", pa.list_(pa.string())), ("types", pa.list_(pa.string()))])
FIXTURES["drop"] = (
    pa.schema([("section_id", pa.string()), ("query_id", pa.string()), ("passage", pa.string()),
               ("question", pa.string()), ("answers_spans", SPANS)]),
    [
        {"section_id": "nfl_1", "query_id": "q1", "passage": " The Bears scored 14 points. ",
         "question": "How many points did the Bears score?", "answers_spans": {"spans": ["14"], "types": ["number"]}},
        {"section_id": "nfl_1", "query_id": "q2", "passage": " The Bears scored 14 points. ",
         "question": "  Which team?  ", "answers_spans": {"spans": ["", "  Bears ", "Chicago"], "types": ["span", "span", "span"]}},
        {"section_id": "hist_2", "query_id": "q3", "passage": "Ünïcödé passage — 1848.\n" + LONG,
         "question": "When?", "answers_spans": {"spans": ["1848"], "types": ["date"]}},
    ],
)

# GlobalOQA's CSV in the hub's repository (the reference reads it with
# pd.read_csv("hf://..."); the hub's Parquet conversion has the same columns).
# Probabilities that numpy's rounding makes awkward (0.29 -> 28, 0.125 -> 12),
# an int probability, fewer probabilities than options, an option with a
# quote, a unicode country, a selection without a dict.
FIXTURES["globaloqa"] = (
    pa.schema([("question", pa.string()), ("selections", pa.string()),
               ("options", pa.string()), ("source", pa.string())]),
    [
        {"question": "When it comes to Germany’s decision-making in the EU, does it have...",
         "selections": "defaultdict(<class 'list'>, {'Belgium': [0.21, 0.07, 0.69, 0.03], "
                       "'Italy': [0.6138613861386139, 0.0297029702970297, 0.3465346534653465, 0.009900990099009901]})",
         "options": "['Has too much influence', 'Has too little influence', 'Has about the right amount', 'DK/Refused']",
         "source": "GAS"},
        {"question": "Do you approve?",
         "selections": "defaultdict(<class 'list'>, {'Belgium': [0.29, 0.125, 0.585], 'Côte d’Ivoire': [1, 0, 0.0]})",
         "options": "[\"Don't know\", 'Yes', 'No']",
         "source": "GAS"},
        {"question": "  Fewer numbers than options?  ",
         "selections": "defaultdict(<class 'list'>, {'Italy': [0.5, 0.5]})",
         "options": "['a', 'b', 'c']",
         "source": "WVS"},
        {"question": "No selections", "selections": "defaultdict(<class 'list'>, )",
         "options": "['a']", "source": "WVS"},
    ],
)

# Chatbot Arena's battles (lmsys/chatbot_arena_conversations, gated; the
# reference reads its Parquet file by hf:// path): judges with 4, 5 and 3
# battles (the last left out), a model seen only as model_b (no sequence of
# its own), padded and unicode turns, every winner label and one unknown.
CONV = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))


def _battle(i, judge, a, b, winner, prompt=None):
    prompt = prompt if prompt is not None else f"Prompt {i}?"
    return {"question_id": f"q{i}", "model_a": a, "model_b": b, "winner": winner, "judge": judge,
            "conversation_a": [{"content": prompt, "role": "user"}, {"content": f"  {a} answers {i}.  ", "role": "assistant"}],
            "conversation_b": [{"content": prompt, "role": "user"}, {"content": f"{b} answers {i} — ünïcödé", "role": "assistant"}],
            "turn": 1, "anony": True, "language": "English"}


FIXTURES["chatbotarena"] = (
    pa.schema([("question_id", pa.string()), ("model_a", pa.string()), ("model_b", pa.string()),
               ("winner", pa.string()), ("judge", pa.string()), ("conversation_a", CONV),
               ("conversation_b", CONV), ("turn", pa.int64()), ("anony", pa.bool_()),
               ("language", pa.string())]),
    [
        _battle(1, "j1", "gpt-4", "claude-v1", "model_a", "  Write a haiku.  "),
        _battle(2, "j1", "claude-v1", "gpt-4", "model_b"),
        _battle(3, "j1", "gpt-4", "vicuna-13b", "tie"),
        _battle(4, "j1", "claude-v1", "vicuna-13b", "tie (bothbad)"),
        _battle(5, "j2", "gpt-4", "claude-v1", "model_a", "Ünïcödé prompt 😀"),
        _battle(6, "j2", "gpt-4", "claude-v1", "model_b"),
        _battle(7, "j2", "claude-v1", "gpt-4", "tie"),
        _battle(8, "j2", "gpt-4", "vicuna-13b", "model_a"),
        _battle(9, "j2", "claude-v1", "vicuna-13b", "model_b", "  Write a haiku.  "),
        _battle(10, "j3", "gpt-4", "claude-v1", "model_a"),
        _battle(11, "j3", "gpt-4", "claude-v1", "model_a"),
        _battle(12, "j3", "gpt-4", "claude-v1", "model_b"),
        _battle(13, None, "gpt-4", "claude-v1", "model_a"),
    ],
)
FIXTURES["chatbotarena"][1].append(_battle(14, "j2", "gpt-4", "claude-v1", "draw"))
for _task in ["chatbotarena_prompts", "chatbotarena_assistant", "chatbotarena_individual_prefs"]:
    FIXTURES[_task] = FIXTURES["chatbotarena"]
del FIXTURES["chatbotarena"]

# Sources the reference reads as CSV files from its data/ folder:
# (path under the reference's working directory, the file's text).
CSV_FIXTURES = {
    "chemistry_esol": ("data/chemistry/esol_iupac.csv", "\n".join([
        "Compound ID,measured log(solubility:mol/L),ESOL predicted log(solubility:mol/L),SMILES,SELFIES,InChI,IUPAC",
        '"1,1,1,2-Tetrachloroethane",-2.18,-2.794,ClCC(Cl)(Cl)Cl,[Cl][C][C][Branch1][C][Cl][Branch1][C][Cl][Cl],"InChI=1S/C2H2Cl4/c3-1-2(4,5)6/h1H2","1,1,1,2-tetrachloroethane"',
        '"1,1,1-Trichloroethane",-2.0,-2.232,CC(Cl)(Cl)Cl,[C][C][Branch1][C][Cl][Branch1][C][Cl][Cl],"InChI=1S/C2H3Cl3/c1-2(3,4)5/h1H3","1,1,1-trichloroethane"',
        "Water,0,1e-05,O,[O],InChI=1S/H2O/h1H2,oxidane",
        "Acetylene,0.29,0.0,C#C,[C][#C],InChI=1S/C2H2/c1-2/h1-2H,",
        'Odd one,-11.6,-9.99,C/C=C\\C,[C][/C][=C][\\C],"InChI=1S/C4H8/c1-3-4-2/h3-4H,1-2H3/b4-3-","(Z)-but-2-ene — ünïcödé"',
    ]) + "\n"),
    "chemistry_oxidative": ("data/chemistry/train_data_num_feats.csv", "\n".join([
        "Name,M1,M1_mol,M2,M2_mol,M3,M3_mol,Temp,Total_flow,Ar_flow,CH4_flow,O2_flow,CT,C2_yield,feat_vector,totkens_1_86,prompt",
        '0.93,0.26,0.37,0.32,0.185,0.04,0.185,900,15,10.5,3.0,1.5,0.5,4.62,"[0.93, 0.26]","[\'MgO\', \'BEA\']"," To synthesize the catalyst Mn-FeMoO4/SiO2 for the oxidative coupling of methane, Support (1.0 g) is impregnated with 4.5 mL of an aqueous solution consisting of Mn ( 0.37 mol) , Fe ( 0.185 mol) , Mo ( 0.185 mol) , at 50 °C for 6 h. The reaction was then ran at 900 °C. The total flow rate was 15 mL/min (Ar: 10.5 mL/min, CH4: 3.0 mL/min, O2: 1.5 mL/min), leading to a reactant contact time of 0.5 s."',
        '0.65,0.81,0.37,0.80,0.37,0.06,0.185,700,15,2.3,8.5,4.3,0.5,0,"[0.65]","[]"," A prompt with ""quotes"", a comma\nand a new line."',
        '0.5,0.5,0.37,0.5,0.37,0.5,0.185,750,15,2.3,8.5,4.3,0.5,12.1,"[0.5]","[]",Unquoted prompt',
    ]) + "\n"),
}

# GPQA's main CSV, as the password-protected archive holds it: padded and
# empty answers, an answer equal to the correct one, a multi-line question,
# unicode, a quoted comma.
def _gpqa_csv():
    import csv as _csv
    import io as _io
    out = _io.StringIO()
    w = _csv.writer(out, lineterminator="\n")
    w.writerow(["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1",
                "Incorrect Answer 2", "Incorrect Answer 3", "Explanation", "Subdomain",
                "High-level domain", "Record ID"])
    rows = [
        ("What is the spin of a photon?", "1", "0", "1/2", "3/2"),
        ("Which reagent oxidises a primary alcohol to an aldehyde?\nGive one.", "  PCC  ", "KMnO4, hot", " ", "LiAlH4"),
        ("Ünïcödé: what is ħ in SI units?", "1.054571817e-34 J·s", "6.626e-34 J·s", "1.054571817e-34 J·s", "0"),
        ("Only two wrong answers?", "yes", "no", "", "maybe"),
    ]
    for i, (q, right, *wrong) in enumerate(rows):
        w.writerow([q, q, right, *wrong, "Because.", "Physics", "Physics", f"rec{i}"])
    return out.getvalue()


CSV_FIXTURES["gpqa"] = ("data/gpqa/gpqa_main.csv", _gpqa_csv())

# The number game's file (requested from its authors): one answer per row.
# Ties for round(p * 100) (0.125, 0.145), a duplicated (set, target), padded
# set members, participants with several answers.
NUMBERGAME = ("data/numbergame/numbergame_data.csv", "\n".join([
    "id,set,target,rating,p",
    "1,16_8_2_64,4,1,0.9",
    "1,16_8_2_64,5,0,0.125",
    "1,60,80,1,0.145",
    "2,16_8_2_64,4,1,0.9",
    "2,16_ 8_2,32,0,0.5",
    "3,81_25_4_36,49,1,0.675",
    "3,1,100,0,0.0",
]) + "\n")
CSV_FIXTURES["numbergame_perc"] = NUMBERGAME
CSV_FIXTURES["numbergame_individual"] = NUMBERGAME

# The Habermas Machine's files (Google Cloud Storage): the position-statement
# ratings, and the round survey that holds each worker's opinion. Awkward
# rows: a MOCK rating before a real one of the same (worker, question), a
# repeated (worker, question), a missing rating, a rating outside the seven
# levels, two ratings in one cell, no worker, no opinion, a worker's opinion
# given twice.
def _rating(worker, qid, agreement, statement="We should act."):
    return {"index": 0, "question.text": f"Question {qid}?", "question.affirming_statement": statement,
            "question.negating_statement": "We should not act.", "question.id": qid,
            "question.topic": "politics", "ratings.agreement": agreement, "worker_id": worker,
            # The columns the distributional loader reads too (the system test
            # serves this file to both).
            "metadata.provenance": "HUMAN_CITIZEN",
            "ratings.metadata.participant_id": f"p-{worker}-{qid}-{agreement}"}


HABERMAS_RATINGS = (
    pa.schema([("index", pa.int64()), ("question.text", pa.string()),
               ("question.affirming_statement", pa.string()), ("question.negating_statement", pa.string()),
               ("question.id", pa.string()), ("question.topic", pa.string()),
               ("ratings.agreement", pa.list_(pa.string())), ("worker_id", pa.string()),
               ("metadata.provenance", pa.string()), ("ratings.metadata.participant_id", pa.string())]),
    [
        _rating("w1", "q1", ["AGREE"]),
        _rating("w10", "q1", ["NEUTRAL"]),
        _rating("w11", "q1", ["STRONGLY_AGREE"]),
        _rating("w12", "q1", ["DISAGREE"]),
        _rating("w1", "q2", ["STRONGLY_DISAGREE"], "  Padded statement, ünïcödé — 😀  "),
        _rating("w1", "q1", ["NEUTRAL"]),
        _rating("w2", "q1", ["MOCK"]),
        _rating("w2", "q1", ["SOMEWHAT_AGREE"]),
        _rating("w3", "q2", None),
        _rating("w4", "q1", ["WEIRD"]),
        _rating(None, "q1", ["AGREE"]),
        _rating("w5", "q3", ["AGREE"]),
        _rating("w6", "q2", ["AGREE", "NEUTRAL"]),
        _rating("w7", "q1", ["SOMEWHAT_DISAGREE"], 'Say "no"\nto it.'),
        _rating("w7", "q2", ["DISAGREE"]),
        _rating("w8", "q2", ["STRONGLY_AGREE"]),
    ],
)
HABERMAS_SURVEY = (
    pa.schema([("worker_id", pa.string()), ("question.id", pa.string()), ("opinion.text", pa.string()),
               ("round", pa.int64())]),
    [
        {"worker_id": "w1", "question.id": "q1", "opinion.text": "I agree, mostly.", "round": 1},
        {"worker_id": "w1", "question.id": "q2", "opinion.text": "No.", "round": 1},
        {"worker_id": "w2", "question.id": "q1", "opinion.text": "First opinion.", "round": 1},
        {"worker_id": "w2", "question.id": "q1", "opinion.text": "Second opinion.", "round": 2},
        {"worker_id": "w3", "question.id": "q2", "opinion.text": "x", "round": 1},
        {"worker_id": "w4", "question.id": "q1", "opinion.text": "y", "round": 1},
        {"worker_id": "w6", "question.id": "q2", "opinion.text": "z", "round": 1},
        {"worker_id": "w7", "question.id": "q1", "opinion.text": "Ünïcödé opinion 😀", "round": 1},
        {"worker_id": "w7", "question.id": "q2", "opinion.text": "  spaced  ", "round": 1},
        {"worker_id": "w8", "question.id": "q2", "opinion.text": None, "round": 1},
        {"worker_id": "w9", "question.id": "q9", "opinion.text": "unmatched", "round": 1},
        {"worker_id": "w10", "question.id": "q1", "opinion.text": "Neutral, really.", "round": 1},
        {"worker_id": "w11", "question.id": "q1", "opinion.text": "Yes!", "round": 1},
        {"worker_id": "w12", "question.id": "q1", "opinion.text": "No!", "round": 1},
    ],
)
# Tasks that read Parquet files from the reference's data/ folder: the main
# file (our TASK.parquet) and the joined ones (our joins/NAME).
PARQUET_FILES = {
    task: ("data/habermas_data/hm_all_position_statement_ratings.parquet", HABERMAS_RATINGS,
           {"data/habermas_data/hm_all_round_survey_responses.parquet": HABERMAS_SURVEY})
    for task in ["habermas_question", "habermas_individual", "habermas_individual_categorical"]
}

# The distributional number game needs groups of nine answers or more: two
# such groups, a set with an empty member, a group of eight (left out),
# ratings outside 0/1 and missing ones.
def _numbergame_rows():
    rows = ["id,set,target,rating"]
    for i, r in enumerate([1, 1, 0, 1, 1, 1, 0, 1, 1, 1]):
        rows.append(f"{i},16_8_2_64,4,{r}")
    for i, r in enumerate([0, 0, 0, 1, 0, 0, 0, 0, 1]):
        rows.append(f"{i},60_ 80_,90,{r}")
    for i in range(8):
        rows.append(f"{i},3_5,7,1")
    rows += ["1,16_8_2_64,4,2", "2,16_8_2_64,4,", ",16_8_2_64,4,1"]
    return "\n".join(rows) + "\n"


# The distributional Habermas task reads the ratings alone: questions with six
# answers or more from human citizens, one answer per participant.
def _habermas_dist_table():
    schema = pa.schema([("question.id", pa.string()), ("question.text", pa.string()),
                        ("question.affirming_statement", pa.string()),
                        ("question.negating_statement", pa.string()),
                        ("metadata.provenance", pa.string()),
                        ("ratings.metadata.participant_id", pa.string()),
                        ("ratings.agreement", pa.list_(pa.string())), ("worker_id", pa.string())])
    rows = []

    def add(qid, part, agreement, provenance="HUMAN_CITIZEN", worker="w", negating="Do not act."):
        rows.append({"question.id": qid, "question.text": f"Question {qid}: ünïcödé?",
                     "question.affirming_statement": "Act now.", "question.negating_statement": negating,
                     "metadata.provenance": provenance, "ratings.metadata.participant_id": part,
                     "ratings.agreement": agreement, "worker_id": worker})

    levels = ["STRONGLY_AGREE", "AGREE", "SOMEWHAT_AGREE", "NEUTRAL", "SOMEWHAT_DISAGREE", "DISAGREE", "STRONGLY_DISAGREE"]
    for i, level in enumerate(levels + ["AGREE", "NEUTRAL"]):
        add("q1", f"p{i}", [level])
    add("q1", "p0", ["DISAGREE"])           # the same participant again: the first answer stays
    add("q1", "px", ["AGREE"], provenance="MOCK_AGENT")
    add("q1", "py", ["MOCK"])
    add("q1", "pz", ["AGREE"], worker=None)
    add("q1", "pw", ["WEIRD"])
    for i in range(6):
        add("q2", f"p{i}", ["AGREE" if i % 2 else "DISAGREE"])
    for i in range(5):                      # five answers: left out
        add("q3", f"p{i}", ["AGREE"])
    for i in range(6):                      # no negating statement: groupby drops it
        add("q4", f"p{i}", ["AGREE"], negating=None)
    return pq_bytes(pa.Table.from_pylist(rows, schema=schema))


def pq_bytes(table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# Rotten Tomatoes' movie_info.csv: scores with and without "%", missing ones,
# a float score, no release date, a unicode title with a comma.
ROTTEN = "\n".join([
    "title,release_date,critic_score,audience_score,genre",
    "The Godfather,1972-03-24,97%,98%,Crime",
    "\"Amélie, or not\",,89%,,Comedy",
    "Unrated,2001-01-01,,,Drama",
    "Odd,2002-02-02,abc%,0%,Drama",
    "Full,2003-03-03,100%,7%,Drama",
]) + "\n"

# NYTIMES_proportions.json: a book whose summary holds an "Answer:" line, a
# demographic missing, one with no answers, a count for an option not listed,
# unicode.
NYTIMES = {
    "The Bee Sting By Paul Murray": {
        "MC_options": ["1: Very unlikely", "2: Somewhat unlikely", "3: Somewhat likely", "4: Very likely"],
        "genre": "Fiction",
        "summary": "In Murray\u2019s boisterous tragicomic novel, a family struggles.",
        "Democrat": {"1: Very unlikely": 9, "2: Somewhat unlikely": 6, "3: Somewhat likely": 3, "4: Very likely": 2},
        "Republican": {"1: Very unlikely": 7, "2: Somewhat unlikely": 5, "3: Somewhat likely": 5, "4: Very likely": 2},
        "Male": {"1: Very unlikely": 7, "2: Somewhat unlikely": 5, "3: Somewhat likely": 4, "4: Very likely": 1},
        "Female": {"1: Very unlikely": 9, "2: Somewhat unlikely": 5, "3: Somewhat likely": 5, "4: Very likely": 3},
    },
    "Second Book": {
        "MC_options": ["1: Very unlikely", "2: Somewhat unlikely", "3: Somewhat likely", "4: Very likely"],
        "genre": "Nonfiction",
        "summary": "A summary.\n  Answer:  \nAfter the answer line.",
        "Democrat": {"1: Very unlikely": 0, "2: Somewhat unlikely": 0, "3: Somewhat likely": 0, "4: Very likely": 0},
        "Male": {"1: Very unlikely": 1, "4: Very likely": 2, "5: Other": 1},
    },
}

# MPI: human responses (one column per item I1..I120; a missing answer, an
# answer outside 0..5, an item nobody answered, an item past the questions
# file) and the questions file (tab-separated, read by position).
MPI_RESPONSES = "\n".join([
    "ID,I1,I2,I3,I5,I119,I121,country",
    "r1,0,5,,3,1,9,US",
    "r2,0,4,,3,2,9,UK",
    "r3,1,5,,6,,9,US",
    "r4,,5,,3,1,9,DE",
]) + "\n"
MPI_QUESTIONS = "\n".join([
    "label_raw\ttext\tlabel_ocean\tkey",
    "Anxiety\tWorry about things\tN\t1",
    "Friendliness\tMake friends easily\tE\t1",
    "Imagination\tHave a vivid imagination\tO\t1",
    "Trust\tTrust others\tA\t1",
    "Self-efficacy\tComplete tasks successfully — ÜBER\tC\t1",
]) + "\n"

# Distributional tasks: the reference's loader, the files it opens (path under
# its working directory -> bytes; the first is our fixture TASK.csv/.parquet),
# and the table a hub read (hf://) answers with.
DIST = {
    "numbergame": ("numbergame", "load_numbergame_dataset",
                   {"data/numbergame/numbergame_data.csv": _numbergame_rows().encode()}, None),
    "habermas": ("habermas", "load_habermas_dataset",
                 {"data/habermas_data/hm_all_position_statement_ratings.parquet": _habermas_dist_table()}, None),
    "global_oqa": ("global_oqa", "load_globaloqa_dataset", {}, "globaloqa"),
    "states": ("states", "load_states_dataset", {}, None),
    "mpi": ("mpi", "load_mpi_dataset",
            {"data/mpi/mpi_human_resp.csv": MPI_RESPONSES.encode(),
             "data/mpi/AI_Pluralistic_Alignment/data/mpi_questions.csv": MPI_QUESTIONS.encode()}, None),
    "nytimes": ("nytimes", "load_nytimes_dataset",
                {"data/benchmarking-distributional-alignment/nytimes/NYTIMES_proportions.json":
                 json.dumps(NYTIMES, indent=1).encode()}, None),
    "rotten_tomatoes": ("rotten_tomatoes", "load_rotten_tomatoes_dataset",
                        {"data/rotten_tomatoes/rotten_tomatoes_data_1970_2024/movie_info.csv": ROTTEN.encode()}, None),
}

# The reference's generator of each task, and the call the paper makes.
GENERATORS = {
    "globaloqa": ("globaloqa", "generate_globaloqa_data"),
    "chatbotarena_prompts": ("chatbotarena", "generate_chatbotarena_prompts"),
    "chatbotarena_assistant": ("chatbotarena", "generate_chatbotarena_assistant"),
    "chatbotarena_individual_prefs": ("chatbotarena", "generate_chatbotarena_individual_prefs"),
    "habermas_question": ("habermas", "generate_habermas_question_data"),
    "habermas_individual": ("habermas", "generate_habermas_individual_data"),
    "habermas_individual_categorical": ("habermas", "generate_habermas_individual_categorical_data"),
    "novacomet_hypothesis": ("novacomet", "generate_novacomet_hypothesis_data"),
    "novacomet_premise": ("novacomet", "generate_novacomet_premise_data"),
    "drop": ("drop", "generate_drop"),
    "chemistry_esol": ("chemistry", "generate_chemistry_esol"),
    "gpqa": ("gpqa", "generate_gpqa"),
    "numbergame_perc": ("numbergame", "generate_numbergame_perc"),
    "numbergame_individual": ("numbergame", "generate_numbergame_individual"),
    "chemistry_oxidative": ("chemistry", "generate_chemistry_oxidative"),
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
    # A hub file read by path (globaloqa): the current fixture table.
    read_csv = pd.read_csv

    def hub_csv(path, *args, **kwargs):
        if str(path).startswith("hf://"):
            return current["table"].to_pandas()
        return read_csv(path, *args, **kwargs)

    pd.read_csv = hub_csv
    read_parquet = pd.read_parquet

    def hub_parquet(path, *args, **kwargs):
        if str(path).startswith("hf://"):
            return current["table"].to_pandas()
        return read_parquet(path, *args, **kwargs)

    pd.read_parquet = hub_parquet


def record(task, module_name, function, current, kwargs=None, individuals=False):
    """The reference's generator run (with `kwargs`, if any) and its output
    summarised. With `individuals`, also each ICL class's descriptions and
    the sorted pairs of its sequence, in the order the generator made them
    (for generators that make one class, and one sequence, per individual)."""
    import importlib

    from spectrum.icl_classes import icl_class

    seen = {"descriptions": None, "generate_many": None, "by_name": {}, "each": []}
    original_init = icl_class.ICLClass.__init__
    original_many = icl_class.ICLClass.generate_many

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        seen["descriptions"] = list(self.descriptions)
        seen.setdefault("by_name", {})[self.name] = list(self.descriptions)
        seen["each"].append(list(self.descriptions))

    def many(self, seed, n_per=1, n_iter=None, **kwargs):
        length = n_iter
        if hasattr(n_iter, "gi_frame"):  # geom_and_poisson_iter(mean)
            length = {"geom_and_poisson": n_iter.gi_frame.f_locals["mean"]}
        seen["generate_many"] = {
            "n_per": n_per,
            "n_iter": length,
            "permutations": kwargs.get("permutations_per_iter", 1),
            "max_inds": kwargs.get("max_inds"),
        }
        # Small n_per keeps recording fast; the texts do not depend on it.
        return original_many(self, seed, n_per=min(n_per, 20) if n_per > 0 else n_per, n_iter=n_iter, **kwargs)

    icl_class.ICLClass.__init__ = init
    icl_class.ICLClass.generate_many = many
    try:
        module = importlib.import_module(f"spectrum.icl_classes.icl_dataset_classes.{module_name}")
        data = getattr(module, function)(**(kwargs or {}))
    finally:
        icl_class.ICLClass.__init__ = original_init
        icl_class.ICLClass.generate_many = original_many
    pairs = set()
    groups = set()
    sequences = []
    for messages in data["messages"]:
        pending, these = None, []
        for m in messages:
            if m["role"] == "input":
                pending = m["content"]
            elif m["role"] == "output":
                these.append((pending, m["content"]))
                pending = None
        pairs.update(these)
        groups.add(tuple(sorted(these, key=lambda p: (p[0] or "", p[1]))))
        sequences.append(sorted([list(p) for p in these], key=lambda p: (p[0] or "", p[1])))
    result = {
        "task": task,
        "name": sorted(set(data["name"])),
        "n_per": seen["generate_many"]["n_per"],
        "n_iter": seen["generate_many"]["n_iter"],
        "permutations": seen["generate_many"]["permutations"],
        "max_inds": seen["generate_many"]["max_inds"],
        "descriptions": seen["descriptions"],
        "descriptions_by_name": seen["by_name"],
        "pairs": sorted([list(p) for p in pairs], key=lambda p: (p[0] or "", p[1])),
        "groups": sorted([[list(p) for p in g] for g in groups], key=json.dumps),
    }
    if individuals:
        assert len(seen["each"]) == len(sequences), (len(seen["each"]), len(sequences))
        result["individuals"] = [{"descriptions": d, "pairs": p} for d, p in zip(seen["each"], sequences)]
    return result


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
    # Files the reference opens from its data/ folder: each where its code
    # looks, in a working directory of its own.
    files = {task: (f"{task}.csv", {path: text.encode()}) for task, (path, text) in CSV_FIXTURES.items()}
    for task, (path, (schema, rows), joins) in PARQUET_FILES.items():
        tables = {path: (schema, rows), **joins}
        written = {}
        for p, (sch, rs) in tables.items():
            sink = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pylist(rs, schema=sch), sink)
            written[p] = sink.getvalue().to_pybytes()
        (OUT / "joins").mkdir(exist_ok=True)
        for p in joins:
            (OUT / "joins" / Path(p).name).write_bytes(written[p])
        files[task] = (f"{task}.parquet", {path: written[path], **{p: written[p] for p in joins}})
    for task, (ours, sources) in files.items():
        main = next(iter(sources.values()))
        (OUT / ours).write_bytes(main)
        work = Path(tempfile.mkdtemp(prefix="spectrum-files-"))
        for path, data in sources.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_bytes(data)
        here = os.getcwd()
        os.chdir(work)
        try:
            module_name, function = GENERATORS[task]
            result = record(task, module_name, function, current)
        finally:
            os.chdir(here)
        (OUT / f"{task}.reference.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{task}: {len(result['pairs'])} pairs, name {result['name']}")
    record_distributions(current)
    record_flight()
    record_urn()
    record_wvs(current)
    record_numpy_permutation()


def record_flight():
    """The flight task's texts for flights drawn by the reference's own
    sampler (and a few at the grid's edges): the same flights and profile must
    give the same text and the same preferred flight here."""
    import numpy as np
    from spectrum.icl_classes.icl_dataset_classes import synth_flight_prefs as fp

    cases = []
    for seed in range(1, 41):
        rng = np.random.default_rng(seed)
        profile = fp.sample_profile(rng)
        cases.append((fp.sample_flights(rng, 3), profile))
    edges = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5],
                      [1 / 99, 98 / 99, 37 / 99, 0.5], [7 / 99, 50 / 99, 99 / 99 * 0.99, 0.0]])
    cases.append((edges, np.array([0.5, -1.0, 0.0, -0.5])))
    cases.append((edges[:2], np.array([0.0, 0.0, 0.0, 0.5])))
    helper = fp.synth_flight_prefs_helper(seed=43, num_inc=2, num_flights=3)
    out = {
        "name": helper.name,
        "descriptions": list(helper.descriptions),
        "cases": [{
            "flights": [[float(x) for x in f] for f in flights],
            "profile": [float(w) for w in profile],
            "text": fp.get_flights_str(flights),
            "rating": f"{int((flights @ profile).argmax()) + 1}",
        } for flights, profile in cases],
    }
    (OUT / "flight.reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"flight: {len(cases)} cases")


def record_urn():
    """80 urns drawn by the reference's own loader: their prompts and targets,
    which the same colours and counts must give here too."""
    from spectrum.distributional_alignment.distributional_tasks import urn

    loaded = urn.load_urn_dataset(n=80, seed=42)
    items = [{
        "description": row["description_text"],
        "input": row["input_text"],
        "options": [str(o) for o in row["target_outputs"]],
        "probs": [float(p) for p in row["target_probs"]],
    } for _, row in loaded["df"].iterrows()]
    out = {"task": "urn", "output_name": loaded["output_name"], "items": items}
    (OUT / "urn.generated.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"urn: {len(items)} items")


# The World Values Survey, wave 7 (data/wvs/WVS_Cross-National_Wave_7_inverted_sav_v6_0.sav,
# an SPSS file the reference reads with pyreadstat). WVS's codes for missing
# answers, declared user-missing (pyreadstat reads them as NaN).
WVS_MISSING = {-5: "Missing; Not available", -4: "Not asked in survey", -2: "No answer", -1: "Don't know"}
WVS_RANGE = [{"lo": -5, "hi": -1}]   # user-missing as a range (-3, unlabelled, is missing too)
WVS_DISCRETE = [-1, -2, -5]          # user-missing as discrete values (-4 is not)


def _wvs_labels(*texts, missing=(-5, -4, -2, -1)):
    """Value labels in ascending order of code: WVS's missing codes, then 1..k."""
    return {**{c: WVS_MISSING[c] for c in missing}, **{i + 1: t for i, t in enumerate(texts)}}


WVS_NOTE = ("Interview held at the respondent's home; the respondent asked for "
            "«une pause» twice — ünïcödé, 日本語, 😀. ")
# (name, variable label, value labels, missing declaration), in the file's order.
WVS_COLUMNS = [
    ("version", "Version of Data File", None, None),
    ("A_YEAR", "Year of survey", None, None),
    ("B_COUNTRY", "ISO 3166-1 numeric country code",
     {20: "Andorra", 276: "Germany", 384: "Côte d'Ivoire", 792: "Türkiye", 840: "United States"}, None),
    ("N_TOWN", "Settlement size (town)",
     _wvs_labels("Under 5,000", "5,000-20,000", "Suburb ('banlieue', \"outskirts\")", "100,000-500,000",
                 'Big city ("metropolis"), 500,000 and more'), WVS_RANGE),
    ("S_INTLANGUAGE", "Language in which interview was conducted",
     {**{c: WVS_MISSING[c] for c in (-5, -2, -1)}, 1: "English", 2: "French", 3: "German", 4: "Turkish",
      5: "Català"}, WVS_DISCRETE),
    ("H_URBRURAL", "Urban-Rural", _wvs_labels("Urban", "Rural"), WVS_RANGE),
    ("D_INTERVIEW_NOTE", "Interviewer's note (free text)", None, None),
    ("Q1", "Important in life: Family",
     _wvs_labels("Very important", "Rather important", "Not very important", "Not at all important"), WVS_RANGE),
    # Quotes, an apostrophe, a long text and unicode in the labels (and the question).
    ("Q2", "Important in life: Friends — “amis”, 'Freunde'",
     _wvs_labels('Very "important"', "Rather important, isn't it",
                 "Not very important, although the respondent mentioned friends from school and from work at length",
                 "Pas du tout — ünïcödé ½", missing=(-5, -2, -1)), WVS_DISCRETE),
    # 18 value labels: the reference skips the question.
    ("Q3", "Important in life: Leisure time",
     _wvs_labels(*[f"Level {i}" for i in range(1, 15)]), WVS_RANGE),
    # Labels in the file in an order of their own (not by code).
    ("Q4", "Men make better political leaders than women do",
     {3: "Disagree", 1: "Agree strongly", -1: "Don't know", 2: "Agree", 4: "Strongly disagree",
      -2: "No answer", -5: "Missing; Not available"}, WVS_RANGE),
    # 17 value labels: the most the reference keeps (letters A to Q).
    ("Q5", "How satisfied are you with your life (scale)",
     _wvs_labels("Completely dissatisfied", *[f"Step {i}" for i in range(2, 13)], "Completely satisfied"),
     WVS_RANGE),
    # -4 is labelled but not declared missing: an answer "Not asked in survey".
    ("Q6", "Have you voted in the last election?", _wvs_labels("Yes", "No"), WVS_DISCRETE),
    # Numbers without labels (only the missing codes have labels): the
    # reference skips these four by name.
    ("Q261", "Year of birth", dict(WVS_MISSING), WVS_RANGE),
    ("Q262", "Age", dict(WVS_MISSING), WVS_DISCRETE),
    ("Q270", "Number of people in household", dict(WVS_MISSING), WVS_RANGE),
    ("Q274", "How many children do you have", dict(WVS_MISSING), WVS_RANGE),
]
NAN = float("nan")
# One row per respondent: version and A_YEAR .. Q274 in WVS_COLUMNS' order
# (NAN: system-missing).
WVS_ROWS = [
    ("6-0-0 (2024-04-30)", 2018, 276, 3, 3, 1, "", 1, 2, 5, 1, 7, 1, 1970, 48, 3, 2),
    ("6-0-0 (2024-04-30)", 2019, 384, 5, 2, 1, (WVS_NOTE * 2 + "End.").strip(), -1, 1, -2, 3, 13, 2, 1985, 34, 5, -2),
    ("6-0-0 (2024-04-30)", 2018, 792, NAN, 4, 2, "Kısa not.", 2, 4, 14, 2, -5, -4, -1, -1, 2, 0),
    # Only one answered question the reference keeps (Q5).
    ("6-0-0 (2024-04-30)", 2020, 840, 2, -2, 1, "  padded note  ", NAN, NAN, 3, NAN, 1, NAN, 1990, NAN, NAN, NAN),
    ("6-0-0 (2024-04-30)", 2021, 20, 1, 5, 2, WVS_NOTE.strip(), 1, 3, 1, -2, -3, -1, 1961, 60, 1, 3),
    ("6-0-0 (2024-04-30)", 2018, 276, 4, 3, -5, "", -4, 2, 7, 4, 10, 1, -2, 25, 8, 0),
    ("6-0-0 (2024-04-30)", 2019, 384, -1, 2, 2, "Note with \"quotes\" and 'apostrophes'.", 3, -2, 9, -1, 2, -2, 1999, 19, 4, 1),
    ("6-0-0 (2024-04-30)", 2018, 792, 5, 4, 1, "", 4, 1, 12, 2, 13, 1, 1955, 63, 1, 4),
    ("6-0-0 (2024-04-30)", 2020, 840, 3, 1, 1, "x" * 255, 1, NAN, 2, 1, 6, 2, 1980, 40, 2, 2),
    ("6-0-0 (2024-04-30)", 2021, 20, 2, -5, 2, "Nota en català: l'entrevista va anar bé.", 2, 4, -1, 3, 12, 1, 1975, 46, 3, 1),
    ("6-0-0 (2024-04-30)", 2018, 276, NAN, NAN, NAN, "", 1, 1, 1, 1, 1, 1, 2000, 18, 6, 0),
    ("6-0-0 (2024-04-30)", 2019, 792, 1, 4, 1, "ünïcödé " * 25, 2, 3, 4, -5, 8, -1, 1968, 51, 7, 5),
]
# pyreadstat.read_sav -> pandas: the reference reads `list(column_names_to_labels)[100]`
# (and does nothing with it), so its file needs 101 columns or more: padding
# columns after the real ones, numbers without labels, all system-missing.
WVS_PADDING = [f"PAD_{i:03d}" for i in range(1, 101 - len(WVS_COLUMNS) + 1)]


def wvs_table():
    """The WVS fixture as a DataFrame, and write_sav's keyword arguments."""
    data = {}
    for j, (name, _, _, _) in enumerate(WVS_COLUMNS):
        values = [row[j] for row in WVS_ROWS]
        data[name] = values if isinstance(values[0], str) else [float(v) for v in values]
    for name in WVS_PADDING:
        data[name] = [NAN] * len(WVS_ROWS)
    df = pd.DataFrame(data)
    # Every answer the reference looks up has a label (it stops in breakpoint() otherwise).
    for name, _, labels, missing in WVS_COLUMNS:
        if labels and name not in ("Q261", "Q262", "Q270", "Q274"):
            for v in df[name].dropna():
                assert v in labels or (missing == WVS_RANGE and -5 <= v <= -1) or v in (missing or []), (name, v)
    kwargs = {
        "column_labels": {name: label for name, label, _, _ in WVS_COLUMNS},
        "variable_value_labels": {name: labels for name, _, labels, _ in WVS_COLUMNS if labels},
        "missing_ranges": {name: missing for name, _, _, missing in WVS_COLUMNS if missing},
    }
    return df, kwargs


def _cell(v):
    if isinstance(v, float) and v != v:
        return None
    return v


def _read_sav(path, **kwargs):
    """What pyreadstat.read_sav(path, **kwargs) returns, as JSON values."""
    import pyreadstat

    df, meta = pyreadstat.read_sav(str(path), **kwargs)
    return {
        "columns": list(meta.column_names),
        "labels": dict(meta.column_names_to_labels),
        "value_labels": {name: [[value, label] for value, label in labels.items()]
                         for name, labels in meta.variable_value_labels.items()},
        "missing_ranges": meta.missing_ranges,
        "rows": [[_cell(v) for v in row] for row in df.astype(object).itertuples(index=False)],
    }


def record_wvs(current):
    """wvs_individual: a WVS-shaped table of 12 respondents (WVS_COLUMNS,
    WVS_ROWS, padded to 101 columns) written by pyreadstat as SPSS writes it
    (bytecode-compressed rows) to TASK.sav, and the reference's
    generate_wvs_individual run on it (n_individuals = every respondent;
    placed where the reference reads it), recorded in TASK.reference.json as
    the other tasks are, plus "individuals": each respondent's two
    descriptions and sorted pairs, in the order the reference made them.

    The same table is also written uncompressed (fixtures/sav/plain.sav) and
    zlib-compressed (fixtures/sav/compressed.zsav); fixtures/sav/pyreadstat.json
    records what pyreadstat.read_sav reads from them (the three files read
    identically; asserted): columns, variable labels (null: none), value labels
    in the file's order ([[value, label], ...]; user-missing codes' labels
    included), rows with user-missing values as NaN (read_sav's default) and
    NaN as null, and, read with user_missing=True (read_sav's default leaves
    missing_ranges empty), missing_ranges and rows_user_missing (the codes)."""
    import pyreadstat

    df, kwargs = wvs_table()
    sav_dir = OUT.parent / "sav"
    sav_dir.mkdir(parents=True, exist_ok=True)
    paths = {"row": OUT / "wvs_individual.sav", "plain": sav_dir / "plain.sav", "zlib": sav_dir / "compressed.zsav"}
    pyreadstat.write_sav(df, str(paths["row"]), row_compress=True, **kwargs)
    pyreadstat.write_sav(df, str(paths["plain"]), **kwargs)
    pyreadstat.write_sav(df, str(paths["zlib"]), compress=True, **kwargs)
    # The header's creation date and time (the only bytes that vary between
    # runs): pinned, so that rerunning leaves the files as they are.
    for path in paths.values():
        data = bytearray(path.read_bytes())
        assert data[:4] in (b"$FL2", b"$FL3") and data[94:95] == b" " and data[103:104] == b":", path
        data[92:109] = b"30 Apr 2400:00:00"
        path.write_bytes(bytes(data))
    # The header's compression field: 0 none, 1 bytecode, 2 zlib.
    for how, code in [("plain", 0), ("row", 1), ("zlib", 2)]:
        assert int.from_bytes(paths[how].read_bytes()[72:76], "little") == code, how
    reads = {how: _read_sav(p) for how, p in paths.items()}
    raw = {how: _read_sav(p, user_missing=True) for how, p in paths.items()}
    # The three files read identically (pyreadstat 1.3.8), with and without user_missing.
    assert reads["row"] == reads["plain"] == reads["zlib"]
    assert raw["row"] == raw["plain"] == raw["zlib"]
    out = {**reads["row"], "missing_ranges": raw["row"]["missing_ranges"], "rows_user_missing": raw["row"]["rows"]}
    # One row per line.
    text = json.dumps({k: v for k, v in out.items() if not k.startswith("rows")}, indent=1, ensure_ascii=False)
    for key in ["rows", "rows_user_missing"]:
        rows = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in out[key])
        text = text[:-2] + f',\n "{key}": [\n  {rows}\n ]\n}}'
    (sav_dir / "pyreadstat.json").write_text(text + "\n")
    assert json.loads(text) == json.loads(json.dumps(out))

    work = Path(tempfile.mkdtemp(prefix="spectrum-wvs-"))
    (work / "data/wvs").mkdir(parents=True)
    (work / "data/wvs/WVS_Cross-National_Wave_7_inverted_sav_v6_0.sav").write_bytes(paths["row"].read_bytes())

    def stop(*args, **kwargs):  # an answer without a label: the reference would stop here
        raise RuntimeError("the reference reached breakpoint()")

    here, hook = os.getcwd(), sys.breakpointhook
    os.chdir(work)
    sys.breakpointhook = stop
    try:
        result = record("wvs_individual", "wvs", "generate_wvs_individual", current,
                        kwargs={"n_individuals": len(WVS_ROWS)}, individuals=True)
    finally:
        os.chdir(here)
        sys.breakpointhook = hook
    (OUT / "wvs_individual.reference.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wvs_individual: {len(result['individuals'])} respondents, {len(result['pairs'])} pairs")


def record_numpy_permutation():
    """numpy's RandomState(seed).permutation(n) (for n = 97220, WVS wave 7
    v6's respondents, its first 2000 elements): the order in which pandas'
    DataFrame.sample(frac=1, random_state=seed), as the reference shuffles
    WVS's respondents, draws rows (asserted for every case)."""
    import numpy as np

    cases = [(42, n) for n in [1, 2, 3, 12, 1000, 97220]] + [(7, 10)]
    lines = []
    for seed, n in cases:
        perm = np.random.RandomState(seed).permutation(n).tolist()
        shuffled = pd.DataFrame({"x": range(n)}).sample(frac=1, random_state=seed)["x"].tolist()
        assert shuffled == perm, (seed, n)
        lines.append(json.dumps({"seed": seed, "n": n, "permutation": perm[:2000]}))
    note = ("np.random.RandomState(seed).permutation(n), whole or (n = 97220) its first 2000 elements; "
            "pandas' DataFrame.sample(frac=1, random_state=seed) draws rows in the same order")
    text = "{\n \"note\": " + json.dumps(note) + ",\n \"cases\": [\n  " + ",\n  ".join(lines) + "\n ]\n}\n"
    assert [c["permutation"] for c in json.loads(text)["cases"]][3] == np.random.RandomState(42).permutation(12).tolist()
    (OUT / "numpy_permutation.json").write_text(text)
    print(f"numpy_permutation: {len(cases)} cases")

def record_distribution(task, module_name, function):
    import importlib

    module = importlib.import_module(f"spectrum.distributional_alignment.distributional_tasks.{module_name}")
    loaded = getattr(module, function)()
    items = []
    for _, row in loaded["df"].iterrows():
        items.append({
            "description": row.get("description_text", "") if isinstance(row.get("description_text", ""), str) else "",
            "input": row["input_text"],
            "options": [str(o) for o in row["target_outputs"]],
            "probs": [float(p) for p in row["target_probs"]],
        })
    items.sort(key=lambda i: json.dumps(i, ensure_ascii=False))
    return {"task": task, "output_name": loaded["output_name"], "items": items}


def record_distributions(current):
    for task, (module_name, function, files, hub_table) in DIST.items():
        work = Path(tempfile.mkdtemp(prefix="spectrum-dist-"))
        for i, (path, data) in enumerate(files.items()):
            if i == 0:
                (OUT / f"{task}{Path(path).suffix}").write_bytes(data)
            else:  # a file the recipe joins
                (OUT / "joins").mkdir(exist_ok=True)
                (OUT / "joins" / Path(path).name).write_bytes(data)
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_bytes(data)
        if hub_table is not None:  # the same rows as that held-out task's fixture
            current["table"] = pq.read_table(OUT / f"{hub_table}.parquet")
            (OUT / f"{task}.parquet").write_bytes((OUT / f"{hub_table}.parquet").read_bytes())
        here = os.getcwd()
        os.chdir(work)
        try:
            result = record_distribution(task, module_name, function)
        finally:
            os.chdir(here)
        (OUT / f"{task}.distribution.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"{task} (distributional): {len(result['items'])} items")


if __name__ == "__main__":
    main()
