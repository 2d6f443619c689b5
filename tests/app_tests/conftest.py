"""Fixtures for the app tests."""

import pytest

from tuning.storage import open_storage


@pytest.fixture(scope="session", autouse=True)
def warm_storage(tmp_path_factory):
    """Pay SQLAlchemy's and Optuna's one-off import and set-up cost outside timed calls."""
    open_storage(f"sqlite:///{tmp_path_factory.mktemp('warm')}/warm.db")
