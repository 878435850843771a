"""Record the shipped generator's output for a fixed seed (``onnx_models/golden.json``).

    python -m onnx_models.training.golden

``tests/test_generator.py`` regenerates with the same inputs and compares, so any change to the
model file, its metadata, the conditioning or the decoder is caught. The int8 build's integer
kernels differ by CPU (ONNX Runtime picks AVX2, AVX-VNNI or AVX-512 VNNI ones), so its digest
is also kept per CPU class (``int8.by_cpu``); running this on a machine of another class adds
that class's digest and keeps the others, as long as the int8 file is the same one
(``int8.model_sha256``): a new build drops the other classes' digests, which were of the old one.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emsync_plugin.models import find
from emsync_plugin.mood import SceneMood
from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import MODEL_FILES, Generator

HERE = Path(__file__).resolve().parents[1]
#: the CPU features that choose ONNX Runtime's int8 matrix kernels, best first
CPU_CLASSES = ("avx512_vnni", "avx_vnni", "avx512bw", "avx2")


def cpu_class(flags: str | None = None) -> str:
    """The int8 kernel class of this CPU (or of a ``/proc/cpuinfo`` flags line): the best of
    :data:`CPU_CLASSES` it has, else ``"other"``."""
    if flags is None:
        try:
            flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("flags")), "")
        except OSError:
            flags = ""
    have = set(flags.split())
    return next((c for c in CPU_CLASSES if c in have), "other")


def digest(tokens: Sequence[int]) -> str:
    """The sha256 of a token list (as int64)."""
    return hashlib.sha256(np.asarray(tokens, np.int64).tobytes()).hexdigest()


def main() -> None:
    cuts = [3.2, 7.0, 11.52]
    duration = 15.0
    moods = [SceneMood(0, 0.0, 7.0, 0.6, 0.4), SceneMood(1, 7.0, 15.0, -0.5, -0.2)]
    options = SamplingOptions(seed=1234)
    path = HERE / "golden.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    data = {"cuts": cuts, "duration": duration,
            "moods": [{k: getattr(m, k) for k in ("start", "end", "valence", "arousal")} for m in moods],
            "options": asdict(options)}  # every decoding option, so a change of default shows
    for precision in MODEL_FILES:  # the fp32 build's tokens at the top level, each build's under its name
        r = Generator.load(HERE, threads=1, precision=precision).generate(cuts, duration, moods, options)
        tokens = {"first_tokens": r.tokens[:40], "n_tokens": len(r.tokens), "tokens_sha256": digest(r.tokens)}
        if precision == "fp32":
            data.update(tokens)
        else:
            sha = hashlib.sha256(find(MODEL_FILES[precision], HERE).read_bytes()).hexdigest()
            prev = old.get(precision, {})
            by_cpu = dict(prev.get("by_cpu", {})) if prev.get("model_sha256") == sha else {}
            by_cpu[cpu_class()] = {"n_tokens": len(r.tokens), "tokens_sha256": digest(r.tokens)}
            tokens.update(cpu_class=cpu_class(), model_sha256=sha, by_cpu=by_cpu)
        data[precision] = tokens
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({k: v for k, v in data.items() if k not in ("first_tokens", *MODEL_FILES)}))


if __name__ == "__main__":
    main()
