"""The optional int8 build of the generator: weights quantised to 8 bits, checked on held-out data.

    python -m onnx_models.training.quantize [--src onnx_models/generator.onnx]
        [--out onnx_models/generator.int8.onnx] [--windows 40]

ONNX Runtime's dynamic quantisation (``quantize_dynamic``, signed 8-bit weights per tensor;
activations are quantised on the fly at run time) of every MatMul/Gemm. Quantisation drops the
model's ``metadata_props``, so they are copied over from the source, with
``emsync.precision = "int8"`` and ``emsync.quantization`` (what was measured below) added: the
int8 model carries its vocabulary, hyper-parameters and label statistics like the fp32 one.

The check: both models score the same held-out windows (``--windows`` pieces of the held-out
split, made by :func:`onnx_models.training.dataset.make_example` with a fixed seed, no mode
flips), teacher-forced in one call each; the script prints both losses in nats per token and the
largest logit difference, and refuses (exit 1) an int8 model whose loss is more than
``--max-loss-increase`` above the fp32 one. It needs the training cache
(``python -m onnx_models.training.prepare_data``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("emsync.quantize")

HERE = Path(__file__).resolve().parents[1]


def heldout_examples(n: int, seed: int = 0) -> list[dict]:
    from emsync_plugin.music.vocab import Vocab

    from . import dataset
    from .prepare_data import VOCAB_SPEC

    vocab = Vocab.from_json(VOCAB_SPEC)
    stats = dataset.load_label_stats(dataset.DEFAULT_CACHE)
    pieces = list(dataset.iter_pieces(dataset.DEFAULT_CACHE, "heldout"))
    rng = np.random.default_rng(seed)
    flip = dataset.MODE_FLIP_PROB
    dataset.MODE_FLIP_PROB = 0.0
    try:
        out = [dataset.make_example(pieces[i], rng, vocab, stats) for i in rng.choice(len(pieces), n)]
    finally:
        dataset.MODE_FLIP_PROB = flip
    return [e for e in out if e is not None and len(e["tokens"]) > 1]


def heldout_loss(path: Path, examples: list[dict]) -> tuple[float, list[np.ndarray]]:
    """Teacher-forced loss (nats/token) of the ONNX model at ``path`` and its logits (each window
    in one call from an empty cache: the interface of ``export.py``)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    cfg = json.loads(meta["emsync.config"])
    empty = np.zeros((1, cfg["n_head"], 0, cfg["n_embd"] // cfg["n_head"]), np.float32)
    pasts = dict.fromkeys([n for n in json.loads(meta["emsync.inputs"]) if n.startswith("past_") and n != "past_length"], empty)
    total, count, logits_all = 0.0, 0, []
    for e in examples:
        y = e["tokens"][1:]
        feed = {"input_ids": e["tokens"][None, :-1],
                **{k: e[k][None, :-1] for k in ("valence", "arousal", "offset")},
                "past_length": np.array(0, np.int64), **pasts}
        logits = sess.run(["logits"], feed)[0][0].astype(np.float64)
        top = logits.max(-1, keepdims=True)
        lse = np.log(np.exp(logits - top).sum(-1)) + top[:, 0]
        total += float((lse - logits[np.arange(len(y)), y]).sum())
        count += len(y)
        logits_all.append(logits)
    return total / count, logits_all


def quantize(src: Path, out: Path, windows: int = 40, max_increase: float = 0.01) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(src), str(raw), weight_type=QuantType.QInt8)
        examples = heldout_examples(windows)
        fp32, a = heldout_loss(src, examples)
        int8, b = heldout_loss(raw, examples)
        diff = float(max(np.abs(x - y).max() for x, y in zip(a, b)))
        info = {"method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights",
                "heldout_windows": len(examples), "heldout_tokens": int(sum(len(e["tokens"]) - 1 for e in examples)),
                "heldout_loss_fp32": round(fp32, 5), "heldout_loss_int8": round(int8, 5),
                "max_abs_logit_diff": round(diff, 4)}
        logger.info("held-out loss: fp32 %.4f, int8 %.4f nats/token (%+.4f); max |logit difference| %.3f",
                    fp32, int8, int8 - fp32, diff)
        if int8 - fp32 > max_increase:
            raise SystemExit(f"the int8 model loses {int8 - fp32:.4f} nats/token (> {max_increase}): not written")
        model = onnx.load(str(raw))
        meta = {p.key: p.value for p in onnx.load(str(src), load_external_data=False).metadata_props}
        meta["emsync.precision"] = "int8"
        meta["emsync.quantization"] = json.dumps(info)
        del model.metadata_props[:]
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
        tmp_out = out.with_name(out.name + ".tmp")
        onnx.save(model, str(tmp_out))
        tmp_out.replace(out)
    info["bytes"] = out.stat().st_size
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=HERE / "generator.onnx")
    p.add_argument("--out", type=Path, default=HERE / "generator.int8.onnx")
    p.add_argument("--windows", type=int, default=40)
    p.add_argument("--max-loss-increase", type=float, default=0.01)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(quantize(args.src, args.out, args.windows, args.max_loss_increase)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
