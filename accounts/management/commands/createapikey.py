from django.core.management.base import BaseCommand

from accounts.services import apikey_create, user_get_or_create


class Command(BaseCommand):
    help = "Create an API key for a user, creating the user if needed. Prints the key last."

    def add_arguments(self, parser):
        parser.add_argument("username", help="Owner of the key; created if it does not exist.")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, username, name, **options):
        user = user_get_or_create(username=username)
        api_key, full_key = apikey_create(owner=user, name=name)
        self.stderr.write(f"Created API key {api_key.prefix}… for {user.username}; it is shown only once.")
        self.stdout.write(full_key)
