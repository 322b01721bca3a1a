"""Celery workers: the app factory (:mod:`workers.celery_app`) and the tasks.

The web process never imports this package; it enqueues tasks by name with
``Celery.send_task``. Worker processes start from :mod:`workers.main`.
"""
