"""Hatch build hook: compile the hot modules with mypyc, or leave them pure Python.

The modules are listed once, in ``[tool.hatch.build.hooks.custom] modules`` of pyproject.toml.
A wheel carries the compiled modules next to their sources; an editable install builds them
in place, where CPython's import system prefers ``facts.cpython-311-...so`` to ``facts.py``.

``SCREENING_PURE_PYTHON=1`` (any value but empty or ``0``) selects the pure build, and so does
a failed compile (no C compiler, or mypyc rejecting a module): the build warns and goes on
without extension modules. ``screening --version`` says which build runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PURE_ENV = "SCREENING_PURE_PYTHON"
# One shared library holds the compiled code; each module is a small shim that loads it.
# Named inside the package so that a wheel and an editable install find it the same way.
GROUP = "screening._compiled"
BUILD_DIR = Path("build") / "mypyc"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "").strip() not in ("", "0")


class MypycBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        modules: list[str] = list(self.config.get("modules", []))
        editable = version == "editable"
        if pure_requested():
            # An extension module left in the tree by an earlier editable build would
            # shadow the source it was built from. A wheel leaves the tree alone: another
            # venv may use those modules.
            if editable:
                self._remove_extensions(root, modules)
            self.app.display_info(f"screening: {PURE_ENV} is set, building pure Python")
            return
        try:
            outputs = self._compile(root, modules, inplace=editable)
        # A missing compiler surfaces as several exception types, and mypyc exits on a
        # module it cannot compile.
        except (Exception, SystemExit) as exc:
            if editable:
                self._remove_extensions(root, modules)
            self.app.display_warning(
                f"screening: mypyc build failed, installing pure Python instead ({type(exc).__name__}: {exc})"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            lib = root / BUILD_DIR / sys.implementation.cache_tag / "lib"
            for output in outputs:
                build_data["force_include"][str(output)] = Path(output).relative_to(lib).as_posix()

    def _compile(self, root: Path, modules: list[str], *, inplace: bool) -> list[str]:
        from mypyc.build import mypycify
        from setuptools import Distribution

        # Per interpreter: mypyc writes C for the Python that runs it.
        build = root / BUILD_DIR / sys.implementation.cache_tag
        # mypy names modules from paths relative to the working directory, and setuptools
        # writes an in-place build relative to it.
        with contextlib.chdir(root):
            extensions = mypycify(
                [
                    # The project's mypy settings load the pydantic plugin, which the build
                    # environment does not have; the modules are checked strictly by `make lint`.
                    "--config-file=",
                    "--ignore-missing-imports",
                    *modules,
                ],
                group_name=GROUP,
                target_dir=str(build / "c"),
            )
            dist = Distribution({"name": "screening-mypyc", "ext_modules": extensions})
            command: Any = dist.get_command_obj("build_ext")
            command.inplace = inplace
            command.build_lib = str(build / "lib")
            command.build_temp = str(build / "temp")
            command.ensure_finalized()
            command.run()
            return [str(root / output) for output in command.get_outputs()]

    def _remove_extensions(self, root: Path, modules: list[str]) -> None:
        """This interpreter's in-place extension modules (another Python's are not loaded)."""
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        names = [Path(module).with_suffix("") for module in modules]
        names.append(Path(*GROUP.split(".")).with_name(GROUP.rsplit(".", 1)[-1] + "__mypyc"))
        for name in names:
            (root / name.parent / (name.name + suffix)).unlink(missing_ok=True)
        shutil.rmtree(root / BUILD_DIR / sys.implementation.cache_tag / "lib", ignore_errors=True)
