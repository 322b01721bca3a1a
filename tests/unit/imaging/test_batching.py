"""Dynamic batching across threads, with per-item failures."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fhir_ai.imaging.batching import BatchedModel, DynamicBatcher
from fhir_ai.imaging.model.outputs import ImageAnalysis


def _sum_forward(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), -1).sum(axis=1).astype(np.float32)


def test_concurrent_inputs_share_batches_and_get_their_own_outputs() -> None:
    sizes: list[int] = []
    batcher = DynamicBatcher(_sum_forward, max_batch=8, max_wait_s=0.2,
                             observe=lambda n, _s: sizes.append(n))  # fmt: skip
    results: dict[int, float] = {}
    barrier = threading.Barrier(16)

    def job(i: int) -> None:
        barrier.wait()
        results[i] = float(batcher.outputs(np.full((1, 1, 2, 2), i, dtype=np.float32))[0])

    threads = [threading.Thread(target=job, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    batcher.close()
    assert results == {i: 4.0 * i for i in range(16)}
    assert sum(sizes) == 16 and max(sizes) > 1 and max(sizes) <= 8


def test_a_lone_input_is_not_held_back_beyond_the_wait() -> None:
    sizes: list[int] = []
    batcher = DynamicBatcher(_sum_forward, 16, 0.01, observe=lambda n, _s: sizes.append(n))
    out = batcher.outputs(np.ones((1, 1, 2, 2), dtype=np.float32), timeout_s=5)
    batcher.close()
    assert out == [4.0] and sizes == [1]


def test_one_bad_input_fails_alone() -> None:
    def forward(batch: np.ndarray) -> np.ndarray:
        if np.isnan(batch).any():  # a batch holding the bad input fails as a whole
            raise ValueError("NaN input")
        return _sum_forward(batch)

    batcher = DynamicBatcher(forward, max_batch=4, max_wait_s=0.2)
    good = batcher.submit(np.ones((1, 2, 2), dtype=np.float32))
    bad = batcher.submit(np.full((1, 2, 2), np.nan, dtype=np.float32))
    assert good.result(timeout=5) == 4.0
    with pytest.raises(RuntimeError, match="Inference failed"):
        bad.result(timeout=5)
    batcher.close()


def test_images_analysed_together_equal_one_at_a_time() -> None:
    """Probabilities and Grad-CAM maps do not depend on the batch an image falls in (eval
    mode: images do not interact), whether the batch is one job's or several jobs'."""
    from fhir_ai.imaging.model.inference import LoadedModel

    model = LoadedModel.load("pneumonia-cxr", device="cpu")
    images = np.random.default_rng(7).random((6, 1, 28, 28), dtype=np.float32)
    alone = [model.analyse(image[None])[0] for image in images]
    batched = BatchedModel(model, max_batch=6, max_wait_s=0.5)
    barrier = threading.Barrier(len(images))
    together: dict[int, ImageAnalysis] = {}

    def job(i: int) -> None:
        barrier.wait()
        together[i] = batched.analyse(images[i : i + 1])[0]

    threads = [threading.Thread(target=job, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    batched.close()
    assert sorted(together) == list(range(len(images)))
    for i, single in enumerate(alone):
        assert together[i].heatmap.shape == (28, 28)
        assert together[i].probability == pytest.approx(single.probability, abs=1e-5)
        assert np.allclose(together[i].heatmap, single.heatmap, atol=1e-4)
