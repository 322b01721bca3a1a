"""``fhir-ai nlp assert | label-cxr | extract``: JSON lines in and out, through the real command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fhir_ai.nlp.cxr import FINDINGS
from tests.process_helpers import FHIR_AI, clean_env

pytestmark = pytest.mark.slow


def _run(*args: str, lines: list[Any] | None = None) -> list[dict[str, Any]]:
    stdin = "".join(json.dumps(line) + "\n" for line in lines or [])
    done = subprocess.run(
        [FHIR_AI, "nlp", *args], input=stdin, capture_output=True, text=True, env=clean_env(),
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_assert_matches_any_phrase_in_order_with_its_context() -> None:
    out = _run(
        "assert",
        lines=[
            {"id": "a", "text": "No evidence of pneumonia.", "concept": "pneumonia"},
            {"id": "b", "text": "Mother had a zorblax syndrome.", "concept": "zorblax syndrome"},
            {"id": "c", "text": "Return if chest pain develops.", "concept": "chest pain"},
            {"id": "d", "text": "History of asthma as a child.", "concept": "asthma"},
            {"id": "e", "text": "Possible pulmonary embolism.", "concept": "pulmonary embolism"},
            {"id": "f", "text": "Clear lungs.", "concept": "effusion"},
        ],
    )
    assert [o["id"] for o in out] == ["a", "b", "c", "d", "e", "f"]
    flags = {o["id"]: {k for k, v in o.items() if v is True} for o in out}
    assert flags == {
        "a": {"found", "negated"},
        "b": {"found", "family"},  # no terminology rule knows this phrase
        "c": {"found", "hypothetical"},
        "d": {"found", "historical"},
        "e": {"found", "uncertain"},
        "f": set(),
    }


def test_label_cxr_four_values_and_binary() -> None:
    report = {"id": "r1", "text": "FINDINGS: Small left pleural effusion. No pneumothorax."}
    labels = _run("label-cxr", lines=[report])[0]["labels"]
    assert set(FINDINGS) <= set(labels)
    assert (labels["Effusion"], labels["Pneumothorax"], labels["Mass"]) == (
        "positive", "negative", "absent",
    )  # fmt: skip
    binary = _run("label-cxr", "--binary", lines=[report])[0]["labels"]
    assert binary["Effusion"] == 1 and binary["Pneumothorax"] == 0


def test_bad_lines_get_an_error_line_and_the_stream_goes_on() -> None:
    done = subprocess.run(
        [FHIR_AI, "nlp", "assert"], input='not json\n[1]\n{"id": "x", "text": 3}\n',
        capture_output=True, text=True, env=clean_env(), timeout=120, check=False,
    )  # fmt: skip
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 3 and all("error" in o for o in out)


def test_extract_files_with_a_skip_reason_for_a_binary_one(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Assessment: type 2 diabetes mellitus. No chest pain.")
    blob = tmp_path / "scan.txt"
    blob.write_bytes(b"\x00\x01\x02\x03" * 200)
    out = _run("extract", str(note), str(blob))
    assert [Path(o["file"]).name for o in out] == ["note.txt", "scan.txt"]
    assert any("diabetes" in json.dumps(m).lower() for m in out[0]["mentions"])
    assert "error" in out[1]
