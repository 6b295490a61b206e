"""Seed the demo tenant for `make run`. Safe to run again: existing rows are left alone."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents import knowledge
from agents.models import Agent, KnowledgeSource
from ontology import services
from ontology.models import Group, Membership, Thing, User
from ontology.scoping import group_scope

DEMO_USERS = [
    # username/email, password, display name, role, staff
    ("owner@acme.example", "parley-owner", "Olivia Owner", Membership.Role.OWNER, True),
    ("member@acme.example", "parley-member", "Max Member", Membership.Role.MEMBER, False),
]
PLATFORM_ADMIN = ("admin@parley.local", "parley-admin")

DEMO_AGENT = {
    "systemPrompt": (
        "You are Acme Corp's assistant. Answer from the company's knowledge when you can, "
        "cite your sources as [n], and say plainly when you do not know. When a natural "
        "next question comes to mind, end with a line 'Follow-up questions:' and up to "
        "three short questions as a list."
    ),
    "temperature": 0.3,
    "maxTokens": 1024,
    "tools": ["searchKnowledge", "createTask", "callHuman"],
    "ragEnabled": False,
    "ragTopK": 5,
}

DEMO_KNOWLEDGE = [
    (
        "Refund policy",
        "Customers can return any product within 30 days of delivery for a full "
        "refund. Refunds go back to the original payment method within five business days.",
    ),
    (
        "Travel policy",
        "Employees book travel through the Acme portal. Economy class is the "
        "default; flights over six hours may be booked in premium economy.",
    ),
    (
        "Office hours",
        "The Acme office is open from 8:00 to 18:00 on weekdays. The support desk "
        "answers the phone from 9:00 to 17:00.",
    ),
    (
        "Expense claims",
        "Submit expense claims within 60 days with the receipt attached. Claims "
        "over 500 euros need the approval of a department head.",
    ),
]


# The offline simulator at a pace a person can watch (and stop): the first words after
# 300 ms, then about 40 tokens a second.
DEMO_SIMULATOR_MODEL = "sim-gpt@offline;ttft_ms=300;tps=40"


def demo_model() -> tuple[str, str]:
    """A real provider when its key is configured, else the offline simulator."""
    keys = settings.PARLEY_PROVIDER_API_KEYS
    if keys.get("openai"):
        return "openai", "gpt-4o-mini"
    if keys.get("anthropic"):
        return "anthropic", "claude-haiku-4-5"
    return "simulator", DEMO_SIMULATOR_MODEL


class Command(BaseCommand):
    help = "Create the demo tenant (Acme Corp), its owner and member, and one agent."

    def handle(self, *args, **options):
        if not settings.PARLEY_DEMO_SEED_ALLOWED:
            raise CommandError(
                "Demo seeding is off (it creates users with known passwords). "
                "Set PARLEY_DEMO_SEED_ALLOWED=1 to seed anyway."
            )
        with transaction.atomic():
            self._seed()

    def _seed(self) -> None:
        username, password = PLATFORM_ADMIN
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username=username, email=username, password=password)

        group = Group.objects.filter(slug="acme").first()
        created_group = group is None
        if created_group:
            group = services.group_create(
                name="Acme Corp", slug="acme", plan=Group.Plan.TEAM, actor=None
            )
        with group_scope(group):
            for email, pw, display_name, role, staff in DEMO_USERS:
                user = User.objects.filter(username=email).first()
                if user is None:
                    user = User.objects.create_user(
                        username=email,
                        email=email,
                        password=pw,
                        display_name=display_name,
                        is_staff=staff,
                    )
                if not Membership.objects.filter(user=user).exists():
                    services.membership_create(group=group, user=user, role=role, actor=None)
            if not Agent.objects.exists():
                provider, model = demo_model()
                services.thing_create(
                    group=group,
                    type=Thing.Type.AGENT,
                    name="Acme Assistant",
                    properties={**DEMO_AGENT, "provider": provider, "model": model},
                    actor=None,
                )
            if not KnowledgeSource.objects.exists():
                # Ingested by the worker `make run` starts (local embeddings, no network).
                for title, content in DEMO_KNOWLEDGE:
                    knowledge.source_add_text(group=group, title=title, text=content, actor=None)
        verb = "Created" if created_group else "Checked"
        self.stdout.write(self.style.SUCCESS(f"{verb} demo tenant Acme Corp."))
