"""Django's sign-in signals are the only hook for sign-ins; each receiver calls one service."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from ontology import services


@receiver(user_logged_in, dispatch_uid="parley-audit-login")
def audit_login(sender, request, user, **kwargs) -> None:
    services.login_record(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="parley-audit-login-failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    services.login_failure_record(username=credentials.get("username", ""), request=request)
