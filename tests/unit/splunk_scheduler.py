"""A strict model of Splunk's search scheduler for the app's alerts: runs, windows, triggers, throttling.

It implements exactly the `savedsearches.conf` settings the app uses, as Splunk's
`savedsearches.conf.spec` (10.x) and the Alerting Manual ("Throttle alerts") describe them, and
refuses every other setting and every value form it does not model, so a new setting cannot slip
into the app untested:

* `cron_schedule` `*/N * * * *` and `M * * * *`; every scheduled time runs (continuous
  scheduling, which is what `realtime_schedule = 0` asks for: the scheduler runs a late search
  late instead of skipping it);
* the dispatch window from `dispatch.earliest_time`/`latest_time` (event time) and
  `dispatch.index_earliest`/`index_latest` (index time), relative to the *scheduled* time
  (`allow_data_time_skew` is false, so `allow_skew` moves the start, not the window); only events
  indexed by the time of the run are visible;
* the trigger `counttype = number of events`, `relation = greater than`, `quantity = N`;
* per-result alerting (`alert.digest_mode = 0`) with throttling: each result's values of
  `alert.suppress.fields` form its key, a field the result lacks counts as empty (so a throttle
  field the search drops mutes every later result), and a key that fired within
  `alert.suppress.period` is suppressed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

Row = dict[str, Any]
Search = Callable[[str, list[Row]], list[Row]]

SEARCH_INFO: dict[str, float] = {}
"""The time range of the run in progress (`info_min_time`, `info_max_time`), which `addinfo`
reports; the SPL model reads it."""

SPEC_SETTINGS: Final = frozenset(
    {
        "description", "search", "disabled", "enableSched", "cron_schedule", "realtime_schedule",
        "allow_skew", "dispatch.earliest_time", "dispatch.latest_time", "dispatch.index_earliest",
        "dispatch.index_latest", "counttype", "relation", "quantity", "alert.track", "alert.severity",
        "alert.digest_mode", "alert.suppress", "alert.suppress.fields", "alert.suppress.period",
        "request.ui_dispatch_app",
    }
)  # fmt: skip
"""The settings this model implements; each is a setting of Splunk's savedsearches.conf.spec."""

_BOOLEAN: Final = re.compile(r"0|1|true|false")
_RELATIVE: Final = re.compile(r"now|(?P<sign>[-+])(?P<amount>\d+)(?P<unit>[smhd])(?:@(?P<snap>[smhd]))?")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SKEW: Final = re.compile(r"0|\d+%|\d+(?:m|min|minute|mins|minutes|h|hr|hour|hrs|hours|d|day|days)")


class SchedulerModelError(AssertionError):
    """The app uses a setting or value this model (and so its tests) does not cover."""


def _boolean(value: str) -> bool:
    if not _BOOLEAN.fullmatch(value):
        raise SchedulerModelError(f"not a boolean: {value!r}")
    return value in {"1", "true"}


def relative_time(text: str, scheduled: float) -> float:
    """A time modifier (`now`, `-6m@m`, `-24h@h`, `+5m`) relative to the scheduled time (UTC snaps)."""
    match = _RELATIVE.fullmatch(text)
    if not match:
        raise SchedulerModelError(f"time modifier {text!r} is not modelled")
    if text == "now":
        return scheduled
    seconds = int(match["amount"]) * _UNITS[match["unit"]]
    moment = scheduled - seconds if match["sign"] == "-" else scheduled + seconds
    if match["snap"]:
        step = _UNITS[match["snap"]]
        moment = moment // step * step
    return moment


def period_seconds(text: str) -> int:
    """`alert.suppress.period`: [number][time-unit], a bare number being seconds."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text)
    if not match:
        raise SchedulerModelError(f"suppression period {text!r} is not modelled")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def cron_times(cron: str, start: float, end: float) -> list[float]:
    """Scheduled times in [start, end) of `*/N * * * *` or `M * * * *`."""
    fields = cron.split()
    if len(fields) != 5 or fields[1:] != ["*"] * 4:
        raise SchedulerModelError(f"cron {cron!r} is not modelled")
    minute = fields[0]
    if match := re.fullmatch(r"\*/(\d+)", minute):
        step, offset = int(match.group(1)) * 60, 0
    elif minute.isdigit():
        step, offset = 3600, int(minute) * 60
    else:
        raise SchedulerModelError(f"cron minute {minute!r} is not modelled")
    first = (start - offset) // step * step + offset
    if first < start:
        first += step
    times = []
    moment = first
    while moment < end:
        times.append(moment)
        moment += step
    return times


def check_stanza(settings: dict[str, str]) -> None:
    """Refuse settings outside the model and values outside the spec's forms."""
    unknown = set(settings) - SPEC_SETTINGS - {"__name__"}
    if unknown:
        raise SchedulerModelError(
            f"settings not modelled (or not in savedsearches.conf.spec): {sorted(unknown)}"
        )
    for key in (
        "disabled",
        "enableSched",
        "realtime_schedule",
        "alert.track",
        "alert.suppress",
        "alert.digest_mode",
    ):
        if key in settings:
            _boolean(settings[key])
    if "allow_skew" in settings and not _SKEW.fullmatch(settings["allow_skew"]):
        raise SchedulerModelError(f"allow_skew {settings['allow_skew']!r} is not a percentage or duration")
    for key in (
        "dispatch.earliest_time",
        "dispatch.latest_time",
        "dispatch.index_earliest",
        "dispatch.index_latest",
    ):
        if key in settings:
            relative_time(settings[key], 0)
    if "counttype" in settings and (
        settings["counttype"] != "number of events" or settings.get("relation") != "greater than"
    ):
        raise SchedulerModelError("only 'number of events' 'greater than' N triggers are modelled")
    if "alert.severity" in settings and settings["alert.severity"] not in {"1", "2", "3", "4", "5", "6"}:
        raise SchedulerModelError(f"alert.severity {settings['alert.severity']!r}")
    if _boolean(settings.get("alert.suppress", "0")):
        period_seconds(settings["alert.suppress.period"])
        if not _boolean(settings.get("alert.digest_mode", "1")) and not settings.get("alert.suppress.fields"):
            raise SchedulerModelError("per-result suppression needs alert.suppress.fields (spec)")


@dataclass
class Fired:
    """One triggered alert: the run's scheduled time and the result that triggered it."""

    scheduled: float
    result: Row


@dataclass
class Scheduler:
    """Runs one saved search on its schedule over indexed events and keeps its throttle state."""

    settings: dict[str, str]
    search: Search
    on_dispatch: Callable[[float], None] | None = None
    """Called with the scheduled time before each run (a test sets the search's now() with it)."""
    suppressed_until: dict[tuple[str, ...], float] = field(default_factory=dict)
    windows: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_stanza(self.settings)
        if _boolean(self.settings.get("disabled", "0")):
            raise SchedulerModelError("a disabled search never runs (enable it as the set-up step says)")
        if not _boolean(self.settings.get("enableSched", "0")):
            raise SchedulerModelError("not a scheduled search")
        if _boolean(self.settings.get("realtime_schedule", "1")):
            raise SchedulerModelError(
                "realtime_schedule = 1 lets the scheduler skip runs; the model runs every period"
            )

    def run(self, scheduled: float, events: list[Row]) -> tuple[list[Row], list[Fired]]:
        """One run at its scheduled time: (the search's results, the alerts that fired)."""
        earliest = relative_time(self.settings["dispatch.earliest_time"], scheduled)
        latest = relative_time(self.settings.get("dispatch.latest_time", "now"), scheduled)
        self.windows.append((earliest, latest))
        index_earliest = self.settings.get("dispatch.index_earliest")
        index_latest = self.settings.get("dispatch.index_latest")
        visible = []
        for event in events:
            if event["_indextime"] > scheduled or not earliest <= event["_time"] < latest:
                continue
            if index_earliest and event["_indextime"] < relative_time(index_earliest, scheduled):
                continue
            if index_latest and event["_indextime"] >= relative_time(index_latest, scheduled):
                continue
            visible.append(dict(event))
        SEARCH_INFO.clear()
        SEARCH_INFO.update(info_min_time=earliest, info_max_time=latest)
        if self.on_dispatch is not None:
            self.on_dispatch(scheduled)
        results = self.search(self.settings["search"], visible)
        if "counttype" not in self.settings or len(results) <= int(self.settings["quantity"]):
            return results, []
        if not _boolean(self.settings.get("alert.suppress", "0")):
            return results, [Fired(scheduled, row) for row in results]
        period = period_seconds(self.settings["alert.suppress.period"])
        if _boolean(self.settings.get("alert.digest_mode", "1")):
            if self.suppressed_until.get((), 0) > scheduled:
                return results, []
            self.suppressed_until[()] = scheduled + period
            return results, [Fired(scheduled, results[0])]
        fields = [name.strip() for name in self.settings["alert.suppress.fields"].split(",")]
        fired = []
        for row in results:
            key = tuple(_text(row.get(name)) for name in fields)
            if self.suppressed_until.get(key, 0) > scheduled:
                continue
            self.suppressed_until[key] = scheduled + period
            fired.append(Fired(scheduled, row))
        return results, fired

    def run_between(self, start: float, end: float, events: list[Row]) -> list[Fired]:
        """Every scheduled run in [start, end), in order; the alerts that fired."""
        fired: list[Fired] = []
        for scheduled in cron_times(self.settings["cron_schedule"], start, end):
            fired += self.run(scheduled, events)[1]
        return fired


def _text(value: Any) -> str:
    """A field value as the throttle key sees it: absent is empty, multivalues joined."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return str(value)
