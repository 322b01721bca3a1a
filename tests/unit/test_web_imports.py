"""The web process never imports worker code or the ML stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.process_helpers import clean_env

FORBIDDEN = ("torch", "spacy", "medspacy", "monai", "workers")

SCRIPT = """
import json, sys
from pathlib import Path
import fhir_ai.app
from fhir_ai.settings import Settings
fhir_ai.app.create_app(Settings(data_dir=Path(sys.argv[1]), broker_url="redis://127.0.0.1:1/0"))
import fhir_ai.cli, fhir_ai.server, fhir_ai.wsgi
forbidden = sys.argv[2].split(",")
loaded = sorted(
    name for name in sys.modules
    if any(name == f or name.startswith(f + ".") for f in forbidden)
)
print(json.dumps(loaded))
"""


def test_web_app_does_not_import_workers_or_ml(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), ",".join(FORBIDDEN)],
        env=clean_env(FHIR_AI_DATA_DIR=str(tmp_path), FHIR_AI_LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
