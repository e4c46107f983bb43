"""datastore_logic: the freeze/flush policy in front of the databuffer, and the status page.

gunicorn runs ``'datastore_logic:create_app()'``; nothing is built at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from datastore_logic.settings import Settings

SERVICE = "datastore_logic"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from ``settings`` (read from the environment when not given)."""
    from flask import Flask

    from datastore_logic.policy import Policy
    from datastore_logic.routes import ACCESS, bp
    from datastore_logic.settings import Settings
    from datastore_logic.status import PageAssets
    from datastore_logic.upstream import BufferClient
    from glitchflow_core.access import require_decisions, service_gate
    from glitchflow_core.edge import install_flask
    from glitchflow_core.logs import configure_logging, install_flask_request_id
    from glitchflow_core.metrics import ServiceMetrics

    settings = settings if settings is not None else Settings()
    log = configure_logging(SERVICE, settings.log_level)
    tokens = settings.service_tokens()
    if not tokens:
        log.warning("no SERVICE_TOKEN configured: POST endpoints are open (local use only)")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.extensions["glitchflow"] = {
        "settings": settings,
        "policy": Policy(
            settings.max_size, settings.max_batch_age, settings.freeze_mode, settings.max_sealed
        ),
        "buffer": BufferClient(
            settings.db_burl, settings.upstream_timeout, tokens[0] if tokens else None
        ),
        "tokens": tokens,
        "gate": service_gate(tokens, settings.reader_token_set(), settings.status_needs_token),
        "metrics": ServiceMetrics(),
        "page_assets": PageAssets.load(),
    }
    app.register_blueprint(bp)
    require_decisions(SERVICE, (rule.rule for rule in app.url_map.iter_rules()), ACCESS)
    install_flask(app, lambda: app.extensions["glitchflow"]["metrics"])
    install_flask_request_id(app)
    return app
