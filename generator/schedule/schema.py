"""schedule.yaml's JSON Schema, derived from the model `schedule.load` validates with (ScheduleModel).

One declaration, two readers: `model.convert` checks a schedule, this walks the same type hints into a
schema an editor can use (yaml-language-server), so the two cannot drift. It follows `convert`'s rules:
patterns match whole (anchored; ASCII digits as in `re.ASCII`), no coercion, unknown keys refused.
What a schema cannot say (a date that exists, the lock covering the schedule) stays with the loader.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import types
import typing
from typing import Annotated, Any, Literal, Union

from generator.core.validate import EARLIEST, FLATTEN, LATEST, Pattern, Range, Valid, _hints
from generator.schedule.decisions import ScheduleModel

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Walker:
    """Type hint → schema; each dataclass (and each flattened list's item) once, under $defs."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def of(self, hint: Any) -> dict[str, Any]:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            return self._annotated(hint)
        if hint is Any:
            return {}
        if origin in (Union, types.UnionType):
            args = typing.get_args(hint)
            inner = self.of(next(a for a in args if a is not type(None)))
            return {"anyOf": [inner, {"type": "null"}]} if type(None) in args else inner
        if origin is Literal:
            return {"enum": list(typing.get_args(hint))}
        if origin is list:
            return {"type": "array", "items": self.of(typing.get_args(hint)[0])}
        if origin is dict:
            key, value = typing.get_args(hint)
            return {"type": "object", "propertyNames": self.of(key), "additionalProperties": self.of(value)}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self._dataclass(hint)
        if hint is dt.date:  # an unquoted YAML date; an editor sees its text
            return {"type": "string", "format": "date", "description": f"YYYY-MM-DD, unquoted, {EARLIEST} to {LATEST}"}
        simple = {str: "string", int: "integer", bool: "boolean"}
        if hint in simple:
            return {"type": simple[hint]}
        raise TypeError(f"no schema for {hint!r}")  # a type convert() learnt and this did not

    def _annotated(self, hint: Any) -> dict[str, Any]:
        """A constrained type: the base type's schema with each constraint the loader checks."""
        base, *meta = typing.get_args(hint)
        out = self.of(base)
        hints = []
        for m in meta:
            if isinstance(m, Pattern):
                out |= {"pattern": f"^(?:{m.regex})$", "maxLength": m.max_len}
                hints.append(m.hint)
            elif isinstance(m, Range):
                out |= {"minimum": m.lo, "maximum": m.hi}
            elif isinstance(m, Valid):
                hints.append(m.hint)
        if hints:
            out["description"] = "; ".join(hints)
        if FLATTEN in meta:  # `[*common, extra]`: an alias of a list nests it, the loader flattens
            name = f"{_name(out['items'])}-or-list"
            self.defs[name] = {"anyOf": [out["items"], {"type": "array", "items": {"$ref": f"#/$defs/{name}"}}]}
            out["items"] = {"$ref": f"#/$defs/{name}"}
        return out

    def _dataclass(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.defs:
            self.defs[name] = {}  # reserved first: a model that refers to itself ends here
            hints = _hints(cls)
            fields = dataclasses.fields(cls)
            self.defs[name] = {
                "type": "object",
                "properties": {f.name: self.of(hints[f.name]) for f in fields},
                "required": [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING],
                "additionalProperties": False,
            }
            if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):  # dataclasses make one up
                self.defs[name]["description"] = cls.__doc__.strip()
        return {"$ref": f"#/$defs/{name}"}


def _name(item: dict[str, Any]) -> str:
    """A $defs name for a list item: its model's name, else its hint's words (`an-apt-package-name`)."""
    return item.get("$ref", "").rsplit("/", 1)[-1] or re.sub(r"[^a-z0-9]+", "-", item.get("description", "item").lower()).strip("-")


def schedule_schema() -> dict[str, Any]:
    """The JSON Schema of schedule.yaml (draft 2020-12)."""
    walker = _Walker()
    root = walker.of(ScheduleModel)
    return {
        "$schema": DIALECT,
        "title": "schedule.yaml",
        "description": "The runtime support schedule (generated from ScheduleModel in generator/schedule/decisions.py by generator/docs.py).",
        **walker.defs[root["$ref"].rsplit("/", 1)[-1]],
        "$defs": dict(sorted((k, v) for k, v in walker.defs.items() if k != "ScheduleModel")),
    }


def render() -> str:
    return json.dumps(schedule_schema(), indent=2, ensure_ascii=False) + "\n"
