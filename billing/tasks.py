"""Beat jobs (settings.CELERY_BEAT_SCHEDULE): thin and safe to run again."""

from celery import shared_task

from billing import services


@shared_task(name="billing.usage_rollup_recent")
def usage_rollup_recent() -> list[str]:
    return [day.isoformat() for day in services.usage_rollup_recent()]


@shared_task(name="billing.reservations_cleanup")
def reservations_cleanup() -> int:
    return services.reservations_cleanup()
