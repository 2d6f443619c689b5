"""Dataset files: what `--data` accepts, what it rejects, and how examples are split.

Accepted files (by extension):

* ``.jsonl`` -- one JSON object per line, with ``text`` or with ``prompt`` and ``completion``;
  lines that are not valid JSON are skipped, the good rows are kept;
* ``.json``  -- a JSON list of such objects;
* ``.csv``   -- a header row with a ``text`` column, or ``prompt`` and ``completion`` columns;
* ``.txt``   -- one plain-text example per non-empty line.

A file with no usable row, a missing file and an unknown extension raise ``SpecError`` with a
message that names the file and says what to change.
"""

import json
from pathlib import Path

import pytest

import core.models
from core.data import MIN_EXAMPLES, MIN_TRAIN_EXAMPLES, Example, load_examples, split_examples
from core.specs import SpecError

FIELDS_HINT = "'text', or 'prompt' and 'completion'"


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def jsonl(rows: list) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# --- accepted formats -------------------------------------------------------------------------


def test_jsonl_text_rows_are_plain_text_examples(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl([{"text": "hello world"}, {"text": "second row"}]))
    assert load_examples(path) == [Example(None, "hello world"), Example(None, "second row")]


def test_jsonl_prompt_completion_rows_keep_prompt_and_completion(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl([{"prompt": "Q: 2+2?", "completion": " 4"},
                                             {"prompt": "Q: capital of France?", "completion": " Paris"}]))
    assert load_examples(path) == [Example("Q: 2+2?", " 4"), Example("Q: capital of France?", " Paris")]


def test_jsonl_blank_lines_are_ignored(tmp_path):
    path = write(tmp_path, "d.jsonl", '\n{"text": "a"}\n\n   \n{"text": "b"}\n')
    assert load_examples(path) == [Example(None, "a"), Example(None, "b")]


def test_json_list_of_rows(tmp_path):
    path = write(tmp_path, "d.json", json.dumps([{"text": "one"}, {"prompt": "p", "completion": "c"}]))
    assert load_examples(path) == [Example(None, "one"), Example("p", "c")]


def test_csv_with_text_column(tmp_path):
    path = write(tmp_path, "d.csv", 'text\nfirst line\n"second, with a comma"\n')
    assert load_examples(path) == [Example(None, "first line"), Example(None, "second, with a comma")]


def test_csv_with_prompt_and_completion_columns(tmp_path):
    path = write(tmp_path, "d.csv", "prompt,completion\nQ1,A1\nQ2,A2\n")
    assert load_examples(path) == [Example("Q1", "A1"), Example("Q2", "A2")]


def test_txt_one_example_per_non_empty_line(tmp_path):
    path = write(tmp_path, "d.txt", "first example\n\n   \nsecond example\n")
    assert load_examples(path) == [Example(None, "first example"), Example(None, "second example")]


def test_extension_is_case_insensitive(tmp_path):
    path = write(tmp_path, "d.JSONL", jsonl([{"text": "x"}]))
    assert load_examples(path) == [Example(None, "x")]


def test_path_may_be_a_string(tmp_path):
    path = write(tmp_path, "d.txt", "only line\n")
    assert load_examples(str(path)) == [Example(None, "only line")]


# --- partly bad files: good rows are kept -----------------------------------------------------


def test_malformed_jsonl_lines_are_skipped_and_good_rows_kept(tmp_path):
    content = '{"text": "good one"}\n{not json\n{"text": "good two"}\n{"text": "unterminated\n'
    path = write(tmp_path, "d.jsonl", content)
    assert load_examples(path) == [Example(None, "good one"), Example(None, "good two")]


def test_rows_without_usable_fields_are_skipped(tmp_path):
    rows = [{"text": "kept"}, {"text": "   "}, {"other": "x"}, ["not", "an", "object"], 42,
            {"prompt": "p", "completion": ""}, {"prompt": "p"}, {"text": 5}, {"prompt": "p", "completion": "c"}]
    path = write(tmp_path, "d.jsonl", jsonl(rows))
    assert load_examples(path) == [Example(None, "kept"), Example("p", "c")]


# --- files with nothing usable ----------------------------------------------------------------


@pytest.mark.parametrize("name, content", [
    ("empty.jsonl", ""),
    ("wrong_fields.jsonl", jsonl([{"question": "q", "answer": "a"}])),
    ("blank_text.jsonl", jsonl([{"text": ""}, {"text": "  "}])),
    ("wrong_columns.csv", "question,answer\nq,a\n"),
    ("empty_list.json", "[]"),
    ("blank.txt", "\n   \n\n"),
])
def test_no_usable_rows_raises_naming_the_file_and_the_needed_fields(tmp_path, name, content):
    path = write(tmp_path, name, content)
    with pytest.raises(SpecError) as err:
        load_examples(path)
    message = str(err.value)
    assert str(path) in message
    assert "no usable rows" in message
    assert FIELDS_HINT in message


def test_all_lines_bad_json_names_the_first_bad_line(tmp_path):
    path = write(tmp_path, "bad.jsonl", '\n{broken\nalso broken\n')
    with pytest.raises(SpecError) as err:
        load_examples(path)
    message = str(err.value)
    assert str(path) in message
    assert "line 2 is not valid JSON" in message  # line 1 is blank
    assert FIELDS_HINT in message


def test_invalid_json_file_names_the_line(tmp_path):
    path = write(tmp_path, "bad.json", '[\n{"text": "a"},\n{oops}\n]')
    with pytest.raises(SpecError) as err:
        load_examples(path)
    message = str(err.value)
    assert str(path) in message
    assert "not valid JSON" in message
    assert "line 3" in message


def test_json_that_is_not_a_list_is_rejected(tmp_path):
    path = write(tmp_path, "obj.json", json.dumps({"text": "a"}))
    with pytest.raises(SpecError, match="JSON list") as err:
        load_examples(path)
    assert str(path) in str(err.value)


def test_non_utf8_file_is_rejected(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8") as err:
        load_examples(path)
    assert str(path) in str(err.value)


def test_unknown_extension_raises_naming_the_accepted_ones(tmp_path):
    path = write(tmp_path, "data.parquet", "whatever")
    with pytest.raises(SpecError) as err:
        load_examples(path)
    message = str(err.value)
    assert str(path) in message
    assert "'.parquet'" in message
    for suffix in (".jsonl", ".json", ".csv", ".txt"):
        assert suffix in message


def test_missing_file_raises(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(SpecError) as err:
        load_examples(path)
    assert str(path) in str(err.value)
    assert "does not exist" in str(err.value)


def test_directory_is_not_a_data_file(tmp_path):
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(SpecError, match="does not exist"):
        load_examples(folder)


# --- train/eval split -------------------------------------------------------------------------


def many(n: int) -> list[Example]:
    return [Example(f"question {i}?", f" answer {i}") for i in range(n)]


def test_split_is_deterministic():
    examples = many(200)
    assert split_examples(examples) == split_examples(list(examples))


def test_split_does_not_depend_on_row_order_for_membership():
    examples = many(200)
    train, evals = split_examples(examples)
    train_rev, evals_rev = split_examples(examples[::-1])
    assert set(evals) == set(evals_rev) and set(train) == set(train_rev)


def test_split_partitions_the_examples_and_keeps_their_order():
    examples = many(200)
    train, evals = split_examples(examples)
    assert sorted(train + evals, key=examples.index) == examples
    assert not set(train) & set(evals)
    assert train == [ex for ex in examples if ex in set(train)]


def test_split_puts_about_ten_percent_in_eval():
    train, evals = split_examples(many(200))
    assert len(train) + len(evals) == 200
    assert 8 <= len(evals) <= 35  # about 20 expected; hash-based, so not exact


@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_split_of_a_few_examples_keeps_the_minimum_train_and_one_eval(n):
    train, evals = split_examples(many(n))
    assert len(train) >= MIN_TRAIN_EXAMPLES and len(evals) >= 1
    assert len(train) + len(evals) == n
    assert not set(train) & set(evals)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_split_refuses_too_few_examples_naming_file_count_and_minimum(n):
    with pytest.raises(SpecError) as err:
        split_examples(many(n), "runs/uploads/x.jsonl")
    assert err.value.field == "data"
    message = err.value.message
    assert "runs/uploads/x.jsonl" in message and f"has {n} usable example(s)" in message
    assert f"at least {MIN_EXAMPLES}" in message and "\n" not in message


def test_one_valid_line_out_of_three_is_refused_with_notes_on_the_others(tmp_path):
    path = write(tmp_path, "mostly-bad.jsonl", '{"text": "the only good row"}\nnot json\n{"other": 1}\n')
    notes: list[str] = []
    with pytest.raises(SpecError, match="has 1 usable example"):
        split_examples(load_examples(path, notes), path)
    assert len(notes) == 2  # the skipped rows are still told, as notes


# --- tokenization (labels) --------------------------------------------------------------------


class FakeTokenizer:
    """One token per character; bos 1, eos 2 (enough to check how labels are laid out)."""

    bos_token_id = 1
    eos_token_id = 2

    def encode(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return [100 + ord(ch) for ch in text]


def test_tokenize_masks_bos_and_prompt_and_labels_completion_plus_eos():
    from core.text_task import tokenize

    tok = FakeTokenizer()
    [(ids, labels)] = tokenize([Example("ab", "cd")], tok, max_length=64)
    prompt, answer = [tok.encode("ab")[0], tok.encode("ab")[1]], tok.encode("cd") + [2]
    assert ids == [1] + prompt + answer
    assert labels == [-100] * 3 + answer


def test_tokenize_plain_text_masks_only_bos():
    from core.text_task import tokenize

    tok = FakeTokenizer()
    [(ids, labels)] = tokenize([Example(None, "xyz")], tok, max_length=64)
    assert ids == [1] + tok.encode("xyz") + [2]
    assert labels == [-100] + tok.encode("xyz") + [2]


def test_tokenize_truncates_and_drops_examples_with_no_label_left():
    from core.text_task import tokenize

    tok = FakeTokenizer()
    rows = tokenize([Example("a long prompt", "c"), Example("p", "completion")], tok, max_length=5)
    assert len(rows) == 1  # the first example's completion is cut off entirely
    ids, labels = rows[0]
    assert len(ids) == len(labels) == 5
    assert labels[:2] == [-100, -100] and labels[2:] == tok.encode("com")


class CountingTokenizer(FakeTokenizer):
    """Records the length of every text it is asked to encode."""

    def __init__(self):
        self.lengths: list[int] = []

    def encode(self, text, add_special_tokens=False):
        self.lengths.append(len(text))
        return super().encode(text, add_special_tokens)


def test_tokenize_clips_a_huge_line_before_encoding_it():
    from core.text_task import CHARS_PER_TOKEN_MAX, tokenize

    tok = CountingTokenizer()
    huge = "x" * 5_000_000  # one 5 MB line; the tokenizer must never see all of it
    [(ids, labels)] = tokenize([Example(huge, huge), Example(None, huge)], tok, max_length=16)[:1]
    assert max(tok.lengths) == 16 * CHARS_PER_TOKEN_MAX
    assert len(ids) == len(labels) == 16  # the kept tokens are the same as without clipping


def test_tokenize_does_not_clip_text_that_fits():
    from core.text_task import tokenize

    tok = CountingTokenizer()
    text = "y" * 300
    [(ids, _)] = tokenize([Example(None, text)], tok, max_length=1000)
    assert tok.lengths == [300] and ids == [1] + tok.encode(text)[:] + [2]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    if not (Path(core.models.TINY_LM) / "config.json").is_file():
        pytest.skip(f"built-in tiny LM not found at {core.models.TINY_LM} (scripts/build_tiny_lm.py makes it)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(core.models.TINY_LM), local_files_only=True)


def test_tokenize_with_the_tiny_lm_labels_only_the_completion(tiny_tokenizer):
    from core.text_task import tokenize

    tok = tiny_tokenizer
    example = Example("The capital of Velmora is", " Quandrel.")
    [(ids, labels)] = tokenize([example], tok, max_length=128)
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    prompt_ids = bos + tok.encode(example.prompt, add_special_tokens=False)
    completion_ids = tok.encode(example.completion, add_special_tokens=False)
    assert len(completion_ids) > 0
    assert ids == prompt_ids + completion_ids + [tok.eos_token_id]
    assert labels[:len(prompt_ids)] == [-100] * len(prompt_ids)
    assert labels[len(prompt_ids):] == completion_ids + [tok.eos_token_id]
    assert -100 not in labels[len(prompt_ids):]


def test_tokenize_with_the_tiny_lm_plain_text_is_labelled_after_bos(tiny_tokenizer):
    from core.text_task import tokenize

    tok = tiny_tokenizer
    [(ids, labels)] = tokenize([Example(None, "hello world")], tok, max_length=128)
    n_bos = 1 if tok.bos_token_id is not None else 0
    text_ids = tok.encode("hello world", add_special_tokens=False)
    assert labels == [-100] * n_bos + text_ids + [tok.eos_token_id]
    assert ids[n_bos:] == text_ids + [tok.eos_token_id]


def test_skipped_rows_are_reported_when_asked(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "good"}\nnot json\n{"other": 1}\n{"text": "also good"}\n')
    notes: list[str] = []
    examples = load_examples(path, notes)
    assert [e.completion for e in examples] == ["good", "also good"]
    assert "skipped 1 line(s) that are not valid JSON (first: line 2)" in notes[0]
    assert "skipped 1 row(s) without usable fields" in notes[1]
