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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.health._dependency import DEFAULT_CHECK_TIMEOUT, DEFAULT_PROBE_INTERVAL
from netra_resilience.health._settings_dependency import _dependency, _dependency_items
from netra_resilience.health._settings_source import (
    _as_mapping,
    _EnvSettings,
    _Source,
    settings_from_env,
)

if TYPE_CHECKING:
    from netra_resilience.health._registry import ServiceRegistry
    from netra_resilience.health._settings_options import SettingsOptions

__all__ = ["registry_from_settings", "settings_from_env"]

_TOP_KEYS = frozenset({"probe_interval", "check_timeout", "dependencies"})
_CODE_PARAMS = {
    "check": "checks",
    "pipeline": "pipelines",
    "strategies": "strategies",
    "fallback": "fallbacks",
}


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
