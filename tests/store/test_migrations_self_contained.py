"""A migration is history: it imports no application code, so a later edit of the
application cannot change what an old migration does."""

from __future__ import annotations

import ast

from accord.store.migrate import MIGRATIONS


def _imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):  # also imports inside functions
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))  # relative: the package
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(str(node.args[0].value))
    return found


def test_no_migration_imports_application_code() -> None:
    files = sorted((MIGRATIONS / "versions").glob("*.py"))
    assert len(files) >= 15
    offending = {
        path.name: names
        for path in files
        if (
            names := [
                name
                for name in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path)))
                if name == "accord" or name.startswith(("accord.", "."))
            ]
        )
    }
    assert offending == {}, f"migrations importing application code: {offending}"


def test_the_check_sees_an_import_of_application_code() -> None:
    source = "def upgrade():\n    from accord.store import search\n"
    assert _imports(ast.parse(source)) == ["accord.store"]
