import os

from django.core.asgi import get_asgi_application

from agentops.heap import freeze_as_pages_warm, freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
application = get_asgi_application()
freeze_startup_objects()  # see agentops.heap
freeze_as_pages_warm()
