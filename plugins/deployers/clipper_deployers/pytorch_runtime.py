"""The replica side of the PyTorch deployer: load the saved module once, run ``func(model, inputs)`` per batch.

Imported when the model-container runtime unpickles ``func.pkl``; only then is ``torch`` imported.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from clipper_deployers._model_dir import ModelDirPredictor

logger = logging.getLogger(__name__)

#: metadata["format"] values and how each is loaded.
TORCHSCRIPT = "torchscript"
PICKLE = "pickle"
EXPORT = "export"
TORCHSCRIPT_TRACEBACK = "The following operation failed in the TorchScript interpreter"


class TorchPredictor(ModelDirPredictor):
    """Loads a ``torch.export`` program, a TorchScript archive (``torch.jit.load``) or a pickled module on the CPU,
    in eval mode; each batch runs under ``torch.inference_mode()``."""

    def load_model(self, model_dir: str) -> Any:
        import torch

        path = self.model_file(model_dir)
        fmt = self.metadata["format"]
        if fmt == TORCHSCRIPT:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=FutureWarning)
                model = torch.jit.load(path, map_location="cpu")
        elif fmt == PICKLE:
            import cloudpickle

            with open(path, "rb") as f:
                model = cloudpickle.load(f)
        elif fmt == EXPORT:
            return torch.export.load(path).module()  # exported in eval mode; its graph has no train/eval switch
        else:
            msg = f"Unknown PyTorch model format {fmt!r} in {path} (written by a newer clipper-deployers?)"
            raise ValueError(msg)
        model.eval()
        return model

    def __call__(self, inputs: Any) -> Any:
        import torch

        with torch.inference_mode():
            try:
                return self.func(self.model, inputs)
            except RuntimeError as exc:
                short = torchscript_error(exc)
                if short is None:
                    raise
                raise RuntimeError(short) from exc


def torchscript_error(exc: BaseException) -> str | None:
    """The error at the end of a TorchScript interpreter traceback (``"RuntimeError: mat1 and mat2 ..."``), so that
    clients see what failed rather than the first 1000 characters of the traceback; ``None`` for other errors."""
    text = str(exc)
    if not text.startswith(TORCHSCRIPT_TRACEBACK):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else text
    error, sep, message = last.partition(": ")
    return f"{message} (in the TorchScript model)" if sep and error.isidentifier() else last
