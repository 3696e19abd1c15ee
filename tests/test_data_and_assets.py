"""The shipped-data manifest (checksums, regeneration) and full-scale asset errors."""
from __future__ import annotations

import json

import pytest

from hdai_lessons.core.assets import Asset, MissingAssetError, assets_for, require
from hdai_lessons.core.data import DataError, build, data_path, load_manifest, restore, sha256_of, verify


def write_toy_file(out, seed):
    out.write_text(f"generated with seed {seed}\n")


def _manifest(root, sha="0" * 64, sub=None):
    folder = root / sub if sub else root
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"files": [{
        "name": f"toy{'-' + sub if sub else ''}", "file": "toy.txt", "sha256": sha, "seed": 3,
        "licence": "CC0-1.0", "source": "test", "generator": "test_data_and_assets:write_toy_file"}]}))


def test_missing_file_names_the_fix(tmp_path):
    _manifest(tmp_path)
    with pytest.raises(DataError, match="missing; restore the committed file with `hdai-lessons data restore toy`"):
        data_path("toy", tmp_path)


def test_build_writes_elsewhere_and_never_touches_the_manifest(tmp_path):
    _manifest(tmp_path, sha=sha256_of_text("generated with seed 3\n"))
    before = (tmp_path / "manifest.json").read_text()
    path, sha = build("toy", tmp_path, out_dir=tmp_path / "out")
    assert path == tmp_path / "out" / "toy.txt" and path.read_text() == "generated with seed 3\n"
    assert sha == sha256_of(path) and (tmp_path / "manifest.json").read_text() == before
    assert not (tmp_path / "toy.txt").exists()                # the shipped path is untouched
    assert "missing" in verify("toy", tmp_path)


def sha256_of_text(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def test_restore_puts_the_committed_file_back_byte_for_byte(tmp_path):
    import subprocess
    _manifest(tmp_path, sha=sha256_of_text("shipped\n"))
    (tmp_path / "toy.txt").write_text("shipped\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "ship"], check=True)
    (tmp_path / "toy.txt").write_text("tampered")
    assert "corrupt" in verify("toy", tmp_path) and "data restore toy" in verify("toy", tmp_path)
    assert restore("toy", tmp_path).read_text() == "shipped\n"
    assert verify("toy", tmp_path) is None


def test_restore_outside_git_is_a_clear_error(tmp_path):
    _manifest(tmp_path)
    with pytest.raises(DataError, match="could not restore .*download it again"):
        restore("toy", tmp_path)


def test_module_folders_have_their_own_manifests(tmp_path):
    _manifest(tmp_path)
    _manifest(tmp_path, sub="flows")
    names = {e["name"] for e in load_manifest(tmp_path)}
    assert names == {"toy", "toy-flows"}
    path, _ = build("toy-flows", tmp_path, out_dir=tmp_path / "out")
    assert path == tmp_path / "out" / "flows" / "toy.txt"


def test_unknown_name_and_bad_entries(tmp_path):
    _manifest(tmp_path)
    with pytest.raises(DataError, match="no data named 'nope' in the manifest; known: toy"):
        verify("nope", tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"files": [{"name": "x"}]}))
    with pytest.raises(DataError, match="lacks"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json is malformed"):
        load_manifest(tmp_path)


def test_every_shipped_file_verifies():
    bad = [p for p in (verify(e["name"]) for e in load_manifest()) if p]
    assert not bad, bad
    for e in load_manifest():
        assert e["licence"] and e["source"] and ":" in e["generator"]


def test_missing_asset_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingAssetError, match="hdai-lessons fetch 01.4"):
        require(Asset("model", "someone/not-downloaded"), "01.4")


def test_asset_kind_is_validated():
    with pytest.raises(ValueError):
        Asset("weights", "x/y").repo_type


def test_lesson_without_assets():
    assert assets_for("00.1") == []


def test_minari_assets_need_the_mujoco_extra_or_name_the_fetch(monkeypatch):
    import importlib.util

    assets = assets_for("03.4")
    assert assets and all(a.kind == "minari" for a in assets)
    if importlib.util.find_spec("minari") is None:
        with pytest.raises(MissingAssetError, match=r"pip install -e \.\[mujoco\]"):
            require(assets[0], "03.4")
    else:
        monkeypatch.setenv("MINARI_DATASETS_PATH", "/nonexistent-minari-store")
        with pytest.raises(MissingAssetError, match="hdai-lessons fetch 03.4"):
            require(assets[0], "03.4")


def test_gated_assets_say_what_to_accept(capsys, monkeypatch):
    import hdai_lessons.core.assets as assets_mod

    flux = [a for a in assets_for("04.5") if "FLUX" in a.repo_id]
    assert flux and "accept its licence" in flux[0].gated and "hf auth login" in flux[0].gated

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    with pytest.raises(MissingAssetError, match="It is gated: accept its licence"):
        assets_mod.fetch_lesson("04.5")
    assert "is gated on the hub" in capsys.readouterr().out


def test_fetch_pins_a_branch_to_its_commit_and_require_loads_that_commit(tmp_path, monkeypatch):
    """The first fetch records the commit it downloaded; later fetches and loads use it, not the branch."""
    from types import SimpleNamespace

    import hdai_lessons.core.assets as assets_mod

    monkeypatch.setattr(assets_mod, "lock_path", lambda: tmp_path / "assets.lock.json")
    calls = []
    head = {"sha": "a" * 40}

    class FakeApi:
        def repo_info(self, repo_id, repo_type, revision, files_metadata):
            calls.append(("info", revision))
            return SimpleNamespace(sha=head["sha"] if not assets_mod.COMMIT.fullmatch(revision) else revision, siblings=[])

    def fake_download(repo_id, repo_type, revision, allow_patterns=None, local_files_only=False):
        calls.append(("download" if not local_files_only else "load", revision))
        return str(tmp_path / revision)

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_download)
    asset = Asset("model", "someone/model")
    assert assets_mod.pinned_revision(asset) == "main"
    assets_mod.fetch_asset(asset)
    assert calls == [("info", "main"), ("download", "a" * 40)]
    assert json.loads((tmp_path / "assets.lock.json").read_text()) == {"model:someone/model": "a" * 40}
    head["sha"] = "b" * 40                       # the branch moves on the hub
    calls.clear()
    assets_mod.fetch_asset(asset)
    assert calls == [("info", "a" * 40), ("download", "a" * 40)]       # still the pinned commit
    assert require(asset, "01.4") == tmp_path / ("a" * 40)
    pinned = Asset("model", "someone/other", revision="c" * 40)         # a commit in the code needs no lock entry
    calls.clear()
    assets_mod.fetch_asset(pinned)
    assert calls == [("info", "c" * 40), ("download", "c" * 40)]
    assert "model:someone/other" not in json.loads((tmp_path / "assets.lock.json").read_text())


def test_every_hub_asset_is_pinned_by_code_or_by_the_lock_file_after_fetch():
    from hdai_lessons.core.assets import COMMIT, assets_for

    qwen = [a for a in assets_for("01.4") if a.repo_id == "Qwen/Qwen2.5-0.5B-Instruct"]
    assert qwen and COMMIT.fullmatch(qwen[0].revision)
    for lesson in ("01.4", "02.4", "04.5", "05.4"):
        for a in assets_for(lesson):
            assert COMMIT.fullmatch(a.revision) or a.revision == "main", (lesson, a.repo_id, a.revision)
