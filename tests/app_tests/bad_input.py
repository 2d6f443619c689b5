"""Shared by the CLI bad-input tests: the tripwire exception and the one-line exit-2 check."""

import pytest

import app.cli


class TrainingStarted(BaseException):
    """Raised by tripwires: the command got as far as running trials."""


def run_bad(capsys, argv: list[str], *, empty_stdout: bool = True) -> str:
    """Run the CLI; assert exit status 2 and one stderr line; return that line.

    "Before any work" is asserted by the callers' tripwires, not by timing.
    """
    with pytest.raises(SystemExit) as exit_info:
        app.cli.main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, f"exit status {exit_info.value.code!r}, stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"stderr must be exactly one non-empty line, got {err!r}"
    if empty_stdout:
        assert out == "", f"nothing belongs on stdout for bad input, got {out!r}"
    return lines[0]
