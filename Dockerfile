# keybroker broker image: multi-stage, slim, non-root.
# BASE_IMAGE: any Debian-like image with python3 (3.11+) and venv. The default is the
# official slim image by tag; pin it by digest with --build-arg (or keybroker:brokerBaseImage)
# once you have resolved it, or pass a base made from Debian packages where no registry is
# reachable (infra/docker/base-image.sh).
ARG BASE_IMAGE=python:3.11-slim

# --- build: a wheel-installed virtualenv, no compilers or caches carried forward ----------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/keybroker
# Dependencies first (from pyproject.toml only), so that a change to the sources
# rebuilds the last layer alone.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/keybroker/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY broker ./broker
COPY policies ./policies
RUN /opt/keybroker/bin/pip install --no-deps . \
 && /opt/keybroker/bin/python -m compileall -q /opt/keybroker

# --- runtime: the virtualenv and an unprivileged user, nothing else ----------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/keybroker/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 keybroker \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin keybroker \
 && mkdir -p /run/keybroker && chown 10001:10001 /run/keybroker && chmod 0700 /run/keybroker
COPY --from=build /opt/keybroker /opt/keybroker
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
# Unwraps the AppRole secret-id (if delivered), then runs `keybroker serve`.
ENTRYPOINT ["python", "-m", "broker.launcher"]
