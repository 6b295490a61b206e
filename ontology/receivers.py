"""Django's signals, where they are the only hook (sign-ins, a user deactivated in the admin, a
membership deleted with its group); each receiver calls one service."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ontology import services, tokens
from ontology.models import Membership, User


@receiver(user_logged_in, dispatch_uid="parley-audit-login")
def audit_login(sender, request, user, **kwargs) -> None:
    services.login_record(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="parley-audit-login-failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    services.login_failure_record(username=credentials.get("username", ""), request=request)


@receiver(post_delete, sender=Membership, dispatch_uid="parley-token-sockets-membership")
def close_sockets_of_removed_member(sender, instance: Membership, **kwargs) -> None:
    """A removed member's tokens stop at once (authenticate checks membership); their open
    sockets are told to close."""
    tokens.close_token_sockets(tokens.tokens_of(user=instance.user_id, group=instance.group_id))


@receiver(post_save, sender=User, dispatch_uid="parley-token-sockets-deactivated")
def close_sockets_of_deactivated_user(sender, instance: User, **kwargs) -> None:
    if not instance.is_active:
        tokens.close_token_sockets(tokens.tokens_of(user=instance.pk))
