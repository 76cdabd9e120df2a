"""Durations and points in time as users write them (Modyn's units), in milliseconds since the epoch.

An integer time in a pipeline file or on the command line is in *seconds* since the epoch, as Modyn
writes them (TimeTrigger `start_timestamp`, evaluation bounds, `--start-replay-at`); event times in
events and ClickHouse are milliseconds.

>>> parse_duration("3d"), parse_duration("90s"), parse_duration("1w")
(259200000, 90000, 604800000)
>>> parse_time("2024-01-01"), parse_time("2024-01-01T00:00:01Z"), parse_time(1704067200), parse_time("-86400")
(1704067200000, 1704067201000, 1704067200000, -86400000)
>>> parse_interval("[-1d; +2h]"), parse_interval("(-1s; +0s)"), parse_interval("[-inf; +1d)")
((-86400000, 7200001), (-999, 0), (None, 86400000))
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w|y)\s*$")
_BOUND = r"([+-]?)\s*(\d+\s*(?:ms|s|m|h|d|w|y)|inf)"
_INTERVAL = re.compile(rf"^\s*([\[(])\s*{_BOUND}\s*[;,]\s*{_BOUND}\s*([\])])\s*$")
# ClickHouse's DateTime64 range: what an open end ('inf', a missing bound) stands for.
EARLIEST_MS, LATEST_MS = -2208988800000, 10413791999999  # 1900-01-01, 2299-12-31T23:59:59.999


def parse_duration(text: str) -> int:
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit of {', '.join(UNITS_MS)} (e.g. '1d')")
    return int(match.group(1)) * UNITS_MS[match.group(2)]


def parse_time(text: str | int) -> int:
    """Epoch milliseconds of epoch *seconds* (an integer, Modyn's unit) or an ISO 8601 date/time (UTC unless
    it says otherwise)."""
    value = str(text).strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value) * 1000
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use epoch seconds or ISO 8601 like 2024-01-31T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def format_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_offset(text: str) -> int:
    """A signed duration (ms), e.g. '-2d', '+1h' or '0s'."""
    text = str(text).strip()
    return -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text.removeprefix("+"))


def parse_interval(text: str) -> tuple[int | None, int | None]:
    """Modyn's interval around a point in time, e.g. '[-1d; +1d]', as the offsets (ms) of the half-open
    window [t + left, t + right): '(' and ')' exclude a bound, '[' and ']' include it (a bound is one ms);
    None for '-inf' / '+inf' (the dataset's start or end)."""
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"invalid interval {text!r}: write it like '[-1d; +1d]', '(-inf; +0d]' or '[-2d; +inf)'")
    opening, left_sign, left, right_sign, right, closing = match.groups()
    if (left == "inf" and left_sign == "+") or (right == "inf" and right_sign == "-"):
        raise ValueError(f"invalid interval {text!r}: the left bound cannot be +inf, nor the right one -inf")
    start = None if left == "inf" else parse_offset(left_sign + left) + (opening == "(")
    end = None if right == "inf" else parse_offset(right_sign + right) + (closing == "]")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"invalid interval {text!r}: it ends before it starts")
    return start, end
