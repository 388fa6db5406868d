"""Registry configuration from a settings mapping or environment variables.

Settings shape (a mapping, e.g. parsed TOML/YAML, or a pydantic-settings object)::

    {"probe_interval": 10, "check_timeout": 2,
     "dependencies": {"postgres": "critical",
                      "redis": {"criticality": "important", "check_timeout": 0.5}}}

``dependencies`` may also be a list of mappings with a ``name`` key. Environment::

    NETRA_DEPENDENCIES="postgres=critical, redis=important, analytics=optional"
    NETRA_PROBE_INTERVAL=10
    NETRA_CHECK_TIMEOUT=2

Code-only parts (checks, pipelines, strategies, fallbacks) are passed by name. Every error is
an :class:`InvalidOptionsError` naming the offending field (or environment variable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._validation import duration, integer
from ..exceptions import InvalidOptionsError
from ._dependency import (
    COMPONENT_TYPES,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_PROBE_INTERVAL,
    Dependency,
    check_name,
)
from ._status import parse_criticality

if TYPE_CHECKING:
    from ._registry import ServiceRegistry, SettingsOptions

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
_TOP_KEYS = frozenset({"probe_interval", "check_timeout", "dependencies"})
_CODE_PARAMS = {
    "check": "checks",
    "pipeline": "pipelines",
    "strategies": "strategies",
    "fallback": "fallbacks",
}


def _reason(exc: InvalidOptionsError) -> str:
    """The message of ``exc`` without its ``owner.field`` prefix (to re-attribute it)."""
    return str(exc)[len(exc.owner) + len(exc.field) + 2 :]


class _Source:
    """Names fields as the user wrote them: ``dependencies.redis.criticality`` or an env var."""

    def __init__(self, owner: str, env_prefix: str | None = None) -> None:
        self.owner = owner
        self.env_prefix = env_prefix

    def error(self, path: tuple[str, ...], message: str) -> InvalidOptionsError:
        if self.env_prefix is None:
            return InvalidOptionsError(self.owner, ".".join(path), message)
        var = self.env_prefix + path[0].upper()
        detail = f" (dependency {path[1]!r})" if len(path) > 1 else ""
        return InvalidOptionsError(self.owner, var, message + detail)

    def seconds(self, path: tuple[str, ...], value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(path, f"must be a number of seconds, got {value!r}") from None
        try:
            return duration(self.owner, path[-1], value)  # type: ignore[arg-type]
        except InvalidOptionsError as exc:
            raise self.error(path, _reason(exc)) from None


def _as_mapping(settings: object) -> Mapping[str, Any]:
    if isinstance(settings, Mapping):
        return settings
    dump = getattr(settings, "model_dump", None)  # pydantic / pydantic-settings
    if callable(dump):
        result = dump()
        if isinstance(result, Mapping):
            return result
    raise InvalidOptionsError(
        "settings", "settings", f"must be a mapping, got {type(settings).__name__}"
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
        except (ValueError, InvalidOptionsError):
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


def registry_from_settings(
    cls: type[ServiceRegistry], settings: object, options: SettingsOptions
) -> ServiceRegistry:
    source = settings.source if isinstance(settings, _EnvSettings) else _Source("settings")
    data = _as_mapping(settings)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise source.error((unknown[0],), f"is not a known field ({', '.join(sorted(_TOP_KEYS))})")
    timings = {
        key: source.seconds((key,), data[key])
        for key in ("probe_interval", "check_timeout")
        if data.get(key) is not None
    }
    items = _dependency_items(source, data.get("dependencies", {}))
    declared = {name for name, _ in items}
    code: dict[str, Mapping[str, Any]] = {}
    for kind, param in _CODE_PARAMS.items():
        by_name: Mapping[str, Any] = options.get(param) or {}  # type: ignore[assignment]
        for name in by_name:
            if name not in declared:
                raise InvalidOptionsError(
                    "ServiceRegistry.from_settings",
                    param,
                    f"names {name!r}, which the settings do not declare "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})",
                )
        code[kind] = by_name
    dependencies = [
        _dependency(
            source, name, fields, {kind: by_name.get(name) for kind, by_name in code.items()}
        )
        for name, fields in items
    ]
    return cls(
        dependencies,
        probe_interval=timings.get("probe_interval", DEFAULT_PROBE_INTERVAL),
        check_timeout=timings.get("check_timeout", DEFAULT_CHECK_TIMEOUT),
        clock=options.get("clock"),
        random=options.get("random"),
        telemetry=options.get("telemetry"),
    )


class _EnvSettings(dict[str, Any]):
    """Settings parsed from the environment; remembers to name env vars in errors."""

    def __init__(self, data: Mapping[str, Any], source: _Source) -> None:
        super().__init__(data)
        self.source = source


def settings_from_env(environ: Mapping[str, str] | None, prefix: str) -> _EnvSettings:
    env = os.environ if environ is None else environ
    source = _Source("environment", prefix)
    data: dict[str, Any] = {}
    for key in ("probe_interval", "check_timeout"):
        value = env.get(prefix + key.upper())
        if value is not None and value.strip():
            data[key] = value.strip()
    dependencies: list[dict[str, str]] = []
    for part in env.get(prefix + "DEPENDENCIES", "").split(","):
        if not part.strip():
            continue
        name, sep, criticality = part.partition("=")
        if not sep:
            raise source.error(
                ("dependencies",), f"entries must look like name=criticality, got {part.strip()!r}"
            )
        dependencies.append({"name": name.strip(), "criticality": criticality.strip()})
    data["dependencies"] = dependencies
    return _EnvSettings(data, source)
