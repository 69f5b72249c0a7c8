"""The published figures as open data: CSV and JSON with a stable schema (docs/
quality-and-privacy.md, "Public quality page and open data").

Schema version 1 (fields are only ever added, with a new minor version; never renamed or
removed): rates are fractions 0..1 with 4 decimals, durations in seconds, empty (CSV) or null
(JSON) when not measured.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from organisations.models import Organisation

from .figures import ChannelResult, PeriodResults

SCHEMA_VERSION = "1.0"
LICENCE = {
    "name": "Licence Ouverte / Open Licence version 2.0",
    "id": "etalab-2.0",
    "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
}

CHANNEL_FIELDS = {  # JSON / CSV name -> ChannelResult attribute
    "channel": "channel",
    "contacts": "contacts",
    "offered": "offered",
    "answered": "answered",
    "answer_rate": "answer_rate",
    "within_announced_delay_rate": "within_delay_rate",
    "average_delay_seconds": "average_delay_s",
    "satisfaction_rate": "satisfaction_rate",
    "satisfaction_responses": "satisfaction_responses",
    "announced_delay_seconds": "announced_delay_s",
    "answer_rate_target": "answer_rate_target",
    "within_delay_target": "within_delay_target",
}
# One CSV line per period and channel: who and when, the channel's fields, the licence.
CSV_COLUMNS = ("organisation", "period", "first_day", "last_day", *CHANNEL_FIELDS, "licence")


def _number(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def channel_record(result: ChannelResult) -> dict[str, Any]:
    return {name: _number(getattr(result, attr)) for name, attr in CHANNEL_FIELDS.items()}


def as_json(
    organisation: Organisation, results: list[PeriodResults], generated_at: datetime
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "licence": LICENCE,
        "organisation": {
            "name": organisation.name,
            "slug": organisation.slug,
            "siret": organisation.siret,
        },
        "generated_at": generated_at.isoformat(),
        "periods": [
            {
                "period": p.key,
                "first_day": p.period.first.isoformat(),
                "last_day": p.period.last.isoformat(),
                "channels": [channel_record(c) for c in p.channels],
            }
            for p in results
        ],
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def as_csv(organisation: Organisation, results: list[PeriodResults]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for p in results:
        for c in p.channels:
            record = channel_record(c)
            writer.writerow(
                [
                    organisation.slug,
                    p.key,
                    p.period.first.isoformat(),
                    p.period.last.isoformat(),
                    *(_cell(record[name]) for name in CSV_COLUMNS[4:-1]),
                    LICENCE["id"],
                ]
            )
    return buffer.getvalue()
