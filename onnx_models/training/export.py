"""Export a trained checkpoint to ONNX with an in-place KV cache, and check it against PyTorch.

    python -m onnx_models.training.export --ckpt onnx_models/training/runs/v1/ckpt.pt \
        --out onnx_models/generator.onnx
    python -m onnx_models.training.export --weights-onnx OLD.onnx --out onnx_models/generator.onnx

``--weights-onnx`` re-exports the weights and metadata of an earlier export (of this interface
or of the stacked-cache one before it) instead of a checkpoint, so a shipped model gets the new
interface without changing a weight.

The interface (``emsync.interface`` = ``"kv-per-layer-v2"``):

* inputs ``input_ids`` int64 [batch, new]; ``valence``, ``arousal``, ``offset`` float32
  [batch, new]; ``past_length`` int64 [] (the tokens already in the cache: the new ones sit at
  positions ``past_length ..``); per layer ``i``, ``past_key_i`` and ``past_value_i`` float32
  [batch, n_head, capacity, head_dim], of which the first ``past_length`` positions are used;
* outputs ``logits`` float32 [batch, new, vocab]; ``present_key_i`` and ``present_value_i``.

Attention is ONNX Runtime's ``com.microsoft.GroupQueryAttention`` (causal, one key/value head
per query head, scale 1/sqrt(head_dim)). Two ways to use the cache:

* in place (the runtime): bind ``present_*_i`` to the same buffer as ``past_*_i`` (IOBinding),
  a buffer of ``capacity`` >= the tokens a window holds; each call writes its new keys and values
  at ``past_length ..`` and copies nothing else. ONNX Runtime allows more than one new token on a
  non-empty cache only with batch 1; a first call (``past_length`` 0) takes any batch, with
  past tensors of length 0, and returns presents of length ``new``;
* growing: ``past_*_i`` of exactly ``past_length`` positions, ``present_*_i`` = past + new.

Everything the runtime needs travels in ``metadata_props``: ``emsync.vocab`` (the token
vocabulary), ``emsync.config`` (hyper-parameters), ``emsync.label_stats`` (the emotion label
normalisation), ``emsync.conditioning`` (ranges), ``emsync.data_sha256``, ``emsync.training``,
``emsync.interface``, ``emsync.inputs`` and ``emsync.outputs``. After export the script runs both
models on the same random inputs (a prefill and several cached steps, growing and in place) and
fails if they differ by more than ``--tol``.
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

INTERFACE = "kv-per-layer-v2"


def names(n_layer: int) -> tuple[list[str], list[str]]:
    """The model's input and output names, in order."""
    kv = [f"{kind}_{i}" for i in range(n_layer) for kind in ("key", "value")]
    return (["input_ids", "valence", "arousal", "offset", "past_length"] + [f"past_{k}" for k in kv],
            ["logits"] + [f"present_{k}" for k in kv])


class _Attention(torch.autograd.Function):
    """Causal attention over a cache, exported as one GroupQueryAttention node."""

    @staticmethod
    def forward(ctx, q, k, v, past_k, past_v, seqlens_k, total, n_head):  # the same maths, for tracing
        B, T, C = q.shape
        hd = C // n_head

        def heads(x):
            return x.view(B, T, n_head, hd).transpose(1, 2)

        k, v = torch.cat([past_k, heads(k)], 2), torch.cat([past_v, heads(v)], 2)
        S = k.shape[2]
        att = (heads(q) @ k.transpose(-2, -1)) / (hd ** 0.5)
        mask = torch.arange(S).unsqueeze(0) > torch.arange(T).unsqueeze(1) + (S - T)
        y = torch.softmax(att.masked_fill(mask, float("-inf")), -1) @ v
        return y.transpose(1, 2).reshape(B, T, C), k, v

    @staticmethod
    def symbolic(g, q, k, v, past_k, past_v, seqlens_k, total, n_head):
        return g.op("com.microsoft::GroupQueryAttention", q, k, v, past_k, past_v, seqlens_k, total,
                    num_heads_i=n_head, kv_num_heads_i=n_head, outputs=3)


class _Wrapper(torch.nn.Module):
    """The model's forward with the per-layer cache interface (same maths as ``MusicTransformer``)."""

    def __init__(self, model: MusicTransformer):
        super().__init__()
        self.model = model

    def forward(self, input_ids, valence, arousal, offset, past_length, *past):
        m = self.model
        B, T = input_ids.shape
        C, H = m.cfg.n_embd, m.cfg.n_head
        pos = past_length + torch.arange(T)
        x = m.wte(input_ids) + m.wpe(pos) + m.cond(valence, arousal, offset)
        total = (past_length + T).to(torch.int32)
        seqlens = (total - 1).reshape(1).expand(B)
        mood = m.mood(valence, arousal)
        presents = []
        for i, block in enumerate(m.blocks):
            q, k, v = block.attn.c_attn(block.norm1(x, mood)).split(C, dim=2)
            y, pk, pv = _Attention.apply(q, k, v, past[2 * i], past[2 * i + 1], seqlens, total, H)
            x = x + block.attn.c_proj(y)
            x = x + block.mlp(block.norm2(x, mood))
            presents += [pk, pv]
        logits = m.lm_head(m.ln_f(x))
        if hasattr(m, "offset_bias"):
            logits = logits + m.offset_bias(m.cond.steps_index(offset))
        return (logits, *presents)


def load(ckpt_path: Path):
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ckpt["config"])
    model = MusicTransformer(cfg)
    model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()})
    return model.eval(), ckpt


def load_onnx(path: Path):
    """The model and checkpoint-like metadata of an earlier export: its named initializers are
    the parameters; its weight matrices (MatMul right-hand sides, in graph order: the
    conditioning MLP's two, each block's mood norms if any, c_attn, c_proj, fc, proj, then the
    tied head) are the transposed ``nn.Linear`` weights."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    meta = {p.key: p.value for p in m.metadata_props}
    cfg = ModelConfig(**json.loads(meta["emsync.config"]))
    model = MusicTransformer(cfg)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    state = {k.removeprefix("model."): torch.from_numpy(v.copy()) for k, v in inits.items() if k.startswith("model.")}
    mats = [n.input[1] for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    per_block = ("mood",) * cfg.mood_blocks + ("attn.c_attn", "attn.c_proj", "mlp.fc", "mlp.proj")
    linear = ["cond.net.0", "cond.net.2"] + [f"blocks.{i}.{n}" for i in range(cfg.n_layer) for n in per_block]
    if len(mats) != len(linear) + 1 or not np.array_equal(inits[mats[-1]].T, inits["model.wte.weight"]):
        raise SystemExit(f"{path}: not the graph this reader knows ({len(mats)} weight matrices)")
    for name, init in zip(linear, mats):
        state[f"{name}.weight"] = torch.from_numpy(inits[init].T.copy())
    state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    training = json.loads(meta.get("emsync.training", "{}"))
    ckpt = {"config": cfg.to_dict(), "vocab": json.loads(meta["emsync.vocab"]),
            "label_stats": json.loads(meta["emsync.label_stats"]), "data_sha256": meta.get("emsync.data_sha256", ""),
            "step": training.get("step"), "tokens": training.get("tokens")}
    return model.eval(), ckpt


def export(model: MusicTransformer, ckpt: dict, out: Path, tol: float = 1e-3) -> dict:
    import onnx

    cfg = model.cfg
    hd = cfg.n_embd // cfg.n_head
    inputs, outputs = names(cfg.n_layer)
    B, T, P = 2, 4, 3
    example = (torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T), torch.zeros(B, T), torch.ones(B, T),
               torch.tensor(P, dtype=torch.long), *[torch.zeros(B, cfg.n_head, P, hd) for _ in range(2 * cfg.n_layer)])
    dynamic_axes = {n: {0: "batch", 1: "new"} for n in ["input_ids", "valence", "arousal", "offset", "logits"]}
    dynamic_axes.update({n: {0: "batch", 2: "past"} for n in inputs[5:]})
    dynamic_axes.update({n: {0: "batch", 2: "present"} for n in outputs[1:]})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(_Wrapper(model).eval(), example, str(tmp), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False, do_constant_folding=True,
                          custom_opsets={"com.microsoft": 1})
    m = onnx.load(str(tmp))
    meta = {
        "emsync.vocab": json.dumps(ckpt["vocab"], sort_keys=True),
        "emsync.config": json.dumps(cfg.to_dict(), sort_keys=True),
        "emsync.label_stats": json.dumps(ckpt["label_stats"], sort_keys=True),
        "emsync.conditioning": json.dumps({"valence": [-1.0, 1.0], "arousal": [-1.0, 1.0], "offset": [0.0, cfg.offset_cap]}),
        "emsync.data_sha256": ckpt.get("data_sha256", ""),
        "emsync.training": json.dumps({"step": ckpt.get("step"), "tokens": ckpt.get("tokens")}),
        "emsync.interface": INTERFACE,
        "emsync.inputs": json.dumps(inputs),
        "emsync.outputs": json.dumps(outputs),
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    m.doc_string = ("emsync music transformer (EMSYNC-style: valence/arousal + boundary-offset conditioning), "
                    "per-layer KV cache usable in place")
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    tmp.replace(out)
    diff = check(model, out)
    if diff > tol:
        raise SystemExit(f"ONNX and PyTorch disagree: {diff:.3e} > {tol}")
    return {"max_abs_diff": diff, "bytes": out.stat().st_size}


def check(model: MusicTransformer, path: Path, n: int = 40, prefill: int = 30) -> float:
    """The largest |logit difference| between PyTorch and ONNX Runtime on random tokens of two
    rows: a ``prefill``-token first call, then one token a call, once with a growing cache and once
    in place (each call's presents bound to its pasts); and for row 0 alone, the rest in one call."""
    import onnxruntime as ort

    cfg = model.cfg
    hd = cfg.n_embd // cfg.n_head
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs, outputs = names(cfg.n_layer)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab_size, (2, n))
    v, a = rng.uniform(-1, 1, (2, n)).astype(np.float32), rng.uniform(-1, 1, (2, n)).astype(np.float32)
    o = rng.uniform(0, 8, (2, n)).astype(np.float32)
    with torch.no_grad():
        ref = model(*(torch.from_numpy(x) for x in (ids, v, a, o)))[0].numpy()

    def feed(s, e, rows=slice(None)):
        return {"input_ids": ids[rows, s:e], "valence": v[rows, s:e], "arousal": a[rows, s:e], "offset": o[rows, s:e],
                "past_length": np.array(s, np.int64)}

    empty = np.zeros((2, cfg.n_head, 0, hd), np.float32)
    first = sess.run(None, {**feed(0, prefill), **{k: empty for k in inputs[5:]}})
    diffs = [np.abs(first[0] - ref[:, :prefill]).max()]
    past = first[1:]
    for s in range(prefill, n):  # growing
        got = sess.run(None, {**feed(s, s + 1), **dict(zip(inputs[5:], past))})
        diffs.append(np.abs(got[0] - ref[:, s:s + 1]).max())
        past = got[1:]
    for rows in (slice(None), slice(0, 1)):  # in place, one token a call; and row 0's rest at once
        buffers = [np.zeros((len(ids[rows]), cfg.n_head, cfg.block_size, hd), np.float32) for _ in inputs[5:]]
        for buf, p in zip(buffers, first[1:]):
            buf[:, :, :prefill] = p[rows]
        values = [ort.OrtValue.ortvalue_from_numpy(b) for b in buffers]
        steps = [(s, s + 1) for s in range(prefill, n)] if rows == slice(None) else [(prefill, n)]
        for s, e in steps:
            io = sess.io_binding()
            io.bind_output("logits")
            for k, x in feed(s, e, rows).items():
                io.bind_cpu_input(k, np.ascontiguousarray(x))
            for k_in, k_out, val in zip(inputs[5:], outputs[1:], values):
                io.bind_ortvalue_input(k_in, val)
                io.bind_ortvalue_output(k_out, val)
            sess.run_with_iobinding(io)
            diffs.append(np.abs(io.copy_outputs_to_cpu()[0] - ref[rows, s:e]).max())
    diff = float(max(diffs))
    logger.info("ONNX vs PyTorch: max |logit difference| %.2e over a %d-token prefill + %d cached steps "
                "(growing, in place, and a chunk in place)", diff, prefill, n - prefill)
    return diff


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", type=Path, help="a training checkpoint (train.py)")
    src.add_argument("--weights-onnx", type=Path, help="an earlier export: its weights and metadata")
    p.add_argument("--out", type=Path, default=Path("onnx_models/generator.onnx"))
    p.add_argument("--tol", type=float, default=1e-3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, ckpt = load(args.ckpt) if args.ckpt else load_onnx(args.weights_onnx)
    info = export(model, ckpt, args.out, args.tol)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
