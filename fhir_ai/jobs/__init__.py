"""Asynchronous jobs: each is a FHIR Task, queued by task name on a Celery queue.

The web process submits jobs (:class:`~fhir_ai.jobs.service.JobService`) and never
imports worker code; workers move the Task through its states with the same service.
"""
