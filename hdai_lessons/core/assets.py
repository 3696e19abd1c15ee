"""Full-scale assets: the pretrained models and datasets a lesson needs, and ``fetch`` for them.

Modules declare what their full-scale lessons need in ``hdai_lessons/<module>/assets.py``::

    register_assets("01.4", [Asset("model", "Qwen/Qwen2.5-0.5B-Instruct"),
                             Asset("dataset", "openai/gsm8k", allow_patterns=("main/*",))])

``fetch_lesson`` downloads them with ``huggingface_hub`` and verifies every LFS file against the
hub's sha256 (kind ``"minari"``: a Minari dataset id, fetched with Minari's own client);
``require`` (called by full-scale code) finds them in the local cache, or raises
``MissingAssetError`` naming the exact ``hdai-lessons fetch`` command to run.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from hdai_lessons.core.data import sha256_of
from hdai_lessons.core.modules import MODULE_PACKAGES


class MissingAssetError(RuntimeError):
    """A full-scale asset is not in the local cache (or could not be downloaded).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """


@dataclass(frozen=True)
class Asset:
    kind: str                       # "model" or "dataset" (Hugging Face hub), or "minari"
    repo_id: str                    # e.g. "Qwen/Qwen2.5-0.5B-Instruct"
    revision: str = "main"
    allow_patterns: "tuple[str, ...] | None" = None
    note: str = ""
    gated: str = ""                 # non-empty: the hub requires a licence acceptance; what to do first

    @property
    def repo_type(self) -> str:
        if self.kind not in KINDS:
            raise ValueError(f"asset kind must be one of {KINDS}, got {self.kind!r}")
        return self.kind


KINDS = ("model", "dataset", "minari")
MINARI_HINT = "Minari datasets need the MuJoCo extra: pip install -e .[mujoco]"


def _minari():
    try:
        import minari
    except ImportError:
        raise MissingAssetError(MINARI_HINT) from None
    return minari


_ASSETS: dict[str, list[Asset]] = {}


def register_assets(lesson_id: str, assets: list[Asset]) -> None:
    _ASSETS[lesson_id] = list(assets)


def assets_for(lesson_id: str) -> list[Asset]:
    """What a lesson needs at full scale (an empty list when it needs nothing)."""
    package = MODULE_PACKAGES.get(lesson_id.split(".")[0])
    if package:
        try:
            importlib.import_module(f"{package}.assets")
        except ModuleNotFoundError as err:
            if err.name not in (package, f"{package}.assets"):
                raise
    return _ASSETS.get(lesson_id, [])


def require(asset: Asset, lesson_id: str) -> Path:
    """The local snapshot folder of ``asset``; offline and absent → ``MissingAssetError`` with the fix.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    from huggingface_hub import snapshot_download

    if asset.repo_type == "minari":
        minari = _minari()
        if asset.repo_id not in minari.list_local_datasets():
            raise MissingAssetError(f"Minari dataset {asset.repo_id} is not downloaded. On a machine with network run: "
                                    f"hdai-lessons fetch {lesson_id}")
        return Path(minari.storage.get_dataset_path(asset.repo_id)) if hasattr(minari, "storage") else Path(asset.repo_id)
    try:
        return Path(snapshot_download(asset.repo_id, repo_type=asset.repo_type, revision=asset.revision,
                                      allow_patterns=list(asset.allow_patterns) if asset.allow_patterns else None,
                                      local_files_only=True))
    except Exception as err:  # huggingface_hub raises several types for "not cached"
        raise MissingAssetError(
            f"{asset.kind} {asset.repo_id}@{asset.revision} is not downloaded. On a machine with network run: "
            f"hdai-lessons fetch {lesson_id}   ({type(err).__name__})"
        ) from None


def fetch_asset(asset: Asset) -> Path:
    """Download ``asset`` and verify each LFS file's sha256 against the hub's metadata.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    from huggingface_hub import HfApi, snapshot_download

    if asset.repo_type == "minari":
        minari = _minari()
        try:
            minari.download_dataset(asset.repo_id)
        except Exception as err:
            raise MissingAssetError(f"could not download Minari dataset {asset.repo_id}: {type(err).__name__}: {err}") from None
        return Path(asset.repo_id)
    try:
        local = Path(snapshot_download(asset.repo_id, repo_type=asset.repo_type, revision=asset.revision,
                                       allow_patterns=list(asset.allow_patterns) if asset.allow_patterns else None))
        info = HfApi().repo_info(asset.repo_id, repo_type=asset.repo_type, revision=asset.revision, files_metadata=True)
    except Exception as err:
        gated = f" It is gated: {asset.gated}" if asset.gated else " For gated models: `hf auth login`."
        raise MissingAssetError(
            f"could not download {asset.kind} {asset.repo_id}: {type(err).__name__}: {err}. "
            f"Check the network (HF_HUB_OFFLINE must be unset).{gated}"
        ) from None
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        path = local / sibling.rfilename
        if lfs is None or not path.exists():
            continue
        expected = lfs["sha256"] if isinstance(lfs, dict) else lfs.sha256
        if sha256_of(path) != expected:
            raise MissingAssetError(f"{path} failed its checksum; delete it and run the fetch again")
    return local


def fetch_lesson(lesson_id: str) -> list[Path]:
    """Download and verify everything a lesson needs at full scale; return the local folders."""
    assets = assets_for(lesson_id)
    paths = []
    for asset in assets:
        if asset.gated:
            print(f"note: {asset.repo_id} is gated on the hub: {asset.gated}", flush=True)
        print(f"fetching {asset.kind} {asset.repo_id}@{asset.revision} …", flush=True)
        paths.append(fetch_asset(asset))
    return paths
