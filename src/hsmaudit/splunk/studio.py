"""The Dashboard Studio view, derived from the Simple XML view so that both always show the same.

The Simple XML dashboard (`hsmaudit_overview.xml`) is the primary one: AppInspect checks that
format and every Splunk version renders it (splunk.md §2.3). The Studio view
(`hsmaudit_overview_studio.xml`) is rendered from it: every base search becomes a `ds.search`,
every post-process a `ds.chain` extending it, every panel a visualization in a grid row, every
input a Studio input with the same token. Queries keep the `$tok|s$` filter: Studio's `s` filter
quotes the value and escapes its quotes and backslashes (`@splunk/dashboard-utils`, JSON string
quoting), as Simple XML's does, so no token value (a crafted URL's, a clicked one's) becomes SPL.
Studio has one token per input, no `form.` copy, so `$form.tok$` becomes `$tok$`.

The definition is in the current schema of `@splunk/dashboard-definition` (29.x): one tab whose
layout sits under `layout.layoutDefinitions`, the inputs in `layout.globalInputs`, the Submit
button of the Simple XML fieldset as `layout.options.submitButton`, dropdown defaults as
`defaults.tokens`, and a chart's `<drilldown><set token=...>` as a `drilldown.setToken` event
handler. `tests/integration/test_studio_schema.py` validates it with Splunk's own packages.

The source tree keeps the rendered file so the app also works when installed from the source
directory; the build renders it again and a test fails when it is stale.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any, Final

from hsmaudit.splunk.errors import StudioError

SIMPLE_VIEW: Final = "default/data/ui/views/hsmaudit_overview.xml"
STUDIO_VIEW: Final = "default/data/ui/views/hsmaudit_overview_studio.xml"

LAYOUT_ID: Final = "layout_1"
GRID_WIDTH: Final = 1200
SINGLE_ROW_HEIGHT: Final = 160
ROW_HEIGHT: Final = 330
_CLICK_TOKEN: Final = re.compile(r"^\$(click\.value|row\.[A-Za-z0-9_]+)\$$")
_BY_FIELDS: Final = re.compile(r"\bby\s+([A-Za-z0-9_]+)")
_TIME_PARAMETERS: Final = {"earliest": "$time_tok.earliest$", "latest": "$time_tok.latest$"}


def studio_query(query: str) -> str:
    """A Simple XML query as Studio needs it: the input's own token for its `form.` copy."""
    return query.strip().replace("$form.", "$")


def _search_source(name: str, query: str) -> dict[str, Any]:
    return {
        "type": "ds.search",
        "name": name,
        "options": {"query": studio_query(query), "queryParameters": dict(_TIME_PARAMETERS)},
    }


def _inputs(root: ET.Element, sources: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The Studio inputs; each dropdown's default goes to `defaults` (`defaults.tokens.default`)."""
    inputs: dict[str, Any] = {}
    fieldset = root.find("fieldset")
    for element in fieldset.findall("input") if fieldset is not None else []:
        token = element.get("token") or ""
        key = "input_" + token.removesuffix("_tok")
        label = element.findtext("label") or token
        if element.get("type") == "time":
            default = element.find("default")
            earliest = default.findtext("earliest") if default is not None else "-24h@h"
            latest = default.findtext("latest") if default is not None else "now"
            inputs[key] = {
                "type": "input.timerange",
                "title": label,
                "options": {"token": token, "defaultValue": f"{earliest},{latest}"},
            }
            continue
        if element.get("type") != "dropdown":
            raise StudioError(f"input {token}: only time and dropdown inputs are rendered")
        field = element.findtext("fieldForValue") or ""
        query = element.findtext("search/query") or ""
        source = "ds_" + key
        sources[source] = _search_source(key, query)
        item: dict[str, Any] = {
            "type": "input.dropdown",
            "title": label,
            "options": {
                "token": token,
                # Studio drops items whose value is "": "All" is the "*" sentinel.
                "items": [
                    {"label": c.text or "", "value": c.get("value", "")} for c in element.findall("choice")
                ],
            },
            "encoding": {"label": f"primary.{field}", "value": f"primary.{field}"},
            "dataSources": {"primary": source},
        }
        if re.search(r"\$[a-z_]+_tok\|s\$", studio_query(query)):
            item["options"]["isCascadingInput"] = True
        defaults[token] = {"value": element.findtext("default") or "*"}
        inputs[key] = item
    return inputs


def _drilldown_key(value: str, query: str, panel: str) -> str:
    """The Studio event key of a Simple XML drilldown value.

    `$click.value$` on a chart is the clicked category, the first `by` field of the panel's
    query (`row.<field>.value` in Studio); `$row.<field>$` is that field of the clicked row.
    """
    match = _CLICK_TOKEN.match(value.strip())
    if match is None:
        raise StudioError(f"panel {panel!r}: drilldown value {value!r} is not $click.value$ or $row.<field>$")
    if match.group(1) == "click.value":
        fields = _BY_FIELDS.findall(query)
        if not fields:
            raise StudioError(f"panel {panel!r}: $click.value$ needs a `by` field in the query")
        return f"row.{fields[-1]}.value"
    return f"{match.group(1)}.value"


def _event_handlers(element: ET.Element, query: str, panel: str) -> list[dict[str, Any]]:
    """`<drilldown><set token=...>` as one `drilldown.setToken` handler.

    Simple XML sets the input's `form.` token and the submitted token so that the click applies
    without pressing Submit; Studio has one token for both.
    """
    drilldown = element.find("drilldown")
    if drilldown is None:
        return []
    tokens: dict[str, str] = {}
    for child in drilldown:
        if child.tag != "set":
            raise StudioError(f"panel {panel!r}: only <set> drilldowns are rendered, not <{child.tag}>")
        token = (child.get("token") or "").removeprefix("form.")
        key = _drilldown_key(child.text or "", query, panel)
        if tokens.setdefault(token, key) != key:
            raise StudioError(f"panel {panel!r}: token {token} set to two different values")
    return [
        {
            "type": "drilldown.setToken",
            "options": {"tokens": [{"token": token, "key": key} for token, key in tokens.items()]},
        }
    ]


def _visualization(panel: ET.Element, source: str, query: str) -> dict[str, Any]:
    element = next((child for child in panel if child.tag in ("single", "chart", "table")), None)
    if element is None:
        raise StudioError(f"panel {panel.findtext('title')!r}: no single, chart or table")
    if element.tag == "chart":
        chart = element.findtext("option[@name='charting.chart']") or "column"
        kind = f"splunk.{chart}"
    else:
        kind = {"single": "splunk.singlevalue", "table": "splunk.table"}[element.tag]
    visual: dict[str, Any] = {
        "type": kind,
        "title": panel.findtext("title") or "",
        "dataSources": {"primary": source},
    }
    if panel.findtext("description"):
        visual["description"] = panel.findtext("description")
    options: dict[str, Any] = {}
    under = element.findtext("option[@name='underLabel']")
    if under:
        options["underLabel"] = under
    if element.findtext("option[@name='charting.chart.stackMode']") == "stacked":
        options["stackMode"] = "stacked"
    if options:
        visual["options"] = options
    handlers = _event_handlers(element, query, visual["title"])
    if handlers:
        visual["eventHandlers"] = handlers
    return visual


def studio_definition(simple_xml: str) -> dict[str, Any]:
    """The Studio JSON definition of the Simple XML view `simple_xml`."""
    root = ET.fromstring(simple_xml)  # noqa: S314 - the app's own view, not untrusted input
    sources: dict[str, Any] = {}
    for search in root.findall("search"):
        name = search.get("id") or ""
        sources["ds_" + name] = _search_source(name, search.findtext("query") or "")
    tokens: dict[str, Any] = {}
    inputs = _inputs(root, sources, tokens)
    visuals: dict[str, Any] = {}
    structure: list[dict[str, Any]] = []
    y = number = 0
    for row in root.findall("row"):
        panels = row.findall("panel")
        width = GRID_WIDTH // max(len(panels), 1)
        singles = all(panel.find("single") is not None for panel in panels)
        height = SINGLE_ROW_HEIGHT if singles else ROW_HEIGHT
        for column, panel in enumerate(panels):
            number += 1
            found = panel.find(".//search")
            if found is None:
                raise StudioError(f"panel {panel.findtext('title')!r} has no search")
            search = found
            source = f"ds_panel_{number:02d}"
            query = search.findtext("query") or ""
            base = search.get("base")
            if base:
                sources[source] = {
                    "type": "ds.chain",
                    "name": panel.findtext("title") or source,
                    "options": {"extend": "ds_" + base, "query": "| " + studio_query(query)},
                }
            else:
                sources[source] = _search_source(panel.findtext("title") or source, query)
            visual = f"viz_{number:02d}"
            visuals[visual] = _visualization(panel, source, query)
            position = {"x": column * width, "y": y, "w": width, "h": height}
            structure.append({"item": visual, "type": "block", "position": position})
        y += height
    fieldset = root.find("fieldset")
    submit = fieldset is not None and fieldset.get("submitButton") == "true"
    auto_run = fieldset is None or fieldset.get("autoRun", "true") == "true"
    return {
        "title": (root.findtext("label") or "") + " (Dashboard Studio)",
        "description": root.findtext("description") or "",
        "inputs": inputs,
        "defaults": {
            "dataSources": {"ds.search": {"options": {"queryParameters": dict(_TIME_PARAMETERS)}}},
            "tokens": {"default": tokens},
        },
        "dataSources": sources,
        "visualizations": visuals,
        "layout": {
            "options": {"submitButton": submit, "submitOnDashboardLoad": auto_run},
            "globalInputs": list(inputs),
            "tabs": {"items": [{"layoutId": LAYOUT_ID, "label": "Overview"}]},
            "layoutDefinitions": {
                LAYOUT_ID: {"type": "grid", "options": {"width": GRID_WIDTH}, "structure": structure}
            },
        },
    }


def render_studio_view(simple_xml: str) -> str:
    """The Studio view file: `<dashboard version="2">` with the JSON definition in CDATA."""
    root = ET.fromstring(simple_xml)  # noqa: S314 - the app's own view, not untrusted input
    text = json.dumps(studio_definition(simple_xml), indent=2, ensure_ascii=False)
    if "]]>" in text:
        raise StudioError("the definition contains ']]>', which cannot sit in CDATA")
    label = (root.findtext("label") or "").replace("&", "&amp;").replace("<", "&lt;")
    return (
        '<dashboard version="2" theme="light">\n'
        f"  <label>{label} (Studio)</label>\n"
        "  <description>The overview dashboard as a Dashboard Studio view: the same searches and panels."
        "</description>\n"
        f"  <definition><![CDATA[\n{text}\n]]></definition>\n"
        '  <meta type="hiddenElements"><![CDATA[\n'
        '{"hideEdit": false, "hideOpenInSearch": false, "hideExport": false}\n'
        "]]></meta>\n"
        "</dashboard>\n"
    )
