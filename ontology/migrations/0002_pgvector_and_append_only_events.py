from django.contrib.postgres.operations import CreateExtension
from django.db import migrations

APPEND_ONLY = """
CREATE FUNCTION parley_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A group's own deletion (services.group_delete) takes its audit trail with it.
    IF TG_OP = 'DELETE' AND current_setting('parley.allow_event_delete', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ontology_event_append_only
    BEFORE UPDATE OR DELETE ON ontology_event
    FOR EACH ROW EXECUTE FUNCTION parley_events_append_only();
"""

DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS ontology_event_append_only ON ontology_event;
DROP FUNCTION IF EXISTS parley_events_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("ontology", "0001_initial")]

    operations = [
        CreateExtension("vector"),
        migrations.RunSQL(APPEND_ONLY, DROP_APPEND_ONLY),
    ]
