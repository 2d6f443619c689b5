"""Uploaded datasets travel in the storage: stored once by content hash, written out again on any worker.

A worker on another machine cannot read a path on the UI's machine, so the UI stores the file's
bytes in ``lorascope_datasets``, a table beside Optuna's in the same database, and the study names
the dataset by its SHA-256. Each worker writes it to a local cache file, checking the hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from sqlalchemy import Column, LargeBinary, MetaData, String, Table, insert, select
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.specs import SpecError
from tuning.storage import open_storage, rdb_engine, redact_url

DATASET_SETTING = "dataset"  # study settings key: {"sha256": ..., "name": ...} of the study's --data file
METADATA = MetaData()
DATASETS = Table(
    "lorascope_datasets", METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("name", String(255), nullable=False),  # the uploaded file's name: its suffix picks the reader
    Column("content", LargeBinary().with_variant(LONGBLOB(), "mysql"), nullable=False),  # MySQL's BLOB stops at 64 KiB
)


def store_dataset(storage_url: str, path: str | Path) -> str:
    """Put the file's content into the storage (once per content, whoever stores it); return its SHA-256."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read dataset {path}: {err.strerror}") from None
    digest = _sha256(content)
    engine = _engine(storage_url)  # the storage's own engine, shared by the process: never disposed here
    try:
        _create_table(engine)
        with engine.begin() as conn:
            if conn.execute(select(DATASETS.c.sha256).where(DATASETS.c.sha256 == digest)).first() is None:
                conn.execute(insert(DATASETS).values(sha256=digest, name=path.name[-255:], content=content))
    except IntegrityError:
        pass  # the same content is there already, perhaps stored by another process a moment ago
    return digest


def dataset_record(storage_url: str, path: str | Path) -> dict[str, str]:
    """What a study records of its --data file: content hash and name; the content goes into the storage.

    A journal file cannot hold the content: its workers need the file at the same path.
    """
    digest = file_sha256(path) if storage_url.startswith("journal:") else store_dataset(storage_url, path)
    if digest is None:
        raise SpecError(f"cannot read dataset {path}")
    return {"sha256": digest, "name": Path(path).name}


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a local file's content; None when it is missing or unreadable."""
    try:
        return _sha256(Path(path).read_bytes())
    except OSError:
        return None


def materialize_dataset(storage_url: str, sha256: str, cache_dir: str | Path) -> Path:
    """The local path of dataset ``sha256``, written from the storage into ``cache_dir`` unless already there."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise SpecError(f"dataset id {sha256!r} is not a SHA-256 (64 lowercase hex digits)")
    folder = Path(cache_dir) / sha256
    cached = next((p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")), None)
    if cached is not None and _sha256(cached.read_bytes()) == sha256:
        return cached
    engine = _engine(storage_url)
    _create_table(engine)
    with engine.connect() as conn:
        row = conn.execute(select(DATASETS.c.name, DATASETS.c.content).where(DATASETS.c.sha256 == sha256)).first()
    if row is None:
        raise SpecError(f"dataset {sha256[:12]} is not in storage {redact_url(storage_url)}: "
                        f"store it with the study (lorascope stores uploads when the study is created)")
    content = bytes(row.content)
    if _sha256(content) != sha256:
        raise SpecError(f"dataset {sha256[:12]} in storage {redact_url(storage_url)} is corrupt: its content "
                        f"does not match its hash; upload it again")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(row.name).name
    # write then rename, so a worker beside this one never reads half a file
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(tmp, target)
    return target


def _engine(storage_url: str) -> Engine:
    engine = rdb_engine(open_storage(storage_url))
    if engine is None:
        raise SpecError(f"storage {redact_url(storage_url)} is a journal file, which cannot hold uploaded datasets: "
                        f"use a sqlite:///, postgresql:// or mysql:// storage")
    return engine


def _create_table(engine: Engine) -> None:
    try:
        METADATA.create_all(engine, checkfirst=True)
    except DBAPIError:  # two processes created it at once (PostgreSQL reports a duplicate type): it exists now
        METADATA.create_all(engine, checkfirst=True)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
