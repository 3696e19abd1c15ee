"""Guards every test inherits: no network, offline hubs, one thread, headless plotting."""
from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HDAI_PROGRESS", "0")

_LOCAL_PREFIXES = ("127.", "::1", "localhost", "0.0.0.0")


class NetworkBlocked(RuntimeError):
    """A test tried to reach the network."""


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0]) if address else ""
    return host.startswith(_LOCAL_PREFIXES) or host == ""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail any test that opens a non-loopback connection (sockets blocked, not mocked away)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_connect(self, address):
        if not _is_local(address):
            raise NetworkBlocked(f"tests must not use the network (tried {address!r})")
        return real_connect(self, address)

    def guarded_connect_ex(self, address):
        if not _is_local(address):
            raise NetworkBlocked(f"tests must not use the network (tried {address!r})")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo(socket.getaddrinfo))
    yield


def _guarded_getaddrinfo(real):
    def guarded(host, *args, **kwargs):
        if host is not None and not _is_local((host,)):
            raise NetworkBlocked(f"tests must not resolve hostnames (tried {host!r})")
        return real(host, *args, **kwargs)

    return guarded


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(int(os.environ.get("HDAI_THREADS", "1")))
    yield
