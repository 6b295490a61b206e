"""The production static files storage."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """whitenoise's hashed, compressed files, with ES module imports (the chat's
    `import ... from "./socket.js";`) rewritten to the hashed siblings too: otherwise a
    cached hashed main.js would load whatever unhashed module is current, mixing versions."""

    support_js_module_import_aggregation = True
