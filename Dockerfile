# One image for every PumpWatch role: the command picks the role (collect, serve, schedule, simulate).
FROM python:3.11-slim
WORKDIR /app
# A TrueType font with Chinese glyphs, embedded in the monthly report's PDF (maintenance/reports/pdf/fonts.py).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-zenhei && rm -rf /var/lib/apt/lists/*
# The dependencies exactly as locked, each file checked against its hash (requirements/, made by scripts/lock).
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY pumpwatch pumpwatch
COPY collector collector
COPY maintenance maintenance
COPY api api
COPY inspection inspection
COPY simulators simulators
COPY examples examples
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --system --home /var/lib/pumpwatch pumpwatch \
    && mkdir -p /var/lib/pumpwatch && chown pumpwatch /var/lib/pumpwatch
USER pumpwatch
ENV PUMPWATCH_COLLECTOR__STATE_DIR=/var/lib/pumpwatch PUMPWATCH_LOG_FORMAT=json
ENTRYPOINT ["pumpwatch"]
