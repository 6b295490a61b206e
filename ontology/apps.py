from django.apps import AppConfig


class OntologyConfig(AppConfig):
    name = "ontology"
    verbose_name = "Organisation"

    def ready(self) -> None:
        from ontology import receivers  # noqa: F401 - connects the sign-in audit receivers
