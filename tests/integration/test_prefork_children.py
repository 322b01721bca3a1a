"""A prefork imaging worker loads its model in the pool child that runs the job, never in
its main process (which must not initialise CUDA: its children are forked from it), with
either start method; a spawned child gets the worker's metrics handlers too.

Real worker processes (``fhir-ai worker --pool prefork --pool-start-method ...``), a real
chest radiograph analysed, the processes asked what they hold (workers.process_state).
On a machine without CUDA ``cuda_initialized`` is false everywhere; there the test
shows where the model lives.
"""

from __future__ import annotations

import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dicom_helpers import distinct_studies, stow_body
from tests.process_helpers import FHIR_AI, free_port, stop, tail, wait_for
from tests.worker_helpers import JobStack, job_stack
from workers.celery_app import make_celery

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
CHEST = "dicom/chest_radiographs/highdicom_dx_image.dcm"  # DX thorax, 211 x 169


def _stow(stack: JobStack, payload: bytes) -> str:
    """Store a study; the id of the analysis Task it queued."""
    body, content_type = stow_body(payload)
    response = stack.client.post("/dicomweb/studies", data=body, content_type=content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.headers["Content-Location"].rsplit("/", 1)[1])


def _analysed(metrics_port: int) -> float:
    """Imaging tasks counted by the worker's metrics (its children's samples merged)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "fhir_ai_worker_task_duration_seconds_count"
        and s.labels.get("task") == "workers.imaging.analyze_study"
    )


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_the_model_loads_in_the_pool_child_never_in_the_main_process(
    tmp_path: Path, shared_data: Path, start_method: str
) -> None:
    with job_stack(tmp_path, analyze_on_store=True) as stack:
        port = free_port()
        env = {**stack.worker_env(), "FHIR_AI_WORKER_METRICS_PORT": str(port)}
        node = f"p{uuid.uuid4().hex[:6]}@localhost"
        command = [
            FHIR_AI, "worker", "--queues", "imaging,default", "--pool", "prefork",
            "--concurrency", "1", "--pool-start-method", start_method, "--hostname", node,
        ]  # fmt: skip
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        app = make_celery(stack.settings)
        try:
            payload = distinct_studies((shared_data / CHEST).read_bytes(), 1)[0]
            task = stack.wait_task(_stow(stack, payload), timeout=180)
            assert task["status"] == "completed", (task.get("statusReason"), tail(log))

            replies: list[dict[str, Any]] = app.control.broadcast(
                "fhir_ai_process", destination=[node], reply=True, timeout=10
            )
            main = replies[0][node]
            child = app.send_task("workers.system.process_state").get(timeout=60)
            assert main["pid"] == worker.pid and main["process"] == "MainProcess"
            assert main["models_loaded"] == 0 and main["cuda_initialized"] is False, main
            prefix = {"fork": "ForkPoolWorker", "spawn": "SpawnPoolWorker"}[start_method]
            assert child["pid"] != worker.pid and child["process"].startswith(prefix), child
            assert child["worker"] == node and child["torch_imported"] is True
            assert child["models_loaded"] == 1, child  # the job's child loaded its model
            assert child["cuda_initialized"] == child["cuda_available"], child
            assert main["gc_frozen"] > 100_000 and child["gc_frozen"] > 100_000  # fhir_ai.heap
            assert wait_for(lambda: _analysed(port) == 1, 10), tail(log)
        finally:
            app.close()
            returncode = stop(worker, timeout=60)
        assert returncode == 0, tail(log)
