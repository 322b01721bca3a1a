"""The registry of the project's imaging models: hyperparameters and card text as data.

No torch here: the CLI and the web process may read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fhir_ai.errors import NotFound
from fhir_ai.imaging.model.card import MODEL_NAMES, Coding, InputSpec, Label, Labels


@dataclass(frozen=True, slots=True)
class ArchitectureSpec:
    """A :class:`~fhir_ai.imaging.model.network.SmallResNet`."""

    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (2, 2, 2)
    upsample: int = 1
    dropout: float = 0.1
    instance_norm_input: bool = False

    def describe(self) -> str:
        up = f", input upsampled x{self.upsample}" if self.upsample > 1 else ""
        if self.instance_norm_input:
            up += ", each image standardised to zero mean and unit variance"
        return (
            f"pre-activation ResNet, widths {list(self.widths)}, blocks {list(self.blocks)}, "
            f"global average pooling, 1 logit{up}"
        )


@dataclass(frozen=True, slots=True)
class AugmentSpec:
    """Random train-time augmentation, applied per batch."""

    rotate_deg: float = 10.0
    translate: float = 0.08
    scale: tuple[float, float] = (0.9, 1.1)
    hflip: bool = True
    vflip: bool = False
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.2
    noise_std: float = 0.02


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """Optimisation, ensembling, data split, calibration and threshold rule."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    mixup_alpha: float = 0.2
    members: int = 5
    seed: int = 20240604
    own_test_fraction: float = 0.15
    calibration_fraction: float = 0.15
    calibrate_on_val: bool = False
    #: Cross-fitting (0: off). With k folds, the final members train on every image but own
    #: test (and val, with ``calibrate_on_val``), and calibration and threshold are fitted on
    #: the out-of-fold mean logits of ``cross_fit_members`` members per fold, each trained
    #: like the final ones on the other k - 1 folds: no image is held out of training for
    #: calibration (scikit-learn's ``CalibratedClassifierCV(ensemble=False)``).
    cross_fit_folds: int = 0
    cross_fit_members: int = 2
    min_specificity: float | None = None
    ema_decay: float | None = None
    workers: int = 2
    augment: AugmentSpec = field(default_factory=AugmentSpec)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: what it predicts, how it is built and trained, and its card text."""

    name: str
    version: str
    title: str
    labels: Labels
    input: InputSpec
    architecture: ArchitectureSpec
    train: TrainSpec
    tta_hflip: bool
    threshold_rationale: str
    intended_use: str
    limitations: tuple[str, ...]
    references: tuple[str, ...]

    @property
    def positive_label(self) -> int:
        """The npz label value of the positive finding."""
        return self.labels.positive.dataset_label


def _label(code: str, display: str, meaning: str, value: int) -> Label:
    return Label(coding=Coding(code=code, display=display), meaning=meaning, dataset_label=value)


_LOW_RES = (
    "Trained and validated at 28x28 pixels only (MedMNIST): fine detail is invisible to the "
    "model, and full-resolution images are downsampled to 28x28 before inference."
)
_NOT_DIAGNOSTIC = (
    "Not a diagnostic device: a preliminary, AI-asserted result for a clinician to review."
)

PNEUMONIA_CXR = ModelSpec(
    name="pneumonia-cxr",
    version="1.0.0",
    title="Pediatric chest X-ray: pneumonia vs normal",
    labels=Labels(
        positive=_label("233604007", "Pneumonia", "pneumonia (bacterial or viral)", 1),
        negative=_label("281900007", "No abnormality detected", "normal chest X-ray", 0),
    ),
    input=InputSpec(size=(28, 28), modalities=("CR", "DX"), body_parts=("CHEST",)),
    architecture=ArchitectureSpec(widths=(16, 32, 64), blocks=(2, 2, 2)),
    train=TrainSpec(
        epochs=24,
        members=6,
        min_specificity=0.98,
        augment=AugmentSpec(contrast=0.4, gamma=0.35, brightness=0.15),
    ),
    tta_hflip=True,
    threshold_rationale=(
        "Highest balanced accuracy (Youden's J) on the calibration hold-out among thresholds "
        "that keep its specificity at or above {min_specificity:.2f}. Models trained on "
        "PneumoniaMNIST lose specificity on images from other acquisitions (normals called "
        "pneumonia), and a false pneumonia call leads to antibiotics and further imaging, so "
        "the operating point favours specificity; Youden's J is independent of prevalence, "
        "which differs between training (74% pneumonia) and deployment."
    ),
    intended_use=(
        "Triage aid that flags possible pneumonia on frontal (AP/PA) pediatric chest radiographs "
        "for prioritised review by a radiologist or clinician."
    ),
    limitations=(
        _LOW_RES,
        "Pediatric population only: trained on chest X-rays of children aged 1-5 years from "
        "one center (Guangzhou Women and Children's Medical Center; Kermany et al. 2018); "
        "not validated on adults, lateral views or other sites.",
        "Does not distinguish bacterial from viral pneumonia, nor other opacities "
        "(atelectasis, effusion, edema) that can look alike at this resolution.",
        "Accuracy drops under acquisition shift: on new sites expect lower specificity than "
        "the hold-out figures; re-check the threshold on local data.",
        _NOT_DIAGNOSTIC,
    ),
    references=(
        "Yang J. et al. MedMNIST v2. Scientific Data 10:41 (2023). doi:10.1038/s41597-022-01721-8",
        "Kermany D. S. et al. Cell 172(5):1122-1131 (2018). doi:10.1016/j.cell.2018.02.010",
    ),
)

BREAST_US = ModelSpec(
    name="breast-us",
    version="1.2.0",
    title="Breast ultrasound: malignant vs normal or benign",
    labels=Labels(
        positive=_label("254837009", "Malignant neoplasm of breast", "malignant lesion", 0),
        negative=_label("169254007", "Ultrasound scan normal", "normal breast or benign lesion", 1),
    ),
    input=InputSpec(size=(28, 28), modalities=("US",), body_parts=("BREAST",)),
    architecture=ArchitectureSpec(widths=(16, 32, 64), blocks=(2, 2, 2), dropout=0.1),
    train=TrainSpec(
        epochs=240,
        batch_size=64,
        members=8,
        own_test_fraction=0.15,
        calibration_fraction=0.15,
        calibrate_on_val=True,
        augment=AugmentSpec(rotate_deg=15.0, translate=0.1, scale=(0.85, 1.15), contrast=0.3),
    ),
    tta_hflip=True,
    threshold_rationale=(
        "Highest Youden's J (sensitivity + specificity - 1) on the calibration hold-out "
        "(train hold-out plus the official val split): a missed malignancy costs more than "
        "an extra biopsy referral, so neither error rate is sacrificed for raw accuracy at "
        "the 27% malignant prevalence of the training data."
    ),
    intended_use=(
        "Second-reader aid that flags breast ultrasound images suspicious for malignancy for "
        "review by a breast radiologist."
    ),
    limitations=(
        _LOW_RES,
        "Trained on 546 images (BUSI: women aged 25-75, one hospital in Cairo, one scanner "
        "family; Al-Dhabyani et al. 2020): small data, wide confidence intervals.",
        "The negative class merges normal scans and benign lesions; the negative coding "
        "(ultrasound scan normal) does not say which.",
        "Image-level only: no lesion localisation, no BI-RADS category.",
        _NOT_DIAGNOSTIC,
    ),
    references=(
        "Yang J. et al. MedMNIST v2. Scientific Data 10:41 (2023). doi:10.1038/s41597-022-01721-8",
        "Al-Dhabyani W. et al. Data in Brief 28:104863 (2020). doi:10.1016/j.dib.2019.104863",
    ),
)

SPECS: Mapping[str, ModelSpec] = MappingProxyType(
    {spec.name: spec for spec in (PNEUMONIA_CXR, BREAST_US)}
)
assert tuple(SPECS) == MODEL_NAMES


def get_spec(name: str) -> ModelSpec:
    """The registered spec of a model."""
    try:
        return SPECS[name]
    except KeyError:
        raise NotFound(f"unknown imaging model {name!r}; known: {', '.join(MODEL_NAMES)}") from None
