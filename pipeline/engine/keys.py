"""What a stage's cache key is made of: a stable digest of any settings, and the meaning of the code it runs.

The code part follows a module and every pipeline module it imports, read from the import statements
(never imported: an up-to-date check must not pay for torch), function-level imports included, so a
stage's key follows the code it really runs and nothing else. Each module counts by its syntax tree with
docstrings left out: a comment, a docstring or a reformatting changes no key, a change to what the code
does changes the key of every stage that imports it.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # pipeline/


def digest(obj: Any) -> str:
    """A stable sha256 of any JSON-able object (dataclasses included)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_jsonable).encode()).hexdigest()


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def code_hash(modules: list[str]) -> str:
    """Hash of the meaning of `modules` and of every pipeline module they import, directly or not."""
    h = hashlib.sha256()
    for path in sorted({p for module in modules for p in code_files(module)}):
        h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + meaning(path).encode() + b"\0")
    return h.hexdigest()


def meaning(path: Path) -> str:
    """The module's syntax tree without its docstrings: what it does, not how it is commented or laid out."""
    return _parsed(path)[0]


def code_files(module: str) -> list[Path]:
    """The files of `module` and of the pipeline modules it imports, transitively, function-level imports
    included."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for imported, level, names in _parsed(path)[1]:
            base = _absolute(imported, level, package)
            todo += [base] + [f"{base}.{alias}" for alias in names]
    return sorted(seen.values())


DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)  # may open with a docstring
Imports = tuple[tuple[str, int, tuple[str, ...]], ...]  # (module, level, names) of each import statement


def _parsed(path: Path) -> tuple[str, Imports]:
    """The file's meaning and imports, as `_read` parsed its current text."""
    return _read(path.read_text(), str(path))


@functools.lru_cache(maxsize=None)
def _read(source: str, filename: str) -> tuple[str, Imports]:
    """A module's meaning and its import statements, parsed once per distinct text: the keys of the stages a
    command runs read the same few dozen files, each file twice, and parsing is their whole cost."""
    tree = ast.parse(source, filename)
    imports: list[tuple[str, int, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imports.append((node.module or "", node.level, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Import):
            imports += [(alias.name, 0, ()) for alias in node.names]
        elif isinstance(node, DOCUMENTED) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False), tuple(imports)


def _absolute(module: str, level: int, package: str) -> str:
    if level == 0:
        return module
    parts = package.split(".")[:len(package.split(".")) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def _module_file(name: str) -> Path | None:
    """The source file of a module of this package (its dotted name), or None for anything else."""
    head, _, rest = name.partition(".")
    if head != PACKAGE_ROOT.name:
        return None
    base = PACKAGE_ROOT.joinpath(*rest.split(".")) if rest else PACKAGE_ROOT
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None
