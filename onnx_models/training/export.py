"""Export a trained checkpoint to ONNX with a KV cache, and check it against PyTorch.

    python -m onnx_models.training.export --ckpt onnx_models/training/runs/v1/ckpt.pt \
        --out onnx_models/generator.onnx

Inputs (named): ``input_ids`` int64 [batch, new], ``valence``/``arousal``/``offset`` float32
[batch, new], ``past_key_values`` float32 [n_layer, 2, batch, n_head, past, head_dim] (past may
be 0). Outputs: ``logits`` [batch, new, vocab], ``present_key_values`` (past + new).

Everything the runtime needs travels in ``metadata_props``: ``emsync.vocab`` (the token
vocabulary), ``emsync.config`` (hyper-parameters), ``emsync.label_stats`` (the emotion label
normalisation), ``emsync.conditioning`` (ranges), ``emsync.data_sha256``, ``emsync.training``.
After export the script runs both models on the same random inputs (a prefill and several
cached steps) and fails if they differ by more than ``--tol``.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from .model import ModelConfig, MusicTransformer

logger = logging.getLogger("emsync.export")

INPUTS = ["input_ids", "valence", "arousal", "offset", "past_key_values"]
OUTPUTS = ["logits", "present_key_values"]


class _Wrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, valence, arousal, offset, past_key_values):
        logits, _, present = self.model(input_ids, valence, arousal, offset, past=past_key_values)
        return logits, present


def load(ckpt_path: Path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ckpt["config"])
    model = MusicTransformer(cfg)
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return model.eval(), ckpt


def export(ckpt_path: Path, out: Path, tol: float = 1e-3) -> dict:
    import onnx
    import onnxruntime as ort

    model, ckpt = load(ckpt_path)
    cfg = model.cfg
    hd = cfg.n_embd // cfg.n_head
    wrapper = _Wrapper(model).eval()
    B, T, P = 1, 4, 3
    example = (
        torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T), torch.zeros(B, T), torch.ones(B, T),
        torch.zeros(cfg.n_layer, 2, B, cfg.n_head, P, hd),
    )
    dynamic_axes = {
        "input_ids": {0: "batch", 1: "new"}, "valence": {0: "batch", 1: "new"}, "arousal": {0: "batch", 1: "new"},
        "offset": {0: "batch", 1: "new"}, "past_key_values": {2: "batch", 4: "past"},
        "logits": {0: "batch", 1: "new"}, "present_key_values": {2: "batch", 4: "total"},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(wrapper, example, str(tmp), input_names=INPUTS, output_names=OUTPUTS,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False, do_constant_folding=True)
    m = onnx.load(str(tmp))
    meta = {
        "emsync.vocab": json.dumps(ckpt["vocab"], sort_keys=True),
        "emsync.config": json.dumps(cfg.to_dict(), sort_keys=True),
        "emsync.label_stats": json.dumps(ckpt["label_stats"], sort_keys=True),
        "emsync.conditioning": json.dumps({"valence": [-1.0, 1.0], "arousal": [-1.0, 1.0], "offset": [0.0, cfg.offset_cap]}),
        "emsync.data_sha256": ckpt.get("data_sha256", ""),
        "emsync.training": json.dumps({"step": ckpt.get("step"), "tokens": ckpt.get("tokens")}),
        "emsync.inputs": json.dumps(INPUTS),
        "emsync.outputs": json.dumps(OUTPUTS),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    m.doc_string = "emsync music transformer (EMSYNC-style: valence/arousal + boundary-offset conditioning), KV cache"
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    tmp.replace(out)

    # numerical check: prefill + cached steps, ONNX Runtime against PyTorch
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    n = 40
    ids = rng.integers(0, cfg.vocab_size, (1, n))
    v, a = rng.uniform(-1, 1, (1, n)).astype(np.float32), rng.uniform(-1, 1, (1, n)).astype(np.float32)
    o = rng.uniform(0, 8, (1, n)).astype(np.float32)
    with torch.no_grad():
        ref, _, _ = model(torch.from_numpy(ids), torch.from_numpy(v), torch.from_numpy(a), torch.from_numpy(o))
    ref = ref.numpy()
    past = np.zeros((cfg.n_layer, 2, 1, cfg.n_head, 0, hd), np.float32)
    got = []
    for s, e in [(0, 30)] + [(i, i + 1) for i in range(30, n)]:
        logits, past = sess.run(OUTPUTS, {"input_ids": ids[:, s:e], "valence": v[:, s:e], "arousal": a[:, s:e],
                                          "offset": o[:, s:e], "past_key_values": past})
        got.append(logits)
    got = np.concatenate(got, axis=1)
    diff = float(np.abs(got - ref).max())
    logger.info("ONNX vs PyTorch: max |logit difference| %.2e over a 30-token prefill + 10 cached steps", diff)
    if diff > tol:
        raise SystemExit(f"ONNX and PyTorch disagree: {diff:.3e} > {tol}")
    return {"max_abs_diff": diff, "bytes": out.stat().st_size}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("onnx_models/generator.onnx"))
    p.add_argument("--tol", type=float, default=1e-3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = export(args.ckpt, args.out, args.tol)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
