# Clipper Python closure model container: runs func.pkl (cloudpickle) from /model and connects to the query
# frontend at CLIPPER_IP:CLIPPER_PORT. Model images add `COPY <model dir> /model/` on top of this one.
# /wheels stays in the image: build_model's pkgs_to_install are installed from it when it has them.
# Build context: this file and wheels/{deps,clipper}/ (the wheelhouse); `clipper images build` makes both.
# BASE_IMAGE must provide python3 (3.11, to unpickle closures pickled by a Python 3.11 client) with venv support;
# the default is the public python:3.11-slim, offline builds pass a debootstrap-made Debian bookworm image.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
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
ENV CLIPPER_MODEL_PATH=/model \
    CLIPPER_READY_FILE=/model_is_ready.check
HEALTHCHECK --interval=2s --timeout=5s --retries=3 CMD test -f /model_is_ready.check
CMD ["python", "-m", "clipper_core.container"]
