"""Which build runs: the hot modules compiled by mypyc, or pure Python (see hatch_build.py).

An install compiles the modules listed in pyproject.toml unless ``SCREENING_PURE_PYTHON=1``
is set or the compile fails. ``screening --version`` reports the build, and warns when an
editable install runs compiled modules older than their sources (an edit that a reinstall
has not compiled yet does nothing).
"""

from __future__ import annotations

import sys
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path

from screening.engine import facts

COMPILED = "compiled (mypyc)"
PURE = "pure Python"
_PACKAGE_DIR = Path(__file__).resolve().parent


def build_name() -> str:
    """``compiled (mypyc)`` or ``pure Python``, from how the first hot module was loaded."""
    return COMPILED if isinstance(facts.__loader__, ExtensionFileLoader) else PURE


def compiled_modules() -> list[str]:
    """The loaded modules of this package that are extension modules, by name."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith(f"{__package__}.")
        and isinstance(getattr(module, "__loader__", None), ExtensionFileLoader)
    )


def stale_sources() -> list[str]:
    """Sources in a source tree (an editable install, or ``PYTHONPATH``) that were edited
    after their compiled module was built.

    Not an installed wheel: its files all get their install time as mtime.
    """
    if not (_PACKAGE_DIR.parent / "pyproject.toml").exists():
        return []
    stale = []
    for name in compiled_modules():
        base = _PACKAGE_DIR.joinpath(*name.split(".")[1:])
        if hasattr(sys.modules[name], "__path__"):  # a compiled package: its __init__
            base = base / "__init__"
        source = base.with_suffix(".py")
        # A compiled module is a small shim that loads the one shared library of the group:
        # an edit rebuilds the library, not always the shim.
        built = [base.with_name(base.name + suffix) for suffix in EXTENSION_SUFFIXES]
        built += [_PACKAGE_DIR / f"_compiled__mypyc{suffix}" for suffix in EXTENSION_SUFFIXES]
        times = [path.stat().st_mtime for path in built if path.exists()]
        if source.exists() and times and source.stat().st_mtime > max(times):
            stale.append(source.relative_to(_PACKAGE_DIR.parent).as_posix())
    return stale
