"""Record the shipped generator's output for a fixed seed (``onnx_models/golden.json``).

    python -m onnx_models.training.golden

``tests/test_generator.py`` regenerates with the same inputs and compares, so any change to the
model file, its metadata, the conditioning or the decoder is caught.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from emsync_plugin.music.decoding import SamplingOptions
from emsync_plugin.music.generator import MODEL_FILES, Generator, SceneMood

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    cuts = [3.2, 7.0, 11.52]
    duration = 15.0
    moods = [SceneMood(0.0, 7.0, 0.6, 0.4), SceneMood(7.0, 15.0, -0.5, -0.2)]
    options = SamplingOptions(seed=1234)
    data = {"cuts": cuts, "duration": duration, "moods": [asdict(m) for m in moods],
            "options": asdict(options)}  # every decoding option, so a change of default shows
    for precision in MODEL_FILES:  # the fp32 build's tokens at the top level, each build's under its name
        r = Generator.load(HERE, threads=1, precision=precision).generate(cuts, duration, moods, options)
        tokens = {"first_tokens": r.tokens[:40], "n_tokens": len(r.tokens),
                  "tokens_sha256": hashlib.sha256(np.asarray(r.tokens, np.int64).tobytes()).hexdigest()}
        if precision == "fp32":
            data.update(tokens)
        data[precision] = tokens
    (HERE / "golden.json").write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({k: v for k, v in data.items() if k not in ("first_tokens", *MODEL_FILES)}))


if __name__ == "__main__":
    main()
