"""Kdenlive projects (``.kdenlive``, MLT XML): the family's front door.

:func:`read` (:mod:`.kdenlive_read`) takes the cuts, guides and clip markers of a project;
:func:`write` (:mod:`.kdenlive_write`) puts the score back as an audio track. Both are our own
code, not an OTIO adapter; the shared MLT vocabulary is in :mod:`.kdenlive_xml`.
"""
from __future__ import annotations

from .kdenlive_audio import score_tracks
from .kdenlive_read import read
from .kdenlive_write import write
from .kdenlive_xml import FORMAT, SCORE_PROPERTY, clock, parse_time

__all__ = ["FORMAT", "SCORE_PROPERTY", "clock", "parse_time", "read", "score_tracks", "write"]
