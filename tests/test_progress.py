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


def test_listen_reports_the_bars_of_this_thread_only(monkeypatch):
    import threading

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    heard = []
    with progress.listen(lambda desc, fraction: heard.append((desc, fraction))):
        assert list(progress.bar(["a", "b", "c", "d"], desc="analysing scenes")) == ["a", "b", "c", "d"]
        with progress.bar(total=10, desc="generating") as b:
            b.update(5)
            b.update(10)  # beyond the total: clipped
        other = threading.Thread(target=lambda: list(progress.bar([1, 2], desc="elsewhere")))
        other.start()
        other.join()
    list(progress.bar([1, 2], desc="after"))

    assert heard == [("analysing scenes", 0.0), ("analysing scenes", 0.25), ("analysing scenes", 0.5),
                     ("analysing scenes", 0.75), ("analysing scenes", 1.0),
                     ("generating", 0.0), ("generating", 0.5), ("generating", 1.0)]
    assert sys.stderr.getvalue() == ""  # still no bar without a terminal
