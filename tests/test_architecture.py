"""docs/architecture.md's import rule holds: a module imports only from its layer or below."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "slmbench"


def layers() -> dict[str, int]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    out = {}
    for level, cells in re.findall(r"^\| (\d) [^|]*\| (.*) \|$", text, re.M):
        for name in re.findall(r"`([\w.]+)`", cells):
            out[name] = int(level)
    return out


def module_name(path: Path) -> str:
    """slmbench/cli/run.py -> 'cli' (the CLI package is one front end), x.py -> 'x'."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0] if len(rel.parts) > 1 else rel.name


def imports(path: Path) -> set[str]:
    """slmbench modules imported anywhere in the file (top level and inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "slmbench":
                continue
            if len(parts) > 1:
                out.add(parts[1])
            else:  # from slmbench import config, __version__
                out.update(a.name for a in node.names if a.name != "__version__")
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names
                       if a.name.startswith("slmbench."))
    return out


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    table = layers()
    assert table, "docs/architecture.md has no layer table"
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "__init__":
            continue  # the package's lazy exports (slmbench.bench -> api)
        if name not in table:
            problems.append(f"{path.relative_to(ROOT)}: not in the layer table of "
                            "docs/architecture.md")
            continue
        for dep in imports(path) - {name}:
            if dep not in table:
                problems.append(f"{path.relative_to(ROOT)} imports {dep}, which has no layer")
            elif table[dep] > table[name]:
                problems.append(f"{path.relative_to(ROOT)} (layer {table[name]}) imports "
                                f"{dep} (layer {table[dep]})")
    assert not problems, "\n".join(problems)


def test_every_command_has_one_help_line_and_a_help_page(capsys):
    """`slmbench --help` lists every command with its one line (cli.COMMANDS, their only
    home) and `slmbench COMMAND --help` prints the sub-module's DESCRIPTION, exit 0."""
    import importlib

    from slmbench.cli import COMMANDS, main

    assert main(["--help"]) == 0
    listing = " ".join(capsys.readouterr().out.split())
    for name, (module_name, line) in COMMANDS.items():
        assert f"{name} {line[:30]}" in listing, name
        assert main([name, "--help"]) == 0, name
        page = " ".join(capsys.readouterr().out.split())
        module = importlib.import_module(f"slmbench.cli.{module_name}")
        assert " ".join(module.DESCRIPTION.split()[:8]) in page, name
        assert not hasattr(module, "HELP"), name  # one home: COMMANDS
