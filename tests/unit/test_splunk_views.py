"""The app's dashboards: well-formed, every token defined, every base search resolved, known fields only.

AppInspect checks the Simple XML version and deprecated elements but not tokens, SPL, scripts or
the Studio JSON (splunk-hec-and-app.md §3.1), so these tests do.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # the app's own files, not untrusted input
from typing import Any

import pytest

from tests.unit.splunk_conf import DEFAULT_DIR
from tests.unit.splunk_spl import created_fields, macro_calls, read_fields
from tests.unit.test_splunk_conf import check_spl

VIEWS_DIR = DEFAULT_DIR / "data" / "ui" / "views"
SIMPLE_XML = VIEWS_DIR / "hsmaudit_overview.xml"
STUDIO = VIEWS_DIR / "hsmaudit_overview_studio.xml"
NAV = DEFAULT_DIR / "data" / "ui" / "nav" / "default.xml"

# Splunk's predefined tokens: drilldown values, form.* mirrors of inputs, the environment.
PREDEFINED = re.compile(r"^(click\.|row\.|result\.|form\.|env:|job\.)")
DEPRECATED = ("populatingSearch", "earliestTime", "latestTime", "searchString", "searchName", "searchTemplate",
              "searchPostProcess")  # fmt: skip
_TOKEN = re.compile(r"\$([^$\s]+)\$")


def parse(path: Any) -> ET.Element:
    return ET.parse(path).getroot()


def tokens_in(text: str) -> set[str]:
    """Token names used in `text` (filters like |s stripped, $$ escapes ignored)."""
    return {match.split("|")[0] for match in _TOKEN.findall(text.replace("$$", ""))}


def simple_defined_tokens(root: ET.Element) -> set[str]:
    defined: set[str] = set()
    for element in root.iter("input"):
        token = element.get("token")
        assert token, "an input without a token"
        defined.add(token)
        if element.get("type") == "time":
            defined |= {f"{token}.earliest", f"{token}.latest"}
    for element in root.iter("set"):
        defined.add(element.get("token", ""))
    return defined


@pytest.mark.parametrize("path", sorted(VIEWS_DIR.glob("*.xml")), ids=lambda p: p.name)
def test_every_view_is_well_formed_and_has_no_scripts(path: Any) -> None:
    root = parse(path)
    assert root.tag in ("form", "dashboard")
    assert root.findtext("label")
    for element in root.iter():
        assert element.tag not in ("script", "html"), f"{path.name}: <{element.tag}>"
        assert element.get("script") is None and element.get("stylesheet") is None, path.name
        assert element.tag not in DEPRECATED, f"{path.name}: deprecated <{element.tag}>"


def test_simple_xml_is_version_1_1_form_with_inputs() -> None:
    root = parse(SIMPLE_XML)
    assert root.tag == "form" and root.get("version") == "1.1"
    assert {i.get("type") for i in root.iter("input")} == {"time", "dropdown"}
    for option in root.iter("option"):
        assert option.get("name") != "displayRowNumbers"


FILTERS = {"time_tok": "time", "cluster_tok": "dropdown", "hsm_tok": "dropdown", "log_type_tok": "dropdown",
           "opcode_tok": "dropdown"}  # fmt: skip
# Drilldowns: panel title -> token -> the click value it takes.
DRILLDOWNS = {
    "Commands by opcode (click a bar to filter)": {"opcode_tok": "$click.value$"},
    "Events by log type": {"log_type_tok": "$click.value$"},
    "Last event per HSM (pipeline health)": {"cluster_tok": "$row.cluster_id$", "hsm_tok": "$row.hsm_id$"},
}


def test_simple_xml_has_a_submit_button_and_the_five_filters() -> None:
    root = parse(SIMPLE_XML)
    fieldset = root.find("fieldset")
    assert fieldset is not None
    assert fieldset.get("submitButton") == "true" and fieldset.get("autoRun") == "true"
    inputs = {i.get("token"): i for i in fieldset.findall("input")}
    assert {token: i.get("type") for token, i in inputs.items()} == FILTERS
    for token, element in inputs.items():
        # searchWhenChanged="true" would run on every change and make the Submit button moot
        assert element.get("searchWhenChanged") != "true", token
        assert element.findtext("label"), token
    # a cascading list follows the input as changed (form.*), before Submit
    assert "$form.cluster_tok|s$" in (inputs["hsm_tok"].findtext("search/query") or "")
    assert "$form.log_type_tok|s$" in (inputs["opcode_tok"].findtext("search/query") or "")


def test_drilldowns_set_the_filter_and_its_submitted_token_from_a_field_the_panel_shows() -> None:
    root = parse(SIMPLE_XML)
    found = {}
    for panel in root.iter("panel"):
        drilldown = panel.find(".//drilldown")
        if drilldown is None:
            continue
        title = panel.findtext("title") or ""
        sets = {s.get("token"): (s.text or "").strip() for s in drilldown.findall("set")}
        tokens = {t.removeprefix("form."): v for t, v in sets.items()}
        for token, value in tokens.items():
            # the input shows the value and the searches run with it at once, without Submit
            assert sets.get(f"form.{token}") == value and sets.get(token) == value, (title, token)
        found[title] = tokens
        element = next(c for c in panel if c.tag in ("chart", "table"))
        option = "charting.drilldown" if element.tag == "chart" else "drilldown"
        assert element.findtext(f"option[@name='{option}']") in ("all", "row", "cell"), title
        query = element.findtext("search/query") or ""
        for value in tokens.values():
            field = value.strip("$").removeprefix("row.")
            if value == "$click.value$":
                field = re.findall(r"\bby\s+(\w+)", query)[-1]
            assert re.search(rf"\b{field}\b", query), (title, field)
    assert found == DRILLDOWNS


def test_every_token_in_a_search_is_quoted_so_no_value_becomes_spl() -> None:
    # Drilldowns and URLs (?form.opcode_tok=...) set tokens to any text; |s quotes and escapes it.
    root = parse(SIMPLE_XML)
    for search in root.iter("search"):
        query = search.findtext("query") or ""
        for match in _TOKEN.findall(query.replace("$$", "")):
            assert match.endswith("|s"), f"${match}$ unquoted in {query[:80]}"
        for bound in ("earliest", "latest"):
            text = search.findtext(bound)
            assert text is None or text == f"$time_tok.{bound}$"


def test_every_token_a_panel_uses_is_defined_by_an_input_and_every_input_is_used() -> None:
    root = parse(SIMPLE_XML)
    defined = simple_defined_tokens(root)
    text = SIMPLE_XML.read_text(encoding="utf-8")
    used = tokens_in(text)
    undefined = {t for t in used if t not in defined and not PREDEFINED.match(t)}
    assert not undefined, f"undefined tokens {sorted(undefined)}"
    for element in root.iter("input"):
        token = element.get("token", "")
        uses = {t for t in used if t == token or t.startswith(token + ".")}
        assert uses, f"input {token} is never used"


# Panels about whole HSM streams: filtering them by log type or opcode would turn every record
# filtered out into a sequence gap, an HSM "silent" since its last matching record, or a key with
# its creation or deletion hidden. They take the cluster and HSM filters only. The user management
# search takes the other two after it has found each command's actor (it needs the logins).
STREAM_SEARCHES = frozenset({"base_sequence", "base_health", "base_users", "Key lifecycle by handle"})
CONTROL_PLANE_PANEL = "HSM records and control-plane calls (CloudTrail) on one timeline"
INDEX_SEARCHES = frozenset({"Events per HSM", CONTROL_PLANE_PANEL})
ALL_FILTERS = "`hsmaudit_terms($cluster_tok|s$, $hsm_tok|s$, $log_type_tok|s$, $opcode_tok|s$)`"
STREAM_FILTERS = '`hsmaudit_terms($cluster_tok|s$, $hsm_tok|s$, "*", "*")`'
INDEX_FILTERS = "`hsmaudit_index_terms($cluster_tok|s$, $hsm_tok|s$)`"
LATE_FILTERS = {"base_users": "| search log_type=$log_type_tok|s$ opcode=$opcode_tok|s$ | stats"}


def starts_from_the_events_macro(query: str) -> bool:
    """An event search on `hsmaudit_events`, or tstats over it (the macro is index and sourcetype only)."""
    return (
        query.startswith("`hsmaudit_events`")
        or re.match(r"\| tstats [^|]*\bwhere `hsmaudit_events`", query) is not None
    )


def first_clause(query: str) -> str:
    """The search before its first pipe (or a tstats' where clause): what Splunk looks up in the index."""
    return re.split(r"\s\|\s", query.removeprefix("| "), maxsplit=1)[0]


def test_every_filter_is_a_literal_term_of_the_base_search_and_stream_panels_only_by_cluster_and_hsm() -> (
    None
):
    root = parse(SIMPLE_XML)
    named = [(s.get("id") or "", s.findtext("query") or "") for s in root.findall("search")]
    named += [(title, query) for title, query, base in _panel_searches(root) if base is None]
    inputs = {e.findtext("label") for e in root.iter("input")}
    seen = set()
    for name, query in named:
        if name in inputs:
            continue
        seen.add(name)
        expected = (
            INDEX_FILTERS
            if name in INDEX_SEARCHES
            else STREAM_FILTERS
            if name in STREAM_SEARCHES
            else ALL_FILTERS
        )
        # in the first clause: the values are index terms, not a filter over every event read
        assert expected in first_clause(query), f"{name}: expected {expected} before the first pipe"
        if name in LATE_FILTERS:
            assert LATE_FILTERS[name] in query, name
        assert "hsmaudit_filter" not in query and "fillnull" not in first_clause(query), name
    assert seen >= STREAM_SEARCHES | INDEX_SEARCHES


def test_no_search_sorts_deduplicates_or_expands_every_event() -> None:
    # sort 0 and dedup/mvexpand over all events pull every event to the search head: sorts have a
    # limit, dedup runs only after head, mvexpand only on rows a stats made.
    root = parse(SIMPLE_XML)
    for search in root.iter("search"):
        query = search.findtext("query") or ""
        commands = [c.strip() for c in re.split(r"\s\|\s", query)]
        for index, command in enumerate(commands):
            name = command.split(" ", 1)[0]
            before = " ".join(c.split(" ", 1)[0] for c in commands[:index])
            if name == "sort":
                limit = command.split(" ", 2)[1]
                assert limit != "0" and (limit.isdigit() or "stats" in before), f"unbounded {command[:40]}"
            if name in ("dedup", "`hsmaudit_dedup`"):
                assert "head" in before, f"dedup over every event: {query[:80]}"
            if name == "mvexpand":
                assert "stats" in before, f"mvexpand over every event: {query[:80]}"
            assert name not in ("streamstats", "eventstats", "transaction"), f"{name} over every event"


def test_control_plane_calls_share_the_timeline_with_the_hsm_records() -> None:
    # Issue 17: CloudTrail's CloudHSM calls beside the audit records, from the AWS add-on's
    # sourcetype through the app's mapping macro, filtered by the same cluster token.
    root = parse(SIMPLE_XML)
    searches = {title: query for title, query, base in _panel_searches(root) if base is None}
    query = searches[CONTROL_PLANE_PANEL]
    assert query.startswith("| tstats count where `hsmaudit_events`")
    assert "[search `hsmaudit_cloudtrail` |" in query
    assert "cluster_id == $cluster_tok|s$" in query
    assert query.endswith("| timechart span=1h sum(count) as count by lane")


def test_panels_about_volume_read_the_index_with_tstats() -> None:
    root = parse(SIMPLE_XML)
    searches = {title: query for title, query, base in _panel_searches(root) if base is None}
    for title in ("Events per HSM", "Cluster", "HSM"):
        assert searches[title].startswith("| tstats "), title


def test_every_base_search_resolves_and_non_transforming_bases_keep_their_fields() -> None:
    root = parse(SIMPLE_XML)
    bases = {s.get("id"): s for s in root.findall("search")}
    assert bases, "no base search"
    used = {s.get("base") for s in root.iter("search") if s.get("base")}
    assert used <= set(bases), f"unknown base {used - set(bases)}"
    assert set(bases) <= used, f"unused base {set(bases) - used}"
    for name, search in bases.items():
        query = search.findtext("query") or ""
        assert (
            search.findtext("earliest") == "$time_tok.earliest$"
            and search.findtext("latest") == "$time_tok.latest$"
        )
        last = query.rsplit("|", 1)[-1].strip()
        # transforming: a post-process of events would be cut at Splunk's post-process limit
        assert last.startswith(("stats", "timechart", "chart")), f"{name} ends with {last[:20]!r}"
    for search in root.iter("search"):
        if search.get("base"):
            query = (search.findtext("query") or "").strip()
            assert not query.startswith("|"), "post-process queries start with a command, no pipe"


def _panel_searches(root: ET.Element) -> list[tuple[str, str, str | None]]:
    """(panel title or input label, query, base id) of every search in a Simple XML view."""
    out = []
    for panel in root.iter("panel"):
        for search in panel.iter("search"):
            out.append((panel.findtext("title") or "", search.findtext("query") or "", search.get("base")))
    for element in root.iter("input"):
        search = element.find("search")
        if search is not None:
            out.append((element.findtext("label") or "", search.findtext("query") or "", None))
    return out


def test_every_search_uses_defined_macros_and_fields_the_parser_emits() -> None:
    root = parse(SIMPLE_XML)
    bases = {s.get("id"): s.findtext("query") or "" for s in root.findall("search")}
    for name, query in bases.items():
        assert starts_from_the_events_macro(query), name
        check_spl(query, f"base {name}", _macro_created(query))
    for title, query, base in _panel_searches(root):
        if base is None:
            assert starts_from_the_events_macro(query), title
        inherited = created_fields(bases[base]) | _macro_created(bases[base]) if base else set()
        check_spl(query, title, inherited | _macro_created(query))


def _macro_created(spl: str) -> set[str]:
    from tests.unit.test_splunk_conf import MACROS

    out: set[str] = set()
    for name, count in macro_calls(spl):
        stanza = f"{name}({count})" if count else name
        out |= created_fields(MACROS[stanza]["definition"])
    return out


def test_dropdowns_are_filled_by_searches_that_return_their_field() -> None:
    root = parse(SIMPLE_XML)
    dropdowns = [i for i in root.iter("input") if i.get("type") == "dropdown"]
    assert {d.get("token") for d in dropdowns} == {"cluster_tok", "hsm_tok", "log_type_tok", "opcode_tok"}
    for dropdown in dropdowns:
        field = dropdown.findtext("fieldForValue")
        assert field and dropdown.findtext("fieldForLabel") == field
        assert re.search(rf"\bby {field}\b", dropdown.findtext("search/query") or ""), field
        assert dropdown.findtext("default") == "*"
        assert any(c.get("value") == "*" for c in dropdown.findall("choice"))


def test_the_seed_panels_are_all_there() -> None:
    titles = {p.findtext("title") for p in parse(SIMPLE_XML).iter("panel")}
    for title in (
        "Audit events", "Failed logins", "Keys generated", "Keys deleted", "Failed logins by role (CO / CU)",
        "Failed logins by user", "Commands by opcode (click a bar to filter)", "Sequence continuity per HSM",
        "User management timeline", "Key lifecycle by handle", "Events per HSM", "Last event per HSM (pipeline health)",
        "Event details",
    ):  # fmt: skip
        assert title in titles, title
    details = next(p for p in parse(SIMPLE_XML).iter("panel") if p.findtext("title") == "Event details")
    query = details.findtext(".//query") or ""
    for field in ("opcode", "sequence_no", "key_handle", "public_key_handle", "response"):
        assert re.search(rf"\b{field}\b", query), field


# --- Dashboard Studio -----------------------------------------------------------------------


def studio_definition() -> dict[str, Any]:
    root = parse(STUDIO)
    assert root.tag == "dashboard" and root.get("version") == "2"
    definition: dict[str, Any] = json.loads(root.findtext("definition") or "")
    return definition


def test_studio_definition_is_valid_json_with_consistent_references() -> None:
    definition = studio_definition()
    assert {"title", "dataSources", "visualizations", "inputs", "layout"} <= set(definition)
    sources, visuals, inputs = definition["dataSources"], definition["visualizations"], definition["inputs"]
    for name, source in sources.items():
        assert source["type"] in ("ds.search", "ds.chain"), name
        if source["type"] == "ds.chain":
            assert source["options"]["extend"] in sources, name
            base = sources[source["options"]["extend"]]
            assert base["type"] == "ds.search"
            assert source["options"]["query"].startswith("|"), name
            # chains only from transforming bases: Studio, like Simple XML, caps event results
            last = base["options"]["query"].rsplit("|", 1)[-1].strip()
            assert last.startswith(("stats", "timechart", "chart")), f"{name} extends a non-transforming base"
    for name, visual in visuals.items():
        assert visual["type"].startswith("splunk."), name
        assert visual["dataSources"]["primary"] in sources, name
    layout = definition["layout"]
    tabs = [tab["layoutId"] for tab in layout["tabs"]["items"]]
    assert tabs == list(layout["layoutDefinitions"]), "every layout is a tab, in order"
    items = [block["item"] for tab in tabs for block in layout["layoutDefinitions"][tab]["structure"]]
    assert sorted(items) == sorted(visuals), "every visualization is laid out exactly once"
    assert all(layout["layoutDefinitions"][tab]["type"] in ("grid", "absolute") for tab in tabs)
    assert set(layout["globalInputs"]) == set(inputs)
    token_defaults = definition["defaults"]["tokens"]["default"]
    defined: set[str] = set()
    for name, item in inputs.items():
        token = item["options"]["token"]
        defined.add(token)
        if item["type"] == "input.timerange":
            defined |= {f"{token}.earliest", f"{token}.latest"}
            continue
        assert item["type"] == "input.dropdown", name
        assert token_defaults[token] == {"value": "*"} and "defaultValue" not in item["options"], name
        field = item["encoding"]["value"].removeprefix("primary.")
        assert item["encoding"]["label"] == item["encoding"]["value"]
        query = sources[item["dataSources"]["primary"]]["options"]["query"]
        assert re.search(rf"\bby {field}\b", query), name
        assert {"label": "All", "value": "*"} in item["options"]["items"]  # Studio drops "" values
    used = tokens_in(json.dumps(definition))
    assert used <= defined, f"undefined tokens {sorted(used - defined)}"


def test_studio_has_the_submit_button_and_the_drilldowns_of_the_simple_xml_view() -> None:
    root = parse(SIMPLE_XML)
    fieldset = root.find("fieldset")
    assert fieldset is not None
    definition = studio_definition()
    options = definition["layout"]["options"]
    assert options["submitButton"] is (fieldset.get("submitButton") == "true")
    assert options["submitOnDashboardLoad"] is (fieldset.get("autoRun") == "true")
    simple = {
        panel.findtext("title"): {(s.get("token") or "").removeprefix("form.") for s in panel.iter("set")}
        for panel in root.iter("panel")
        if panel.find(".//drilldown") is not None
    }
    studio = {
        visual["title"]: {
            token["token"]
            for handler in visual["eventHandlers"]
            for token in handler["options"]["tokens"]
            if handler["type"] == "drilldown.setToken"
        }
        for visual in definition["visualizations"].values()
        if "eventHandlers" in visual
    }
    assert studio == simple
    bar = next(
        v for v in definition["visualizations"].values() if v["title"].startswith("Commands by opcode")
    )
    assert bar["eventHandlers"] == [
        {
            "type": "drilldown.setToken",
            "options": {"tokens": [{"token": "opcode_tok", "key": "row.opcode.value"}]},
        }
    ]


def test_studio_searches_use_defined_macros_and_known_fields() -> None:
    sources = studio_definition()["dataSources"]
    for name, source in sources.items():
        query = source["options"]["query"]
        if source["type"] == "ds.chain":
            base = sources[source["options"]["extend"]]["options"]["query"]
            check_spl(query, name, created_fields(base) | _macro_created(base) | _macro_created(query))
        else:
            assert starts_from_the_events_macro(query), name
            check_spl(query, name, _macro_created(query))


def _normalise(source: dict[str, Any]) -> str:
    query: str = source["options"]["query"].strip()
    return query.removeprefix("| ") if source["type"] == "ds.chain" else query


def test_studio_shows_the_same_panels_and_searches_as_the_simple_xml_view() -> None:
    root = parse(SIMPLE_XML)
    # Studio has one token per input: the Simple XML `form.` copy is the same token there.
    simple = {(title, query.strip().replace("$form.", "$")) for title, query, _ in _panel_searches(root)}
    definition = studio_definition()
    sources = definition["dataSources"]
    studio = set()
    for visual in definition["visualizations"].values():
        studio.add((visual["title"], _normalise(sources[visual["dataSources"]["primary"]])))
    for item in definition["inputs"].values():
        if "dataSources" in item:
            studio.add((item["title"], _normalise(sources[item["dataSources"]["primary"]])))
    assert studio == simple
    simple_bases = {s.get("id"): (s.findtext("query") or "").strip() for s in root.findall("search")}
    studio_bases = {s["name"]: _normalise(s) for s in sources.values() if s.get("name") in simple_bases}
    assert studio_bases == simple_bases


def test_nav_lists_the_apps_views_and_the_alerts() -> None:
    nav = parse(NAV)
    views = {v.get("name") for v in nav.iter("view")}
    ours = {path.stem for path in VIEWS_DIR.glob("*.xml")}
    assert ours <= views
    assert next(v for v in nav.iter("view") if v.get("default") == "true").get("name") == "hsmaudit_overview"
    assert views - ours <= {"search", "reports", "alerts", "dashboards", "datasets"}
    assert "alerts" in views and any(s.get("source") == "unclassified" for s in nav.iter("saved"))


def test_the_studio_view_is_rendered_from_the_simple_xml_view_and_up_to_date() -> None:
    from hsmaudit.splunk.studio import render_studio_view

    rendered = render_studio_view(SIMPLE_XML.read_text(encoding="utf-8"))
    assert STUDIO.read_text(encoding="utf-8") == rendered, "stale: run `.venv/bin/python -m hsmaudit.splunk`"


def test_the_studio_rendering_refuses_what_it_cannot_translate() -> None:
    from hsmaudit.splunk.errors import StudioError
    from hsmaudit.splunk.studio import render_studio_view

    text = SIMPLE_XML.read_text(encoding="utf-8")
    multiselect = text.replace(
        '<input type="dropdown" token="opcode_tok"', '<input type="multiselect" token="opcode_tok"'
    )
    assert multiselect != text
    with pytest.raises(StudioError, match="only time and dropdown"):
        render_studio_view(multiselect)
    searchless = re.sub(
        r"(<single>\s*)<search base=\"base_summary\">.*?</search>", r"\1", text, count=1, flags=re.S
    )
    assert searchless != text
    with pytest.raises(StudioError, match="has no search"):
        render_studio_view(searchless)
    linked = re.sub(
        r"<drilldown>.*?</drilldown>", "<drilldown><link>search?q=x</link></drilldown>", text, flags=re.S
    )
    assert linked != text
    with pytest.raises(StudioError, match="only <set> drilldowns"):
        render_studio_view(linked)
    cell = text.replace(
        '<set token="form.opcode_tok">$click.value$', '<set token="form.opcode_tok">$click.name2$'
    )
    assert cell != text
    with pytest.raises(StudioError, match="is not"):
        render_studio_view(cell)


def test_post_processes_read_only_what_their_base_search_hands_on() -> None:
    from tests.unit.splunk_spl import expand_macros, output_fields
    from tests.unit.test_splunk_conf import MACROS

    root = parse(SIMPLE_XML)
    bases = {s.get("id"): s.findtext("query") or "" for s in root.findall("search")}
    outputs = {}
    for name, query in bases.items():
        fields = output_fields(expand_macros(query, MACROS))
        assert fields is not None, f"{name}: end a base search with stats ... by or fields"
        outputs[name] = fields
    for search in root.iter("search"):
        base = search.get("base")
        if not base:
            continue
        query = expand_macros(search.findtext("query") or "", MACROS)
        missing = read_fields(query) - outputs[base]
        assert not missing, f"post-process of {base} reads {sorted(missing)}: {query[:80]}"


def test_the_filter_macros_turn_all_into_no_term_and_quote_through_format() -> None:
    from tests.unit.test_splunk_conf import MACROS

    for stanza, fields in (("hsmaudit_terms(4)", 4), ("hsmaudit_index_terms(2)", 2)):
        definition = MACROS[stanza]["definition"]
        args = [a.strip() for a in MACROS[stanza]["args"].split(",")]
        assert len(args) == fields
        # one row, run before the search; the result is pasted in as terms
        assert definition.startswith("[| makeresults ") and definition.endswith('| format emptystr="host=*"]')
        for arg in args:
            # "All" (*) gives no term; every other value is a field the subsearch hands to format
            assert f'if(${arg}$ == "*", null(), ' in definition, (stanza, arg)
