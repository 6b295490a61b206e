"""Cache settings for tests of what Parley does while Redis cannot be reached."""

# Django's CACHES pointed at a port nothing listens on, with short timeouts:
# use with override_settings(CACHES=UNREACHABLE).
UNREACHABLE = {
    "default": {
        "BACKEND": "config.cache.SharedRedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "KEY_PREFIX": "parley",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
