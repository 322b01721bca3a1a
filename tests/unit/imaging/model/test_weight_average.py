"""The optional exponential moving average of weights used by training."""

from __future__ import annotations

import torch
from torch import nn

from fhir_ai.imaging.model.augment import WeightAverage


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(value)


def test_average_follows_weights_with_its_decay() -> None:
    model = nn.Linear(2, 1)
    _set(model, 0.0)
    average = WeightAverage(model, 0.75)
    _set(model, 1.0)
    average.update(model)
    average.update(model)
    average.copy_to(model)
    expected = 1 - 0.75**2
    assert torch.allclose(model.weight, torch.full_like(model.weight, expected))


def test_without_decay_the_model_is_left_as_trained() -> None:
    model = nn.Linear(2, 1)
    _set(model, 0.0)
    average = WeightAverage(model, None)
    _set(model, 1.0)
    average.update(model)
    average.copy_to(model)
    assert torch.equal(model.weight, torch.ones_like(model.weight))
