"""The architecture is checked, not only described: the import-linter contracts.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): the core never imports
Qt or the app, the Qt-free app modules never import Qt, the decoder processes never import
TensorFlow, and the core's packages are layered. ``lint-imports`` reads the code without
running it (a second or less), so this suite checks them on every run.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` at the repository root; no cache (it would land in the tree)."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the test extra (pip install -e .[test])")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def contracts() -> dict[str, dict]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_import_contracts_are_kept():
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_a_broken_contract_fails_the_check(tmp_path):
    # The CLI reaches the media package (``avsc features`` probes files, and every command
    # that decodes goes through it), so forbidding that import must be reported.
    config = tmp_path / "broken.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["avsc_core"]\n'
        "\n"
        "[[tool.importlinter.contracts]]\n"
        'name = "Broken on purpose: the CLI without the media package"\n'
        'type = "forbidden"\n'
        'source_modules = ["avsc_core.cli"]\n'
        'forbidden_modules = ["avsc_core.media"]\n',
        encoding="utf-8",
    )
    done = lint_imports(config)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "1 broken" in done.stdout, done.stdout
    assert "avsc_core.cli is not allowed to import avsc_core.media" in done.stdout, done.stdout


def test_every_qt_free_app_module_is_in_its_contract():
    # The contract lists modules one by one (app._qt and app.main must stay out of it), so
    # a new module of app/ has to be added there, or it would go unchecked.
    expected = {"app"}
    for path in (REPO / "app").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[1] == "_qt" or parts[1:] in (("main",), ("__main__",)):
            continue
        expected.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    listed = set(contracts()["app-qt-free"]["source_modules"])
    assert listed == expected, (
        f"add to the app-qt-free contract: {sorted(expected - listed)}; "
        f"remove: {sorted(listed - expected)}"
    )


def test_a_decoder_process_does_not_load_tensorflow():
    # What a spawned decoder process imports: its module, with the package __init__ files
    # above it. The contract checks the worker module's own imports; the package
    # avsc_core.label reaches Keras too, but only through lazy and TYPE_CHECKING imports,
    # which import-linter cannot tell apart, so this checks the run-time truth.
    code = (
        "import sys\n"
        "import avsc_core.label.workers\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
