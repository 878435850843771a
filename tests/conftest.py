"""Shared test set-up: fixtures' location, and no test may pass while logging an ERROR."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EMSYNC_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[1]


def _find_fixtures() -> Path:
    env = os.environ.get("EMSYNC_FIXTURES")
    candidates = [Path(env)] if env else []
    # a copy of shared/fixtures (real editor files, see SOURCES.md there) ships with the tests
    candidates += [REPO / "tests" / "fixtures", REPO.parent / "shared" / "fixtures"]
    for c in candidates:
        if (c / "edl").is_dir():
            return c
    raise RuntimeError(f"shared fixtures not found (looked in {candidates}); set EMSYNC_FIXTURES")


FIXTURES = _find_fixtures()


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(autouse=True)
def fail_on_error_logs(caplog):
    """A test that logs at ERROR (or worse) fails, even if its assertions pass."""
    ours = logging.getLogger("emsync_plugin")  # cli.main() points it at stderr only: undo that
    ours.handlers[:], ours.propagate = [], True
    ours.setLevel(logging.NOTSET)
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail("ERROR logged during the test: " + "; ".join(f"{r.name}: {r.getMessage()}" for r in errors))


def pytest_terminal_summary(terminalreporter, config):
    """How many fuzz cases each reader tried in this run (tests/test_fuzz.py)."""
    counts = getattr(config, "emsync_fuzz_counts", None)
    if counts:
        terminalreporter.write_sep("-", "fuzz cases per reader (ok / EmsyncError / crash)")
        for name, c in counts.items():
            terminalreporter.write_line(f"{name:<10} {sum(c.values()):>5}: {c['ok']} / {c['error']} / {c['crash'] + c['unexpected']}")
