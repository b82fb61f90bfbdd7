from django.core.management.base import BaseCommand, CommandError

from runs.errors import AppError
from runs.roles import ROLES
from runs.services.users import user_set_role


class Command(BaseCommand):
    help = "Create a user (or update an existing one) with a role and a password."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--password", required=True)

    def handle(self, *args, username, role, password, **options):
        try:
            user_set_role(username=username, role=role, password=password)
        except AppError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{username}: {role}")
