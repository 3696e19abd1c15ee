"""Config dataclasses → command lines: one declaration per setting (the field and its docstring).

The course documents a config field with a string literal right under it (an *attribute docstring*,
PEP 257/258)::

    @dataclass
    class RLVRConfig:
        K: int = 8
        \"\"\"Responses sampled per prompt (the group size).\"\"\"

``field_docs`` reads those strings; ``add_config_arguments`` turns each field into a flag whose help
is its docstring, and ``config_overrides`` returns the flags a user actually set, ready for
``dataclasses.replace(cfg, **overrides)`` on the scale's config. So a launcher never re-declares a
setting, and a new field is on the command line as soon as it is in the dataclass.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
from typing import Any, Iterable


def field_docs(cls: type) -> dict[str, str]:
    """``{field name: its attribute docstring}`` for a dataclass (fields without one are absent).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Iterable[str] = ()) -> None:
    """Add one flag per field of dataclass ``cls`` (``lr`` → ``--lr``, ``inner_epochs`` → ``--inner-epochs``).

    Every flag defaults to ``None`` (= keep the scale's value). Types follow the field's default:
    bool → ``--x/--no-x``, tuple → several values, int/float/str → one value. A field without a
    scalar or tuple default (a nested config) is skipped; so are the names in ``exclude``.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    docs = field_docs(cls)
    skip = set(exclude)
    group = parser.add_argument_group(f"{cls.__name__} fields (default: the scale's value)")
    for f in dataclasses.fields(cls):
        if f.name in skip or f.default is dataclasses.MISSING:
            continue
        default, help_text = f.default, docs.get(f.name, "")
        if isinstance(default, bool):
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif isinstance(default, tuple) and default:
            group.add_argument(_flag(f.name), dest=f.name, nargs="+", type=type(default[0]), default=None,
                               help=help_text)
        elif isinstance(default, (int, float, str)):
            group.add_argument(_flag(f.name), dest=f.name, type=type(default), default=None, help=help_text)


def config_overrides(args: argparse.Namespace, cls: type, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` the command line set (tuples restored from lists); pass the same ``exclude``
    as to ``add_config_arguments`` (a launcher's own flag of the same name is not a field override).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    out: dict[str, Any] = {}
    skip = set(exclude)
    for f in dataclasses.fields(cls):
        value = None if f.name in skip else getattr(args, f.name, None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out
