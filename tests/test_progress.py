"""Progress bars show on a terminal and stay quiet when piped."""
from __future__ import annotations

import io
import sys

from emsync_plugin import progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_quiet_when_piped(monkeypatch):
    monkeypatch.delenv("EMSYNC_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.enabled()
    with progress.bar(total=10) as b:
        b.update(10)
    assert sys.stderr.getvalue() == ""


def test_shown_on_a_terminal(monkeypatch):
    monkeypatch.delenv("EMSYNC_NO_PROGRESS", raising=False)
    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    assert progress.enabled()
    with progress.bar(total=10, desc="rendering") as b:
        b.update(10)
    assert "rendering" in fake.getvalue()


def test_opt_out(monkeypatch):
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    monkeypatch.setenv("EMSYNC_NO_PROGRESS", "1")
    assert not progress.enabled()
