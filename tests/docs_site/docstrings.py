"""A griffe extension: anypool's reStructuredText docstrings, read as the site's Markdown.

The docstrings are written for ``help()`` and Sphinx-style readers: ``:class:`~anypool.Pool```
roles, ``>>>`` doctests and ``::`` literal blocks. mkdocstrings renders Markdown, where the
roles show as ``:class:`` noise, a doctest turns into nested quotes and ``::`` stays. Before
rendering, each docstring is rewritten::

    :meth:`explain`          ──► `explain()`, linked to Pool.explain when the site has it
    :class:`~anypool.Pool`   ──► `Pool`, linked to anypool.Pool
    :mod:`anypool._core`     ──► `anypool._core` (private: never linked)
    >>> doctest lines        ──► a ```pycon block
    "text::" + indented block ──► "text:" + the block as code

Links are *optional* autorefs: one whose target the site does not document renders as plain
code instead of failing the strict build, since docstrings may name private helpers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|meth|func|mod|attr|data|exc|obj|const):`([~!]?)([^`]+)`")
_CALLABLE_ROLES = {"meth", "func"}


class ReSTDocstrings(griffe.Extension):
    """Rewrites every loaded object's docstring (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # once the whole package is loaded: resolving a name needs every module's __all__
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def convert(text: str, obj: griffe.Object) -> str:
    text = _literal_blocks(_doctests(text))
    return _ROLE.sub(lambda match: _role(match, obj), text)


def _role(match: re.Match[str], obj: griffe.Object) -> str:
    role, prefix, target = match.groups()
    shown = target.rpartition(".")[2] if prefix == "~" else target
    code = f"<code>{html.escape(shown)}{'()' if role in _CALLABLE_ROLES else ''}</code>"
    identifier = None if prefix == "!" else _resolve(target, obj)
    if identifier is None:
        return code
    return f'<autoref identifier="{identifier}" optional>{code}</autoref>'


def _resolve(target: str, obj: griffe.Object) -> str | None:
    """The public path a role's target names, or None when it is private or not anypool's."""
    if "." in target and target.split(".")[0] != "anypool":
        head = target.split(".")[0]
        found = _lookup(head, obj)
        if found is None:
            return None  # another library's name (concurrent.futures.Future, ...)
        target = found + target[len(head) :]
    elif "." not in target:
        found = _lookup(target, obj)
        if found is None:
            return None
        target = found
    if any(part.startswith("_") for part in target.split(".")):
        return None
    return target


def _lookup(name: str, obj: griffe.Object) -> str | None:
    """``name`` as seen from ``obj``'s scope: its members, then its parents' in turn.

    The result is written against the documented, public path: a member found on the class
    ``anypool.Pool`` is ``anypool.Pool.name``, whatever private module defines the class.
    """
    scope: griffe.Object | None = obj
    while scope is not None:
        # a class's inherited members count: Pool's docstring names methods of its bases
        if name in getattr(scope, "all_members", scope.members):
            return _public(scope, name)
        scope = scope.parent
    return None


def _public(scope: griffe.Object, name: str) -> str | None:
    """The documented path of ``scope.name``: under the public name of its (outer) class."""
    classes: list[str] = []
    node: griffe.Object | None = scope
    while node is not None and node.is_class:
        classes.insert(0, node.name)
        node = node.parent
    if not classes:  # a module's member: public if a public module exports its name
        return _exported_name(scope.package, name)
    outer = _exported_name(scope.package, classes[0])
    return None if outer is None else ".".join([outer, *classes[1:], name])


def _exported_name(package: griffe.Module, name: str) -> str | None:
    # the public modules, as hooks.PUBLIC_MODULES lists them: anypool and anypool.abc
    for module in (package, package.members.get("abc")):
        if isinstance(module, griffe.Module) and name in (module.exports or ()):
            return f"{module.path}.{name}"
    return None


def _doctests(text: str) -> str:
    """Wrap each run of ``>>>`` lines (with their output, up to a blank line) in a fence."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append(f"{indent}```")
    return "\n".join(out)


def _literal_blocks(text: str) -> str:
    """reST's ``text::`` introduces a literal block: show "text:", and the block as code."""
    block = r"\n(\n[ \t]+\S)"  # a blank line, then indented text (Markdown's code block too)
    text = re.sub(r"\s+::" + block, r"\n\1", text)  # "text ::" shows "text"
    return re.sub(r"(\S)::" + block, r"\1:\n\2", text)  # "text::" shows "text:"
