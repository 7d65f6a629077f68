"""``python -m clipper_core.container``: serve the model in ``$CLIPPER_MODEL_PATH``.

That is the Python closure in ``func.pkl``, or the container class the directory's ``metadata.json`` names
(:mod:`clipper_core.container.loader`).

Exit status: 0 after SIGTERM/SIGINT, 1 for a configuration error (missing ``CLIPPER_MODEL_NAME`` /
``CLIPPER_MODEL_VERSION``, unknown ``CLIPPER_INPUT_TYPE``, ...). A model that fails to load does not end the
process: the replica registers with an error status and answers every query with that error.
"""

from __future__ import annotations

import logging
import os
import sys

from clipper_core.container.config import ConfigError, ContainerConfig

logger = logging.getLogger("clipper_core.container")


def main() -> int:
    level = os.environ.get("CLIPPER_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if isinstance(logging.getLevelName(level), int) else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    try:
        config = ContainerConfig.from_env()
        from clipper_core.container.runtime import (
            ContainerRuntime,
            describe_exception,
            predict_method,
            resolve_input_type,
        )

        input_type = resolve_input_type(config.input_type)
    except (ConfigError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return 1

    from clipper_core.container.loader import load_model

    predict = None
    load_error = None
    try:
        predict = predict_method(load_model(config.model_path), input_type)
    except (Exception, SystemExit) as exc:
        load_error = describe_exception(exc)
        logger.error("Model failed to load from %s: %s", config.model_path, load_error, exc_info=exc)
    config.input_type = input_type.name
    runtime = ContainerRuntime.from_config(config, predict, load_error)
    runtime.run(handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
