"""Logging pieces the settings' LOGGING refers to."""

import logging


class OneLineRefusals(logging.Filter):
    """A refusal is expected (a role opening a page it may not): Django logs each 403 with the
    PermissionDenied's traceback attached; keep the one warning line and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
