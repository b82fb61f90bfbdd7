import os

from django.core.wsgi import get_wsgi_application

from agentops.heap import freeze_as_pages_warm, freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
application = get_wsgi_application()
freeze_startup_objects()  # each gunicorn worker loads this module: see agentops.heap
freeze_as_pages_warm()
