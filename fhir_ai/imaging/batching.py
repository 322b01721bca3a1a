"""Dynamic batching: images from concurrent jobs share one forward pass.

Job threads (the imaging worker runs a thread pool) submit single inputs; one inference
thread takes the first waiting input, gathers more until ``max_batch`` or ``max_wait_s``
has passed, and runs one forward pass. A busy fleet gets the throughput of batched
inference; a quiet one the latency of batch 1 (a lone input waits at most ``max_wait_s``).
A batch that fails is retried item by item, so one bad input fails only its own job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from fhir_ai.imaging.model.outputs import ImageAnalysis, ImagingModel

logger = logging.getLogger("fhir_ai.imaging.batching")

FloatArray = npt.NDArray[np.float32]
T = TypeVar("T")
BatchObserver = Callable[[int, float], None]  # (batch size, forward seconds)


@dataclass(slots=True)
class _Pending(Generic[T]):
    item: FloatArray
    result: Future[T] = field(default_factory=Future)


class DynamicBatcher(Generic[T]):
    """Runs ``forward`` (N x ... inputs -> N outputs) on batches gathered from many threads."""

    def __init__(
        self,
        forward: Callable[[FloatArray], Sequence[T]],
        max_batch: int,
        max_wait_s: float,
        observe: BatchObserver | None = None,
    ) -> None:
        self._forward = forward
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._observe = observe
        self._waiting: queue.Queue[_Pending[T] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def submit(self, item: FloatArray) -> Future[T]:
        """Queue one input (C x H x W); its future holds its output."""
        pending: _Pending[T] = _Pending(item)
        self._waiting.put(pending)
        return pending.result

    def outputs(self, batch: FloatArray, timeout_s: float | None = None) -> list[T]:
        """Outputs for ``batch`` (N x C x H x W), each item batched with other callers'."""
        futures = [self.submit(item) for item in batch]
        return [f.result(timeout=timeout_s) for f in futures]

    def close(self) -> None:
        """Stop the inference thread after the inputs already queued."""
        self._waiting.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._waiting.get(timeout=max(remaining, 0.0))
                        if remaining > 0
                        else (self._waiting.get_nowait())
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    self._waiting.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Pending[T]]) -> None:
        started = time.perf_counter()
        try:
            outputs = self._forward(np.stack([p.item for p in batch]))
        except Exception:
            if len(batch) == 1:
                logger.exception("inference failed")
                batch[0].result.set_exception(RuntimeError("Inference failed for this image"))
                return
            for pending in batch:
                self._run_batch([pending])
            return
        if self._observe:
            self._observe(len(batch), time.perf_counter() - started)
        for pending, output in zip(batch, outputs, strict=True):
            pending.result.set_result(output)


class BatchedModel:
    """A model shared by job threads: each image analysed in one pass with other jobs' images
    (one inference thread runs the model)."""

    def __init__(
        self,
        model: ImagingModel,
        max_batch: int,
        max_wait_s: float,
        observe: BatchObserver | None = None,
    ) -> None:
        self.card = model.card
        self._batcher = DynamicBatcher(model.analyse, max_batch, max_wait_s, observe)

    def analyse(self, batch: FloatArray) -> list[ImageAnalysis]:
        """Probability and Grad-CAM heatmap of each input, batched with other jobs' inputs."""
        return self._batcher.outputs(batch)

    def close(self) -> None:
        """Stop the inference thread after the images already queued."""
        self._batcher.close()
