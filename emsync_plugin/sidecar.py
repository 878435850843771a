"""The settings file beside a score (``NAME.emsync.json``): what a run did, and what a re-score keeps.

Scripts and the editor bridges read it back; the next run reads each scene's identity and notes
from it to keep the music of the scenes that did not change (:mod:`.rescore`).
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pretty_midi

from . import rescore
from .errors import OptionsError, TimelineError
from .mood import SceneMood
from .timeline import Timeline
from .timeline import io as timeline_io

logger = logging.getLogger(__name__)

SIDECAR_MAX_BYTES = 64 * 1024 * 1024


def read_sidecar(path: str | Path) -> dict:
    """The settings a run wrote beside its score (``NAME.emsync.json``), checked.

    For scripts and the editor bridges that read back what a run did. A file that is not a
    complete sidecar (truncated, edited by hand, another program's JSON) is a TimelineError
    naming it, never a half-read dict.
    """
    path = Path(path)
    hint = "score the timeline again to rewrite it"
    try:
        if path.stat().st_size > SIDECAR_MAX_BYTES:
            raise TimelineError(f"is larger than a settings file can be ({path.stat().st_size:,} bytes)", path=path, hint=hint)
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise TimelineError(f"cannot be read ({exc.strerror or exc})", path=path, hint=hint) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise TimelineError(f"is not a valid emsync settings file ({type(exc).__name__})", path=path, hint=hint) from None

    def bad(what: str):
        return TimelineError(f"is not a valid emsync settings file ({what})", path=path, hint=hint)

    def number(value, what: str, low: float = -math.inf, high: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise bad(f"{what} is {str(value)[:40]!r}")
        return float(value)

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    for key in ("version", "engine", "wav", "midi"):
        if not isinstance(data.get(key), str):
            raise bad(f"{key!r} is missing")
    if isinstance(data.get("seed"), bool) or not isinstance(data.get("seed"), int):
        raise bad("'seed' is missing")
    duration = number(data.get("duration"), "duration", 0.0)
    number(data.get("rate"), "rate", 1e-9)
    cuts = data.get("cuts")
    if not isinstance(cuts, list):
        raise bad("'cuts' is missing")
    for c in cuts:
        number(c, "a cut", 0.0, duration)
    scenes = data.get("scenes")
    if not isinstance(scenes, list):
        raise bad("'scenes' is missing")
    for scene in scenes:
        if not isinstance(scene, dict):
            raise bad("a scene is not an object")
        if isinstance(scene.get("index"), bool) or not isinstance(scene.get("index"), int):
            raise bad("a scene has no index")
        number(scene.get("start"), "a scene's start", 0.0, duration)
        number(scene.get("end"), "a scene's end", 0.0, duration)
        number(scene.get("valence"), "a scene's valence", -1.0, 1.0)
        number(scene.get("arousal"), "a scene's arousal", -1.0, 1.0)
    return data




def sidecar_of(path: Path) -> Path:
    """The settings file a run that wrote the scored timeline ``path`` put beside it."""
    stem = path.stem[: -len(".emsync")] if path.stem.endswith(".emsync") else path.stem
    return path.with_name(f"{stem}.emsync.json")


def record(run: dict, timeline: Timeline, moods: Sequence[SceneMood], decisions: Sequence[rescore.Decision],
           midi: pretty_midi.PrettyMIDI, previous: rescore.Previous | None, model_sha256: str | None) -> dict:
    """The sidecar: ``run`` (version, engine, seed, files, loudness, ...), the timeline's cuts, and per
    scene its mood, identity, what happened to its music and its notes."""
    instruments, notes = rescore.notes_by_scene(midi, timeline)
    scenes = []
    for mood, scene, decision, scene_notes in zip(moods, timeline.scenes, decisions, notes):
        entry = asdict(mood)
        del entry["label"]
        entry.update({"identity": rescore.Identity.of(scene).to_json(), "music": decision.action,
                      "previous": decision.previous, "reason": decision.reason, "notes": scene_notes})
        scenes.append(entry)
    return {
        **run,
        "model_sha256": model_sha256,
        "previous": None if previous is None else str(previous.path),
        "rate": timeline.rate,
        "duration": timeline.duration,
        "cuts": list(timeline.cuts),
        "instruments": instruments,
        "scenes": scenes,
    }


def written_files(data: dict) -> list[str]:
    """Every file a run's sidecar says it wrote: the mix, MIDI and sidecar, each take's, each stem."""
    files = [data[k] for k in ("wav", "midi", "sidecar") if isinstance(data.get(k), str)]
    stems = data.get("stems")
    if isinstance(stems, dict):
        files += [p for p in stems.values() if isinstance(p, str)]
    for take in data.get("takes") or ():
        if isinstance(take, dict):
            files += [take[k] for k in ("wav", "midi") if isinstance(take.get(k), str)]
    return files


def take_record(number: int, seed: int, wav: Path, midi_path: Path, midi: pretty_midi.PrettyMIDI,
                timeline: Timeline) -> dict:
    """One take of a run with ``--takes``: its seed, files, and notes per scene (as ``record``)."""
    instruments, notes = rescore.notes_by_scene(midi, timeline)
    return {"take": number, "seed": seed, "wav": str(wav), "midi": str(midi_path), "instruments": instruments,
            "notes": notes}


def for_timeline(settings: dict) -> dict:
    """The settings as the timeline's metadata carries them: the notes stay in the sidecar (and
    the MIDI); each scene records its span of the score's notes as ``[first, count]``."""
    first = 0
    scenes = []
    for scene in settings["scenes"]:
        count = len(scene.get("notes", ()))
        scenes.append({**{k: v for k, v in scene.items() if k != "notes"}, "events": [first, count]})
        first += count
    takes = [{k: v for k, v in t.items() if k != "notes"} for t in settings.get("takes", ())]
    return {**settings, "scenes": scenes, **({"takes": takes} if takes else {})}


def previous_score(path: Path, fallback: Path, *, fresh: bool = False, chosen: Path | None = None,
                   take: int | None = None) -> rescore.Previous | None:
    """The score a run on ``path`` keeps music from: ``chosen`` (``--previous``), else the one
    the timeline already carries (its sidecar, or ``fallback``, the run's own); none with
    ``fresh``. ``take``: the take to keep (None: the one the editor left playing)."""
    if fresh:
        return None
    if chosen is not None:
        candidate = chosen
        if not candidate.is_file():
            raise OptionsError(f"--previous {candidate} does not exist", hint="name the NAME.emsync.json of the earlier score")
    else:
        if not timeline_io.written_by_emsync(path):
            return None  # the timeline carries no score of its own: a first score
        candidate = sidecar_of(path)
        if not candidate.is_file():
            candidate = fallback
        if not candidate.is_file():
            logger.info("%s carries an EMSYNC Score but its settings file %s is gone; scoring every scene afresh",
                        path.name, candidate.name)
            return None
    try:
        return rescore.read_previous(read_sidecar(candidate), candidate, take=take or chosen_take(path))
    except TimelineError as exc:
        logger.warning("%s", exc)
        return None


def chosen_take(path: Path) -> int:
    """The take the editor left playing: the first unmuted take track on the timeline (else 1)."""
    for track in timeline_io.read_score_tracks(path):
        number = track.metadata.get("take")
        if not track.muted and isinstance(number, int) and not isinstance(number, bool):
            return number
    return 1
