"""Build hooks of the documentation site (``hooks:`` in mkdocs.yml).

The pages under docs/ are written to read well in a repository browser too, so they link
``../examples/x.py`` and ``../benchmarks/RESULTS-cluster.md``: files outside docs/ that a
plain MkDocs build cannot follow. These hooks make the site whole and keep it from going
stale, each failing the build with a message that says what to fix::

    on_files            CHANGELOG.md, benchmarks/RESULTS*.md ──► pages of the site
    on_page_markdown    a link that leaves docs/ ──► the site's page for its target
                          examples/x.py          ──► examples.md#x (the gallery entry)
                          an included file       ──► its page
                          anything else          ──► build error
                        reference.md  ◄── checked against anypool.__all__ and anypool.abc.__all__
                        examples.md   ◄── checked against the files in examples/

Links inside docs/ are left alone: MkDocs itself checks them (``validation:`` in
mkdocs.yml turns every broken link or anchor into a warning, which ``--strict`` fails).
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

# Files outside docs/ that the site shows as pages: repository path -> page path.
EXTERNAL_PAGES = {
    "CHANGELOG.md": "changelog.md",
    "benchmarks/RESULTS.md": "benchmarks/results.md",
    "benchmarks/RESULTS-cluster.md": "benchmarks/results-cluster.md",
}
# The modules whose ``__all__`` docs/reference.md must document, name by name.
PUBLIC_MODULES = {"anypool": "src/anypool/__init__.py", "anypool.abc": "src/anypool/abc.py"}

# an inline link's or image's target, ](target) or ](target "title"), outside code (a fenced
# block or a code span, matched first so that ``table[0](x)`` is left alone); reference-style
# definitions ([id]: target) are not used by the pages
_LINK = re.compile(
    r"(?P<code>^(?P<fence>`{3,}|~{3,}).*?^(?P=fence)|``.+?``|`[^`\n]+`)"
    r"|\]\(\s*<?(?P<target>[^)\s>]+)>?",
    re.MULTILINE | re.DOTALL,
)
_DIRECTIVE = re.compile(r"^::: +(\S+)", re.MULTILINE)
_SNIPPET = re.compile(r'^-{1,3}8<-{1,3} +"examples/([^"]+)"', re.MULTILINE)
_ANCHOR = re.compile(r"^#+ .*\{ *#([\w-]+) *\}\s*$", re.MULTILINE)


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).parent


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = _root(config)
    for repo_path, page_path in EXTERNAL_PAGES.items():
        if not (root / repo_path).is_file():
            raise PluginError(f"{repo_path} is missing: drop it from EXTERNAL_PAGES in {__file__}")
        files.append(File.generated(config, page_path, abs_src_path=str(root / repo_path)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    uri = page.file.src_uri
    if uri == "reference.md":
        _check_reference(markdown, _root(config))
    elif uri == "examples.md":
        _check_gallery(markdown, _root(config))
    repo_path = _repo_path(uri)
    return _LINK.sub(lambda match: _relink(match, uri, repo_path), markdown)


def _repo_path(page_uri: str) -> str:
    for repo_path, page_path in EXTERNAL_PAGES.items():
        if page_path == page_uri:
            return repo_path
    return f"docs/{page_uri}"


def _relink(match: re.Match[str], page_uri: str, page_repo_path: str) -> str:
    target = match.group("target")
    # code; a URL, an anchor, or an absolute path
    if target is None or re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
        return match.group(0)
    path, _, fragment = target.partition("#")
    repo_target = posixpath.normpath(posixpath.join(posixpath.dirname(page_repo_path), path))
    if repo_target.startswith("docs/") and page_repo_path.startswith("docs/"):
        return match.group(0)  # inside docs/: MkDocs resolves and checks it
    site_target = _site_path(repo_target, fragment, page_uri)
    relative = posixpath.relpath(site_target.partition("#")[0], posixpath.dirname(page_uri) or ".")
    anchor = site_target.partition("#")[2]
    return f"]({relative}{'#' + anchor if anchor else ''}"


def _site_path(repo_target: str, fragment: str, page_uri: str) -> str:
    """The site's page (and anchor) for a repository path a page links to."""
    if repo_target.startswith("docs/"):
        return repo_target.removeprefix("docs/") + (f"#{fragment}" if fragment else "")
    if repo_target in EXTERNAL_PAGES:
        return EXTERNAL_PAGES[repo_target] + (f"#{fragment}" if fragment else "")
    if repo_target == "examples":
        return "examples.md"
    example = re.fullmatch(r"examples/(\w+)\.py", repo_target)
    if example:
        return f"examples.md#{example.group(1)}"
    raise PluginError(
        f"{page_uri} links {repo_target}, which is outside docs/ and has no page on the site: "
        f"link a page of the site, or add the file to EXTERNAL_PAGES in {__file__}"
    )


def exports(source: Path) -> list[str]:
    """The ``__all__`` of a module, read from its source (no import: the tree may be mid-edit)."""
    for node in ast.parse(source.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            names: list[str] = ast.literal_eval(node.value)
            return list(names)
    raise PluginError(f"{source} has no literal __all__")


def _check_reference(markdown: str, root: Path) -> None:
    documented = _DIRECTIVE.findall(markdown)
    public = {
        f"{module}.{name}"
        for module, source in PUBLIC_MODULES.items()
        for name in exports(root / source)
    }
    missing = sorted(public - set(documented))
    # a public module itself may be documented too, for its docstring
    extra = sorted(set(documented) - public - set(PUBLIC_MODULES))
    twice = sorted({name for name in documented if documented.count(name) > 1})
    problems = [
        *(f"add '::: {name}' (it is public)" for name in missing),
        *(f"drop '::: {name}' (not in {name.rpartition('.')[0]}.__all__)" for name in extra),
        *(f"'::: {name}' appears more than once" for name in twice),
    ]
    if problems:
        raise PluginError("docs/reference.md: " + "; ".join(problems))


def _check_gallery(markdown: str, root: Path) -> None:
    on_disk = {path.name for path in (root / "examples").glob("*.py")}
    embedded = set(_SNIPPET.findall(markdown))
    anchors = set(_ANCHOR.findall(markdown))
    problems = [
        *(f"add {name} (with its source embedded)" for name in sorted(on_disk - embedded)),
        *(f"drop {name} (no such file in examples/)" for name in sorted(embedded - on_disk)),
        *(
            f"give {name}'s heading the anchor {{ #{name[:-3]} }}"
            for name in sorted(on_disk & embedded)
            if name[:-3] not in anchors
        ),
    ]
    if problems:
        raise PluginError("docs/examples.md: " + "; ".join(problems))
