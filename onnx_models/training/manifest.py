"""Write ``onnx_models/manifest.json``: sha256 and size of every shipped model file.

    python -m onnx_models.training.manifest

The runtime (``emsync_plugin.models.find``) refuses a model whose bytes do not match.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def build(directory: Path = HERE) -> dict:
    files = {}
    for path in sorted(directory.glob("*.onnx")):
        files[path.name] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size}
    return {"files": files}


def main() -> None:
    data = build()
    (HERE / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
