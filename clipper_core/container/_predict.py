"""What a predict call must return and how its failures are described: output checks, error texts, the model's
predict method, input type names, and the bisection that finds the inputs a batch fails for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from clipper_core.errors import InputDecodeError
from clipper_core.input_types import InputType, builtin_input_types
from clipper_core.registry import PluginHost
from clipper_core.rpc import frames as rpc

PredictFunction = Callable[[Any], Any]

#: Longest error explanation sent to clients (the full traceback goes to the log).
MAX_ERROR_CHARS = 1000


class PredictionError(Exception):
    """The predict function did not return one output per input (the original's exception name)."""


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: boom"``, cut to :data:`MAX_ERROR_CHARS`."""
    text = str(exc)
    desc = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return desc if len(desc) <= MAX_ERROR_CHARS else desc[: MAX_ERROR_CHARS - 3] + "..."


def to_outputs(result: Any, n: int) -> list[str]:
    """Check a predict result (a list, tuple or 1-D+ ndarray of ``n`` items) and convert every item with ``str``."""
    if not isinstance(result, (list, tuple, np.ndarray)) or (isinstance(result, np.ndarray) and result.ndim == 0):
        msg = f"Model did not return a list (returned {type(result).__name__})"
        raise PredictionError(msg)
    if len(result) != n:
        msg = f"Expected model to return {n} outputs, found {len(result)} outputs"
        raise PredictionError(msg)
    return [o if type(o) is str else str(o) for o in result]


def predict_method(model: Any, input_type: InputType) -> PredictFunction:
    """The model's ``predict_<type>`` method (``predict_ints`` for integers, ...), else its ``predict``."""
    for name in (input_type.name, *input_type.aliases):
        method = getattr(model, f"predict_{name}", None)
        if callable(method):
            return cast(PredictFunction, method)
    method = getattr(model, "predict", None)
    if callable(method):
        return cast(PredictFunction, method)
    if callable(model):
        return cast(PredictFunction, model)
    msg = f"{type(model).__name__} has no predict_{input_type.name} or predict method"
    raise TypeError(msg)


_BUILTINS = builtin_input_types()


def resolve_input_type(input_type: InputType | str, host: PluginHost | None = None) -> InputType:
    """An :class:`InputType` from a name or alias (case-insensitive, like the original container).

    The five built-in types resolve without loading the plugin manager (a replica should not depend on every
    installed plugin importing cleanly); other names are looked up in ``host`` (a new
    :class:`~clipper_core.registry.PluginHost` when none is given).

    :raises InputDecodeError: (a ``ValueError``) unknown name.
    """
    if isinstance(input_type, InputType):
        return input_type
    name = str(input_type).strip()
    if name.lower() in _BUILTINS:
        return _BUILTINS.parse(name, case_sensitive=False)
    try:
        registry = (host or PluginHost()).input_types()
    except Exception as exc:  # noqa: BLE001 - any broken plugin
        msg = f"input_type {name!r} is not a built-in type and the plugin input types failed to load: {exc}"
        raise InputDecodeError(msg) from exc
    return registry.parse(name, case_sensitive=False)


def bisect_failures(
    call: Callable[[Sequence[bytes]], list[str]], payloads: Sequence[bytes], exc: Exception, probe_only: bool
) -> tuple[list[str], int]:
    """Outputs for a batch ``call`` raised ``exc`` for, and how many inputs got real outputs.

    Every failing part of more than one input is split in two and both halves are re-run, so ``k`` failing inputs
    among ``n`` cost about ``2k log2(n/k)`` more calls, and only the inputs ``call`` raises for on their own get
    errors. With ``probe_only`` (the model seemed to fail whatever it got) a single split is tried: if both halves
    fail too, every input gets its half's error, 2 more calls instead of ``2n - 2``. A part for which ``call``
    returns the wrong number of outputs (:class:`PredictionError`) is not split further.
    """
    n = len(payloads)
    outputs = [""] * n
    answered = 0
    failing: list[tuple[int, int, Exception]] = [(0, n, exc)]
    first = True
    while failing:
        if probe_only and not first and not answered:
            for lo, hi, err in failing:
                outputs[lo:hi] = [rpc.ERROR_PREFIX + describe_exception(err)] * (hi - lo)
            break
        first = False
        lo, hi, err = failing.pop()
        if hi - lo == 1:
            outputs[lo] = rpc.ERROR_PREFIX + describe_exception(err)
            continue
        mid = (lo + hi) // 2
        for a, b in ((mid, hi), (lo, mid)):
            try:
                outputs[a:b] = call(payloads[a:b])
                answered += b - a
            except PredictionError as part_exc:
                outputs[a:b] = [rpc.ERROR_PREFIX + describe_exception(part_exc)] * (b - a)
            except Exception as part_exc:  # noqa: BLE001 - whatever the model raises is its error for these inputs
                failing.append((a, b, part_exc))
    return outputs, answered
