"""Who may touch a run's state (docs/architecture.md, "The ledger"), read off the source:
only the ledger, the commit and the coverage call the store; the CLI makes no
conditional put; nobody but the variant entries compares variant names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = ROOT / "functions/exporter/exporter"
STORE_OWNERS = {"ledger.py", "ledger_status.py", "commit.py", "coverage.py"}
CONDITIONAL = {"put_if_absent", "put_if_match", "get_versioned"}


def calls_on(tree: ast.AST, receiver: str) -> list[str]:
    """Methods called on a name or attribute called `receiver` (`ctx.store.get`, `store.put`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in (receiver, f"_{receiver}"):
                found.append(node.func.attr)
    return found


def test_only_the_ledger_commit_and_coverage_call_the_store() -> None:
    modules = sorted((EXPORTER / "run").glob("*.py"))
    assert {m.name for m in modules} >= STORE_OWNERS | {"step.py", "finish.py", "start.py"}
    callers = {m.name for m in modules if calls_on(ast.parse(m.read_text()), "store")}
    assert callers <= STORE_OWNERS, callers - STORE_OWNERS
    assert "ledger.py" in callers


def test_the_cli_writes_run_state_only_through_the_ledger() -> None:
    for module in sorted((ROOT / "cli/wifi_export_cli").glob("*.py")):
        tree = ast.parse(module.read_text())
        methods = {
            node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
        } & CONDITIONAL
        assert not methods, f"{module.name} calls {methods}: a move of the ledger's"


def test_no_module_compares_variant_names() -> None:
    compared = re.compile(r"""(==|!=|\bin)\s*\(?\s*["']v\d["']""")
    sources = [*EXPORTER.rglob("*.py"), *(ROOT / "local/fake_analytiks").glob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if compared.search(p.read_text())]
    assert offenders == []
