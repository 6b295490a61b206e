"""The test servers' settings with DEBUG off, so a browser sees the error pages people get
(DEBUG shows Django's technical 404 and 500 pages instead). Static files are served from the
source folders, as with DEBUG on: no collectstatic manifest is needed."""

from config.settings import *  # noqa: F403

DEBUG = False
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
