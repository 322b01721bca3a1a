"""FHIR R4 Subscriptions (rest-hook) on job results, and the write-back of reports.

When a job completes, :class:`~fhir_ai.subscriptions.listeners.ResultListeners` queues a
``default``-queue task per matching Subscription (and per report to write back); the
worker task POSTs, retries with backoff, and records the outcome on the Subscription and
in a delivery log of AuditEvents.
"""
