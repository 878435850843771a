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
