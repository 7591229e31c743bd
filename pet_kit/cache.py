"""pet_kit's cache folder, where what is assembled or fetched once is kept."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """pet_kit's cache folder: ``cache_dir`` if given, else ``$PET_KIT_CACHE``, else
    ``~/.cache/pet_kit`` (assembled default models; fetched task data under ``data/``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("PET_KIT_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pet_kit"
