"""train.py's choices that are not the model's: the label normalisation a stage trains with."""
import pytest

torch = pytest.importorskip("torch")

from onnx_models.training.train import label_stats_dict  # noqa: E402


def test_label_stats_come_from_the_cache_or_the_init_weights(tmp_path):
    cache = {"mean": {"polyphony": 2.98}}
    init = {"mean": {"polyphony": 3.38}}
    path = tmp_path / "weights_fp16.pt"
    torch.save({"model": {}, "label_stats": init}, path)
    assert label_stats_dict("cache", cache, path) is cache
    assert label_stats_dict("init", cache, path) == init
    with pytest.raises(SystemExit):
        label_stats_dict("init", cache, None)
    torch.save({"model": {}}, path)
    with pytest.raises(SystemExit, match="no label statistics"):
        label_stats_dict("init", cache, path)


def _tiny(mood_blocks):
    from onnx_models.training.model import ModelConfig, MusicTransformer

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, block_size=64, n_layer=2, n_head=2, n_embd=16, dropout=0.0,
                      n_offset_steps=10, offset_logit_bias=True, mood_blocks=mood_blocks)
    return MusicTransformer(cfg).eval()


def _inputs(T=12):
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 40, (2, T), generator=g), torch.rand(2, T, generator=g) * 2 - 1,
            torch.rand(2, T, generator=g) * 2 - 1, torch.rand(2, T, generator=g) * 8)


def test_mood_blocks_start_as_the_plain_model_then_follow_the_mood_through_the_cache():
    plain, mood = _tiny(False), _tiny(True)
    missing, unexpected = mood.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".mood." in k for k in missing)
    for k in missing:
        torch.nn.init.zeros_(mood.get_parameter(k))
    x, v, a, o = _inputs()
    with torch.no_grad():
        assert torch.equal(mood(x, v, a, o)[0], plain(x, v, a, o)[0])
        for k in missing:
            mood.get_parameter(k).normal_(0, 0.5)
        full = mood(x, v, a, o)[0]
        assert (full - mood(x, -v, a, o)[0]).abs().max() > 1e-2  # valence now reaches the blocks
        _, _, past = mood(x[:, :7], v[:, :7], a[:, :7], o[:, :7])
        step = mood(x[:, 7:], v[:, 7:], a[:, 7:], o[:, 7:], past=past)[0]
    torch.testing.assert_close(step, full[:, 7:], atol=1e-5, rtol=1e-5)


def test_mood_blocks_export_and_read_back(tmp_path):
    pytest.importorskip("onnx")
    from onnx_models.training import export

    model = _tiny(True)
    with torch.no_grad():  # no two parameters alike, so that the export keeps every one by name
        for p in model.parameters():
            p.normal_(0, 0.5)
    vocab = {"note": "unused"}
    ckpt = {"config": model.cfg.to_dict(), "vocab": vocab, "label_stats": {}, "data_sha256": "", "step": 1, "tokens": 1}
    out = tmp_path / "generator.onnx"
    export.export(model, ckpt, out)
    back, meta = export.load_onnx(out)
    x, v, a, o = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(back(x, v, a, o)[0], model(x, v, a, o)[0])
    assert meta["config"]["mood_blocks"] is True


def test_weights_grow_to_a_vocabulary_with_mode_tokens():
    """train.py --init on a model whose vocabulary grew (--mode-tokens): the old tokens keep
    their embeddings (tied output) and offset biases, so the old tokens' logits are unchanged;
    the new ones start from the new model's own initial values."""
    import dataclasses

    from onnx_models.training.model import MusicTransformer
    from onnx_models.training.train import _grown

    small = _tiny(False)
    big = MusicTransformer(dataclasses.replace(small.cfg, vocab_size=42)).eval()
    fresh = {k: v.clone() for k, v in big.state_dict().items()}
    with torch.no_grad():
        small.offset_bias.weight.normal_(0, 1.0)
    missing, unexpected = big.load_state_dict(_grown(small.state_dict(), big.state_dict()), strict=False)
    assert not missing and not unexpected
    assert torch.equal(big.wte.weight[:40], small.wte.weight) and torch.equal(big.wte.weight[40:], fresh["wte.weight"][40:])
    assert big.lm_head.weight is big.wte.weight
    assert torch.equal(big.offset_bias.weight[:, :40], small.offset_bias.weight)
    assert torch.equal(big.offset_bias.weight[:, 40:], fresh["offset_bias.weight"][:, 40:])
    x, v, a, o = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(big(x, v, a, o)[0][..., :40], small(x, v, a, o)[0], atol=1e-5, rtol=1e-5)


def test_key_probe_weighs_each_written_third_against_its_twin_in_the_other_mode():
    """key_probe: each next note-on's twin is the same degree in the other mode of the latest
    key token (itself where it tells no mode), and the share kept is the written note's
    probability against the twin's, from the model's own softmax."""
    import dataclasses

    import numpy as np

    from emsync_plugin.music.vocab import Vocab
    from onnx_models.training import key_probe
    from onnx_models.training.prepare_data import VOCAB_SPEC

    vocab = dataclasses.replace(Vocab.from_json(VOCAB_SPEC), keys=24)
    on = vocab.note_on
    tok = np.array([vocab.bos, vocab.key(True, 0), on(0, 48), on(0, 52), vocab.key(False, 9), on(0, 60), on(0, 57)])
    np.testing.assert_array_equal(key_probe._twins(tok, vocab), [vocab.key(True, 0), on(0, 48), on(0, 51),
                                                                 vocab.key(False, 9), on(0, 61), on(0, 57)])
    from onnx_models.training.model import ModelConfig, MusicTransformer

    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=vocab.size, block_size=16, n_layer=1, n_head=2, n_embd=16,
                                         dropout=0.0)).eval()
    n = len(tok)
    ex = {"valence": np.zeros(n, np.float32), "arousal": np.zeros(n, np.float32), "offset": np.full(n, 8.0, np.float32)}
    twins = key_probe._twins(tok, vocab)
    kept = key_probe._kept(model, ex, tok, tok[1:], twins)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(tok[None, :-1]), *(torch.from_numpy(ex[k][None, :-1])
                                for k in ("valence", "arousal", "offset")))[0][0], -1).numpy()
    rows = np.arange(n - 1)
    np.testing.assert_allclose(kept, p[rows, tok[1:]] / (p[rows, tok[1:]] + p[rows, twins]), rtol=1e-5)
    assert abs(kept[0] - 0.5) < 1e-6 and abs(kept[2] - 0.5) > 1e-4  # itself: a coin toss; a twin: not
