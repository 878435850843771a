"""The mood of one scene: the one type that emotion analysis produces and the music consumes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import OptionsError

#: Where a mood came from: the editor (``cli``, ``marker``), the analysis (``faces``, ``cues``),
#: or nothing at all (``default``: neutral).
SOURCES = ("cli", "marker", "faces", "cues", "default")


@dataclass(frozen=True)
class SceneMood:
    """Valence and arousal (each in ``[-1, 1]``) of scene ``index``, ``start`` .. ``end`` seconds."""

    index: int
    start: float
    end: float
    valence: float
    arousal: float
    source: str = "default"  # one of SOURCES
    probs: dict = field(default_factory=dict)  # the face model's class probabilities, {} without faces
    label: str = ""  # the editor's words for an override ("tense", "v=0.20 a=0.70"), else ""

    def __post_init__(self) -> None:
        for name in ("start", "end", "valence", "arousal"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise OptionsError(f"mood {name} must be a finite number, not {value!r}")
        if self.end < self.start:
            raise OptionsError(f"mood ends ({self.end}) before it starts ({self.start})")

    def to_json(self) -> dict:
        """What ``emsync analyze --json`` prints for the scene."""
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "probs": {k: round(float(p), 4) for k, p in self.probs.items()},
            "valence": self.valence,
            "arousal": self.arousal,
            "source": self.source,
        }
