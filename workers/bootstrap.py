"""What a worker process sets up before Celery or prometheus_client are imported."""

from __future__ import annotations

import os
import tempfile

from fhir_ai.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_process(settings: Settings) -> None:
    """Environment for the worker and the children it forks.

    * ``PYTORCH_NVML_BASED_CUDA_CHECK=1``: ``torch.cuda.is_available()`` asks NVML and does
      not initialise CUDA, so a parent that asks does not poison its forked children.
    * With ``worker_metrics_port`` set: a fresh ``PROMETHEUS_MULTIPROC_DIR`` (unless the
      operator set one), so that the prefork children's metrics reach the parent's server.
    """
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    if settings.worker_metrics_port is not None and not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="fhir-ai-worker-metrics-")
