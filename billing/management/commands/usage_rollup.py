"""Re-sum the daily usage roll-ups from the ledger, for any past days (idempotent)."""

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing import services


class Command(BaseCommand):
    help = "Roll up the ledger into daily usage: the last complete days, or --day / --since."

    def add_arguments(self, parser):
        parser.add_argument("--day", type=date.fromisoformat, help="One day, YYYY-MM-DD.")
        parser.add_argument(
            "--since", type=date.fromisoformat, help="Every day from YYYY-MM-DD to yesterday."
        )

    def handle(self, *args, day=None, since=None, **options):
        yesterday = timezone.localdate() - timedelta(days=1)
        if day and since:
            raise CommandError("Give --day or --since, not both.")
        if day or since:
            first, last = (day, day) if day else (since, yesterday)
            if last > yesterday:
                raise CommandError("Only complete days (before today) can be rolled up.")
            days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        else:
            days = None
        if days is None:
            done = services.usage_rollup_recent()
        else:
            done = days
            for one in days:
                services.usage_rollup_day(day=one)
        self.stdout.write(
            f"Rolled up {len(done)} day(s): {done[0]} to {done[-1]}."
            if done
            else "Nothing to roll up."
        )
