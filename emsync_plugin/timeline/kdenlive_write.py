"""Kdenlive projects out: the score as an audio track of an existing ``.kdenlive`` project.

:func:`write` adds (or, on a re-run, refills) one "EMSYNC Score" audio track holding the WAV
and keeps everything else of the user's project, renumbering the track references Kdenlive
stores (transitions, clip groups, targets) so the project opens as it was, plus one track.
"""
from __future__ import annotations

import json
import logging
import math
import os
import wave
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import OptionsError
from ..fileio import backup, write_text
from .kdenlive_read import Project, Track
from .kdenlive_xml import (
    SCORE_PROPERTY,
    Ids,
    audio_mix,
    clock,
    has_prop,
    indent_unit,
    insert_child,
    int_or_none,
    media_clip,
    new_element,
    new_entry,
    parse_time,
    prop,
    remove_child,
    serialize,
    set_prop,
    stable_uuid,
    track_tractor,
)
from .model import ScoreTrack, is_score_name

logger = logging.getLogger(__name__)


def _wav_frames(wav: Path, rate: Fraction) -> int:
    """Length of a WAV in frames at ``rate`` (0 when it cannot be read)."""
    try:
        with wave.open(str(wav), "rb") as w:
            return math.floor(Fraction(w.getnframes(), w.getframerate()) * rate)
    except (OSError, EOFError, wave.Error, ZeroDivisionError):
        return 0


def _shift_tracks(project: Project, tractor: ET.Element, at: int, delta: int) -> None:
    """Renumber what points at tracks ``>= at`` of ``tractor`` by ``delta`` (a track was added).

    Covers the tractor's transitions and filters (``a_track``/``b_track``/``track``), Kdenlive's
    clip groups (``"track:position"``, counted without the black track) and the target/active
    track properties.
    """
    for child in tractor:
        if child.tag not in ("transition", "filter"):
            continue
        for name in ("a_track", "b_track", "track"):
            if (new := _bump(child.get(name), at, delta)) is not None:
                child.set(name, new)
            for p in child.iterfind("property"):
                if p.get("name") == name and (new := _bump(p.text, at, delta)) is not None:
                    p.text = new
    first_kdenlive = max(at - 1, 0)  # Kdenlive's track positions skip the black track
    for holder, prefix in _holders(project, tractor):
        _shift_holder(project, holder, prefix, first_kdenlive, delta)


def _bump(value: str | None, first: int, delta: int) -> str | None:
    """``value + delta`` for a track number ``>= first``; None for anything else."""
    number = int_or_none(value)
    if number is None or number < first:
        return None
    return str(number + delta)


def _shift_holder(project: Project, holder: ET.Element, prefix: str, first: int, delta: int) -> None:
    """Renumber the targets, clip groups and track counts a sequence (or the document) keeps."""
    for key in ("activeTrack", "audioTarget", "videoTarget"):
        for p in holder.iterfind("property"):
            if p.get("name") == prefix + key and (new := _bump(p.text, first, delta)) is not None:
                p.text = new
    for p in holder.iterfind("property"):
        if p.get("name") == prefix + "groups" and p.text and p.text.strip():
            try:
                groups = json.loads(p.text)
            except json.JSONDecodeError:
                logger.warning("%s: cannot parse the clip groups; leaving them as they are", project.path)
                continue
            if _shift_groups(groups, first, delta):
                p.text = json.dumps(groups, indent=4) + "\n"
        if p.get("name") in (prefix + "tracksCount", prefix + "tracks") and (number := int_or_none(p.text)) is not None:
            p.text = str(number + delta)


def _holders(project: Project, tractor: ET.Element) -> list[tuple[ET.Element, str]]:
    """Where Kdenlive keeps the groups/targets of ``tractor``: the sequence, or the document."""
    holders = [(tractor, "kdenlive:sequenceproperties.")]
    if project.main_bin is not None and not prop(tractor, "kdenlive:uuid"):
        holders.append((project.main_bin, "kdenlive:docproperties."))
    return holders


def _shift_groups(node: object, first: int, delta: int) -> bool:
    """Renumber the track of every clip/composition leaf of Kdenlive's group tree."""
    changed = False
    if isinstance(node, list):
        for item in node:
            changed |= _shift_groups(item, first, delta)
    elif isinstance(node, dict):
        if node.get("type") == "Leaf" and node.get("leaf") in ("clip", "composition"):
            track, sep, pos = str(node.get("data", "")).partition(":")
            number = int_or_none(track)
            if sep and number is not None and number >= first:
                node["data"] = f"{number + delta}:{pos}"
                changed = True
        for child in node.get("children", []) or []:
            changed |= _shift_groups(child, first, delta)
    return changed


def _referenced(root: ET.Element, *, skip: ET.Element | None = None) -> set[str]:
    """Ids used by a playlist entry or a tractor track (entries of ``skip`` not counted)."""
    ids: set[str] = set()
    for parent in root.iter():
        if parent is skip:
            continue
        for child in parent:
            if child.tag in ("entry", "track") and (producer := child.get("producer")):
                ids.add(producer)
    return ids


def write(source: str | Path, out: str | Path, score: ScoreTrack | Sequence[ScoreTrack], *,
          sequence: str | None = None, backup_source: bool = True) -> Path:
    """Write ``source`` to ``out`` with one audio track per score; return ``out``.

    Each track (named ``score.name``) holds one clip of ``score.wav`` from the timeline's start,
    ``score.duration`` long, in the open sequence (or ``sequence``); the WAVs are added to the
    project bin. ``score.metadata`` plus the MIDI and WAV paths are stored as JSON in the
    ``kdenlive:emsync`` property of the track and of the clip. A muted score is a muted track;
    ducking keyframes become a disabled volume filter on the clip (:func:`volume_filter`).
    emsync's tracks of an earlier run are refilled in place (top first), those left over
    removed, new ones added at the bottom of the audio tracks; nothing else is touched but the
    track numbers Kdenlive stores (transitions, groups, targets). ``out`` is written
    atomically; when it is ``source`` itself a timestamped backup is kept beside it (unless
    ``backup_source`` is false: ``pipeline.score`` keeps its own).
    """
    source, out = Path(source), Path(out)
    scores = [score] if isinstance(score, ScoreTrack) else list(score)
    project = Project.open(source)
    tractor, _ = project.timeline(sequence)
    if project.main_bin is None:
        raise project.error("the project has no bin (no main_bin playlist)")
    for item in scores:
        if round(Fraction(item.duration) * project.rate) <= 0:
            raise OptionsError(f"the score is {item.duration} s long", path=out,
                               hint="Write a score with a positive duration")
    root = project.root
    if not root.get("root") and out.parent.absolute() != source.parent.absolute():
        root.set("root", str(source.parent.absolute()))  # keep relative media paths valid
    doc = _Doc(project, project.main_bin, tractor, indent_unit(root), Ids(root))
    existing = sorted((t for t in project.tracks(tractor) if t.ours and t.element.tag == "tractor"),
                      key=lambda t: -t.index)  # top first: take 1 is written above take 2
    placed = [doc.clip_for(item) for item in scores]
    for item, clip, track in zip(scores, placed, existing):
        doc.refill_track(track, clip, item)
        logger.info("%s: replaced the content of the %r track", out, track.name)
    for extra in existing[len(scores):]:  # descending index: the others keep their numbers
        logger.info("%s: removing the earlier score track %r", out, extra.name)
        _remove_track(project, tractor, extra.index)
    for item, clip in list(zip(scores, placed))[len(existing):]:
        doc.add_track(clip, item)
        logger.info("%s: added the %r audio track", out, item.name)
    _extend_outs(project, tractor, max(clip.frames for clip in placed))
    keep = {element for clip in placed for element in (clip.bin_clip, clip.instance)}
    _drop_orphans(project, doc.main_bin, keep=keep)

    text = serialize(root)
    if backup_source and out.exists() and out.resolve() == source.resolve():
        backup(source)
    write_text(out, text)
    return out


def _kid(clip: ET.Element) -> str:
    return prop(clip, "kdenlive:id")


def volume_filter(filter_id: str, gain: Sequence[tuple[float, float]], frames: int, rate: Fraction) -> ET.Element:
    """Kdenlive's "Volume (keyframable)" effect (MLT ``volume``, ``level`` in dB) with the
    ducking keyframes, DISABLED: the ducking is already in the WAV, so enabling it would duck
    twice; an editor who wants editable ducking enables it and renders the score without."""
    keys: dict[int, float] = {}
    for seconds, db in gain:
        frame = min(max(round(Fraction(seconds).limit_denominator(10**6) * rate), 0), frames - 1)
        keys[frame] = float(db)
    level = ";".join(f"{clock(f, rate)}={db:g}" for f, db in sorted(keys.items()))
    return new_element("filter", {"id": filter_id, "out": clock(frames - 1, rate)}, [
        ("window", "75"), ("max_gain", "20dB"), ("level", level), ("mlt_service", "volume"),
        ("kdenlive_id", "volume"), ("kdenlive:collapsed", "0"), ("disable", "1"),
    ])


@dataclass(frozen=True)
class _Clip:
    """One score's elements before they are placed: bin clip, track instance, playlist entry."""

    bin_clip: ET.Element
    instance: ET.Element
    entry: ET.Element
    payload: str  # the JSON stored as ``kdenlive:emsync``
    frames: int


@dataclass
class _Doc:
    """The project being written: its bin, the timeline tractor, its indentation and ids."""

    project: Project
    main_bin: ET.Element
    tractor: ET.Element
    unit: str
    ids: Ids

    def clip_for(self, score: ScoreTrack) -> _Clip:
        """One score's clip in the bin and its instance and playlist entry (not placed yet)."""
        frames = round(Fraction(score.duration) * self.project.rate)
        wav = Path(os.path.abspath(score.wav))
        if not wav.is_file():
            logger.warning("%s: the score %s does not exist (yet); Kdenlive will show it as missing",
                           self.project.path, wav)
        payload = json.dumps({**dict(score.metadata), "midi": str(Path(os.path.abspath(score.midi))),
                              "wav": str(wav)}, sort_keys=True, default=str)
        bin_clip, instance = self.add_clips(wav, score.name, frames, payload)
        if score.gain:
            instance.append(volume_filter(self.ids.new("filter"), score.gain, frames, self.project.rate))
        entry = new_entry(instance.get("id", ""), 0, frames - 1, _kid(bin_clip), self.project.rate)
        return _Clip(bin_clip, instance, entry, payload, frames)

    def add_clips(self, wav: Path, name: str, frames: int, payload: str) -> tuple[ET.Element, ET.Element]:
        """The score's clip in the bin and its instance for the track (not placed yet)."""
        root, rate = self.project.root, self.project.rate
        tag = "chain" if root.find("chain") is not None else "producer"
        kid = str(self.project.next_clip_id())
        control = stable_uuid(str(wav), "score")
        length = max(frames, _wav_frames(wav, rate))

        def clip(timeline: str | None) -> ET.Element:
            return media_clip(tag, self.ids.new(tag), str(wav), length, kid, control, rate, name=name, clip_type="1",
                              audio_index=0, video_index=-1, timeline=timeline, extra=[(SCORE_PROPERTY, payload)])

        bin_clip = clip(None)
        insert_child(root, list(root).index(self.main_bin), bin_clip, self.unit, 0)
        insert_child(self.main_bin, len(self.main_bin), new_element(
            "entry", {"producer": bin_clip.get("id", ""), "in": clock(0, rate), "out": clock(length - 1, rate)}),
            self.unit, 1)
        return bin_clip, clip("audio")

    def lead(self, score: ScoreTrack) -> int:
        """Frames of blank before the score clip (a scored range starts at its in point)."""
        return max(0, round(Fraction(score.start) * self.project.rate))

    def refill_track(self, existing: Track, clip: _Clip, score: ScoreTrack) -> None:
        """Put a score clip into a score track of an earlier run."""
        instance, entry, payload, frames = clip.instance, clip.entry, clip.payload, clip.frames
        project, root, tractor, unit = self.project, self.project.root, self.tractor, self.unit
        track = existing.element
        playlists = [project.by_id[s.get("producer", "")] for s in track.iterfind("track")]
        for pl in playlists:
            for child in [c for c in pl if c.tag in ("entry", "blank")]:
                remove_child(pl, child)
        first = playlists[0]
        insert_child(root, list(root).index(first), instance, unit, 0)
        lead = self.lead(score)
        if lead:
            insert_child(first, len(first), new_element("blank", {"length": clock(lead, project.rate)}), unit, 1)
        insert_child(first, len(first), entry, unit, 1)
        for key, value in (("kdenlive:audio_track", "1"), ("kdenlive:track_name", score.name), (SCORE_PROPERTY, payload)):
            set_prop(track, key, value, unit, 1)
        for sub in track.iterfind("track"):
            sub.set("hide", _hide(score))
        track.set("out", clock(lead + frames - 1, project.rate))
        index = existing.index
        has_mix = any(prop(t, "mlt_service") == "mix" and int_or_none(prop(t, "b_track")) == index
                      for t in tractor.iterfind("transition"))
        if not has_mix:
            insert_child(tractor, _first_transition(tractor), audio_mix(self.ids.new("transition"), index), unit, 1)

    def add_track(self, clip: _Clip, score: ScoreTrack) -> None:
        """A new audio track holding the score clip, at the bottom of the audio tracks."""
        instance, entry, payload, frames = clip.instance, clip.entry, clip.payload, clip.frames
        project, root, tractor, unit, ids = self.project, self.project.root, self.tractor, self.unit, self.ids
        playlist_ids = [ids.new("playlist"), ids.new("playlist")]
        playlists = [new_element("playlist", {"id": pid}, [("kdenlive:audio_track", "1")]) for pid in playlist_ids]
        lead = self.lead(score)
        if lead:
            playlists[0].append(new_element("blank", {"length": clock(lead, project.rate)}))
        playlists[0].append(entry)
        track = track_tractor(ids.new("tractor"), playlist_ids, audio=True, name=score.name, frames=lead + frames,
                              rate=project.rate, ids=ids, extra=[(SCORE_PROPERTY, payload)])
        for sub in track.iterfind("track"):
            sub.set("hide", _hide(score))
        at = list(root).index(tractor)
        for offset, element in enumerate([instance, *playlists, track]):
            insert_child(root, at + offset, element, unit, 0)
        track_refs = tractor.findall("track")
        black = track_refs[0] if track_refs and project.is_black(track_refs[0].get("producer", "")) else None
        index = 1 if black is not None else 0  # the bottom audio track, just above the black track
        _shift_tracks(project, tractor, index, +1)
        position = list(tractor).index(black) + 1 if black is not None else _first_track(tractor)
        insert_child(tractor, position, ET.Element("track", {"producer": track.get("id", "")}), unit, 1)
        insert_child(tractor, _first_transition(tractor), audio_mix(ids.new("transition"), index), unit, 1)
        if has_prop(tractor, "kdenlive:sequenceproperties.hasAudio"):
            set_prop(tractor, "kdenlive:sequenceproperties.hasAudio", "1", unit, 1)


def _hide(score: ScoreTrack) -> str:
    """Kdenlive's ``hide`` of an audio track's playlists: "video" as always, "both" when muted."""
    return "both" if score.muted else "video"


def _first_transition(tractor: ET.Element) -> int:
    children = list(tractor)
    for i, child in enumerate(children):
        if child.tag in ("transition", "filter"):
            return i
    return len(children)


def _first_track(tractor: ET.Element) -> int:
    children = list(tractor)
    return next((i for i, c in enumerate(children) if c.tag == "track"), len(children))


def _remove_track(project: Project, tractor: ET.Element, index: int) -> None:
    """Take track ``index`` out of ``tractor`` (its own elements stay until orphan cleanup)."""
    refs = tractor.findall("track")
    remove_child(tractor, refs[index])
    for tr in list(tractor.iterfind("transition")):
        if int_or_none(prop(tr, "b_track")) == index or int_or_none(prop(tr, "a_track")) == index:
            remove_child(tractor, tr)
    for holder, prefix in _holders(project, tractor):
        for p in holder.iterfind("property"):
            if p.get("name") == prefix + "groups" and p.text and p.text.strip():
                try:
                    groups = json.loads(p.text)
                except json.JSONDecodeError:
                    continue
                pruned = _prune_groups(groups, index - 1)
                if pruned != groups:
                    p.text = json.dumps(pruned, indent=4) + "\n"
    _shift_tracks(project, tractor, index + 1, -1)


def _prune_groups(node: object, track: int) -> object:
    """Kdenlive's group list without the leaves on track position ``track``.

    A group left with one member is dissolved (a lone clip is not a group).
    """
    def prune(item: object) -> object:
        if not isinstance(item, dict):
            return item
        if item.get("type") == "Leaf":
            return None if str(item.get("data", "")).partition(":")[0] == str(track) else item
        children = [c for c in (prune(c) for c in item.get("children", []) or []) if c is not None]
        if len(children) < 2:
            return children[0] if children else None
        return {**item, "children": children}

    if not isinstance(node, list):
        return node
    kept = [prune(group) for group in node]
    return [g for g in kept if isinstance(g, dict) and g.get("type") != "Leaf"]


def _extend_outs(project: Project, tractor: ET.Element, frames: int) -> None:
    """Make the timeline (and the project tractor wrapping it) at least ``frames`` long."""
    targets = [tractor]
    for t in project.root.iterfind("tractor"):
        if prop(t, "kdenlive:projectTractor") == "1":
            targets.append(t)
            targets.extend(trk for trk in t.iterfind("track") if trk.get("producer") == tractor.get("id"))
    for element in targets:
        if element.get("out") is None:
            continue
        try:
            current = parse_time(element.get("out"), project.rate)
        except (ValueError, ZeroDivisionError):
            continue
        if current < frames - 1:
            element.set("out", clock(frames - 1, project.rate))


def _drop_orphans(project: Project, main_bin: ET.Element, keep: set[ET.Element]) -> None:
    """Remove what earlier score writes left unused: score clips and score tracks taken out.

    Only unused producers/chains carrying emsync's property, unused audio track tractors
    carrying it or named "EMSYNC Score...", and the playlists of those tractors are removed.
    """
    root = project.root
    changed = True
    while changed:
        changed = False
        used = _referenced(root, skip=main_bin)
        for element in list(root):
            element_id = element.get("id")
            if element in keep or not element_id or element_id in used:
                continue
            ours = has_prop(element, SCORE_PROPERTY)
            if element.tag in ("producer", "chain") and ours:
                for e in [e for e in main_bin.iterfind("entry") if e.get("producer") == element_id]:
                    remove_child(main_bin, e)
                remove_child(root, element)
                changed = True
            elif element.tag == "tractor" and prop(element, "kdenlive:audio_track") == "1" and (
                    ours or is_score_name(prop(element, "kdenlive:track_name"))):
                _drop_track(root, element)
                changed = True


def _drop_track(root: ET.Element, track: ET.Element) -> None:
    """Remove a track tractor and those of its playlists nothing else uses."""
    subs = {t.get("producer") for t in track.iterfind("track")}
    remove_child(root, track)
    still = _referenced(root)
    for sub in list(root):
        if sub.tag == "playlist" and sub.get("id") in subs and sub.get("id") not in still:
            remove_child(root, sub)
