"""The test-suite guards themselves, and static checks for code this course must never ship."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from conftest import NetworkBlocked

ROOT = Path(__file__).resolve().parent.parent


def test_network_is_blocked():
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("huggingface.co", 443)


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(server.getsockname())
    client.close()
    server.close()


def test_hub_offline_in_tests():
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


UNSAFE = [
    (re.compile(r"trust_remote_code\s*=\s*True"), "trust_remote_code=True"),
    (re.compile(r"(?<![\w.])eval\s*\("), "eval("),
    (re.compile(r"(?<![\w.])exec\s*\("), "exec("),
    (re.compile(r"pickle\.loads?\s*\("), "pickle.load"),
]
TORCH_LOAD = re.compile(r"torch\.load\s*\(([^()]|\([^()]*\))*\)")


def _sources() -> list[Path]:
    files = sorted((ROOT / "hdai_lessons").rglob("*.py")) + sorted((ROOT / "scripts").rglob("*.py"))
    return [f for f in files if f.is_file()]


def find_unsafe(text: str) -> list[str]:
    """Names of unsafe patterns in ``text`` (comments and docstrings count: keep them out)."""
    found = [name for pattern, name in UNSAFE if pattern.search(text)]
    for m in TORCH_LOAD.finditer(text):
        if "weights_only=True" not in m.group(0).replace(" ", ""):
            found.append("torch.load without weights_only=True")
    return found


def test_detector_catches_unsafe_code():
    assert find_unsafe("m = AutoModel.from_pretrained(p, trust_remote_code=True)")
    assert find_unsafe("answer = eval(completion)")
    assert find_unsafe("exec(code)")
    assert find_unsafe("sd = torch.load(path)")
    assert find_unsafe("obj = pickle.loads(blob)")
    assert not find_unsafe("sd = torch.load(path, weights_only=True)")
    assert not find_unsafe("model.eval()")
    assert not find_unsafe("evaluate(x); self.evaluator(y)")


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unsafe_code_in_package(path):
    assert not find_unsafe(path.read_text()), f"{path}: {find_unsafe(path.read_text())}"


def test_no_unsafe_code_in_notebooks():
    import nbformat

    bad = {}
    for nb_path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        nb = nbformat.read(str(nb_path), as_version=4)
        src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if find_unsafe(src):
            bad[str(nb_path)] = find_unsafe(src)
    assert not bad, bad
