"""Full-scale assets: the pretrained models and datasets a lesson needs, and ``fetch`` for them.

Modules declare what their full-scale lessons need in ``hdai_lessons/<module>/assets.py``::

    register_assets("01.4", [Asset("model", "Qwen/Qwen2.5-0.5B-Instruct"),
                             Asset("dataset", "openai/gsm8k", allow_patterns=("main/*",))])

``fetch_lesson`` downloads them with ``huggingface_hub`` and verifies every LFS file against the
hub's sha256 (kind ``"minari"``: a Minari dataset id, fetched with Minari's own client);
``require`` (called by full-scale code) finds them in the local cache, or raises
``MissingAssetError`` naming the exact ``hdai-lessons fetch`` command to run.

Every hub asset loads one fixed commit. An ``Asset`` either names it (``revision`` = 40 hex digits,
where the course knows it) or is pinned by ``data/assets.lock.json``: the first ``fetch`` on a machine
with network resolves the branch to its commit, downloads that commit and records it there (commit
the file); every later fetch and every ``require`` uses the recorded commit, so a model that changes
on the hub (renamed config keys, new weights) cannot change a lesson silently.
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from hdai_lessons.core.data import sha256_of
from hdai_lessons.core.modules import MODULE_PACKAGES
from hdai_lessons.core.paths import data_dir

COMMIT = re.compile(r"[0-9a-f]{40}")


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

    @property
    def key(self) -> str:
        """``kind:repo_id``, the asset's entry in ``data/assets.lock.json``."""
        return f"{self.kind}:{self.repo_id}"


KINDS = ("model", "dataset", "minari")
MINARI_HINT = "Minari datasets need the MuJoCo extra: pip install -e .[mujoco]"


def _minari():
    try:
        import minari
    except ImportError:
        raise MissingAssetError(MINARI_HINT) from None
    return minari


_ASSETS: dict[str, list[Asset]] = {}


def lock_path() -> Path:
    """``data/assets.lock.json``: ``{"kind:repo_id": commit}`` for assets whose ``revision`` is a branch."""
    return data_dir() / "assets.lock.json"


def _read_lock() -> dict[str, str]:
    path = lock_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _write_lock(lock: dict[str, str]) -> None:
    """Replace the lock file atomically (``core.checkpoint.atomic_write_text``)."""
    from hdai_lessons.core.checkpoint import atomic_write_text   # imports torch; fetch and require need it only here

    atomic_write_text(lock_path(), json.dumps(dict(sorted(lock.items())), indent=1) + "\n")


def pinned_revision(asset: Asset) -> str:
    """The commit ``asset`` loads: its own ``revision`` if that is a commit, else the lock file's
    entry, else (never fetched here yet) its branch name.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if COMMIT.fullmatch(asset.revision) or asset.repo_type == "minari":
        return asset.revision
    return _read_lock().get(asset.key, asset.revision)


def registered_asset(lesson_id: str, repo_id: str, kind: str = "model") -> Asset:
    """The asset ``lesson_id`` declares for ``repo_id`` (with its pin, gating and patterns), or a
    plain ``Asset(kind, repo_id)`` for a model the lesson can use but does not fetch by default."""
    for asset in assets_for(lesson_id):
        if asset.repo_id == repo_id and asset.kind == kind:
            return asset
    return Asset(kind, repo_id)


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
    revision = pinned_revision(asset)
    try:
        return Path(snapshot_download(asset.repo_id, repo_type=asset.repo_type, revision=revision,
                                      allow_patterns=list(asset.allow_patterns) if asset.allow_patterns else None,
                                      local_files_only=True))
    except Exception as err:  # huggingface_hub raises several types for "not cached"
        raise MissingAssetError(
            f"{asset.kind} {asset.repo_id}@{revision} is not downloaded. On a machine with network run: "
            f"hdai-lessons fetch {lesson_id}   ({type(err).__name__})"
        ) from None


def fetch_asset(asset: Asset) -> Path:
    """Download ``asset`` at its pinned commit and verify each LFS file's sha256 against the hub's
    metadata. An asset not pinned yet is resolved to its branch's current commit, downloaded at that
    commit, and the commit recorded in ``data/assets.lock.json``.

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
    revision = pinned_revision(asset)
    try:
        info = HfApi().repo_info(asset.repo_id, repo_type=asset.repo_type, revision=revision, files_metadata=True)
        local = Path(snapshot_download(asset.repo_id, repo_type=asset.repo_type, revision=info.sha,
                                       allow_patterns=list(asset.allow_patterns) if asset.allow_patterns else None))
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
    if not COMMIT.fullmatch(revision):
        lock = _read_lock()
        lock[asset.key] = info.sha
        _write_lock(lock)
        print(f"pinned {asset.repo_id} at {info.sha} in {lock_path()} (commit that file so every machine loads "
              "this version)", flush=True)
    return local


def fetch_lesson(lesson_id: str) -> list[Path]:
    """Download and verify everything a lesson needs at full scale; return the local folders."""
    assets = assets_for(lesson_id)
    paths = []
    for asset in assets:
        if asset.gated:
            print(f"note: {asset.repo_id} is gated on the hub: {asset.gated}", flush=True)
        print(f"fetching {asset.kind} {asset.repo_id}@{pinned_revision(asset)} …", flush=True)
        paths.append(fetch_asset(asset))
    return paths
