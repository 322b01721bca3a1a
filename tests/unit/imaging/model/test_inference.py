"""The packaged models on real MedMNIST val images: calibrated predictions and Grad-CAM."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fhir_ai.errors import InvalidRequest
from fhir_ai.imaging.model import MODEL_NAMES, model_dir
from fhir_ai.imaging.model.data import load_split
from fhir_ai.imaging.model.inference import LoadedModel, ModelIntegrityError
from fhir_ai.imaging.model.metrics import roc_auc

MIN_VAL_AUC = {"pneumonia-cxr": 0.95, "breast-us": 0.8}


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    return {name: LoadedModel.load(name, "cpu") for name in MODEL_NAMES}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_ranks_real_val_images(
    name: str, models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    model = models[name]
    val = load_split(npz_path[name], "val", model.card.labels.positive.dataset_label)
    probabilities = model.predict(val.images[:300])
    assert probabilities.shape == (min(300, len(val)),)
    assert probabilities.dtype == np.float32
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert roc_auc(val.targets[:300], probabilities) > MIN_VAL_AUC[name]


def test_predict_is_deterministic_and_batch_independent(
    models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    model = models["pneumonia-cxr"]
    images = load_split(npz_path["pneumonia-cxr"], "val", 1).images[:8]
    together = model.predict(images)
    alone = np.concatenate([model.predict(images[i : i + 1]) for i in range(len(images))])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_predict_rejects_the_wrong_shape(models: dict[str, LoadedModel]) -> None:
    with pytest.raises(InvalidRequest, match="expects N x 1 x 28 x 28"):
        models["pneumonia-cxr"].predict(np.zeros((2, 1, 64, 64), dtype=np.float32))


def _heatmap(model: LoadedModel, image: np.ndarray) -> np.ndarray:
    return model.analyse(image[None])[0].heatmap


def test_analyse_gives_a_normalised_map_of_the_input_size(
    models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    model = models["pneumonia-cxr"]
    val = load_split(npz_path["pneumonia-cxr"], "val", 1)
    image = val.images[int(np.flatnonzero(val.targets == 1)[0])]
    heat = _heatmap(model, image)
    assert heat.shape == (28, 28)
    assert heat.dtype == np.float32
    assert float(heat.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(heat.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(heat.std()) > 0.05


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_analyse_gives_the_probabilities_of_predict(
    name: str, models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    model = models[name]
    images = load_split(npz_path[name], "val", 1).images[:16]
    before = model.predict(images)
    analysed = model.analyse(images)
    np.testing.assert_allclose([a.probability for a in analysed], before, rtol=1e-6)
    np.testing.assert_array_equal(model.predict(images), before)
    assert not any(member.training for member in model.members)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_heatmaps_are_monai_grad_cam(
    name: str, models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    """The closed-form Grad-CAM of the forward pass equals MONAI's GradCAM (a backward pass
    per member) on real images: each member's map scaled to [0, 1], averaged, scaled."""
    from monai.visualize.class_activation_maps import GradCAM
    from torch import nn

    from fhir_ai.imaging.model.network import GRADCAM_LAYER

    class OneLogit(nn.Module):  # the N x classes output MONAI's GradCAM expects
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).unsqueeze(1)

    def unit(maps: torch.Tensor) -> torch.Tensor:  # a map with no positive evidence is all 0
        flat = maps.reshape(len(maps), -1)
        low = flat.min(dim=1).values.reshape(-1, *[1] * (maps.ndim - 1))
        span = flat.max(dim=1).values.reshape(-1, *[1] * (maps.ndim - 1)) - low
        return torch.where(span > 1e-8, (maps - low) / span.clamp_min(1e-8), 0.0)

    model = models[name]
    images = load_split(npz_path[name], "val", 1).images[:8]
    total = torch.zeros((len(images), *images.shape[-2:]))
    for member in model.members:
        cam = GradCAM(OneLogit(member).eval(), f"net.{GRADCAM_LAYER}", postprocessing=unit)
        with torch.enable_grad():
            total += cam(torch.from_numpy(images), class_idx=0)[:, 0].detach()
    expected = unit(total / len(model.members)).numpy()
    heatmaps = np.stack([a.heatmap for a in model.analyse(images)])
    np.testing.assert_allclose(heatmaps, expected, atol=1e-5)
    assert not any(member.training for member in model.members)


def test_heatmap_points_at_the_evidence(
    models: dict[str, LoadedModel], npz_path: dict[str, Path]
) -> None:
    """Deletion check on real pneumonia images: blurring away the most attended quarter of
    the image lowers the pneumonia probability more than blurring the least attended one.
    (A flipped map, as MONAI's default normaliser would give, fails this.)
    """
    model = models["pneumonia-cxr"]
    split = load_split(npz_path["pneumonia-cxr"], "val", 1)
    images = split.images[split.targets == 1][:24]
    drops = {"most": 0.0, "least": 0.0}
    for image in images:
        heat = _heatmap(model, image)
        mean = float(image.mean())
        for which, mask in (
            ("most", heat >= np.quantile(heat, 0.75)),
            ("least", heat <= np.quantile(heat, 0.25)),
        ):
            occluded = image.copy()
            occluded[0][mask] = mean
            drops[which] += float(model.predict(image[None])[0] - model.predict(occluded[None])[0])
    assert drops["most"] > drops["least"]


def test_load_refuses_weights_that_do_not_match_the_card(tmp_path: Path) -> None:
    folder = tmp_path / "pneumonia-cxr"
    shutil.copytree(model_dir("pneumonia-cxr"), folder)
    with (folder / "model.pt").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        LoadedModel.load("pneumonia-cxr", "cpu", weights_dir=folder)


def test_load_refuses_a_card_of_another_model() -> None:
    with pytest.raises(ModelIntegrityError, match="holds model"):
        LoadedModel.load("pneumonia-cxr", "cpu", weights_dir=model_dir("breast-us"))
