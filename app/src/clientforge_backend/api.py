"""HTTP API: health, a small read-only CRM surface, and the (gated) test-error endpoint."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from flask import Blueprint, Response, abort, current_app, jsonify, request

from .config import Settings
from .logging_setup import REQUEST_ID_ENV, TENANT_ENV

API_PREFIX: Final = "/api/v1"
SETTINGS_KEY: Final = "CLIENTFORGE_SETTINGS"
VERSION_KEY: Final = "CLIENTFORGE_VERSION"
STARTED_KEY: Final = "CLIENTFORGE_STARTED_MONOTONIC"

logger = logging.getLogger("clientforge_backend.api")

# In-memory fixtures: enough of a CRM to exercise templated routes and 404s.
CONTACTS: Final[dict[int, dict[str, Any]]] = {
    1: {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com", "company": "Analytical"},
    2: {"id": 2, "name": "Grace Hopper", "email": "grace@example.com", "company": "COBOL Inc"},
    3: {"id": 3, "name": "Alan Turing", "email": "alan@example.com", "company": "Bletchley"},
}
DEALS: Final[dict[int, dict[str, Any]]] = {
    1: {"id": 1, "title": "Engine licence", "amount": 12000, "stage": "won", "contact_id": 1},
    2: {"id": 2, "title": "Compiler support", "amount": 8000, "stage": "open", "contact_id": 2},
}


def create_api_blueprint(settings: Settings) -> Blueprint:
    """The ``/api/v1`` blueprint; the test-error route exists only when allowed."""
    bp = Blueprint("api", __name__, url_prefix=API_PREFIX)

    @bp.get("/health")
    def health() -> Response:
        started: float = current_app.config[STARTED_KEY]
        return jsonify(
            status="ok",
            version=current_app.config[VERSION_KEY],
            uptime_seconds=round(time.monotonic() - started, 3),
            tenant=request.environ.get(TENANT_ENV),
        )

    @bp.get("/contacts")
    def list_contacts() -> Response:
        items = list(CONTACTS.values())
        return jsonify(items=items, count=len(items))

    @bp.get("/contacts/<int:contact_id>")
    def get_contact(contact_id: int) -> Response:
        contact = CONTACTS.get(contact_id)
        if contact is None:
            abort(404, description=f"contact {contact_id} not found")
        return jsonify(contact)

    @bp.get("/deals")
    def list_deals() -> Response:
        stage = request.args.get("stage")
        items = [d for d in DEALS.values() if stage is None or d["stage"] == stage]
        return jsonify(items=items, count=len(items))

    @bp.get("/deals/<int:deal_id>")
    def get_deal(deal_id: int) -> Response:
        deal = DEALS.get(deal_id)
        if deal is None:
            abort(404, description=f"deal {deal_id} not found")
        return jsonify(deal)

    if settings.test_error_enabled:

        @bp.post("/test/error")
        def test_error() -> tuple[Response, int]:
            # Exactly one ERROR record; the request line that follows is INFO.
            logger.error(
                "Test error triggered via POST %s/test/error",
                API_PREFIX,
                extra={"status": 500},
            )
            return jsonify(
                error="Intentional test error", request_id=request.environ.get(REQUEST_ID_ENV)
            ), 500

    return bp
