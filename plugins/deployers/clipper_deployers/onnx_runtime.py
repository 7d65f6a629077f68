"""The replica side of the ONNX deployer: one ``onnxruntime.InferenceSession`` per process, ``func(session, inputs)``
per batch. Imported when the model-container runtime unpickles ``func.pkl``; only then is onnxruntime imported."""

from __future__ import annotations

import logging
from typing import Any

from clipper_deployers._model_dir import ModelDirPredictor

logger = logging.getLogger(__name__)

ONNX = "onnx"


class OnnxPredictor(ModelDirPredictor):
    """An ``onnxruntime.InferenceSession`` on the CPU execution provider for ``model.onnx``."""

    def load_model(self, model_dir: str) -> Any:
        import onnxruntime

        path = self.model_file(model_dir)
        fmt = self.metadata["format"]
        if fmt != ONNX:
            msg = f"Unknown ONNX model format {fmt!r} in {path} (written by a newer clipper-deployers?)"
            raise ValueError(msg)
        return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
