"""A run and all its steps as one JSON document, produced in chunks so a 10,000-step run is
streamed rather than held in memory: {"run": {...}, "usage": {...}, "events": [...]}."""

import json
from collections.abc import Iterator

from django.core.serializers.json import DjangoJSONEncoder

from ..models import Event, Run
from .runs import run_usage_against_caps

FORMAT_VERSION = 1
_RENAMED = {"replay_of_id": "replay_of", "parent_id": "parent", "run_id": "run"}
_SKIPPED = {"created_by_id"}


def _fields(obj) -> dict:
    return {
        _RENAMED.get(f.attname, f.attname): getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.attname not in _SKIPPED
    }


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def run_export_chunks(run: Run, *, chunk_size: int = 500) -> Iterator[str]:
    """The export document of `run`, piece by piece; joined, it is valid JSON."""
    head = _dumps(_fields(run)), _dumps(run_usage_against_caps(run))
    yield f'{{"format": {FORMAT_VERSION}, "run": {head[0]}, "usage": {head[1]}, "events": ['

    events = Event.objects.filter(run=run).order_by("seq").iterator(chunk_size=chunk_size)
    for i, event in enumerate(events):
        row = _fields(event)
        row["duration_ms"] = event.duration_ms
        yield ("," if i else "") + "\n" + _dumps(row)
    yield "\n]}\n"
