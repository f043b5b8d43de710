"""The ``screening`` command. Each command's docstring is its ``--help``, with an example."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import RecordError, RuleSetError, ScreeningError

F = TypeVar("F", bound=Callable[..., Any])

rules_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Rule directory (default: the rule set shipped with the package).",
)
params_option = click.option(
    "--params",
    "params_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Site parameter overrides, a YAML file of `parameters: {name: value}`.",
)


def reports_errors(func: F) -> F:
    """Print a ScreeningError as a clear message on stderr and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RuleSetError as error:
            click.echo(str(error), err=True)
            sys.exit(1)
        except RecordError as error:
            click.echo(f"error: {error.code}: {error}", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(1)
        except ScreeningError as error:
            click.echo(f"error: {error.code}: {error}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="screening")
def main() -> None:
    """Screen patients for IV ketamine in chronic pain against documented criteria.

    \b
    Example:
      screening check examples/eligible.json --as-of 2026-11-22
    """


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--as-of", help="Screening date, YYYY-MM-DD (default: today).")
@rules_option
@params_option
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@reports_errors
def check(
    file: Any, as_of: str | None, rules_dir: Path | None, params_file: Path | None, output_format: str
) -> None:
    """Screen one patient record (a JSON file, or - for stdin).

    Exit code 0 when a decision was made, whatever the outcome; 1 for bad input.

    \b
    Examples:
      screening check examples/needs_review.json --as-of 2026-11-22
      cat record.json | screening check - --format json
    """
    from .screener import Screener, load_json

    data = load_json(file.read(), source=file.name)
    screener = Screener(rules_dir, params_file)
    decision = screener.screen(data, as_of=as_of)
    if output_format == "json":
        click.echo(decision.to_json(indent=True).decode())
    else:
        from .render import render_text

        click.echo(render_text(decision, color=sys.stdout.isatty()), nl=False)


@main.group()
def rules() -> None:
    """Validate, test and inspect rule sets.

    \b
    Example:
      screening rules validate rules/
    """


@rules.command("validate")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@params_option
@reports_errors
def rules_validate(directory: Path | None, params_file: Path | None) -> None:
    """Check a rule directory; print every problem as file:line:col: code: message.

    \b
    Example:
      screening rules validate rules/ --params site.yaml
    """
    from .ruleset import load_ruleset
    from .screener import default_rules_dir

    ruleset = load_ruleset(directory or default_rules_dir(), params_file)
    click.echo(
        f"ok: {ruleset.id} {ruleset.version}, {len(ruleset.criteria)} criteria, "
        f"{len(ruleset.facts)} facts, {len(ruleset.value_sets)} value sets, sha256 {ruleset.sha256}"
    )


@rules.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="List every case, not only failures.")
def rules_test(directory: Path | None, verbose: bool) -> None:
    """Run the *_test.yaml cases beside the rules through the real engine.

    Exit code 0 when all pass, 2 when a case fails, 1 when a file cannot load.

    \b
    Example:
      screening rules test rules/ -v
    """
    from .casetests import run_directory
    from .screener import Screener, default_rules_dir

    directory = directory or default_rules_dir()
    try:
        screener = Screener(directory)
    except RuleSetError as error:
        click.echo(str(error), err=True)
        sys.exit(1)
    results, problems = run_directory(screener, directory)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    failed = [r for r in results if not r.passed]
    for result in results:
        if not result.passed:
            click.echo(f"FAIL {result.where}: {result.name}")
            for failure in result.failures:
                click.echo(f"    {failure}")
        elif verbose:
            click.echo(f"ok   {result.where}: {result.name}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(2 if failed else 0)


@rules.command("show")
@click.option("--compiled", is_flag=True, help="Show the durable-rules ruleset definitions instead.")
@rules_option
@params_option
@reports_errors
def rules_show(compiled: bool, rules_dir: Path | None, params_file: Path | None) -> None:
    """Show the rule set: criteria, parameters and sources, or the compiled rules as JSON.

    \b
    Examples:
      screening rules show
      screening rules show --compiled > compiled.json
    """
    from .compiler import compile_ruleset
    from .ruleset import load_ruleset
    from .screener import default_rules_dir

    ruleset = load_ruleset(rules_dir or default_rules_dir(), params_file)
    if compiled:
        click.echo(json.dumps(compile_ruleset(ruleset), indent=2, sort_keys=True))
        return
    click.echo(f"{ruleset.title}\n{ruleset.id} {ruleset.version}  sha256 {ruleset.sha256}\n")
    for criterion in ruleset.criteria:
        sources = ", ".join(s.label or s.id for s in criterion.sources)
        click.echo(f"{criterion.id:<26} {criterion.effect:<10} {criterion.title}  [{sources}]")
        if criterion.params:
            values = ", ".join(f"{p}={ruleset.parameters[p].value}" for p in criterion.params)
            click.echo(f"{'':<37} parameters: {values}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the native intake record.

    \b
    Example:
      screening schema > record.schema.json
    """
    from .record import Record

    click.echo(json.dumps(Record.model_json_schema(), indent=2))


if __name__ == "__main__":
    main()
