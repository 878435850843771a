"""Kill ``emsync score --in-place`` at random moments: the project is never lost or half-written.

After each SIGKILL the project is either untouched or a complete scored one with its backup
beside it; every output present is complete (the WAV has all its samples, the MIDI and the
settings parse); what a killed run leaves is at most hidden temporary files that are never
taken for outputs, and the next run clears them once they are stale.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pretty_midi
import pytest
import soundfile

from emsync_plugin import fileio
from emsync_plugin.sidecar import read_sidecar
from emsync_plugin.timeline import read_cuts

SAMPLE = Path(__file__).resolve().parents[1] / "emsync_plugin" / "data" / "sample"
SEED = 5
KILLS = 5  # per project format


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _command(project: Path) -> list[str]:
    return [sys.executable, "-m", "emsync_plugin", "score", str(project), "--in-place", "--engine", "baseline",
            "--valence", "0.3", "--arousal", "0", "-q"]


def _env() -> dict:
    env = dict(os.environ, EMSYNC_NO_PROGRESS="1")
    env.pop("PYTHONHASHSEED", None)
    return env


def _check_folder(folder: Path, project: Path, original: str, duration: float) -> str:
    """The state a (killed) run left; returns "old" or "new"."""
    outputs = {project.stem + ".emsync" + s for s in (".wav", ".mid", ".json")}
    targets = [project] + [folder / n for n in outputs] + list(folder.glob(f"{project.stem}.*.bak{project.suffix}"))
    state = "old" if _sha(project) == original else "new"
    read_cuts(project)  # parses, whatever happened
    backups = list(folder.glob(f"{project.stem}.*.bak{project.suffix}"))
    if state == "new":
        assert b"EMSYNC Score" in project.read_bytes()
        assert any(_sha(b) == original for b in backups), "the original was replaced without a backup"
    for b in backups:  # of the original, or of what an earlier run made of it: complete either way
        read_cuts(b)
        assert _sha(b) == original or b"EMSYNC Score" in b.read_bytes(), f"{b.name} is not a complete copy"
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            known = fileio.is_scratch(entry) or any(fileio.is_temp(entry, t) for t in targets)  # the render's float audio
            assert known, f"unexpected hidden file {entry.name}"
            continue
        if entry.name.endswith(".wav"):
            info = soundfile.info(str(entry))
            assert info.frames == round(duration * info.samplerate), "a WAV with missing samples"
        elif entry.name.endswith(".mid"):
            pretty_midi.PrettyMIDI(str(entry))
        elif entry.name.endswith(".json"):
            read_sidecar(entry)
        else:
            assert entry == project or entry in backups, f"unexpected file {entry.name}"
    return state


@pytest.mark.parametrize("name", ["sample.otio", "sample.kdenlive"])
def test_killed_runs_lose_nothing(tmp_path, name):
    duration = read_cuts(SAMPLE / name).duration
    full = tmp_path / "full"
    full.mkdir()
    shutil.copy(SAMPLE / name, full / name)
    original = _sha(full / name)
    t0 = time.monotonic()
    subprocess.run(_command(full / name), env=_env(), check=True, capture_output=True, timeout=300)
    took = time.monotonic() - t0
    assert _check_folder(full, full / name, original, duration) == "new"

    rng = random.Random(SEED)
    states = []
    for k in range(KILLS):
        folder = tmp_path / f"kill{k}"
        folder.mkdir()
        project = folder / name
        shutil.copy(SAMPLE / name, project)
        delay = rng.uniform(0.35, 1.05) * took  # imports take the first part of a run
        proc = subprocess.Popen(_command(project), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        states.append(_check_folder(folder, project, original, duration))

        # the next run completes; temporary files a killed run left are cleared once stale
        leftovers = [p for p in folder.iterdir() if p.name.startswith(".")]
        for p in leftovers:
            os.utime(p, (time.time() - 2 * fileio.STALE_AFTER,) * 2)
        subprocess.run(_command(project), env=_env(), check=True, capture_output=True, timeout=300)
        assert not [p for p in folder.iterdir() if p.name.startswith(".")], "stale temporary files stayed"
        assert _check_folder(folder, project, original, duration) == "new"
    assert len(states) == KILLS


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_ctrl_c_stops_the_run_and_its_workers_without_a_traceback(tmp_path):
    """Ctrl-C reaches every process of the terminal's group: the workers leave it to emsync, which
    stops them and says so in one line (a worker's own KeyboardInterrupt printed a traceback)."""
    for name in ("sample.otio", "sample.mp4"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    proc = subprocess.Popen([sys.executable, "-m", "emsync_plugin", "score", str(tmp_path / "sample.otio"), "-q"],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the generator's worker and the render's two are running
    workers = _children(proc.pid)
    assert len(workers) >= 3, "the workers did not start"
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and "emsync: interrupted" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{w}/status").exists() and "State:\tZ" not in Path(f"/proc/{w}/status").read_text()
                   for w in workers), "a worker outlived the run"
