"""What one worker process holds: torch, CUDA, loaded imaging models.

CUDA cannot be used in a process forked from one that initialised it, so a prefork
worker's main process must never initialise CUDA nor load a model: the models are loaded
on first use in the pool child that runs the job (``workers.imaging.loaded_model``, a
per-process cache), and ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` lets
``torch.cuda.is_available()`` answer without initialising CUDA
(:func:`workers.bootstrap.prepare_process`). The main process does import torch (the
imaging task module imports MONAI), which is safe to fork. ``--pool-start-method spawn``
starts each child as a fresh interpreter instead, for libraries that cannot survive a
fork at all; the threads pool (the imaging worker's) has no children.

:func:`process_state` tells which process holds what: the worker's main process answers
the ``fhir_ai_process`` inspect command (``celery inspect`` or
``app.control.broadcast("fhir_ai_process", reply=True)``), a pool process the
``workers.system.process_state`` task.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

from billiard.process import current_process  # type: ignore[import-untyped]


def process_state() -> dict[str, Any]:
    """This process: pid, pool process name, torch imported, CUDA available and
    initialised, imaging models loaded, objects frozen out of the garbage collector
    (:mod:`fhir_ai.heap`). Imports nothing (never torch, never a model)."""
    torch = sys.modules.get("torch")
    imaging = sys.modules.get("workers.imaging")
    models = imaging.loaded_model.cache_info().currsize if imaging is not None else 0
    return {
        "pid": os.getpid(),
        "process": str(current_process().name),
        "torch_imported": torch is not None,
        "cuda_available": bool(torch is not None and torch.cuda.is_available()),
        "cuda_initialized": bool(torch is not None and torch.cuda.is_initialized()),
        "models_loaded": int(models),
        "gc_frozen": gc.get_freeze_count(),
    }
