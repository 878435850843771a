"""Which clips are overlays: pictures that do not cover the frame, so the track below still shows.

A title, a lower third, a generator other than a full-frame solid/colour matte, a clip that a
transform or crop shrinks or moves, an adjustment layer: on an upper track over picture these
are not picture cuts (:func:`.model.hide_overlays`). Each helper returns the reason ("title",
"generator", "transform", "adjustment layer") or "" for a clip that covers the frame. The rules
are deliberately conservative: when a file does not say enough, the clip covers (and cuts, as
before).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: generator kinds that fill the frame (Premiere's slug and colour matte, Resolve's solid colour...)
_FULL_FRAME = ("slug", "solid", "colo", "matte", "black", "bars", "gradient")
_TITLE = ("text", "title", "graphic", "caption", "subtitle", "lower third", "lower 3rd", "crawl", "scroll",
          "typewriter", "outline")
_ADJUSTMENT = ("adjustment",)
#: FCP 7 Basic Motion counts as a transform when the picture is under half the frame (a picture in
#: picture): Premiere exports fit-to-frame and slight reframing as scales just under 100 %, and
#: with a centred picture the lower track shows only as a thin border there
_PIP = 2.0

#: Kdenlive producers that are titles, and clip filters that can move or shrink the picture
KDENLIVE_TITLES = {"kdenlivetitle", "qtext", "pango", "pangotext"}
KDENLIVE_GENERATORS = {"glaxnimate"}
#: FCPXML generator categories (a folder of the effect's uid) that fill the frame
_FCPX_FULL_FRAME = {"solids", "backgrounds", "textures"}
_KDENLIVE_TRANSFORMS = {"qtblend", "affine", "composite", "frei0r.transform", "pillar_echo"}


def generator_reason(kind: str, name: str = "", category: str = "", alpha: str = "") -> str:
    """Why a generator clip is an overlay ("" if it fills the frame), from its kind (OTIO's
    ``generator_kind``, FCP 7's effect id), FCP 7's effect category, the clip's name and its alpha
    type: Premiere exports its titles as a "Slug" with ``<alphatype>straight``, a real slug (black
    video) has none."""
    kind_l, all_l = kind.lower(), f"{kind} {category} {name}".lower()
    if any(w in all_l for w in _ADJUSTMENT):
        return "adjustment layer"
    if any(w in kind_l for w in _TITLE) or "text" in category.lower():
        return "title"
    see_through = alpha.strip().lower() not in ("", "none")
    if any(w in kind_l or w in category.lower() for w in _FULL_FRAME) and not see_through:
        return ""
    if any(w in all_l for w in _TITLE):
        return "title"
    return "generator"


def fcp7_transform_reason(clip_md: Mapping, media_md: Mapping, frame: tuple[float, float] | None) -> str:
    """"transform" when FCP 7 XML's Basic Motion shrinks a clip below half the sequence frame or
    moves it, or a Crop filter crops it; "" otherwise (or when the sizes needed are not in the file).

    Premiere scales large sources down to fit (93.75 % of a 2048-wide clip in HD still covers),
    so the scale is judged against the clip's own width and height."""
    effects = [f.get("effect") for f in _as_list(clip_md.get("filter")) if isinstance(f, Mapping)]
    for effect in (e for e in effects if isinstance(e, Mapping)):
        params = {str(p.get("parameterid", "")).lower(): p.get("value")
                  for p in _as_list(effect.get("parameter")) if isinstance(p, Mapping)}
        kind = str(effect.get("effectid", "")).lower()
        if kind == "crop" and any(_number(params.get(k)) > 0.5 for k in ("left", "right", "top", "bottom")):
            return "transform"
        if kind == "basic" and _moved_or_small(params, _media_size(media_md), frame):
            return "transform"
    return ""


def _moved_or_small(params: Mapping, size: tuple[float, float] | None, frame: tuple[float, float] | None) -> bool:
    """Basic Motion that moves the centre, or scales the clip under half the frame."""
    center = params.get("center")
    if isinstance(center, Mapping) and any(abs(_number(center.get(k))) > 0.01 for k in ("horiz", "vert")):
        return True
    scale = _number(params.get("scale"), 100.0) / 100 * _PIP
    return bool(frame and size and (size[0] * scale < frame[0] - 1 or size[1] * scale < frame[1] - 1))


def fcpx_generator_reason(uid: str, name: str) -> str:
    """Why an FCPXML generator (a ``<video>`` whose resource is an ``<effect>``) is an overlay, from
    the effect's ``uid`` (Apple's are paths: ".../Generators.localized/Solids.localized/...") and
    name: Solids, Backgrounds and Textures fill the frame, other kinds go through the generator rule."""
    folders = {part.split(".")[0].strip().lower() for part in uid.replace("\\", "/").split("/")}
    if folders & _FCPX_FULL_FRAME:
        return ""
    return generator_reason(uid, name)


def fcpx_transform_reason(item: Any) -> str:
    """"transform" when an FCPXML clip element (or a ``<video>`` in it) has an ``adjust-transform``
    that moves the centre or scales the picture under half the frame (FCP 7's thresholds: positions
    are in % of the frame height, 0.5 is FCP 7's 0.01 of the half frame) or an ``adjust-crop`` in
    trim mode that trims an edge (a crop/pan crop fills the frame again); "" otherwise."""
    holders = (item, *item.findall("video"))
    if any(_fcpx_moves(a) for h in holders for a in h.findall("adjust-transform")):
        return "transform"
    if any(_fcpx_trims(c) for h in holders for c in h.findall("adjust-crop")):
        return "transform"
    return ""


def _fcpx_moves(adjust: Any) -> bool:
    """An ``adjust-transform`` moving the centre or scaling under half the frame."""
    position, scale = _numbers(adjust.get("position")), _numbers(adjust.get("scale"))
    return any(abs(v) > 0.5 for v in position) or any(abs(v) * _PIP < 1 for v in scale)


def _fcpx_trims(crop: Any) -> bool:
    """An ``adjust-crop`` in trim mode trimming an edge."""
    trim = crop.find("trim-rect")
    return crop.get("mode", "").lower() == "trim" and trim is not None and any(
        _number(trim.get(k)) > 0.5 for k in ("left", "right", "top", "bottom"))


def _numbers(text: str | None) -> list[float]:
    """The numbers of an FCPXML vector attribute ("40 20"); [] when absent or not numbers."""
    try:
        return [float(v) for v in (text or "").split()]
    except ValueError:
        return []


def fcp7_frame(timeline_md: Mapping) -> tuple[float, float] | None:
    """The sequence's frame size from FCP 7 XML metadata, None when the file does not say."""
    return _media_size(timeline_md)


def kdenlive_reason(service: str, filters: list[tuple[str, str]], frame: tuple[int, int]) -> str:
    """Why a Kdenlive clip is an overlay: a title producer, a generator that draws on alpha, or a
    transform filter (``(mlt_service, rect)`` of the clip's filters) whose rectangle leaves part
    of the ``frame`` (profile width, height) uncovered."""
    if service in KDENLIVE_TITLES:
        return "title"
    if service in KDENLIVE_GENERATORS:
        return "generator"
    for kind, rect in filters:
        if kind in _KDENLIVE_TRANSFORMS and rect and not _rect_covers(rect, frame):
            return "transform"
    return ""


def _rect_covers(rect: str, frame: tuple[int, int]) -> bool:
    """Whether the first keyframe of an MLT rectangle ("x y w h [opacity]", or "0=x y w h;...",
    values in pixels or percent) covers the whole frame."""
    first = rect.split(";")[0].split("=")[-1]
    numbers = re.findall(r"-?\d+(?:\.\d+)?%?", first)
    if len(numbers) < 4:
        return True
    values = []
    for i, text in enumerate(numbers[:4]):
        if text.endswith("%"):
            values.append(float(text[:-1]) / 100 * frame[i % 2])
        else:
            values.append(float(text))
    x, y, w, h = values
    return x <= 0.5 and y <= 0.5 and x + w >= frame[0] - 0.5 and y + h >= frame[1] - 0.5


def _media_size(md: Mapping) -> tuple[float, float] | None:
    video = _dig(md, "media", "video")
    chars = _dig(video, "samplecharacteristics") or _dig(video, "format", "samplecharacteristics")
    if not isinstance(chars, Mapping):
        return None
    w, h = _number(chars.get("width")), _number(chars.get("height"))
    return (w, h) if w > 0 and h > 0 else None


def _dig(md: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(md, Mapping):
            return None
        md = md.get(key)
    return md


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (Mapping, str)):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
