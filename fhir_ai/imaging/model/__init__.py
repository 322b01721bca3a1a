"""The project's trained imaging classifiers.

Importing this package (and :mod:`.card`, :mod:`.specs`) never imports torch; the web process
reads model cards through it. Training, inference and evaluation live in the torch-importing
modules :mod:`.train`, :mod:`.inference` and :mod:`.evaluate`.
"""

from fhir_ai.imaging.model.card import MODEL_NAMES, ModelCard, load_card, model_dir

__all__ = ["MODEL_NAMES", "ModelCard", "load_card", "model_dir"]
