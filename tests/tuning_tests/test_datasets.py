"""Uploaded datasets travel in the storage: stored on the UI's machine, written out on a worker's."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select, update

from core.specs import SpecError
from tuning.datasets import DATASETS, materialize_dataset, store_dataset
from tuning.storage import open_storage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path}/shared/lorascope.db"


def _upload(folder, name="facts.jsonl", content=None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if content is not None else
                     "".join(json.dumps({"prompt": f"Q{i}", "completion": f"A{i}"}) + "\n" for i in range(50)).encode())
    return path


def _rows(url):
    with open_storage(url)._backend.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(DATASETS)).scalar_one()


def test_worker_machine_gets_the_uploaded_bytes_without_the_ui_files(url, tmp_path):
    upload = _upload(tmp_path / "ui-machine")
    content = upload.read_bytes()
    digest = store_dataset(url, upload)
    assert digest == hashlib.sha256(content).hexdigest()
    upload.unlink()  # the worker has no access to the UI's files
    path = materialize_dataset(url, digest, tmp_path / "worker-machine" / "cache")
    assert path == tmp_path / "worker-machine" / "cache" / digest / "facts.jsonl"
    assert path.read_bytes() == content


def test_storing_the_same_content_twice_keeps_one_row(url, tmp_path):
    first = store_dataset(url, _upload(tmp_path / "a", "one.csv", b"text\nhello\n"))
    second = store_dataset(url, _upload(tmp_path / "b", "two.csv", b"text\nhello\n"))
    other = store_dataset(url, _upload(tmp_path / "c", "three.csv", b"text\nbye\n"))
    assert first == second != other and _rows(url) == 2


def test_concurrent_stores_of_the_same_file_all_succeed_with_one_row(pg_url, tmp_path):
    upload, go = _upload(tmp_path / "ui", content=os.urandom(1 << 20)), tmp_path / "go"
    open_storage(pg_url)  # Optuna's own tables first: RDBStorage itself races when created concurrently
    code = ("import os, sys, time; from tuning.datasets import store_dataset\n"
            "while not os.path.exists(sys.argv[3]): time.sleep(0.001)\n"
            "print(store_dataset(sys.argv[1], sys.argv[2]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url, str(upload), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
             for _ in range(4)]
    time.sleep(3)  # let every process import and wait at the line (not an assert: a slower start only races less)
    go.touch()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {hashlib.sha256(upload.read_bytes()).hexdigest()}
    assert _rows(pg_url) == 1


def test_a_damaged_cache_file_is_written_again(url, tmp_path):
    digest = store_dataset(url, _upload(tmp_path / "ui", "data.txt", b"line one\nline two\n"))
    path = materialize_dataset(url, digest, tmp_path / "cache")
    path.write_bytes(b"tampered")
    assert materialize_dataset(url, digest, tmp_path / "cache").read_bytes() == b"line one\nline two\n"


def test_content_that_does_not_match_its_hash_is_refused(url, tmp_path):
    digest = store_dataset(url, _upload(tmp_path / "ui", "data.txt", b"good"))
    with open_storage(url)._backend.engine.begin() as conn:
        conn.execute(update(DATASETS).values(content=b"bad"))
    with pytest.raises(SpecError, match="is corrupt"):
        materialize_dataset(url, digest, tmp_path / "cache")
    assert not (tmp_path / "cache" / digest / "data.txt").exists()


@pytest.mark.parametrize("sha, expected", [("0" * 64, "is not in storage"), ("../etc", "is not a SHA-256")])
def test_unknown_or_malformed_dataset_id_is_one_line(url, tmp_path, sha, expected):
    with pytest.raises(SpecError, match=expected):
        materialize_dataset(url, sha, tmp_path / "cache")


def test_journal_storage_cannot_hold_datasets(tmp_path):
    with pytest.raises(SpecError, match="journal file"):
        store_dataset(f"journal:///{tmp_path}/j.log", _upload(tmp_path / "ui"))


def test_missing_upload_is_one_line(url, tmp_path):
    with pytest.raises(SpecError, match="cannot read dataset .*nope.jsonl"):
        store_dataset(url, tmp_path / "nope.jsonl")
