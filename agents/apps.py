from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents.properties import validate_agent_properties
        from ontology.properties import register_properties_validator

        register_properties_validator("agent", validate_agent_properties)
        import agents.knowledge.tasks
        import agents.tools.builtin  # noqa: F401 - registers the built-in tools
