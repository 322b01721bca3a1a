# One Dockerfile for every service; build args choose what is installed.
#   web / flower:    docker build .                                  (base dependencies only)
#   imaging worker:  docker build --build-arg EXTRAS=imaging .   (torch's Linux wheels carry CUDA)
#   nlp worker:      docker build --build-arg EXTRAS=nlp .
#   flower:          docker build --build-arg EXTRA_PIP="flower>=2.0" .
FROM python:3.11-slim

ARG EXTRAS=""
ARG EXTRA_PIP=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FHIR_AI_DATA_DIR=/var/lib/fhir-ai

RUN useradd --create-home --uid 10001 fhirai \
    && mkdir -p /var/lib/fhir-ai \
    && chown fhirai:fhirai /var/lib/fhir-ai

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_ai ./fhir_ai
COPY workers ./workers
COPY terminology ./terminology
RUN if [ -n "$EXTRAS" ]; then pip install ".[${EXTRAS}]" $EXTRA_PIP; \
    else pip install . $EXTRA_PIP; fi

USER fhirai
VOLUME ["/var/lib/fhir-ai"]
EXPOSE 8080
# Default: everything in one container (embedded broker and worker when
# FHIR_AI_BROKER_URL is unset). docker-compose.yml overrides the command per service.
CMD ["fhir-ai", "serve", "--host", "0.0.0.0", "--port", "8080"]
