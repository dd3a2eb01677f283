"""The dashboard: one server-rendered page and the JSON API behind it (contracts.md §5).

Panels follow the AWS blog's seed dashboard (reference splunk-hec-and-app.md §5): total events,
failed logins (CO/CU and by user), commands by opcode, key generation and key deletion, an event
detail table; plus alerts, per-HSM sequence continuity and last-seen. The page and
`GET /api/summary` both call `EventStore.summary` with the same filter, so they cannot disagree.

Every string that came from an audit record is attacker-controlled (a user name is whatever the
client typed at login): Jinja2 autoescapes all of it, charts are inline SVG built from escaped
text, and a Content-Security-Policy without any script source backs that up. No CDN, no script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from hsmaudit.records.event import event_to_dict
from hsmaudit.records.opcodes import USER_TYPE_ABBREVIATIONS
from hsmaudit.store.query import EventFilter, FilterError, summary_to_dict

if TYPE_CHECKING:
    from starlette.requests import Request

    from hsmaudit.store.database import EventStore

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_ENVIRONMENT: Final = Environment(
    loader=PackageLoader("hsmaudit.server", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

BAR_LIMIT: Final = 20
EVENT_ROWS: Final = 100


REFRESH_CHOICES: Final = (0, 5, 10, 30, 60)


def refresh_seconds(value: str | None) -> int:
    """`?refresh=N`: reload the page every N seconds (a meta refresh: no script), one of the choices."""
    if value is None or not value.isdigit():
        return 0
    seconds = int(value)
    return seconds if seconds in REFRESH_CHOICES else 0


def bars(counts: dict[str, int], limit: int = BAR_LIMIT) -> list[dict[str, Any]]:
    """Rows of a horizontal bar chart: label, count, bar width in percent of the largest."""
    items = list(counts.items())[:limit]
    top = max((count for _, count in items), default=0)
    return [
        {"label": label, "count": count, "width": 0 if top == 0 else round(100 * count / top, 1)}
        for label, count in items
    ]


def _page_data(store: EventStore, filters: EventFilter) -> dict[str, Any]:
    summary = store.summary(filters)
    return {
        "summary": summary,
        "opcode_bars": bars(summary.by_opcode),
        "log_type_bars": bars(summary.by_log_type),
        "events": [
            event_to_dict(event, include_raw=False) for event in store.recent_events(filters, EVENT_ROWS)
        ],
        "alerts": store.alerts(filters, 50),
        "streams": store.stream_status(filters),
        "choices": store.filter_choices(),
        "filters": filters.as_params(),
        "user_types": USER_TYPE_ABBREVIATIONS,
    }


def dashboard_routes(store: EventStore) -> list[Route]:
    """The page and the API routes over `store`."""
    template = _ENVIRONMENT.get_template("dashboard.html")

    async def page(request: Request) -> Response:
        try:
            filters = EventFilter.from_params(request.query_params)
        except FilterError as error:
            html = template.render(error=str(error), filters=dict(request.query_params))
            return HTMLResponse(html, status_code=400, headers=SECURITY_HEADERS)
        data = await run_in_threadpool(_page_data, store, filters)
        refresh = refresh_seconds(request.query_params.get("refresh"))
        return HTMLResponse(template.render(error=None, refresh=refresh, **data), headers=SECURITY_HEADERS)

    def _filters(request: Request) -> EventFilter | JSONResponse:
        try:
            return EventFilter.from_params(request.query_params)
        except FilterError as error:
            return JSONResponse({"error": str(error)}, status_code=400)

    async def api_summary(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        summary = await run_in_threadpool(store.summary, filters)
        return JSONResponse(summary_to_dict(summary), headers={"Cache-Control": "no-store"})

    async def api_events(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        limit_text = request.query_params.get("limit", str(EVENT_ROWS))
        limit = int(limit_text) if limit_text.isdigit() else EVENT_ROWS
        events = await run_in_threadpool(store.recent_events, filters, limit)
        return JSONResponse([event_to_dict(event, compact=True) for event in events])

    async def api_alerts(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        alerts = await run_in_threadpool(store.alerts, filters, 1000)
        return JSONResponse(msgspec.to_builtins(alerts))

    async def api_streams(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        streams = await run_in_threadpool(store.stream_status, filters)
        return JSONResponse(msgspec.to_builtins(streams))

    return [
        Route("/", page, methods=["GET"]),
        Route("/api/summary", api_summary, methods=["GET"]),
        Route("/api/events", api_events, methods=["GET"]),
        Route("/api/alerts", api_alerts, methods=["GET"]),
        Route("/api/streams", api_streams, methods=["GET"]),
    ]
