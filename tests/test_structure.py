"""The package's shape: only cnnviz.ui imports gradio (and all of it does), a bare `import cnnviz` is light and exposes
the public API, few loose modules, and the README's layout section and Python example match the code."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cnnviz"
PUBLIC_API = ("get_model", "list_models", "load_dataset", "list_datasets", "TrainConfig", "fit", "load_checkpoint",
              "grad_cam", "feature_maps", "attribute", "summarize")
MAX_LOOSE_MODULES = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def imports_gradio(path: Path) -> bool:
    """True when the module's code (not a string or comment) imports gradio or one of its submodules."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "gradio" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "gradio":
            return True
    return False


def in_ui(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == "ui"


def test_only_the_ui_imports_gradio_and_every_ui_module_does():
    outside = [module_name(p) for p in modules() if not in_ui(p) and imports_gradio(p)]
    inside_without = [module_name(p) for p in modules() if in_ui(p) and not imports_gradio(p)]
    assert outside == [], f"these core modules import gradio: {outside}"
    assert inside_without == [], f"these ui modules do not import gradio, so they belong in the core: {inside_without}"


def test_importing_every_core_module_loads_no_gradio():
    """The static check above misses an indirect import (a core module importing cnnviz.ui); this one runs them all."""
    core = [module_name(p) for p in modules() if not in_ui(p) and module_name(p) != "cnnviz.__main__"]
    code = ("import importlib, sys\n"
            f"for name in {core!r}:\n    importlib.import_module(name)\n"
            "leaked = [m for m in ('gradio', 'gradio_client') if m in sys.modules]\n"
            "assert not leaked, leaked\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=240)


def test_a_bare_import_is_light_and_the_public_api_is_there():
    code = ("import sys, cnnviz\n"
            "heavy = sorted(m for m in ('torch', 'gradio', 'captum', 'matplotlib', 'pandas') if m in sys.modules)\n"
            "print(heavy)\n"
            f"missing = [n for n in {PUBLIC_API!r} if n != 'attribute' and not callable(getattr(cnnviz, n))]\n"
            "print(missing)\n"
            "print(sorted(m for m in ('gradio', 'captum') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=240)
    heavy, missing, after = out.stdout.strip().splitlines()
    assert heavy == "[]", f"`import cnnviz` imported {heavy}"
    assert missing == "[]", f"cnnviz lacks {missing}"
    assert after == "[]", f"resolving the public names imported {after} (captum only for `attribute`)"
    import cnnviz

    assert callable(cnnviz.attribute)
    assert set(PUBLIC_API) <= set(cnnviz.__all__) and set(PUBLIC_API) <= set(dir(cnnviz))
    with pytest.raises(AttributeError):
        cnnviz.no_such_name  # noqa: B018


def test_subpackages_export_names_that_exist():
    """Every lazily exported name of every subpackage resolves (a typo in an _EXPORTS table fails here, not in a user's
    hands)."""
    import importlib

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        pkg = importlib.import_module(module_name(init))
        for name in getattr(pkg, "__all__", []):
            assert getattr(pkg, name) is not None, f"{pkg.__name__}.{name}"


def test_few_loose_modules_at_the_top():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_modules_stay_small():
    big = {module_name(p): n for p in modules() if (n := len(p.read_text().splitlines())) > 400}
    assert big == {}, f"split these modules (over 400 lines): {big}"


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_readme_layout_lists_every_package_and_nothing_else():
    section = readme_section("Layout")
    listed = set(re.findall(r"^(cnnviz/[a-z_]+/|app\.py|benchmarks/|tests/|scripts/)", section, flags=re.M))
    packages = {f"cnnviz/{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    assert packages <= listed, f"README layout leaves out {sorted(packages - listed)}"
    assert {x for x in listed if x.startswith("cnnviz/")} <= packages, \
        f"README layout names packages that do not exist: {sorted({x for x in listed if x.startswith('cnnviz/')} - packages)}"
    loose = {p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("_")}
    missing = sorted(m for m in loose if m not in section)
    assert missing == [], f"README layout leaves out the top-level modules {missing}"


def test_the_readme_python_example_runs(tmp_path):
    section = readme_section("Python API")
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the Python API section has no python block"
    env = {**os.environ, "CNNVIZ_RUNS": str(tmp_path / "runs"), "CNNVIZ_CHECKPOINTS": str(tmp_path / "checkpoints"),
           "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test accuracy" in out.stdout and "Grad-CAM" in out.stdout, out.stdout
    assert (tmp_path / "cam.png").stat().st_size > 1000  # the example writes a real picture


# Top to bottom: a package may import (at run time) only the ones below it; type-only imports are free.
LAYERS = ["cli", "ui", "train", "lecture", "render", "explain", "examples", "store", "models", "data", "drawing", "images"]


def runtime_imports(path: Path) -> set[str]:
    """cnnviz packages (or loose modules) that `path` imports outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    here = list(path.relative_to(PACKAGE).parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in typing_only:
            continue
        if node.level:
            base = here[:len(here) - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [a.name for a in node.names][:1])
        elif (node.module or "").startswith("cnnviz."):
            target = node.module.split(".")[1:]
        else:
            continue
        if target:
            found.add(target[0])
    return found


def test_imports_point_down_the_layers():
    wrong = []
    for path in modules():
        parts = path.relative_to(PACKAGE).parts
        owner = parts[0] if len(parts) > 1 else path.stem
        if owner not in LAYERS:
            continue
        below = set(LAYERS[LAYERS.index(owner) + 1:]) | {owner, "_lazy"}
        wrong += [f"{module_name(path)} imports cnnviz.{t}" for t in sorted(runtime_imports(path) - below)]
    assert wrong == [], "imports that point up (or sideways) the layers:\n" + "\n".join(wrong)
