"""Configuration: the example documents every setting, env overrides, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from backends.settings import Settings
from console.cli import cli
from console.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_example_config_equals_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMOPS_CONFIG", raising=False)
    assert load_settings(EXAMPLE) == Settings()


def test_example_config_documents_every_setting() -> None:
    text = EXAMPLE.read_text()
    sections = re.split(r"^\[(\w+)\]\s*$", text, flags=re.M)
    by_section = dict(zip(sections[1::2], sections[2::2], strict=True))
    for key in _keys(Settings):
        section, name = key.split(".")
        assert re.search(rf"^#?\s*{name}\s*=", by_section[section], flags=re.M), key


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[retail]\nburst = 7\nsink = "redis"\n')
    monkeypatch.setenv("STREAMOPS_RETAIL__BURST", "9")
    monkeypatch.setenv("STREAMOPS_KAFKA__BOOTSTRAP_SERVERS", "k1:9092")
    settings = load_settings(path)
    assert (settings.retail.burst, settings.retail.sink) == (9, "redis")
    assert settings.kafka.bootstrap_servers == "k1:9092"


def test_working_directory_file_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STREAMOPS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "streamops.toml").write_text("[retail]\nseed = 1234\n")
    assert load_settings().retail.seed == 1234


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[retail]\nburst = 0\n", "retail.burst: Input should be greater than or equal to 1"),
        ("[retail]\nbursty = 1\n", "retail.bursty: unknown setting"),
        ('[retail]\nsink = "s3"\n', "retail.sink: Input should be 'memory', 'kafka'"),
        ("[retail\n", "Expected ']'"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_cli_exits_2_on_bad_config_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[kafka]\nlinger_ms = -5\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "stream", "status"])
    assert result.exit_code == 2
    assert "kafka.linger_ms" in result.output
    assert "Traceback" not in result.output
