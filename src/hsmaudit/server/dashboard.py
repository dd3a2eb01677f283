"""The dashboard: server-rendered pages and the JSON API behind them (contracts.md §5).

Panels follow the AWS blog's seed dashboard (reference splunk.md §5): total events,
failed logins (CO/CU and by user), commands by opcode, key generation and key deletion, an event
detail table; plus a timeline by HSM, paged alerts, key lifecycles, per-HSM sequence continuity
and last-seen. Every panel reads the same `EventFilter`, and the page and `GET /api/summary` both
call `EventStore.summary` with it, so they cannot disagree. Any event or alert opens its own page
(`/events/<event_id>`, `/alerts/<alert_id>`): every field, the record text, the alerts it raised,
its neighbours in the HSM's sequence.

Every string that came from an audit record is attacker-controlled (a user name is whatever the
client typed at login): Jinja2 autoescapes all of it, charts are inline SVG built from escaped
text, and a Content-Security-Policy without any script source backs that up. No CDN, no script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_to_dict
from hsmaudit.records.opcodes import USER_TYPE_ABBREVIATIONS
from hsmaudit.records.time import format_usecs
from hsmaudit.store.query import (
    CONTROL_PLANE_LANE,
    EventFilter,
    FilterError,
    Page,
    StoredAlert,
    Timeline,
    page_number,
    summary_to_dict,
)

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
PAGE_ROWS: Final = 25
"""Rows per page of the alert and event tables."""
KEY_ROWS: Final = 8
"""Key lifecycles on the overview (all of them, paged, on `/keys`)."""
NEIGHBOURS: Final = 5


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


TIMELINE_WIDTH: Final = 10
"""SVG units per bucket; the drawing is stretched to the panel's width (preserveAspectRatio none)."""


def _duration(usecs: int) -> str:
    minutes = usecs // 60_000_000
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 1440:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"


def _short_time(usecs: int, *, with_date: bool) -> str:
    text = format_usecs(usecs)
    return (text[:10] + " " + text[11:16] if with_date else text[11:16]) + " UTC"


def timeline_view(timeline: Timeline | None, filters: dict[str, str]) -> dict[str, Any] | None:
    """The timeline as drawing instructions: per lane, bars (events), strips (failed logins,
    alerts), each with a tooltip and a link that narrows the page to that bucket and HSM."""
    if timeline is None:
        return None
    width = timeline.bucket_usecs
    top = max((max(lane.events, default=0) for lane in timeline.lanes), default=0)
    top_failed = max((max(lane.failed_logins, default=0) for lane in timeline.lanes), default=0)
    top_alerts = max((max(lane.alerts, default=0) for lane in timeline.lanes), default=0)
    lanes = []
    for lane in timeline.lanes:
        control_plane = lane.hsm_id == CONTROL_PLANE_LANE
        name = "control plane (CloudTrail)" if control_plane else lane.hsm_id or "no HSM (cluster-wide)"
        marks = []
        for index in range(timeline.buckets):
            events, failed, alerts = lane.events[index], lane.failed_logins[index], lane.alerts[index]
            if not (events or failed or alerts):
                continue
            begin = timeline.start_usecs + index * width
            params = {**filters, "since": format_usecs(begin), "until": format_usecs(begin + width)}
            if lane.hsm_id and not control_plane:
                params["hsm_id"] = lane.hsm_id
            marks.append(
                {
                    "x": index * TIMELINE_WIDTH + 1,
                    "events": events,
                    "height": 0 if not top else max(1.5, round(32 * events / top, 2)) if events else 0,
                    "failed": failed,
                    "failed_opacity": 0
                    if not failed
                    else round(0.35 + 0.65 * failed / max(1, top_failed), 2),
                    "alerts": alerts,
                    "alert_opacity": 0 if not alerts else round(0.35 + 0.65 * alerts / max(1, top_alerts), 2),
                    "title": (
                        f"{name} {format_usecs(begin)[:16]}Z + {_duration(width)}: {events} events, "
                        f"{failed} failed logins, {alerts} alerts"
                    ),
                    "href": "/?" + urlencode(params),
                }
            )
        lanes.append(
            {
                "hsm_id": lane.hsm_id,
                "label": name,
                "events": sum(lane.events),
                "failed": sum(lane.failed_logins),
                "alerts": sum(lane.alerts),
                "marks": marks,
            }
        )
    end = timeline.start_usecs + timeline.buckets * width
    with_date = format_usecs(timeline.start_usecs)[:10] != format_usecs(end - 1)[:10]
    middle = timeline.start_usecs + (timeline.buckets // 2) * width
    return {
        "lanes": lanes,
        "view_width": timeline.buckets * TIMELINE_WIDTH,
        "bucket": _duration(width),
        "top": top,
        "axis": [_short_time(t, with_date=with_date) for t in (timeline.start_usecs, middle, end)],
        "start": format_usecs(timeline.start_usecs),
        "end": format_usecs(end),
    }


def _url(path: str, params: dict[str, str], **changes: str | int | None) -> str:
    """A link to `path` with the page's parameters, some changed (None: left out)."""
    merged: dict[str, str] = dict(params)
    for name, value in changes.items():
        if value is None or value == "" or (value == 1 and name.endswith("page")):
            merged.pop(name, None)
        else:
            merged[name] = str(value)
    return path + ("?" + urlencode(merged) if merged else "")


_ENVIRONMENT.globals["url"] = _url


def _state(params: Any) -> dict[str, str]:
    """The parameters a link keeps: the filters, the refresh interval and the page numbers."""
    keep = {"cluster_id", "hsm_id", "log_type", "opcode", "since", "until", "refresh"}
    keep |= {"alerts_page", "events_page", "keys_page"}
    return {name: value for name, value in params.items() if name in keep and value}


def _page_data(store: EventStore, filters: EventFilter, params: dict[str, str]) -> dict[str, Any]:
    summary = store.summary(filters)
    filter_params = filters.as_params()
    alert_page = Page(page_number(params.get("alerts_page")), PAGE_ROWS, sum(summary.alerts.values()))
    event_page = Page(page_number(params.get("events_page")), PAGE_ROWS, summary.total_events)
    key_total, keys = store.key_lifecycles(filters, limit=KEY_ROWS)
    return {
        "summary": summary,
        "opcode_bars": bars(summary.by_opcode, limit=1000),
        "log_type_bars": bars(summary.by_log_type),
        "timeline": timeline_view(store.timeline(filters), filter_params),
        "events": store.events_page(filters, limit=event_page.size, offset=event_page.offset),
        "event_page": event_page,
        "alerts": store.alert_rows(filters, limit=alert_page.size, offset=alert_page.offset),
        "alert_page": alert_page,
        "keys": keys,
        "key_total": key_total,
        "streams": store.stream_status(filters),
        "choices": store.filter_choices(),
        "filters": filter_params,
        "state": params,
        "user_types": USER_TYPE_ABBREVIATIONS,
    }


def _keys_data(store: EventStore, filters: EventFilter, params: dict[str, str]) -> dict[str, Any]:
    number = page_number(params.get("keys_page"))
    total, keys = store.key_lifecycles(filters, limit=PAGE_ROWS, offset=(number - 1) * PAGE_ROWS)
    return {
        "keys": keys,
        "key_page": Page(number, PAGE_ROWS, total),
        "choices": store.filter_choices(),
        "filters": filters.as_params(),
        "state": params,
        "user_types": USER_TYPE_ABBREVIATIONS,
    }


def event_fields(event: HsmEvent) -> list[tuple[str, Any]]:
    """(field, value) of every field the event carries, in contract order; `raw` and `extra`
    are shown on their own."""
    data = event_to_dict(event)
    return [
        (name, data[name]) for name in FIELD_NAMES if name not in ("raw", "extra") and data[name] is not None
    ]


def _event_data(store: EventStore, event: HsmEvent) -> dict[str, Any]:
    return {
        "event": event,
        "fields": event_fields(event),
        "session_user": store.session_user(event),
        "alerts": store.alerts_for_event(event.event_id or ""),
        "neighbours": store.sequence_neighbours(event, NEIGHBOURS),
        "user_types": USER_TYPE_ABBREVIATIONS,
        "filters": {},
        "state": {},
    }


def _alert_data(store: EventStore, alert: StoredAlert) -> dict[str, Any]:
    return {
        "alert": alert,
        "events": store.events_by_id(alert.event_ids),
        "user_types": USER_TYPE_ABBREVIATIONS,
        "filters": {},
        "state": {},
    }


def _api_event(store: EventStore, event_id: str) -> dict[str, Any] | None:
    event = store.event(event_id)
    if event is None:
        return None
    return {
        "event": event_to_dict(event, compact=True),
        "session_user": store.session_user(event),
        "alerts": msgspec.to_builtins(store.alerts_for_event(event_id)),
        "neighbours": msgspec.to_builtins(store.sequence_neighbours(event, NEIGHBOURS)),
    }


def _api_timeline(store: EventStore, filters: EventFilter) -> dict[str, Any]:
    timeline = store.timeline(filters)
    if timeline is None:
        return {"buckets": 0, "lanes": []}
    data: dict[str, Any] = msgspec.to_builtins(timeline)
    data["start"] = format_usecs(timeline.start_usecs)
    data["bucket_seconds"] = timeline.bucket_usecs // 1_000_000
    return data


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name, "")
    return int(text) if text.isdigit() else default


def dashboard_routes(store: EventStore) -> list[Route]:
    """The pages and the API routes over `store`."""
    return [*_page_routes(store), *_api_routes(store)]


def _page_routes(store: EventStore) -> list[Route]:
    overview = _ENVIRONMENT.get_template("dashboard.html")
    keys_template = _ENVIRONMENT.get_template("keys.html")
    event_template = _ENVIRONMENT.get_template("event.html")
    alert_template = _ENVIRONMENT.get_template("alert.html")
    missing_template = _ENVIRONMENT.get_template("missing.html")

    def html(text: str, status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status_code, headers=SECURITY_HEADERS)

    async def filtered_page(request: Request, template: Any, build: Any) -> Response:
        params = _state(request.query_params)
        try:
            filters = EventFilter.from_params(request.query_params)
        except FilterError as error:
            return html(template.render(error=str(error), filters=dict(request.query_params), state={}), 400)
        data = await run_in_threadpool(build, store, filters, params)
        refresh = refresh_seconds(request.query_params.get("refresh"))
        return html(template.render(error=None, refresh=refresh, **data))

    async def page(request: Request) -> Response:
        return await filtered_page(request, overview, _page_data)

    async def keys_page(request: Request) -> Response:
        return await filtered_page(request, keys_template, _keys_data)

    async def event_page(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        event = await run_in_threadpool(store.event, event_id)
        if event is None:
            return html(missing_template.render(kind="event", ident=event_id, filters={}, state={}), 404)
        data = await run_in_threadpool(_event_data, store, event)
        return html(event_template.render(**data))

    async def alert_page(request: Request) -> Response:
        ident = request.path_params["alert_id"]
        alert = await run_in_threadpool(store.alert, ident)
        if alert is None:
            return html(missing_template.render(kind="alert", ident=ident, filters={}, state={}), 404)
        data = await run_in_threadpool(_alert_data, store, alert)
        return html(alert_template.render(**data))

    return [
        Route("/", page, methods=["GET"]),
        Route("/keys", keys_page, methods=["GET"]),
        Route("/events/{event_id}", event_page, methods=["GET"]),
        Route("/alerts/{alert_id}", alert_page, methods=["GET"]),
    ]


def _api_routes(store: EventStore) -> list[Route]:
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
        limit = _int_param(request, "limit", EVENT_ROWS)
        offset = _int_param(request, "offset", 0)
        events = await run_in_threadpool(lambda: store.events_page(filters, limit=limit, offset=offset))
        return JSONResponse([event_to_dict(event, compact=True) for event in events])

    async def api_event(request: Request) -> Response:
        data = await run_in_threadpool(_api_event, store, request.path_params["event_id"])
        if data is None:
            return JSONResponse({"error": "no stored event has this event_id"}, status_code=404)
        return JSONResponse(data)

    async def api_alerts(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        limit = _int_param(request, "limit", 1000)
        offset = _int_param(request, "offset", 0)
        alerts = await run_in_threadpool(lambda: store.alert_rows(filters, limit=limit, offset=offset))
        return JSONResponse(msgspec.to_builtins(alerts))

    async def api_alert(request: Request) -> Response:
        alert = await run_in_threadpool(store.alert, request.path_params["alert_id"])
        if alert is None:
            return JSONResponse({"error": "no stored alert has this alert_id"}, status_code=404)
        events = await run_in_threadpool(store.events_by_id, alert.event_ids)
        return JSONResponse(
            {
                "alert": msgspec.to_builtins(alert),
                "events": [event_to_dict(event, compact=True) for event in events],
            }
        )

    async def api_timeline(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        return JSONResponse(await run_in_threadpool(_api_timeline, store, filters))

    async def api_keys(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        limit = _int_param(request, "limit", PAGE_ROWS)
        offset = _int_param(request, "offset", 0)
        total, keys = await run_in_threadpool(
            lambda: store.key_lifecycles(filters, limit=limit, offset=offset)
        )
        return JSONResponse({"total": total, "keys": msgspec.to_builtins(keys)})

    async def api_streams(request: Request) -> Response:
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        streams = await run_in_threadpool(store.stream_status, filters)
        return JSONResponse(msgspec.to_builtins(streams))

    return [
        Route("/api/summary", api_summary, methods=["GET"]),
        Route("/api/events", api_events, methods=["GET"]),
        Route("/api/events/{event_id}", api_event, methods=["GET"]),
        Route("/api/alerts", api_alerts, methods=["GET"]),
        Route("/api/alerts/{alert_id}", api_alert, methods=["GET"]),
        Route("/api/timeline", api_timeline, methods=["GET"]),
        Route("/api/keys", api_keys, methods=["GET"]),
        Route("/api/streams", api_streams, methods=["GET"]),
    ]
