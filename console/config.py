"""Configuration: a TOML file plus `STREAMOPS_*` environment overrides.

The file is found nearest-first: `--config`, then `$STREAMOPS_CONFIG`, then
`./streamops.toml`, then `$XDG_CONFIG_HOME/streamops/config.toml` (default
`~/.config/streamops/config.toml`). Environment variables win over the file and
nest with `__`: `STREAMOPS_KAFKA__BOOTSTRAP_SERVERS=localhost:9092`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from backends.settings import Settings


class ConfigError(Exception):
    """One line that names the offending key; the CLI prints it and exits 2."""


class _FileSettings(BaseSettings, Settings):
    model_config = SettingsConfigDict(
        env_prefix="STREAMOPS_", env_nested_delimiter="__", extra="forbid"
    )
    toml_path: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)


def find_config(explicit: Path | None = None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config error: {explicit}: no such file")
        return explicit
    env = os.environ.get("STREAMOPS_CONFIG")
    candidates = [Path(env)] if env else []
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    candidates += [Path("streamops.toml"), config_home / "streamops" / "config.toml"]
    return next((path for path in candidates if path.is_file()), None)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = error.get("msg", "invalid value")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting"
    return f"{location}: {message}" if location else message


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate; any problem becomes a `ConfigError` naming the key."""
    found = find_config(path)
    source = type("LoadedSettings", (_FileSettings,), {"toml_path": found})
    where = f"{found}: " if found else ""
    try:
        loaded = source(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error: {where}{exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"config error: {where}{_describe(first)}{more}") from None
    return Settings.model_validate(loaded.model_dump())
