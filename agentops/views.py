"""The project's own error pages."""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.utils.html import escape
from django.views import defaults

# How long a reader (or a client) should wait before trying again, as the API's 503 says.
RETRY_AFTER_SECONDS = 2
UNAVAILABLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Database unavailable · agentops</title></head>
<body><h1>The database is not answering</h1>
<p>Nothing was changed. Try again in a few seconds: {path}</p></body></html>
"""


def server_error(request):
    """A page that failed because the database is down answers 503 with Retry-After (no run or
    step is lost: the write did not happen); any other failure is Django's plain 500 page. Never
    touches the database itself."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        body = UNAVAILABLE.format(path=escape(request.path))
        response = HttpResponse(body, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return defaults.server_error(request)
