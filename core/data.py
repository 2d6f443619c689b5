"""Dataset files and examples: JSONL, JSON, CSV and TXT; a deterministic train/eval split."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.specs import SpecError

EVAL_FRACTION_MOD = 10  # about one example in ten goes to eval, chosen by content hash
MIN_TRAIN_EXAMPLES = 2  # fewer, and a "fit" is one row memorised: its eval loss says nothing
MIN_EVAL_EXAMPLES = 1
MIN_EXAMPLES = MIN_TRAIN_EXAMPLES + MIN_EVAL_EXAMPLES


@dataclass(frozen=True)
class Example:
    """One training example: plain text (prompt None) or a prompt with its completion.

    With a prompt, the loss is taken on the completion tokens only.
    """

    prompt: str | None
    completion: str


def example_from_row(row: object) -> Example | None:
    """Return the example in a JSON/CSV row, or None when the row has no usable fields."""
    if not isinstance(row, dict):
        return None
    prompt, completion, text = row.get("prompt"), row.get("completion"), row.get("text")
    if isinstance(prompt, str) and isinstance(completion, str) and completion.strip():
        return Example(prompt, completion)
    if isinstance(text, str) and text.strip():
        return Example(None, text)
    return None


def load_examples(path: str | Path, skipped: list[str] | None = None) -> list[Example]:
    """Read every usable example of a dataset file; raise SpecError when there is none.

    When ``skipped`` is given, a message per kind of skipped row is appended to it.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"data file {path} does not exist: pass an existing JSONL, JSON, CSV or TXT file")
    suffix = path.suffix.lower()
    rows_fields = "rows need 'text', or 'prompt' and 'completion'"
    try:
        if suffix == ".jsonl":
            rows, bad = _jsonl_rows(path)
        elif suffix == ".json":
            rows, bad = _json_rows(path), []
        elif suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                rows, bad = list(csv.DictReader(fh)), []
        elif suffix == ".txt":
            lines = path.read_text(encoding="utf-8").splitlines()
            rows, bad = [{"text": line} for line in lines if line.strip()], []
        else:
            raise SpecError(f"data file {path} has unknown type {suffix!r}: use .jsonl, .json, .csv or .txt")
    except UnicodeDecodeError:
        raise SpecError(f"data file {path} is not UTF-8 text") from None
    examples = [ex for ex in map(example_from_row, rows) if ex is not None]
    if not examples:
        detail = f" (line {bad[0]} is not valid JSON)" if bad else ""
        raise SpecError(f"data file {path} has no usable rows{detail}: {rows_fields}")
    if skipped is not None:
        unusable = len(rows) - len(examples)
        if bad:
            skipped.append(f"data file {path}: skipped {len(bad)} line(s) that are not valid JSON "
                           f"(first: line {bad[0]})")
        if unusable:
            skipped.append(f"data file {path}: skipped {unusable} row(s) without usable fields ({rows_fields})")
    return examples


def _jsonl_rows(path: Path) -> tuple[list[object], list[int]]:
    rows, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(number)
    return rows, bad


def _json_rows(path: Path) -> list[object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SpecError(f"data file {path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, list):
        raise SpecError(f"data file {path} must hold a JSON list of rows")
    return data


def split_examples(examples: list[Example], source: str | Path = "the dataset") -> tuple[list[Example], list[Example]]:
    """Split into (train, eval) by content hash: the same file always splits the same way.

    Raise SpecError (naming ``source``) for fewer than :data:`MIN_EXAMPLES` examples; otherwise
    train gets at least :data:`MIN_TRAIN_EXAMPLES` and eval at least one, never the same example.
    """
    if len(examples) < MIN_EXAMPLES:
        raise SpecError(f"data file {source} has {len(examples)} usable example(s); a run needs at least "
                        f"{MIN_EXAMPLES} ({MIN_TRAIN_EXAMPLES} to train, {MIN_EVAL_EXAMPLES} to evaluate): add rows",
                        field="data")
    keys = [_digest(ex) for ex in examples]
    held = {i for i, key in enumerate(keys) if not key % EVAL_FRACTION_MOD}
    if not held:
        held = {min(range(len(keys)), key=keys.__getitem__)}
    while len(examples) - len(held) < MIN_TRAIN_EXAMPLES:  # a tiny file whose hashes mostly fell on eval
        held.remove(max(held, key=keys.__getitem__))
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


def _digest(example: Example) -> int:
    text = f"{example.prompt}\x00{example.completion}"
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)
