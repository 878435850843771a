"""Timelines in, timelines out: the only room that knows file formats.

``read_cuts(path)`` returns a :class:`Timeline` whatever the editor; ``write_timeline`` puts a
score track back in the input's own format. One reader/writer module per family.
"""
from __future__ import annotations

from .io import read_cuts, read_edit, read_score_tracks, write_timeline
from .model import Edit, Marker, Scene, ScoreTrack, ScoreTrackInfo, Shot, Timeline, VideoTrack, build_timeline

__all__ = [
    "Edit", "Marker", "Scene", "ScoreTrack", "ScoreTrackInfo", "Shot", "Timeline", "VideoTrack",
    "build_timeline", "read_cuts", "read_edit", "read_score_tracks", "write_timeline",
]
