"""``fhir-ai nlp ...``: JSON lines in, JSON lines out (one object per line, same order, streamed).

Imported lazily by :mod:`fhir_ai.cli` so that the other commands never import spaCy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import click

from fhir_ai.errors import FhirAiError
from fhir_ai.nlp.cxr import binary_labels, label_report
from fhir_ai.nlp.pipeline import ClinicalPipeline, load_pipeline
from fhir_ai.nlp.text import decode_text
from fhir_ai.settings import Settings

FLAG_FIELDS = ("negated", "uncertain", "historical", "hypothetical", "family")


def _pipeline() -> ClinicalPipeline:
    return load_pipeline(Settings().terminology_path())


def read_lines(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(line number, object, error)`` for each non-blank line of JSON objects."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            yield number, None, f"line {number}: invalid JSON ({error})"
            continue
        if not isinstance(value, dict):
            yield number, None, f"line {number}: expected a JSON object"
        else:
            yield number, value, None


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def assert_record(pipeline: ClinicalPipeline, record: dict[str, Any]) -> dict[str, Any]:
    """The output object of ``nlp assert`` for one input object."""
    text, concept = record.get("text"), record.get("concept")
    if not isinstance(text, str) or not isinstance(concept, str):
        return {"id": record.get("id"), "error": "text and concept must be strings"}
    mention = pipeline.assert_phrase(text, concept)
    flags = {name: bool(mention and getattr(mention, name)) for name in FLAG_FIELDS}
    return {"id": record.get("id"), "found": mention is not None, **flags}


def cxr_record(pipeline: ClinicalPipeline, record: dict[str, Any], binary: bool) -> dict[str, Any]:
    """The output object of ``nlp label-cxr`` for one input object."""
    text = record.get("text")
    if not isinstance(text, str):
        return {"id": record.get("id"), "error": "text must be a string"}
    labels = label_report(pipeline.mentions(text), pipeline.terminology)
    return {"id": record.get("id"), "labels": binary_labels(labels) if binary else labels}


def _stream(handler: Any) -> None:
    for _, record, error in read_lines(sys.stdin):
        _emit({"id": None, "error": error} if record is None else handler(record))


@click.group("nlp")
def nlp() -> None:
    """Clinical NLP tools (JSON lines on stdin and stdout)."""


@nlp.command("assert")
def assert_command() -> None:
    """In {"id","text","concept"}; out {"id","found","negated","uncertain",...} per line."""
    pipeline = _pipeline()
    _stream(lambda record: assert_record(pipeline, record))


@nlp.command("label-cxr")
@click.option("--binary", is_flag=True, help="0/1 labels (positive = 1; uncertain = 0).")
def label_cxr(binary: bool) -> None:
    """In {"id","text"} (a chest X-ray report); out {"id","labels"} per line."""
    pipeline = _pipeline()
    _stream(lambda record: cxr_record(pipeline, record, binary))


def file_mentions(
    pipeline: ClinicalPipeline, paths: Iterable[Path], limit: int
) -> Iterator[dict[str, Any]]:
    """One object per file: its mentions, or the reason it was skipped."""
    for path in paths:
        try:
            text = decode_text(path.read_bytes(), _content_type(path), limit)
            mentions = [m.to_json() for m in pipeline.mentions(text)]
        except (OSError, FhirAiError) as error:
            yield {"file": str(path), "error": getattr(error, "message", str(error))}
            continue
        yield {"file": str(path), "mentions": mentions}


def _content_type(path: Path) -> str:
    return "text/html" if path.suffix.lower() in (".html", ".htm", ".xhtml") else "text/plain"


@nlp.command("extract")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def extract_command(files: tuple[Path, ...]) -> None:
    """Mentions of each FILE as one JSON line (progress bar on stderr for many files)."""
    settings = Settings()
    pipeline = load_pipeline(settings.terminology_path())
    results = file_mentions(pipeline, files, settings.nlp_max_text_bytes)
    if len(files) > 1:
        with click.progressbar(results, length=len(files), file=sys.stderr, label="notes") as bar:
            for result in bar:
                _emit(result)
    else:
        for result in results:
            _emit(result)
