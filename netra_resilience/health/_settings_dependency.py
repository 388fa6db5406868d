"""One dependency's settings fields, validated into a :class:`Dependency`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._dependency import COMPONENT_TYPES, Dependency, check_name
from netra_resilience.health._settings_source import _reason, _Source
from netra_resilience.health._status import parse_criticality
from netra_resilience.validation import integer

_DEPENDENCY_KEYS = frozenset(
    {
        "name",
        "criticality",
        "component_type",
        "check_timeout",
        "probe_interval",
        "failure_threshold",
        "isolate_on_failure",
    }
)


def _dependency_items(source: _Source, raw: object) -> list[tuple[str, Mapping[str, Any]]]:
    """Normalise ``dependencies`` to ``[(name, fields)]``, refusing duplicate names."""
    items: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(raw, Mapping):
        for name, fields in raw.items():
            items.append(
                (str(name), {"criticality": fields} if isinstance(fields, str) else fields)
            )
    elif isinstance(raw, list | tuple):
        for index, fields in enumerate(raw):
            if not isinstance(fields, Mapping) or "name" not in fields:
                raise source.error(("dependencies", str(index)), "must be a mapping with a 'name'")
            items.append((str(fields["name"]), fields))
    else:
        raise source.error(("dependencies",), f"must be a mapping or a list, got {raw!r}")
    seen: set[str] = set()
    for name, fields in items:
        if name in seen:
            raise source.error(("dependencies",), f"declares {name!r} twice")
        seen.add(name)
        if not isinstance(fields, Mapping):
            raise source.error(
                ("dependencies", name), f"must be a criticality or a mapping, got {fields!r}"
            )
    return items


def _dependency(
    source: _Source, name: str, fields: Mapping[str, Any], code: Mapping[str, Any]
) -> Dependency:
    path = ("dependencies", name)
    try:
        check_name(source.owner, "dependencies", name)
    except InvalidOptionsError as exc:
        raise source.error(path, _reason(exc)) from None
    unknown = sorted(set(fields) - _DEPENDENCY_KEYS)
    if unknown:
        raise source.error(
            (*path, unknown[0]), f"is not a known field ({', '.join(sorted(_DEPENDENCY_KEYS))})"
        )
    if "criticality" not in fields:
        raise source.error((*path, "criticality"), "is required")
    try:
        criticality = parse_criticality(fields["criticality"], source.owner, "criticality")
    except InvalidOptionsError as exc:
        raise source.error((*path, "criticality"), _reason(exc)) from None
    kwargs: dict[str, Any] = {key: value for key, value in code.items() if value is not None}
    for key in ("check_timeout", "probe_interval"):
        if key in fields:
            kwargs[key] = source.seconds((*path, key), fields[key])
    if "failure_threshold" in fields:
        value = fields["failure_threshold"]
        try:
            kwargs["failure_threshold"] = integer(source.owner, "failure_threshold", int(value))
        except (ValueError, TypeError, OverflowError, InvalidOptionsError):
            raise source.error(
                (*path, "failure_threshold"), f"must be an integer >= 1, got {value!r}"
            ) from None
    if "isolate_on_failure" in fields:
        value = fields["isolate_on_failure"]
        if isinstance(value, str):
            value = value.strip().lower() in {"1", "true", "yes", "on"}
        kwargs["isolate_on_failure"] = bool(value)
    if "component_type" in fields:
        if fields["component_type"] not in COMPONENT_TYPES:
            raise source.error(
                (*path, "component_type"), f"must be one of {', '.join(COMPONENT_TYPES)}"
            )
        kwargs["component_type"] = fields["component_type"]
    return Dependency(name, criticality, **kwargs)
