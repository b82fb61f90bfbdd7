"""The Celery application. Workers start with `celery -A agentops worker`, beat with `... beat`."""

import os

from celery import Celery

from .broker import guard_redis_channel

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
guard_redis_channel()  # a Redis restart must not end the worker (see agentops.broker)

app = Celery("agentops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
