"""The shape of the code, enforced: which room may import which, and no import cycles.

A *room* is a subpackage (``crdt.log``), or the top-level modules of a package taken
together (``crdt``: errors, codec, clock, ...), or a module that is a room of its own
(``node.main``). ``ROOMS`` says which rooms of this project each may import; every
package's ``__init__`` says the same in its ``May import:`` line, and a test holds the
two together. ``BANNED`` lists what a whole package must never import from outside.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("crdt", "sync", "node")

#: Room -> the project rooms it may import (besides itself).
ROOMS: dict[str, set[str]] = {
    "crdt": set(),
    "crdt.storage": {"crdt"},
    "crdt.log": {"crdt", "crdt.storage"},
    "crdt.automerge": {"crdt", "crdt.log", "crdt.storage"},
    "sync": {"crdt"},
    "sync.peer": {"crdt", "crdt.log", "sync"},
    "sync.repo": {"crdt", "crdt.automerge", "sync"},
    "node": {"crdt", "sync"},
    "node.http": {"crdt", "node"},
    "node.peers": {"crdt", "sync", "node", "node.http"},
    "node.automerge": {"crdt", "sync", "node", "node.http"},
    "node.server": {"crdt", "sync", "node", "node.http", "node.peers", "node.automerge",
                    "node.console"},
    "node.console": set(),
    "node.client": {"crdt", "sync", "node"},
    "node.cli": {"crdt", "node", "node.client", "node.openclaw"},
    "node.openclaw": {"crdt", "node", "node.client"},
    "node.main": {"node.cli", "node.server"},
}
#: A room's ``crdt`` or ``sync`` stands for every room below it unless listed apart:
#: ``node`` may import ``crdt.log`` because it may import ``crdt``. Rooms of ``crdt`` and
#: ``sync`` themselves are listed one by one.
WHOLE = {"crdt": {"crdt", "crdt.storage", "crdt.log", "crdt.automerge"},
         "sync": {"sync", "sync.peer", "sync.repo"}}

#: Top-level modules (first part of the name) each package must never import.
BANNED: dict[str, set[str]] = {
    # crdt knows nothing of networking or the event loop.
    "crdt": {"aiohttp", "asyncio", "socket", "ssl", "http", "urllib", "requests"},
    # sync decides; the node does the I/O and passes in the time.
    "sync": {"aiohttp", "asyncio", "socket", "ssl", "http", "urllib", "requests",
             "diskcache", "sqlite3", "time", "threading", "concurrent", "subprocess",
             "os", "select", "selectors"},
    "node": set(),
}
#: Modules of a banned package that only read text, no I/O: ``crdt.addresses`` checks
#: the addresses of membership records with ``urllib.parse``.
TEXT_ONLY = {"urllib.parse"}
#: Third-party libraries that only one room may use.
OWNED_BY = {"automerge": ("crdt.automerge",), "diskcache": ("crdt.storage",),
            # node.openclaw reads OpenClaw's own SQLite store, read-only, and asks
            # (never takes) whether OpenClaw's per-machine locks are held.
            "sqlite3": ("crdt.storage", "node.openclaw"),
            "fcntl": ("crdt.storage", "node.openclaw")}


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def room_of(module: str) -> str:
    """The room a module belongs to: the longest room name it starts with."""
    matches = [room for room in ROOMS if module == room or module.startswith(room + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no room: add it to ROOMS")
    return max(matches, key=len)


#: The functions that import the module their first argument names, as (module, name):
#: a call of one is an import as much as a statement is.
IMPORT_FUNCTIONS = {("importlib", "import_module"), ("importlib", "__import__"),
                    ("builtins", "__import__")}


def import_functions(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """What a module binds the import functions' modules to (``import importlib as il``:
    il -> importlib), and the names it calls an import function by (``from importlib
    import import_module as load``: load; the builtin ``__import__`` always). Read from the
    whole module, whatever the scope: a local ``def import_module`` is no import function,
    but an import function's name bound in one function counts in all."""
    owners = {module for module, _ in IMPORT_FUNCTIONS}
    modules: dict[str, str] = {}
    functions = {"__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # ``import importlib.util`` binds importlib; ``import importlib.util as u``
                # binds a module that is no owner.
                module = alias.name if alias.asname else alias.name.split(".")[0]
                if module in owners:
                    modules[alias.asname or module] = module
        elif isinstance(node, ast.ImportFrom):
            functions.update(alias.asname or alias.name for alias in node.names
                             if (node.module, alias.name) in IMPORT_FUNCTIONS)
    return modules, functions


def argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    """The argument a call passes at ``position`` or as ``keyword``, if any."""
    if len(call.args) > position:
        return call.args[position]
    return next((passed.value for passed in call.keywords if passed.arg == keyword), None)


def imported_by_call(node: ast.AST, modules: dict[str, str], functions: set[str]) -> str | None:
    """The module a call such as ``importlib.import_module("x.y")`` imports (``modules``
    and ``functions``: what ``import_functions`` found), when its name is a literal (a
    name computed at run time is for the code around it to bound). A relative import
    comes back with its leading dots (``__import__``'s ``level``), for the caller to
    refuse."""
    if not isinstance(node, ast.Call):
        return None
    called = node.func
    if isinstance(called, ast.Name):
        imports = called.id in functions
    elif isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name):
        imports = (modules.get(called.value.id), called.attr) in IMPORT_FUNCTIONS
    else:
        return None
    name = argument(node, 0, "name")
    if not imports or not isinstance(name, ast.Constant) or not isinstance(name.value, str):
        return None  # no import, or a name computed at run time
    level = argument(node, 4, "level")
    dots = level.value if isinstance(level, ast.Constant) and isinstance(level.value, int) else 0
    return "." * dots + name.value


def imports_of(path: Path) -> set[str]:
    """Every module named by an import statement, also inside functions (absolute only:
    the project uses no relative imports in its packages), or by an import call with a
    literal name (``IMPORT_FUNCTIONS``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, functions = import_functions(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if (called := imported_by_call(node, modules, functions)) is not None:
            assert not called.startswith("."), f"{path}: relative import"
            names.add(called)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, f"{path}: relative import"
            names.add(node.module)
            # ``from crdt.log import eventlog`` imports the module crdt.log.eventlog
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def project_modules() -> set[str]:
    return {name for name, _ in modules()}


def allowed(room: str) -> set[str]:
    rooms = {room}
    for name in ROOMS[room]:
        rooms |= WHOLE.get(name, {name}) if room.split(".")[0] != name else {name}
    return rooms


def forbidden(name: str, room: str, known: set[str]) -> bool:
    """True if a module of ``room`` must not import ``name``."""
    top = name.split(".")[0]
    text_only = any(name == pure or name.startswith(pure + ".") for pure in TEXT_ONLY)
    if top in BANNED[room.split(".")[0]] and not text_only:
        return True
    if top in OWNED_BY:
        return not any(room == owner or room.startswith(owner + ".")
                       for owner in OWNED_BY[top])
    return name in known and room_of(name) not in allowed(room)


def violations() -> dict[str, list[str]]:
    known = project_modules()
    found: dict[str, list[str]] = {}
    for module, path in modules():
        bad = [name for name in sorted(imports_of(path))
               if forbidden(name, room_of(module), known)]
        if bad:
            found[module] = bad
    return found


def test_every_room_imports_only_what_it_may() -> None:
    assert violations() == {}


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the project's own module imports
    (a package counts as importing nothing but what its ``__init__`` imports)."""
    known = project_modules()
    graph = {module: sorted(imports_of(path) & known - {module}) for module, path in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_says_what_it_may_import(room: str) -> None:
    """The ``May import:`` line of the room's docstring (its package ``__init__``, or the
    module of a one-module room) names exactly the rooms of ``ROOMS``."""
    doc = importlib.import_module(room).__doc__ or ""
    lines = [line for line in doc.splitlines() if line.startswith("May import:")]
    assert len(lines) == 1, f"{room}: no 'May import:' line in its docstring"
    said = {name.strip() for name in lines[0].removeprefix("May import:").split(",")}
    assert said - {"nothing of this project but the modules here."} == ROOMS[room]


def forbidden_in(room: str, folder: Path, source: str) -> set[str]:
    """What a module of ``room`` with ``source`` imports that it must not."""
    sample = folder / "dynamic.py"
    sample.write_text(source)
    return {name for name in imports_of(sample) if forbidden(name, room, project_modules())}


def test_the_checks_catch_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import aiohttp\nfrom node.server import app\n"
                      "def later():\n    import time\n")
    assert imports_of(sample) >= {"aiohttp", "node.server.app", "time"}
    assert "socket" in forbidden_in("crdt", tmp_path, "import importlib\n"
                                    "sock = importlib.import_module('socket')\n")
    assert "node.server" in forbidden_in("node.cli", tmp_path,
                                         "from importlib import import_module\n"
                                         "def later():\n"
                                         "    return import_module('node.server')\n")
    assert "asyncio" in forbidden_in("sync", tmp_path, "loop = __import__('asyncio')\n")
    # Whatever name the import function or its module is bound to, and however it is called.
    for source in ("import importlib as il\nil.import_module('socket')\n",
                   "from importlib import import_module as load\nload('socket')\n",
                   "import importlib\nimportlib.import_module(name='socket')\n",
                   "import importlib.util\nimportlib.import_module('socket')\n",
                   "import importlib\nimportlib.__import__('socket')\n",
                   "import builtins\nbuiltins.__import__('socket')\n",
                   "from builtins import __import__ as load\nload('socket')\n"):
        assert "socket" in forbidden_in("crdt", tmp_path, source), source
    # A function of the module's own is no import, though it bears the name.
    assert forbidden_in("crdt", tmp_path, "def import_module(name: str) -> None: ...\n"
                        "import_module('socket')\n") == set()
    # A relative import is refused, by a call as by a statement.
    for source in ("import importlib\nimportlib.import_module('.server', 'node')\n",
                   "import importlib\nimportlib.import_module('.server', package='node')\n",
                   "__import__('server', globals(), None, [], 1)\n",
                   "__import__('server', level=2)\n",
                   "from . import server\n"):
        with pytest.raises(AssertionError, match="relative import"):
            forbidden_in("node.cli", tmp_path, source)
    # A name computed at run time is not a module name the check can know.
    assert forbidden_in("crdt", tmp_path, "import importlib\n"
                        "name = 'socket'\nimportlib.import_module(name)\n") == set()
    assert "node.server" not in allowed("node.cli")
    assert "crdt.automerge" not in allowed("crdt.log")
    assert "sync.repo" not in allowed("sync.peer")
    assert room_of("node.server.app") == "node.server"
    assert room_of("node.config") == "node"
    assert forbidden("urllib.request", "crdt", set())
    assert not forbidden("urllib.parse.urlsplit", "crdt", set())


def imported_test_modules(path: Path, text: str | None = None) -> set[str]:
    """The test modules (``tests/**/test_*.py``) that ``path`` imports (``text``: its
    source, if not read from it), relative imports resolved."""
    package = path.relative_to(ROOT).parent.parts
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *(node.module or "").split("."))).strip(".")
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("tests.")
            and name.split(".")[-1].startswith("test_")
            and (ROOT / name.replace(".", "/")).with_suffix(".py").is_file()}


def test_no_test_module_imports_another() -> None:
    """What tests share lives in support modules (``tests/support``, a package's
    ``support.py``), as ``tests/support`` says: a test module imports from those, never
    from another test module."""
    found = {str(path.relative_to(ROOT)): sorted(imported)
             for path in sorted((ROOT / "tests").rglob("*.py"))
             if (imported := imported_test_modules(path))}
    assert found == {}


def test_the_check_finds_a_test_module_imported() -> None:
    sample = ROOT / "tests" / "node" / "sample.py"
    text = ("from tests.node.peers.test_links import own_link\nfrom .test_store import x\n"
            "from tests.node import test_devices\nfrom tests.node.peers.support import until\n"
            "from tests.node.peers.support import test_nothing\n")
    assert imported_test_modules(sample, text) == {
        "tests.node.peers.test_links", "tests.node.test_store", "tests.node.test_devices"}
