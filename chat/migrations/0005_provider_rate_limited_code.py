"""A provider's 429 is now `provider_rate_limited`; `rate_limited` means the person is
sending too fast. Answers that failed on a provider's 429 keep the sentence they had."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_search_trigram_indexes")]

    operations = [
        migrations.RunSQL(
            "UPDATE chat_message SET error_code = 'provider_rate_limited'"
            " WHERE error_code = 'rate_limited'",
            "UPDATE chat_message SET error_code = 'rate_limited'"
            " WHERE error_code = 'provider_rate_limited'",
        ),
    ]
