#!/usr/bin/env python3
"""The reference's verdicts on the paper's 22 diverse-valid tasks.

Runs the task factories of the reference (tsor13/spectrum at the pinned commit,
`src/spectrum/diverse_valid/tasks/*.py`), found by the reference's own registry
(`task_registry.get_tasks`, which is what `eval_diverse_valid_all.py` evaluates),
and records for every task its description, examples, max_new_tokens, the valid
strings of an InclusionTask, and the verdict on each probe string of a list
below (valid strings and their case, space and punctuation variants, near misses,
the empty string, unicode, very long strings, numbers at range bounds). A verdict
is what the reference's evaluation makes of a sample with that text:
`task.validate(format_with_stop_strings(text, stops))`, both the reference's own
functions. Writes crates/spectrum-suite/tests/fixtures/diverse_valid_reference.json,
which crates/spectrum-suite/tests/paper_valid.rs compares with our recipes.

Seven tasks check outputs against one of six lists the reference downloads when first
used (color names, English verbs, the periodic table, US car models). Those lists are
not shipped, so the reference is run on small probe lists written here in each
source's file format, and the fixture carries each probe list as the entries
our `word_list` rule gets for it.

Run from the repository root (needs Python >= 3.11, numpy and git; nothing else):

    python3 -m pip install numpy
    python3 scripts/record_diverse_valid.py --mirror /work/.mirror/tsor13+spectrum/repo

`--mirror` is a clone or bare mirror of https://github.com/tsor13/spectrum; the
script extracts `src/spectrum` at the pinned commit with `git archive` into a
temporary folder and imports it unmodified. The heavy imports the validators
never use (torch, transformers, tqdm, wandb) are stubbed, `requests` is stubbed
so that nothing is downloaded, and pandas is replaced by a stand-in reading the
probe lists with the csv module (`--real-pandas` uses pandas instead, to check
that the two agree: they do on these files, which hold no quoting, NA markers or
numeric columns the validators read).
"""

import argparse
import collections
import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import types
import unicodedata
from pathlib import Path

COMMIT = "5a33588ec4edfc54b74a318732d8cee89e2e2c7a"
OUT = Path("crates/spectrum-suite/tests/fixtures/diverse_valid_reference.json")

# The evaluation's stop strings (eval_diverse_valid.py); the model's own EOS
# token is left out, no probe holds one.
STOPS = ["<|eot_id|>", "<end_of_turn>", "<|im_end|>", "<|end_of_text|>", "\n"]

# Rust's `str::trim` removes White_Space characters; Python's `str.strip` also
# removes U+001C..U+001F. Probes never put those at an edge, so that the two
# cleanups agree (tested below).
RUST_WHITE_SPACE = set(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)

# ----------------------------------------------------------------------------- probe lists
# Our list name -> (rows the reference's loader extracts, as our rule gets them).
# Each is written below in its source's own file format.
COLOR_NAMES = [
    "Green", "Red", "White", "Blue", "Otterly Brown", "Petal Pink", "Cherry",
    "Baby Blue Eyes", "Grün", "Σίσυφος", "İstanbul Teal", "Straße Grey", "100 Mph",
]
# en-verbs.txt: 18 comment lines, then one row per verb; the reference skips 19
# lines, so the first verb's row is never read.
VERB_ROWS = [
    ("convolute", "convolutes", "convoluting", "convoluted"),  # line 19: skipped
    ("think", "thinks", "thinking", "thought"),
    ("hoist", "hoists", "hoisting", "hoisted"),
    ("schlep", "schleps", "schlepping", "schlepped"),
    ("run", "runs", "running", "ran"),
    ("boogie", "boogies", "boogieing", "boogied"),
    ("force-ripe", "force-ripes", "force-riping", "force-riped"),
    ("Recapitalize", "Recapitalizes", "Recapitalizing", "Recapitalized"),
]
ELEMENTS = [
    ("1", "H", "Hydrogen"), ("2", "He", "Helium"), ("11", "Na", "Sodium"),
    ("51", "Sb", "Antimony"), ("53", "I", "Iodine"), ("41", "Nb", "Niobium"),
    ("74", "W", "Tungsten"), ("13", "Al", "Aluminum"), ("118", "Uuo", "Ununoctium "),
]
CAR_FILES = {
    "2020.csv": [
        ("2020", "Ford", "Mustang"), ("2020", "Ford", "F150 SuperCrew Cab"),
        ("2020", "Tesla", "Model 3"), ("2020", "Land Rover", "Range Rover"),
        ("2020", "Mercedes-Benz", "C-Class"), ("2020", "MAZDA", "CX-5"),
        ("2020", "Porsche", "911"), ("2020", "Toyota", "Corolla"),
    ],
    "1994.csv": [
        ("1994", "Acura", "Integra"), ("1994", "Audi", "A8"),
        ("1994", "Ford", "Taurus"), ("1994", "Škoda", "Octavia"),
    ],
}

WORD_LISTS = {
    "color-names": [[n] for n in COLOR_NAMES],
    "en-verbs-present-participles": [[r[2]] for r in VERB_ROWS[1:]],
    "periodic-table-symbols": [[e[1]] for e in ELEMENTS],
    "periodic-table-names": [[e[2].strip()] for e in ELEMENTS],
    "us-car-makes": [[r[1]] for f in sorted(CAR_FILES) for r in CAR_FILES[f]],
    "us-car-make-models": [[r[1], r[2]] for f in sorted(CAR_FILES) for r in CAR_FILES[f]],
}
TASK_LISTS = {
    "car_brand": "us-car-makes",
    "car_make_model": "us-car-make-models",
    "claude_gerunds": "en-verbs-present-participles",
    "color_interesting_ex": "color-names",
    "color_normal_ex": "color-names",
    "element_names": "periodic-table-names",
    "element_symbols": "periodic-table-symbols",
}


LISTS_OUT = Path("crates/spectrum-suite/tests/fixtures/word_lists")


def write_lists(data: Path) -> None:
    """The probe lists, where and as the reference reads them."""
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "colornames.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "hex", "good name"])
        for i, name in enumerate(COLOR_NAMES):
            w.writerow([name, f"#{i:06x}", "x" if i % 2 else ""])
    with open(data / "en-verbs.txt", "w") as f:
        f.write(";;;\n" * 18)
        for inf, third, ing, past in VERB_ROWS:
            fields = [inf, "", "", third, "", ing, "", "", "", "", past, past] + [""] * 12
            f.write(",".join(fields) + "\n")
    with open(data / "periodic_table_elements.csv", "w") as f:
        f.write("atomicNumber, symbol, name, atomicMass, groupBlock\n")
        for number, symbol, name in ELEMENTS:
            f.write(f"{number}, {symbol} , {name}, 1.0(1),metal\n")
    cars = data / "us-car-models-data"
    cars.mkdir(exist_ok=True)
    for name, rows in CAR_FILES.items():
        with open(cars / name, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["year", "make", "model", "body_styles"])
            for year, make, model in rows:
                w.writerow([year, make, model, '["Sedan"]'])


# ----------------------------------------------------------------------------- stand-ins
class _Anything:
    """Whatever a stubbed module is asked for; never called by the validators."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return self

    def __getattr__(self, name):
        return self


def stub_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__getattr__ = lambda attr: _Anything()  # PEP 562
    sys.modules[name] = mod
    return mod


def stub_requests() -> None:
    mod = types.ModuleType("requests")

    def get(*a, **k):
        raise RuntimeError("record_diverse_valid.py downloads nothing")

    mod.get = get
    sys.modules["requests"] = mod


class _Str:
    def __init__(self, series):
        self._s = series

    def _map(self, fn):
        return Series([fn(v) if isinstance(v, str) else v for v in self._s._v])

    def strip(self):
        return self._map(str.strip)

    def lower(self):
        return self._map(str.lower)


class Series:
    """The few pandas Series operations the validators use."""

    def __init__(self, values):
        self._v = list(values)

    @property
    def str(self):
        return _Str(self)

    def tolist(self):
        return list(self._v)

    def unique(self):
        return Series(dict.fromkeys(self._v))

    def __iter__(self):
        return iter(self._v)


class DataFrame:
    """The few pandas DataFrame operations the validators use."""

    def __init__(self, columns=(), rows=()):
        self._cols = list(columns)
        self._rows = [list(r) for r in rows]

    @property
    def columns(self):
        return Series(self._cols)

    @columns.setter
    def columns(self, names):
        self._cols = list(names)

    def __getitem__(self, col):
        i = self._cols.index(col)
        return Series(r[i] for r in self._rows)

    def __setitem__(self, col, series):
        i = self._cols.index(col)
        for r, v in zip(self._rows, series):
            r[i] = v

    def itertuples(self):
        Row = collections.namedtuple("Pandas", ["Index"] + [str(c) for c in self._cols], rename=True)
        return (Row(i, *r) for i, r in enumerate(self._rows))


def read_csv(source, header="infer"):
    text = open(source).read() if isinstance(source, (str, os.PathLike)) else source.read()
    rows = [[float("nan") if v == "" else v for v in r] for r in csv.reader(io.StringIO(text))]
    if header is None:
        return DataFrame(range(max(map(len, rows))), rows)
    return DataFrame(rows[0], rows[1:])


def concat(frames):
    cols = frames[0]._cols
    assert all(f._cols == cols for f in frames), "the stand-in concatenates equal columns only"
    return DataFrame(cols, [r for f in frames for r in f._rows])


def stub_pandas() -> None:
    mod = types.ModuleType("pandas")
    mod.DataFrame, mod.Series, mod.read_csv, mod.concat = DataFrame, Series, read_csv, concat
    sys.modules["pandas"] = mod


# ----------------------------------------------------------------------------- probes
LONG = "probe " * 60
COMMON = [
    "", " ", "\t", "\u00a0", "a", "x y", "123", "-1", "None", "nan", "N/A", "null",
    "😀", "Ωmega", "ＡＢＣ", LONG, "valid", "Example", "Sure! Here it is:",
]


def variants(s: str) -> list:
    """Case, space and punctuation variants of a valid string."""
    out = [s, s.lower(), s.upper(), s.title(), s.swapcase(), " " + s + " ", s + "\n", "\t" + s,
           s + ".", s + "!", '"' + s + '"', s + ",", s.replace(" ", "  "), s.replace(" ", "-"),
           s.replace(" ", ""), s[:-1], s + s[-1], s + " " + s, "The answer: " + s, s + "\u200b"]
    return list(dict.fromkeys(out))


def number_probes() -> list:
    big = [
        "2147483647", "2147483648", "4294967291", "4294967295", "4294967296", "4294967297",
        "-4294967295", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "18446744073709551615", "18446744073709551616",
        "18446744073709551617", "999999999989", "1000000007", "99999999999999999999999999",
        "1" + "0" * 399 + "1", "1" + "0" * 400, "4_294_967_295", "04294967295", "+4294967295",
    ]
    small = [str(n) for n in range(-3, 14)] + [
        "17", "25", "29", "35", "47", "49", "71", "89", "91", "94", "97", "98", "99", "100",
        "101", "102", "103", "121", "617", "1000", "7919", "7921",
        "00", "01", "001", "007", "010", "0100", "+0", "-0", "+1", "+7", "+07", "+100", "-100",
        "+-1", "--1", "++1", "1_0", "1__0", "_10", "10_", "+_1", "9_7", "1_00",
        "٠", "٥", "٧", "٥٠", "٩٧", "١٠٠", "٠٧", "+٥", "-٥", "５", "９７", "１０", "𝟓", "𝟗𝟕", "७",
        "1٠", "½", "¹", "Ⅴ", "五", "5.0", "5.", ".5", "1e2", "0x10", "0b1", "0o7", "ten",
        "seven", "5 5", "5,000", "1 000", "5\u00a0", " 5", "5 ", "\t97\t", "97\n", "7 ",
    ]
    return small + big


PROBES = {
    "phone_us": [
        "555-123-4567", "800-895-0522", "(210) 346-0967", "646 562-1938", "212 555 0123",
        "(555) 123-4567", "(555)123-4567", "(555) 123 4567", "(555)-123-4567", "555.123.4567",
        "5551234567", "555-1234", "555-123-45678", "55-123-4567", "555-12-4567",
        "+1 555-123-4567", "1-555-123-4567", "555-123-4567 ext. 12", "555  123 4567",
        "555 123  4567", "555\u00a0123\u00a04567", "555\t123\t4567", "555–123–4567",
        "٥٥٥-١٢٣-٤٥٦٧", "５５５-１２３-４５６７", "abc-def-ghij", "(555 123-4567",
        "555-123-4567\n", " (555) 123-4567 ", "Phone: 555-123-4567", "555-123-456７",
    ],
    "phone_intl": [
        "+1 413-121-2591", "+44 10 2958 3938", "+81 3 8328 5625", "+33 1 42 68 53 00",
        "+49 30 12345678", "+1", "+", "+123456", "+1234567", "+12345678",
        "+123456789012345", "+1234567890123456", "+1 555", "1 555-123-4567", "555-123-4567",
        "+abc 123-4567", "+1-2-3-4-5-6-78", "+1-2-3-4-5-6-7-8", "+1 2 3 4 5 6 7",
        "+1 2 3 4 5 6 7 8", "+1\t2\t3\t4\t5\t6\t7\t8", "+1\u00a02345678", "+1\x1c2345678",
        "+1\u20032345678", "+1--2345678", "+1- 2345678", "++12345678", "+1 (555) 123-4567",
        "+1.555.123.4567", "+1234 5678", "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", "+４４ ２０ ７９４６ ０９５８",
        "+999 999 999 999 9999", "+44 20 7946 0958 ", "+44 20 7946 0958x", "+1_555_123_4567",
    ],
    "email": [
        "tsor13@cs.washington.edu", "alex.jones@domain.net", "itsagoodday@gmail.com",
        "sarah.johannesburg@organization.org", "yash@anthropic.com", "user@example.com",
        "USER@EXAMPLE.COM", "john.doe@company.org", "user+tag@example.com", "user_name@x.io",
        "user-name@example.com", "user%tag@example.com", "-@x.com", "a@b.co", "a@b.c",
        "a@b.c0m", "1@2.34", "user@example", "user@", "@example.com", "userexample.com",
        "user@.com", "user@example.", "user@example.com.", ".user@example.com",
        "user.@example.com", "us..er@example.com", "user@ex..ample.com", "user@-example.com",
        "user@example-.com", "user@exa_mple.com", "user name@example.com",
        "user@exam ple.com", "user@@example.com", "us@er@example.com", "üser@example.com",
        "user@exämple.com", "user@xn--ls8h.la", "user@[1.2.3.4]", "user@example.museum",
        "user@domain.co.uk", "user@domain.edu.au", "user@personal.xyz", "user@test.info",
        "user@mycorp.com", "user@nonprofit.ORG", "user@x.Gov", "user@x.eDu", "user@x.comm",
        "user@x.xcom", "user@com.net", "user@gov", "user@example.com\n",
        " user@example.com ", "<user@example.com>", "mailto:user@example.com",
        "x" * 64 + "@example.com", "x" * 65 + "@example.com",
        "a@" + "b" * 251 + ".com", "a@" + "b" * 252 + ".com",
        "a@" + ".".join(["b" * 60] * 4) + ".com", "user@example.com user@example.com",
        "user@ex\u00a0ample.com", "user@example.c_m", "user@sub.example.co", "a.b.c@d.e.fg",
    ],
}
PROBES["email_pro"] = PROBES["email"]

SETS = {
    "weekdays": ["Monday", "Thursday", "Sun", "Wed.", "Th", "Su", "M", "Sa", "Mondayy",
                 "Weekday", "Today", "Holiday", "8th day", "Mon.day", "Tues", "Thurs", "Weds",
                 "Sunday.", "mon.", "Mon .", "MONDAY.", "Mo", "Tu", "R", "U", "sun", "Lundi",
                 "Ｍonday", "Monday\u200b"],
    "states": ["Kentucky", "New York", "New york", "NY", "Ny", "ny", "DC", "PR", "Washington DC",
               "Washington, D.C.", "Puerto Rico", "Guam", "Los Angeles", "Canada", "XX",
               "N.Y.", "Calif.", "NewYork", "New-York", "North  Carolina", "Rhode Island ",
               "Hawaiʻi", "Hawai'i", "Mass.", "C", "CAL", "US"],
}


def probes_for(name: str, task) -> list:
    out = list(task.examples)
    if name in ("rng_1_10", "rng_1_100", "random_seed", "prime_numbers", "small_prime_numbers"):
        out += number_probes()
        if name in ("rng_1_100", "random_seed"):
            # Python's int() reads at most 4300 digits (sys.int_info.default_max_str_digits);
            # "+" passes rng_1_100's check against a leading "0".
            out += ["+" + "0" * 4299 + "7", "+" + "0" * 4300 + "7", "0" * 4300 + "7"]
    elif name == "us_phone_numbers":
        out += PROBES["phone_us"]
    elif name == "international_phone_numbers":
        out += PROBES["phone_intl"]
    elif name in ("basic_emails", "professional_emails"):
        out += PROBES["email"]
    elif hasattr(task, "valid_strings"):
        pool = SETS["weekdays"] if name.startswith("weekdays") else SETS["states"]
        out += list(task.valid_strings) + pool
        for s in task.valid_strings[:: max(1, len(task.valid_strings) // 8)]:
            out += variants(s)
    elif name in TASK_LISTS:
        rows = WORD_LISTS[TASK_LISTS[name]]
        out += [" ".join(r) for r in rows]
        out += ["convoluting", "convolute", "think", "thoughts", "running fast", "runing",
                "to run", "ran", "ingthink", "thinking ing", "recapitalizing", "Recapitalizing",
                "RECAPITALIZING", "boogieing", "force-riping", "force riping",
                "ΣΊΣΥΦΟΣ", "σίσυφοσ", "σίσυφος", "İSTANBUL TEAL", "i̇stanbul teal",
                "istanbul teal", "STRASSE GREY", "straße grey", "GRÜN", "grun", "100 mph",
                "Ununoctium", "Ununoctium ", "ununoctium", "Uuo", "uuo", "H", "h", "HE", "he",
                "Xx", "NaCl", "H2O", "Hydrogenium", "Aluminium", "Mustang Ford", "FordMustang",
                "2020 Ford Mustang GT", "Ford Focus", "Land Rover Range Rover",
                "Mercedes Benz", "mercedes-benz c-class", "Mazda CX-5", "Porsche 911 Carrera",
                "Skoda Octavia", "ŠKODA OCTAVIA", "Audi A8 1997", "Audi", "Ford F150",
                "Tesla Model 3", "Tesla", "Model 3", "Acura Integra", "Boeing", "Land Rover",
                "Land", "Rover", "Otterly  Brown", "Otterly-Brown", "Baby Blue", "Cherry Red"]
        for r in rows[:6]:
            out += variants(" ".join(r))
    else:
        raise SystemExit(f"no probes for task {name}")
    out += COMMON
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------- run
def python_strip_is_rust_trim(text: str) -> bool:
    stripped = text.strip()
    start = text.find(stripped) if stripped else len(text)
    edges = text[:start] + text[start + len(stripped):]
    return all(c in RUST_WHITE_SPACE for c in edges)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mirror", required=True, help="clone or bare mirror of tsor13/spectrum")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--real-pandas", action="store_true", help="use pandas instead of the stand-in")
    args = ap.parse_args()
    out = args.out.resolve()
    home = os.getcwd()
    # The probe files themselves, for the Rust test of our list extraction
    # (crates/spectrum-suite/tests/paper_lists.rs).
    write_lists(Path(home) / LISTS_OUT)
    with tempfile.TemporaryDirectory(prefix="diverse_valid_") as tmp:
        try:
            record(args, Path(tmp), out)
        finally:
            os.chdir(home)


def record(args, work: Path, out: Path) -> None:
    archive = subprocess.run(["git", "-C", args.mirror, "archive", "--format=tar", COMMIT, "src/spectrum"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(work / "ref", filter="data")
    write_lists(work / "run" / "data" / "diverse_valid_data")
    os.chdir(work / "run")  # the reference reads data/diverse_valid_data/ from the working folder
    sys.path.insert(0, str(work / "ref" / "src"))
    os.environ["PYTHONBREAKPOINT"] = "0"

    for name in ("torch", "transformers", "tqdm", "wandb"):
        stub_module(name)
    stub_requests()
    if not args.real_pandas:
        stub_pandas()

    from spectrum.diverse_valid.eval_diverse_valid import format_with_stop_strings
    from spectrum.diverse_valid.generation_task import InclusionTask
    from spectrum.diverse_valid.task_registry import get_tasks

    with contextlib.redirect_stdout(sys.stderr):
        factories = get_tasks(verbose=False)
    assert len(factories) == 22, sorted(factories)

    tasks = []
    for name in sorted(factories):
        task = factories[name]()
        assert task.name == name, (task.name, name)
        entry = {
            "task": name,
            "description": task.description,
            "examples": list(task.examples),
            "max_new_tokens": task.max_new_tokens,
        }
        if isinstance(task, InclusionTask):
            entry["valid_strings"] = list(task.valid_strings)
        if name in TASK_LISTS:
            entry["word_list"] = {"name": TASK_LISTS[name], "rows": WORD_LISTS[TASK_LISTS[name]]}
        verdicts = []
        for text in probes_for(name, task):
            cleaned = format_with_stop_strings(text, STOPS)
            assert cleaned == text.strip(), f"probe {text!r} holds a stop string"
            assert python_strip_is_rust_trim(text), f"probe {text!r}: Python's strip is not Rust's trim"
            with contextlib.redirect_stdout(sys.stderr):  # validate() prints what it catches
                valid = task.validate(cleaned)
            assert isinstance(valid, bool), (name, text, valid)
            verdicts.append([text, valid])
        entry["verdicts"] = verdicts
        tasks.append(entry)
        print(f"{name}: {len(verdicts)} probes, {sum(v for _, v in verdicts)} valid", file=sys.stderr)

    check_list_extraction()
    doc = {
        "reference": f"tsor13/spectrum@{COMMIT}",
        "recorded_by": "scripts/record_diverse_valid.py",
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "verdict": "task.validate(format_with_stop_strings(text, stops)); no probe holds a stop "
                   "string, so the cleanup is str.strip(), which here equals Rust's str::trim",
        "word_lists": "probe lists written in each source's file format; rows are what the "
                      "reference's loader reads from them",
        "tasks": tasks,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dump(doc), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)


def check_list_extraction() -> None:
    """The rows in WORD_LISTS are what the reference's loaders read from the probe files."""
    from spectrum.diverse_valid.tasks import cars, claude_gerunds, colors, periodic_table

    got = {
        "color-names": [[v] for v in colors.load_color_df()["name"].tolist()],
        "en-verbs-present-participles": [[v] for v in claude_gerunds.load_gerund_df()[5].tolist()],
        "periodic-table-symbols": [[v] for v in periodic_table.load_elements_df()["symbol"].tolist()],
        "periodic-table-names": [[v] for v in periodic_table.load_elements_df()["name"].tolist()],
        "us-car-makes": sorted([r.make] for r in cars.load_car_df().itertuples()),
        "us-car-make-models": sorted([r.make, r.model] for r in cars.load_car_df().itertuples()),
    }
    for name, rows in WORD_LISTS.items():
        want = sorted(rows) if name.startswith("us-car") else rows
        assert got[name] == want, (name, got[name], want)
        assert not any(isinstance(v, float) and math.isnan(v) for r in rows for v in r)


def dump(doc) -> str:
    """JSON, one verdict (and one word-list row) per line."""
    def j(v):
        return json.dumps(v, ensure_ascii=False)

    def block(items, indent):
        pad = " " * indent
        return "[\n" + ",\n".join(pad + j(x) for x in items) + "\n" + pad[:-1] + "]"

    out = ["{"]
    for key, value in doc.items():
        if key != "tasks":
            out.append(f" {j(key)}: {j(value)},")
    out.append(' "tasks": [')
    tasks = []
    for t in doc["tasks"]:
        fields = []
        for key, value in t.items():
            if key == "verdicts":
                fields.append(f"   {j(key)}: {block(value, 4)}")
            elif key == "word_list":
                rows = block(value["rows"], 5)
                fields.append(f'   {j(key)}: {{"name": {j(value["name"])}, "rows": {rows}}}')
            else:
                fields.append(f"   {j(key)}: {j(value)}")
        tasks.append("  {\n" + ",\n".join(fields) + "\n  }")
    out.append(",\n".join(tasks))
    out.append(" ]")
    out.append("}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == doc
    return text


if __name__ == "__main__":
    main()
