"""A template's content: parsed from YAML or JSON, checked, canonical, compared.

Pure: no I/O. A `TemplateSpec` is what one version of a case type holds — the topics,
data items, activities and callbacks (with due times relative to opening, in business
time), the response targets and the routing a new case starts with. Two specs are the
same version when their canonical JSON is equal, so re-applying an unchanged file adds
no version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import yaml

from accord.core.bodies import SLUG
from accord.core.errors import ValueFormatError
from accord.core.values import check_value

__all__ = ["TemplateError", "TemplateSpec", "diff_specs", "parse_due", "parse_ref"]

_DUE = re.compile(r"^(\d{1,4})([mhd])$")
_REF = re.compile(r"^([a-z0-9][a-z0-9._-]{0,63})(?:@v(\d{1,6}))?$")
OWNERS = ("us", "customer")
VALUE_TYPES = ("text", "number", "money", "date", "choice", "file")
MAX_ITEMS = 100


class TemplateError(ValueError):
    """The template text is not a valid template; the message names the field."""


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``billing`` or ``billing@v2`` → (name, version or None)."""
    m = _REF.fullmatch(ref.strip())
    if m is None:
        raise TemplateError(f"{ref!r} is not a template name or name@vN")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def parse_due(text: str) -> timedelta:
    """``90m``, ``4h`` (business time) or ``2d`` (business days of 8 hours)."""
    m = _DUE.fullmatch(str(text).strip())
    if m is None:
        raise TemplateError(f"due {text!r}: expected e.g. 30m, 4h or 2d")
    n, unit = int(m.group(1)), m.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(hours=8 * n)}[unit]


def _slug(value: Any, where: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise TemplateError(f"{where} must be a short id of a-z, 0-9, '.', '_' or '-'")
    return value


def _text(value: Any, where: str, limit: int = 300) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise TemplateError(f"{where} must be text of 1 to {limit} characters")
    return value.strip()


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise TemplateError(f"{key} must be a list of at most {MAX_ITEMS} entries")
    return value


def _fields(item: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TemplateError(f"{where} must be a mapping")
    if missing := sorted(required - set(item)):
        raise TemplateError(f"{where}.{missing[0]} is required")
    if extra := sorted(set(item) - required - optional):
        raise TemplateError(f"{where}.{extra[0]} is not a template field")
    return item


@dataclass(frozen=True)
class TemplateSpec:
    """One version of a case type, in canonical form (``data`` is its JSON)."""

    name: str
    data: dict[str, Any]

    @classmethod
    def parse(cls, text: str | bytes) -> TemplateSpec:
        """From YAML (JSON is YAML too); every field checked, unknown fields refused."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateError(f"not YAML: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> TemplateSpec:
        top = _fields(
            raw,
            "template",
            {"name"},
            {
                "title",
                "description",
                "topics",
                "data",
                "activities",
                "callbacks",
                "sla",
                "routing",
                "version",
            },
        )
        name = _slug(top["name"], "name")
        out: dict[str, Any] = {"name": name, "title": _text(top.get("title") or name, "title")}
        if top.get("description"):
            out["description"] = _text(top["description"], "description", 2000)
        topics = []
        for i, t in enumerate(_list(top, "topics")):
            t = _fields(t, f"topics[{i}]", {"topic", "title"}, set())
            topics.append(
                {
                    "topic": _slug(t["topic"], f"topics[{i}].topic"),
                    "title": _text(t["title"], f"topics[{i}].title"),
                }
            )
        out["topics"] = topics
        data = []
        for i, d in enumerate(_list(top, "data")):
            d = _fields(d, f"data[{i}]", {"key", "label"}, {"type", "value", "required"})
            item: dict[str, Any] = {
                "key": _slug(d["key"], f"data[{i}].key"),
                "label": _text(d["label"], f"data[{i}].label", 200),
                "type": d.get("type", "text"),
            }
            if item["type"] not in VALUE_TYPES:
                raise TemplateError(f"data[{i}].type must be one of {', '.join(VALUE_TYPES)}")
            if "value" in d:
                try:
                    check_value(d["value"], f"data[{i}].value")
                except ValueFormatError as exc:
                    raise TemplateError(f"{exc.field}: {exc.message}") from exc
                if d["value"]["type"] != item["type"]:
                    raise TemplateError(f"data[{i}].value is not of type {item['type']}")
                item["value"] = d["value"]
            data.append(item)
        out["data"] = data
        activities = []
        for kind, key in (("task", "activities"), ("callback", "callbacks")):
            for i, a in enumerate(_list(top, key)):
                where = f"{key}[{i}]"
                a = _fields(a, where, {"activity", "title"}, {"owner", "due"})
                owner = a.get("owner", "us")
                if owner not in OWNERS:
                    raise TemplateError(f"{where}.owner must be us or customer")
                entry: dict[str, Any] = {
                    "activity": _slug(a["activity"], f"{where}.activity"),
                    "title": _text(a["title"], f"{where}.title"),
                    "kind": kind,
                    "owner": owner,
                }
                if "due" in a:
                    parse_due(a["due"])
                    entry["due"] = str(a["due"]).strip()
                elif kind == "callback":
                    raise TemplateError(f"{where}.due is required for a callback")
                activities.append(entry)
        out["activities"] = activities
        keys = [d["key"] for d in data]
        ids = [a["activity"] for a in activities]
        names = [t["topic"] for t in topics]
        for label, seen in (("data key", keys), ("activity", ids), ("topic", names)):
            if len(set(seen)) != len(seen):
                raise TemplateError(f"a {label} appears twice")
        if top.get("sla") is not None:
            sla = _fields(top["sla"], "sla", set(), {"first_response", "next_response"})
            for k, v in sla.items():
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                    raise TemplateError(f"sla.{k} must be minutes of business time (1-100000)")
            out["sla"] = dict(sla)
        if top.get("routing") is not None:
            routing = _fields(top["routing"], "routing", set(), {"team", "skill"})
            if not routing:
                raise TemplateError("routing names a team, a skill or both")
            out["routing"] = {k: _text(v, f"routing.{k}", 64) for k, v in routing.items()}
        return cls(name, out)

    def canonical(self) -> str:
        return orjson.dumps(self.data, option=orjson.OPT_SORT_KEYS).decode()

    def to_yaml(self, version: int | None = None) -> str:
        """The file form, fields in the order people write them; activities and
        callbacks in their own lists. ``TemplateSpec.parse`` of it gives this spec."""
        d = self.data
        out: dict[str, Any] = {"name": d["name"]}
        if version is not None:
            out["version"] = version
        out["title"] = d["title"]
        if "description" in d:
            out["description"] = d["description"]
        if d["topics"]:
            out["topics"] = [_ordered(t, ("topic", "title")) for t in d["topics"]]
        if d["data"]:
            out["data"] = [_ordered(i, ("key", "label", "type", "value")) for i in d["data"]]
        for kind, key in (("task", "activities"), ("callback", "callbacks")):
            listed = [
                _ordered(a, ("activity", "title", "owner", "due"))
                for a in d["activities"]
                if a["kind"] == kind
            ]
            if listed:
                out[key] = listed
        for key in ("sla", "routing"):
            if key in d:
                out[key] = d[key]
        return yaml.safe_dump(out, sort_keys=False, allow_unicode=True)

    @property
    def items(self) -> frozenset[str]:
        """What a case of this type is expected to hold: ``data:<key>``, ``activity:<id>``."""
        return frozenset(
            [f"data:{d['key']}" for d in self.data["data"]]
            + [f"activity:{a['activity']}" for a in self.data["activities"]]
        )


def _ordered(item: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    return {k: item[k] for k in order if k in item}


def diff_specs(old: TemplateSpec, new: TemplateSpec) -> list[str]:
    """What changed from ``old`` to ``new``, one line each (``+`` added, ``-`` removed,
    ``~`` changed), in a stable order."""
    lines: list[str] = []
    for field in ("title", "description", "sla", "routing"):
        a, b = old.data.get(field), new.data.get(field)
        if a != b:
            lines.append(f"~ {field}: {_show(a)} -> {_show(b)}")
    for section, key in (("topics", "topic"), ("data", "key"), ("activities", "activity")):
        before = {item[key]: item for item in old.data[section]}
        after = {item[key]: item for item in new.data[section]}
        for k in sorted(before.keys() - after.keys()):
            lines.append(f"- {section}.{k}: {_show(before[k])}")
        for k in sorted(after.keys() - before.keys()):
            lines.append(f"+ {section}.{k}: {_show(after[k])}")
        for k in sorted(before.keys() & after.keys()):
            if before[k] != after[k]:
                lines.append(f"~ {section}.{k}: {_show(before[k])} -> {_show(after[k])}")
    return lines


def _show(value: Any) -> str:
    return "none" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def deviations(expected: frozenset[str], actual: frozenset[str]) -> tuple[int, int]:
    """(items added, items removed) of a case against its template's items."""
    return len(actual - expected), len(expected - actual)
