"""Dataset files and examples: JSONL, JSON, CSV and TXT; a deterministic train/eval split."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.specs import SpecError

EVAL_FRACTION_MOD = 10  # about one example in ten goes to eval, chosen by content hash


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


def split_examples(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """Split into (train, eval) by content hash: the same file always splits the same way.

    Both parts are non-empty; a single example serves as both.
    """
    if len(examples) == 1:
        return list(examples), list(examples)
    keyed = [(_digest(ex), ex) for ex in examples]
    train = [ex for key, ex in keyed if key % EVAL_FRACTION_MOD]
    evals = [ex for key, ex in keyed if not key % EVAL_FRACTION_MOD]
    if not evals:
        chosen = min(keyed, key=lambda item: item[0])[1]
        evals, train = [chosen], [ex for ex in train if ex is not chosen]
    if not train:
        train, evals = evals[:-1], evals[-1:]
    return train, evals


def _digest(example: Example) -> int:
    text = f"{example.prompt}\x00{example.completion}"
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)
