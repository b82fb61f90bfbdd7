from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Built-in and user agents register themselves on import; web and workers both need
        # the registry (the web to validate a new run's agent, workers to execute it).
        from django.conf import settings

        from .agents import BUILTIN_AGENT_MODULES, load_agent_modules

        load_agent_modules([*BUILTIN_AGENT_MODULES, *settings.AGENTOPS_AGENT_MODULES])
