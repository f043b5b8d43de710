"""Which build runs: the modules pyproject.toml lists for mypyc all compiled, or none of them,
and ``screening --version`` saying which (see hatch_build.py)."""

from __future__ import annotations

import importlib
import os
import tomllib
from importlib.machinery import ExtensionFileLoader

import pytest
from click.testing import CliRunner

from screening.build import COMPILED, PURE, build_name, stale_sources
from screening.cli import main

from .conftest import ROOT


def listed_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    paths: list[str] = config["tool"]["hatch"]["build"]["hooks"]["custom"]["modules"]
    assert paths, "pyproject.toml lists no modules for mypyc"
    return [path.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for path in paths]


def test_every_listed_module_exists_and_all_or_none_are_compiled() -> None:
    compiled = {
        name: isinstance(importlib.import_module(name).__loader__, ExtensionFileLoader)
        for name in listed_modules()
    }
    for name in compiled:
        path = ROOT / name.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), name
    assert compiled == dict.fromkeys(compiled, build_name() == COMPILED)


def test_version_names_the_build() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith(f", {build_name()}")


def test_no_compiled_module_is_older_than_its_source() -> None:
    # A stale extension module runs the old code whatever the source says.
    assert stale_sources() == [], "reinstall (make install) to compile the edited modules again"


@pytest.mark.skipif("SCREENING_EXPECT_BUILD" not in os.environ, reason="CI says which build it installed")
def test_the_build_ci_installed_is_the_one_that_runs() -> None:
    expected = {"compiled": COMPILED, "pure": PURE}[os.environ["SCREENING_EXPECT_BUILD"]]
    assert build_name() == expected
