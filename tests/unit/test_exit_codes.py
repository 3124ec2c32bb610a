"""The CLI's one table from domain errors to exit codes (pure)."""

from __future__ import annotations

import pytest

from runtrack.cli.root import exit_code_for
from runtrack.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidInput,
    JobBusy,
    RunNotCancellable,
    RunNotFound,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("limit", "got 0"), 2),
        (ConfigurationError("bad"), 2),
        (RunNotFound(3), 1),
        (RunNotCancellable(3, "success"), 1),
        (JobBusy("j", [1], 1), 1),
        (DatabaseUnavailable("down"), 1),
        (ValueError("bug"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_code_table(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def test_the_package_app_is_the_typer_application_whatever_was_imported_first() -> None:
    # The module of the root group is imported above, before anything asked
    # the package for ``app``; the name still means the application.
    import typer

    from runtrack.cli import app

    assert isinstance(app, typer.Typer)
