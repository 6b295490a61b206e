"""Django's signals, where they are the only hook (sign-ins, a user deactivated in the admin, a
membership deleted with its group, any edit that changes what an API token grants); each
receiver calls one service."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ontology import services, tokens
from ontology.models import ApiToken, Group, Membership, User
from ontology.versions import bump_token_versions


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


# --- Cached admissions (ontology.token_cache): whatever changes what a token grants ---------


@receiver(post_save, sender=ApiToken, dispatch_uid="parley-admission-token-saved")
@receiver(post_delete, sender=ApiToken, dispatch_uid="parley-admission-token-deleted")
def forget_admission_of_token(sender, instance: ApiToken, **kwargs) -> None:
    if not kwargs.get("created"):
        bump_token_versions([instance.digest])


@receiver(post_save, sender=Membership, dispatch_uid="parley-admission-membership-saved")
@receiver(post_delete, sender=Membership, dispatch_uid="parley-admission-membership-deleted")
def forget_admissions_of_member(sender, instance: Membership, **kwargs) -> None:
    """A role changed or a member removed: their tokens in the group are read afresh."""
    if not kwargs.get("created"):
        tokens.forget_admissions(user=instance.user_id, group=instance.group_id)


@receiver(post_save, sender=User, dispatch_uid="parley-admission-user-saved")
@receiver(post_delete, sender=User, dispatch_uid="parley-admission-user-deleted")
def forget_admissions_of_user(sender, instance: User, **kwargs) -> None:
    """A user deactivated (or renamed, or deleted): their tokens are read afresh."""
    if not kwargs.get("created"):
        tokens.forget_admissions(user=instance.pk)


@receiver(post_save, sender=Group, dispatch_uid="parley-admission-group-saved")
@receiver(post_delete, sender=Group, dispatch_uid="parley-admission-group-deleted")
def forget_admissions_in_group(sender, instance: Group, **kwargs) -> None:
    """A group renamed, its plan or properties changed, or deleted: its tokens read afresh."""
    if not kwargs.get("created"):
        tokens.forget_admissions(group=instance.pk)
