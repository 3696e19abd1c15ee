"""Config dataclasses → command lines (core.config): one declaration per setting."""
import argparse
from dataclasses import dataclass, fields, replace

import pytest

from hdai_lessons.core.config import add_config_arguments, config_overrides, field_docs
from hdai_lessons.lm.rl_trainer import RLVRConfig


@dataclass
class _Cfg:
    steps: int = 3
    """Iterations."""
    lr: float = 1e-3
    """Learning
    rate."""
    use_chat: bool = False
    """Wrap prompts."""
    ks: tuple = (1, 8)
    name: str = "a"
    """A name."""


def _parse(argv, cls=_Cfg, exclude=()):
    p = argparse.ArgumentParser()
    add_config_arguments(p, cls, exclude=exclude)
    return p.parse_args(argv)


def test_field_docs_reads_attribute_docstrings():
    assert field_docs(_Cfg) == {"steps": "Iterations.", "lr": "Learning rate.", "use_chat": "Wrap prompts.",
                                "name": "A name."}
    with pytest.raises(TypeError, match="not a dataclass"):
        field_docs(int)


def test_every_trainer_setting_is_documented_and_on_the_command_line():
    docs = field_docs(RLVRConfig)
    assert {f.name for f in fields(RLVRConfig)} == set(docs)
    args = _parse([], RLVRConfig)
    assert {f.name for f in fields(RLVRConfig)} <= set(vars(args))


def test_only_flags_the_user_set_override_the_scale():
    assert config_overrides(_parse([]), _Cfg) == {}
    got = config_overrides(_parse(["--steps", "7", "--lr", "0.5", "--use-chat", "--ks", "1", "4"]), _Cfg)
    assert got == {"steps": 7, "lr": 0.5, "use_chat": True, "ks": (1, 4)}
    assert replace(_Cfg(), **got).ks == (1, 4)
    assert config_overrides(_parse(["--no-use-chat"]), _Cfg) == {"use_chat": False}


def test_excluded_fields_and_bad_values():
    args = _parse([], exclude=("name",))
    assert not hasattr(args, "name")
    args.name = "launcher's own"                      # a launcher flag of the same name
    assert config_overrides(args, _Cfg, exclude=("name",)) == {}
    with pytest.raises(SystemExit):
        _parse(["--steps", "many"])
