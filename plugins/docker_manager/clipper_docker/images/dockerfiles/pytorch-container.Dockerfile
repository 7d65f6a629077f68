# Clipper PyTorch model container: a replica loads the module saved in /model (TorchScript, torch.export or a
# pickled module; clipper_deployers.pytorch_runtime) once, on the CPU, and calls func(model, inputs) per batch
# under torch.inference_mode(). Model images add `COPY <model dir> /model/` on top of this one.
# Build context: this file and wheels/{deps,clipper,frameworks/torch}/; `clipper images build` makes them.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
# The first steps are identical in every Clipper image, so Docker builds them once and shares the layers.
ENV VIRTUAL_ENV=/opt/clipper \
    PATH=/opt/clipper/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# wheels/deps/: every third-party wheel. Installing all of them in one shared layer means a change to Clipper's own
# code rebuilds only the small layer below it.
COPY wheels/deps/ /wheels/
RUN python3 -m venv /opt/clipper \
 && python -m pip install --no-index --find-links /wheels --upgrade pip \
 && python -m pip install --no-index --find-links /wheels /wheels/*.whl
# wheels/clipper/: the wheels of clipper-core and clipper-frontend.
COPY wheels/clipper/ /wheels/
RUN python -m pip install --no-index --find-links /wheels clipper-core \
 && mkdir -p /model
# The framework's wheels (and clipper-deployers'): the release installed where the images were built, so that a
# model saved there loads here.
COPY wheels/frameworks/torch/ /wheels-torch/
RUN python -m pip install --no-index --find-links /wheels --find-links /wheels-torch clipper-deployers torch
# The image itself holds the environment and the shared wheelhouse (for pkgs_to_install), not the framework's wheels.
FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/clipper \
    PATH=/opt/clipper/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /opt/clipper/ /opt/clipper/
COPY --from=build /wheels/ /wheels/
RUN mkdir -p /model
ENV CLIPPER_MODEL_PATH=/model \
    CLIPPER_READY_FILE=/model_is_ready.check
HEALTHCHECK --interval=2s --timeout=5s --retries=3 CMD test -f /model_is_ready.check
CMD ["python", "-m", "clipper_core.container"]
