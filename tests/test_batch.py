"""``emsync batch``: many timelines at once, in a process pool or on a Dask cluster (issue 15)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from emsync_plugin import cli
from emsync_plugin.batch import BatchResult, score_many
from emsync_plugin.errors import OptionsError, TimelineError
from emsync_plugin.pipeline import ScoreOptions, score

SAMPLE = Path(cli.__file__).parent / "data" / "sample"
OPTIONS = ScoreOptions(engine="baseline")


def _copies(tmp_path: Path, n: int) -> list[Path]:
    found = []
    for k in range(n):
        folder = tmp_path / f"cut{k}"
        folder.mkdir()
        for name in ("sample.otio", "sample.mp4"):
            shutil.copy(SAMPLE / name, folder / name)
        found.append(folder / "sample.otio")
    return found


def _broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.otio"
    path.write_text("this is not a timeline {")
    return path


def test_options_pickle():
    assert pickle.loads(pickle.dumps(OPTIONS)) == OPTIONS


def test_local_pool_scores_each_like_score(tmp_path):
    good = _copies(tmp_path, 3)
    broken = _broken(tmp_path)
    seen: list[BatchResult] = []
    results = score_many([*good, broken], OPTIONS, jobs=2, progress=seen.append)

    assert [r.path for r in results] == [*good, broken]  # the order given, whatever the order finished
    assert len(seen) == 4
    assert [r.ok for r in results] == [True, True, True, False]
    for r in results[:3]:
        assert r.wav is not None and r.wav.is_file() and r.sidecar is not None and r.sidecar.is_file()
        assert r.output == r.path.with_name("sample.emsync.otio") and r.output.is_file()
        assert r.seconds > 0 and r.error == ""
    with pytest.raises(TimelineError) as raised:
        score(broken, OPTIONS)
    assert results[3].error == str(raised.value)
    assert "\n" not in results[3].error

    (tmp_path / "alone").mkdir()
    expected = score(_copies(tmp_path / "alone", 1)[0], OPTIONS)  # the same options, in this process
    assert results[0].wav is not None and results[0].wav.read_bytes() == expected.wav.read_bytes()


def test_one_file_options_refused_with_several(tmp_path):
    good = _copies(tmp_path, 2)
    with pytest.raises(OptionsError, match="-o/--output"):
        score_many(good, ScoreOptions(engine="baseline", output=tmp_path / "x.otio"))
    with pytest.raises(OptionsError, match="given twice"):
        score_many([good[0], good[0]], OPTIONS)
    with pytest.raises(OptionsError, match="--jobs"):
        score_many(good, OPTIONS, jobs=0)
    assert score_many([], OPTIONS) == []


def test_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    good = _copies(tmp_path, 2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        results = score_many(good, OPTIONS, scheduler=cluster.scheduler_address)
    assert [r.path for r in results] == good
    assert all(r.ok and r.wav is not None and r.wav.is_file() for r in results), [r.error for r in results]


def test_cli_reports_failure_and_exits_2(tmp_path, capsys):
    good = _copies(tmp_path, 1)
    broken = _broken(tmp_path)
    status = cli.main(["batch", str(good[0]), str(broken), "--engine", "baseline", "--jobs", "2"])
    out, err = capsys.readouterr()
    assert status == 2
    with pytest.raises(TimelineError) as raised:
        score(broken, OPTIONS)
    assert f"emsync: error: {raised.value}" in err.splitlines()
    assert "FAILED" in out and "1 scored, 1 failed" in out
    assert (good[0].parent / "sample.emsync.wav").is_file()


def test_unexpected_exception_is_one_line_for_its_file(monkeypatch):
    from emsync_plugin import batch, pipeline

    def crash(path, options):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(pipeline, "score", crash)
    result = batch.score_one("cut.otio", OPTIONS)
    assert not result.ok and result.error == "cut.otio: RuntimeError: boom second line"
