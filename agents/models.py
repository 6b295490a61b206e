from ontology.models import Thing
from ontology.scoping import TenantManager


class AgentManager(TenantManager):
    def get_queryset(self):
        return super().get_queryset().filter(type=Thing.Type.AGENT)


class Agent(Thing):
    """An agent is a Thing of type "agent"; this proxy gives it its own admin and manager."""

    objects = AgentManager()

    class Meta:
        proxy = True
        verbose_name = "agent"
