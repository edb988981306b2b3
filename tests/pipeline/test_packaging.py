"""pyproject.toml lists every subpackage, so a non-editable install ships every module; `import sparsepipe` is the
public API, editable or from a wheel."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {package: ROOT / folder for package, folder in setuptools["package-dir"].items()}
    on_disk = set()
    for package, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            # A folder mapped to a package of its own (pipeline/root is `sparsepipe`) belongs to that package.
            if any(
                init.parent.is_relative_to(other)
                for other in folders.values()
                if other != folder and other.is_relative_to(folder)
            ):
                continue
            relative = init.parent.relative_to(folder)
            on_disk.add(".".join([package, *relative.parts]))
    assert listed == on_disk, (
        f"missing from pyproject: {sorted(on_disk - listed)}; listed but absent: {sorted(listed - on_disk)}"
    )


def test_no_module_folder_without_init():
    """A folder of modules without __init__.py would be left out of the wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in setuptools["package-dir"].values():
        for module in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            assert (module.parent / "__init__.py").exists(), f"{module.parent} has modules but no __init__.py"


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, **kwargs)


def test_import_sparsepipe_is_the_api_and_loads_nothing_until_used():
    code = (
        "import sys, sparsepipe, sparsepipe.pipeline.cli\n"
        "assert 'sparsepipe.pipeline.api' not in sys.modules and 'torch' not in sys.modules\n"
        "assert callable(sparsepipe.open_store) and sparsepipe.Circuit.__name__ == 'Circuit'\n"
        "assert sorted(sparsepipe.__all__) == sorted(n for n in dir(sparsepipe) if n in sparsepipe.__all__)\n"
        "print(sparsepipe.__file__)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_a_built_wheel_ships_the_sparsepipe_package_with_its_api(tmp_path):
    """A normal (non-editable) install: the wheel's own `sparsepipe/__init__.py`, every subpackage beside it."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("sparsepipe-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "sparsepipe" / "__init__.py").is_file() and not (site / "sparsepipe" / "pipeline" / "root").exists()
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "import sparsepipe, sparsepipe.pipeline.cli\n"
        f"assert sparsepipe.__file__.startswith({str(site)!r}), sparsepipe.__file__\n"
        "from sparsepipe import open_store, Circuit\n"
        "import sparsepipe.pipeline.api as api\n"
        f"assert api.__file__.startswith({str(site)!r})\n"
    )
    result = _python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
