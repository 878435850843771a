"""probe.py reads the valence input's pull on the mode, and nothing else."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emsync_plugin.music.vocab import Vocab  # noqa: E402
from onnx_models.training.distill import load_teacher  # noqa: E402
from onnx_models.training.model import ModelConfig, MusicTransformer  # noqa: E402
from onnx_models.training.prepare_data import VOCAB_SPEC  # noqa: E402
from onnx_models.training.probe import shifts  # noqa: E402

PROBE = Path(__file__).resolve().parents[1] / "onnx_models" / "training" / "runs" / "v12" / "probe"


def test_a_model_deaf_to_valence_shows_no_pull_and_one_that_hears_it_does():
    vocab = Vocab.from_json(VOCAB_SPEC)
    teacher = load_teacher(PROBE, vocab)
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=vocab.size, block_size=512, n_layer=1, n_head=2, n_embd=32,
                                         dropout=0.0)).eval()
    with torch.no_grad():
        model.cond.net[0].weight[:, 0] = 0.0  # the valence column of the conditioning's input
    deaf = shifts(model, teacher, vocab, pieces=3, max_tokens=64)
    assert len(deaf["third"]) > 0 and np.abs(np.concatenate([deaf["third"], deaf["sixth"]])).max() == 0.0
    with torch.no_grad():
        model.cond.net[0].weight[:, 0] = torch.randn(32)
    hears = shifts(model, teacher, vocab, pieces=3, max_tokens=64)
    assert np.abs(hears["third"]).max() > 1e-3
