"""pyproject.toml lists every subpackage, so a non-editable install ships every module."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
