"""Where the ONNX sessions run: a GPU's provider when the ONNX Runtime build offers one, else the
CPU; checked with fake provider lists and a fake session (this machine has no GPU)."""
from __future__ import annotations

import pytest

from emsync_plugin import models

CUDA, ROCM, TRT, CPU, AZURE = ("CUDAExecutionProvider", "ROCMExecutionProvider", "TensorrtExecutionProvider",
                               "CPUExecutionProvider", "AzureExecutionProvider")


@pytest.mark.parametrize("available,chosen", [
    ([CUDA, CPU], [CUDA, CPU]),
    ([CPU], [CPU]),
    ([AZURE, CPU], [CPU]),  # what the plain onnxruntime wheel offers here
    ([TRT, CUDA, CPU], [CUDA, CPU]),  # TensorRT would build an engine for every cache length
    ([ROCM, CPU], [ROCM, CPU]),
    (["DmlExecutionProvider", CPU], [CPU]),
])
def test_a_gpu_provider_is_chosen_when_offered_else_the_cpu(monkeypatch, available, chosen):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
    assert models.providers() == chosen
    assert models.providers(available) == chosen


def test_the_session_is_created_once_with_those_providers(monkeypatch):
    import onnxruntime as ort

    made = []

    class FakeSession:
        def __init__(self, path, sess_options=None, providers=None):
            made.append((path, providers, sess_options))

        def get_providers(self):
            return made[-1][1]

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    models.session.cache_clear()
    try:
        path = models.find("generator.int8.onnx")
        first = models.session(path, 1)
        assert models.session(path, 1) is first  # one session per process
        assert len(made) == 1
        name, providers, opts = made[0]
        assert name == str(path) and providers == [CUDA, CPU]
        assert opts.intra_op_num_threads == 1
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        monkeypatch.setattr(ort, "get_available_providers", lambda: [AZURE, CPU])
        models.session(path, 2)
        assert made[-1][1] == [CPU]
    finally:
        models.session.cache_clear()


def test_a_session_that_cannot_be_created_names_the_file(monkeypatch):
    import onnxruntime as ort

    def broken(path, **kwargs):
        raise RuntimeError("protobuf parsing failed")

    monkeypatch.setattr(ort, "InferenceSession", broken)
    models.session.cache_clear()
    try:
        with pytest.raises(models.ModelError, match="protobuf parsing failed") as err:
            models.session(models.find("generator.int8.onnx"), 3)
        assert "generator.int8.onnx" in str(err.value)
    finally:
        models.session.cache_clear()
