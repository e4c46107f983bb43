"""Which project package may import which, read from the source with `ast` (nothing is imported).

The services talk to each other only over HTTP, so each imports the shared core and no other
project package (the buffer also reads archives through the archive library); the core imports
none, and does not even name one as a module to run (``"-m", "databuffer"``); `glitchflow_stack`
starts the services as processes and never imports them; the batch libraries import no service.
A package without a row in `RULES` fails `test_every_package_has_a_rule`: add its row when you
add it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = frozenset({"databuffer", "datastore_logic", "glitchflow_api", "gwclient"})
CORE = "glitchflow_core"
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.\w+)*")


@dataclass(frozen=True)
class Rule:
    """What one package may import of the project: ``allowed`` if given, else all but ``denied``.

    With ``strings_count``, a string that spells a module of a forbidden package (the ``"-m",
    "databuffer"`` of a command line) counts as a use too.
    """

    allowed: frozenset[str] | None = None
    denied: frozenset[str] = frozenset()
    strings_count: bool = False

    def permits(self, package: str, imported: str) -> bool:
        if imported == package:
            return True
        if self.allowed is not None:
            return imported in self.allowed
        return imported not in self.denied


RULES: dict[str, Rule] = {
    CORE: Rule(allowed=frozenset(), strings_count=True),
    **{service: Rule(allowed=frozenset({CORE})) for service in SERVICES},
    # The buffer reads archived batches through the archive package (a library, no service).
    "databuffer": Rule(allowed=frozenset({CORE, "glitchflow_archive"})),
    "glitchflow_stack": Rule(denied=SERVICES),
    "glitchflow_dataset": Rule(denied=SERVICES),
    "glitchflow_archive": Rule(denied=SERVICES),
}


def project_packages(root: Path) -> set[str]:
    """The top-level packages of the repository: folders at its root with an ``__init__.py``."""
    return {p.parent.name for p in root.glob("*/__init__.py")}


def _dynamic_import(node: ast.Call) -> str | None:
    """The module named by ``importlib.import_module("x")`` or ``__import__("x")``, if literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imported_modules(source: str, strings_count: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import in ``source``, dynamic ones with a literal name
    included; relative imports stay inside their package and are left out. With
    ``strings_count``, every string that is spelled like a dotted module name is listed too."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            strings_count
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_NAME.fullmatch(node.value)
        ):
            found.add((node.lineno, node.value))
        elif isinstance(node, ast.Import):
            found.update((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module))
        elif isinstance(node, ast.Call) and (module := _dynamic_import(node)):
            found.add((node.lineno, module))
    return sorted(found)


def violations(root: Path, package: str, rule: Rule) -> list[str]:
    """``file:line imports module`` for each import of ``package`` that ``rule`` forbids."""
    known = project_packages(root) | set(RULES)
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text(encoding="utf-8"), rule.strings_count):
            top = module.split(".")[0]
            if top in known and not rule.permits(package, top):
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_every_package_has_a_rule() -> None:
    assert project_packages(ROOT) - set(RULES) == set()


@pytest.mark.parametrize("package", sorted(project_packages(ROOT) & set(RULES)))
def test_package_imports_only_what_its_rule_allows(package: str) -> None:
    assert violations(ROOT, package, RULES[package]) == []


def test_the_services_and_the_core_are_all_here() -> None:
    assert project_packages(ROOT) >= SERVICES | {CORE, "glitchflow_stack"}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_service_importing_another_service_is_reported(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "databuffer/__init__.py": "",
            "glitchflow_core/__init__.py": "",
            "glitchflow_api/__init__.py": "",
            "glitchflow_api/app.py": "import os\nfrom glitchflow_core import x\n"
            "from . import routes\nfrom databuffer.storage import Store\n",
        },
    )
    assert violations(root, "glitchflow_api", RULES["glitchflow_api"]) == [
        "glitchflow_api/app.py:4 imports databuffer.storage"
    ]


def test_the_core_importing_a_service_lazily_is_reported(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "gwclient/__init__.py": "",
            "glitchflow_core/__init__.py": "",
            "glitchflow_core/run.py": "import importlib\n\ndef f():\n"
            "    import gwclient.demo\n    return importlib.import_module('gwclient')\n",
        },
    )
    assert violations(root, CORE, RULES[CORE]) == [
        "glitchflow_core/run.py:4 imports gwclient.demo",
        "glitchflow_core/run.py:5 imports gwclient",
    ]


def test_the_core_starting_a_service_as_a_process_is_reported(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "databuffer/__init__.py": "",
            "glitchflow_core/__init__.py": "",
            "glitchflow_core/up.py": '"""Starts databuffer."""\nimport sys\n'
            'ARGV = [sys.executable, "-m", "databuffer", "--port", "8080"]\n',
        },
    )
    assert violations(root, CORE, RULES[CORE]) == ["glitchflow_core/up.py:3 imports databuffer"]


def test_the_stack_may_import_the_core_and_the_dataset_tools_but_no_service(
    tmp_path: Path,
) -> None:
    root = _write(
        tmp_path,
        {
            "glitchflow_stack/__init__.py": "import glitchflow_core\nimport glitchflow_dataset\n",
            "glitchflow_stack/cli.py": "from datastore_logic import create_app\n",
        },
    )
    assert violations(root, "glitchflow_stack", RULES["glitchflow_stack"]) == [
        "glitchflow_stack/cli.py:1 imports datastore_logic"
    ]
