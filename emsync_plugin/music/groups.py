"""Instrument groups: which stem an instrument of a score belongs to.

emsync names its instruments ``"EMSYNC <group>"`` (the generator's vocabulary groups, the
baseline's parts), so the name decides for its own scores; any other instrument goes by its
General MIDI program family, drums to ``"drums"``. Group names are safe in file names
(lower case, ``a-z 0-9 -``): the stems are written as ``NAME.emsync.stem-GROUP.wav``.
"""
from __future__ import annotations

import re

import pretty_midi

#: The prefix of the instruments emsync writes ("EMSYNC bass").
PREFIX = "EMSYNC "

# First program (0-based) of each General MIDI family and the group it is; strings take in the
# ensembles (40-51), as an orchestrator would.
_FAMILIES: tuple[tuple[int, str], ...] = (
    (0, "piano"), (8, "mallets"), (16, "organ"), (24, "guitar"), (32, "bass"), (40, "strings"),
    (52, "choir"), (56, "brass"), (64, "reed"), (72, "pipe"), (80, "lead"), (88, "pad"),
    (96, "effects"), (104, "ethnic"), (112, "percussion"), (120, "sound-effects"),
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def instrument_group(inst: pretty_midi.Instrument) -> str:
    """The group of ``inst``: from an ``"EMSYNC <group>"`` name, else drums or its GM family."""
    name = inst.name or ""
    if name.upper().startswith(PREFIX.upper()):
        group = _slug(name[len(PREFIX):])
        if group:
            return group
    if inst.is_drum:
        return "drums"
    program = min(max(int(inst.program), 0), 127)
    return next(group for first, group in reversed(_FAMILIES) if program >= first)


def score_groups(midi: pretty_midi.PrettyMIDI) -> tuple[str, ...]:
    """The groups of ``midi``'s instruments, each once, in the order they first appear."""
    return tuple(dict.fromkeys(instrument_group(inst) for inst in midi.instruments))
