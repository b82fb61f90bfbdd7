"""Reachability of the database and the broker, for /api/v1/health."""

import os
from pathlib import Path

from django.conf import settings
from django.db import connection
from kombu import Connection


def database_status() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the message says which
        return False, f"{type(exc).__name__}: {exc}".strip()
    return True, connection.vendor


def broker_status(timeout: float = 2.0) -> tuple[bool, str]:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if folder.is_dir() and os.access(folder, os.W_OK):
            return True, "filesystem"
        return False, f"broker folder {folder} is missing or not writable"
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}".strip()
    return True, str(transport)
