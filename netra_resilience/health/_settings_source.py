"""Where settings come from: a mapping, a settings object or environment variables.

``_Source`` names a bad field the way the user wrote it (``dependencies.redis.criticality``
or ``NETRA_DEPENDENCIES``), so every error points at something they can find.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from netra_resilience.exceptions import InvalidOptionsError
from netra_resilience.validation import duration


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
