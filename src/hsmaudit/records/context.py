"""Where a record came from: its log group and stream, and the cluster and HSM ids they name.

Every parse step needs this context; an `unparsed` event (text that is no record) is built from
it alone. The (group, stream) -> ids lookup is memoised: a payload holds one group and stream.
"""

from __future__ import annotations

from typing import Final

import msgspec

from hsmaudit.records.cache import remember
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.identity import unparsed_event_id

CLOUDHSM_LOG_GROUP_PREFIX: Final = "/aws/cloudhsm/"

NOT_A_RECORD: Final = "not a CloudHSM audit record"


def cluster_id_from_log_group(log_group: str | None) -> str | None:
    """`/aws/cloudhsm/cluster-likphkxygsn` -> `cluster-likphkxygsn`; None for other groups."""
    if log_group and log_group.startswith(CLOUDHSM_LOG_GROUP_PREFIX):
        rest = log_group[len(CLOUDHSM_LOG_GROUP_PREFIX) :].strip("/")
        return rest or None
    return None


def hsm_id_from_log_stream(log_stream: str | None, cluster_id: str | None) -> str | None:
    """The HSM id is the stream name, except for the cluster-named certificate stream (§1)."""
    if not log_stream or log_stream == cluster_id or log_stream.startswith("cluster-"):
        return None
    return log_stream


ORIGINS: dict[tuple[str | None, str | None], tuple[str | None, str | None, str | None, str | None]] = {}


def origin_of(
    log_group: str | None, log_stream: str | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """(log_group, log_stream, cluster_id, hsm_id), memoised: a payload has one group and stream."""
    cluster_id = cluster_id_from_log_group(log_group)
    origin = (
        log_group or None,
        log_stream or None,
        cluster_id,
        hsm_id_from_log_stream(log_stream, cluster_id),
    )
    return remember(ORIGINS, (log_group, log_stream), origin)


class RecordContext(msgspec.Struct, frozen=True):
    log_group: str | None
    log_stream: str | None
    cluster_id: str | None
    hsm_id: str | None
    cwl_id: str | None
    cwl_timestamp: int | None


def unparsed(message: str, ctx: RecordContext, error: str) -> HsmEvent:
    return HsmEvent(
        cluster_id=ctx.cluster_id,
        hsm_id=ctx.hsm_id,
        category="other",
        severity="medium",
        event_id=unparsed_event_id(ctx.cluster_id, ctx.log_stream, ctx.cwl_id, message),
        log_group=ctx.log_group,
        log_stream=ctx.log_stream,
        cwl_id=ctx.cwl_id,
        cwl_timestamp=ctx.cwl_timestamp,
        parse_error=error,
        raw=message,
    )
