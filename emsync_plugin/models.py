"""Shipped models: find them, verify their sha256 against the manifest, open an ONNX session.

Models live in the ``onnx_models`` package (installed with emsync; nothing is downloaded).
``onnx_models/manifest.json`` lists each file's sha256 and size; a file that does not match is
refused before ONNX Runtime reads a byte of it. Sessions run on CUDA when the
``onnxruntime-gpu`` build (the ``gpu`` extra) offers it, else on the CPU (:func:`providers`),
and are created once per process and model file.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import ModelError

logger = logging.getLogger(__name__)


def model_dir() -> Path:
    return Path(str(resources.files("onnx_models")))


def manifest(directory: Path | None = None) -> dict:
    path = (directory or model_dir()) / "manifest.json"
    if not path.exists():
        return {"files": {}}
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in files.values()
        ):
            raise ValueError("files are not name -> {sha256}")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged: nothing can be verified
        raise ModelError(
            f"the model manifest is damaged ({type(exc).__name__}: {exc})", path=path,
            hint="reinstall emsync (pip install --force-reinstall .)",
        ) from None
    return data


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find(name: str, directory: Path | None = None) -> Path:
    """Path of a shipped model, verified against the manifest."""
    directory = directory or model_dir()
    path = directory / name
    entry = manifest(directory)["files"].get(name)
    if not path.exists() or entry is None:
        raise ModelError(
            f"the model {name} is not installed", path=path,
            hint="reinstall emsync (pip install --force-reinstall .) or use --engine baseline",
        )
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise ModelError(
            f"checksum mismatch (sha256 {digest[:12]}…, manifest says {entry['sha256'][:12]}…): the file is damaged or was replaced",
            path=path, hint="reinstall emsync to restore the shipped model",
        )
    return path


#: The execution providers used when the ONNX Runtime build offers them, best first. Not used:
#: TensorRT (it builds an engine per input shape, and the decoder's cache grows every step),
#: remote (Azure) and the rest.
PREFERRED = ("CUDAExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider")


def providers(available: Sequence[str] | None = None) -> list[str]:
    """The providers to ask for, best first, among ``available`` (by default the installed
    ONNX Runtime's): a GPU's when there is one, and the CPU to fall back on."""
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    chosen = [p for p in PREFERRED if p in available]
    return chosen or list(available)


@lru_cache(maxsize=4)
def session(path: Path, threads: int = 0):
    """An ONNX Runtime session for a verified model file, created once per path and thread
    count. ``threads`` 0 is ONNX Runtime's choice (one per core); idle threads sleep instead of
    spinning, since the pipeline keeps the other core busy meanwhile."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    chosen = providers()
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as exc:  # corrupt protobuf etc.
        raise ModelError(f"ONNX Runtime cannot load it ({exc})", path=path, hint="reinstall emsync") from exc
    logger.debug("loaded %s on %s", path.name, sess.get_providers())
    return sess


def metadata(sess) -> dict[str, str]:
    return dict(sess.get_modelmeta().custom_metadata_map)
