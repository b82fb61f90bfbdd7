from django.core.management.base import BaseCommand, CommandError

from runs.errors import AppError
from runs.services.keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed alone on the last line and never shown again."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            default="ingest,runs:read,runs:write",
            help="comma-separated: ingest, runs:read, runs:write, admin",
        )

    def handle(self, *args, name, scopes, **options):
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            key, secret = api_key_create(name=name, scopes=wanted)
        except AppError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"API key {key.name!r} with scopes {', '.join(key.scopes)}:")
        self.stdout.write(secret)
