"""The ``screening`` command. Each command's docstring is its ``--help``, with an example."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, TypeVar

import click

from screening.batch.inputs import FORMATS
from screening.batch.options import DETAILS, OUT_FORMATS, ROW_GROUP_SIZE
from screening.decision import Decision, NotScreened
from screening.errors import InputError, RecordError, RuleSetError, ScreeningError, clip

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
            where = f"{error.source}: " if error.source else ""
            who = f"record {clip(error.record_id, 80)!r}" if error.record_id else "the record"
            count = len(error.problems) + error.more_problems
            click.echo(
                f"error: {where}{error.code}: {who} has {count:,} invalid field{'s' * (count != 1)}:",
                err=True,
            )
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            if error.more_problems:  # the error lists only the first MAX_PROBLEMS
                click.echo(f"  and {error.more_problems:,} more", err=True)
            sys.exit(1)
        except ScreeningError as error:
            click.echo(f"error: {error.code}: {error}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """The package version and the default rule set's id, version and sha256: a decision
    records the rule set, so a bug report needs it as much as the program's version."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from screening.build import build_name, stale_sources
    from screening.ruleset.loading import load_ruleset
    from screening.screener import default_rules_dir

    try:
        ruleset = load_ruleset(default_rules_dir())
        rules_line = f"rules {ruleset.id} {ruleset.version}, sha256 {ruleset.sha256}"
    except RuleSetError as error:
        rules_line = f"rules: cannot load the default rule set: {error}"
    click.echo(f"screening {version('screening')}, {build_name()}\n{rules_line}")
    if stale := stale_sources():
        click.echo(
            f"warning: edited since they were compiled, so not running: {', '.join(stale)}; "
            "reinstall (make install) to compile them again",
            err=True,
        )
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version, the build (compiled or pure Python) and the default rule set's id, version and sha256.",
)
def main() -> None:
    """Screen patients for IV ketamine in chronic pain against documented criteria.

    \b
    Example:
      screening check examples/eligible.json --as-of 2026-11-22
    """


@main.command()
# Read here, not by click.File: a missing file is bad input (exit 1), not a usage error (2).
@click.argument("file", type=click.Path(allow_dash=True))
@click.option("--as-of", help="Screening date, YYYY-MM-DD (default: today).")
@rules_option
@params_option
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--all", "show_all", is_flag=True, help="Text: list every criterion, with its sources.")
@click.option(
    "--color/--no-color",
    default=None,
    help="Text: colour (default: on a terminal, unless NO_COLOR is set).",
)
@reports_errors
def check(
    file: str,
    as_of: str | None,
    rules_dir: Path | None,
    params_file: Path | None,
    output_format: str,
    show_all: bool,
    color: bool | None,
) -> None:
    """Screen one patient record (a JSON file, or - for stdin), a FHIR R4 Bundle, or a CDS Hooks request.

    A FHIR Bundle (any type; detected by its resourceType) screens each of its patients;
    with --format json it prints a JSON array, one decision (or not_screened) per patient.
    A CDS Hooks request (detected by its hook and context) screens its patient from the
    prefetch, as the service does; --format json prints {"decision", "cards"}.

    The text shows the findings, what is missing, the next steps and a count of the
    criteria passed; --all lists every criterion.

    Exit code 0 when a decision was made, whatever the outcome; 1 for bad input.

    \b
    Examples:
      screening check examples/needs_review.json --as-of 2026-11-22
      screening check examples/ineligible.json --as-of 2026-11-22 --all --no-color
      cat record.json | screening check - --format json
      screening check tests/fixtures/fhir/synthea-r4-bundles/<patient>.json --as-of 2021-06-01
    """
    from screening.intake import InputKind, Screener, classify
    from screening.record import load_json, not_a_record

    source = "<stdin>" if file == "-" else file
    try:
        body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as error:
        raise InputError(f"cannot be read: {error.strerror or error}", source) from None
    data = load_json(body, source=source)
    screener = Screener(rules_dir, params_file)
    text = _TextOptions(_use_color(color), show_all)
    kind = classify(data)
    if kind is InputKind.FHIR:
        _echo_fhir_results(screener.screen_fhir(data, as_of=as_of, source=source), output_format, text)
        return
    if kind is InputKind.CDS_HOOKS:
        _check_hook_request(screener, data, as_of, source, output_format, text)
        return
    if kind is InputKind.NOT_AN_OBJECT:
        raise not_a_record(data, source)
    try:
        decision = screener.screen(data, as_of=as_of)
    except RecordError as error:
        error.source = source
        raise
    if isinstance(decision, NotScreened):
        _refuse_not_screened(decision)
    if output_format == "json":
        click.echo(decision.to_json(indent=True).decode())
    else:
        from screening.present.text import render_text

        click.echo(render_text(decision, color=text.color, full=text.full), nl=False, color=text.color)


def _refuse_not_screened(result: NotScreened) -> NoReturn:
    """A native record that is not screened: a result, but no decision to show (exit 1)."""
    click.echo(f"error: {result.code}: {result.message}", err=True)
    sys.exit(1)


class _TextOptions(NamedTuple):
    color: bool
    full: bool


def _use_color(flag: bool | None) -> bool:
    """--color or --no-color when given; otherwise on a terminal unless NO_COLOR is set
    (https://no-color.org: any non-empty value)."""
    import os

    if flag is not None:
        return flag
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _check_hook_request(
    screener: Any,
    data: dict[str, Any],
    as_of: str | None,
    source: str,
    output_format: str,
    text: _TextOptions,
) -> None:
    """Screen the patient of a CDS Hooks request from its prefetch, as the service would.

    JSON output is ``{"decision": ..., "cards": [...]}``; no data is fetched from fhirServer.
    """
    from screening.present.text import render_result
    from screening.service import cdshooks

    hook = cdshooks.read_hook(data, source, any_hook=True)
    problem = hook.mismatch()
    if problem is not None:
        raise InputError(problem, source, "prefetch")
    result = cdshooks.screen_hook(screener, hook, as_of, source)
    if isinstance(result, RecordError):
        result.source = source
        raise result
    if output_format == "json":
        cards = cdshooks.cards(result, screener.ruleset, hook.unavailable, hook.failed)
        click.echo(json.dumps({"decision": result.as_dict(), "cards": cards}, indent=2, default=str))
        return
    click.echo(render_result(result, color=text.color, full=text.full), nl=False, color=text.color)
    for kind in hook.unavailable:
        click.echo(f"  not provided in the prefetch: {kind} ({cdshooks.UNAVAILABLE_EFFECT[kind]})")


def _echo_fhir_results(results: list[Any], output_format: str, text: _TextOptions) -> None:
    """Print each patient's decision; exit 1 after all of them if a record was invalid."""
    from screening.present.text import render_result

    invalid = [r for r in results if isinstance(r, RecordError)]
    if output_format == "json":
        click.echo(json.dumps([r.as_dict() for r in results], indent=2, default=str))
    else:
        for result in results:
            if not isinstance(result, RecordError):
                click.echo(
                    render_result(result, color=text.color, full=text.full), nl=False, color=text.color
                )
            click.echo()
    for error in invalid:
        click.echo(f"error: {error.code}: {error}", err=True)
    if invalid:
        sys.exit(1)


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
    from screening.ruleset.loading import load_ruleset
    from screening.screener import default_rules_dir

    ruleset = load_ruleset(directory or default_rules_dir(), params_file)
    click.echo(
        f"ok: {ruleset.id} {ruleset.version}, {len(ruleset.criteria)} criteria, "
        f"{len(ruleset.facts)} facts, {len(ruleset.value_sets)} value sets, sha256 {ruleset.sha256}"
    )


@rules.command("test")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="List every case, not only failures.")
@click.option("-k", "pattern", help="Run only the cases whose name (or file:line) contains this.")
@click.option("--coverage", is_flag=True, help="Report how the cases exercise each criterion and branch.")
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    help="Fail (exit 2) when coverage is below this percentage; implies --coverage.",
)
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Also write JUnit XML here.")
def rules_test(
    directory: Path | None,
    verbose: bool,
    pattern: str | None,
    coverage: bool,
    min_coverage: float | None,
    output_format: str,
    junit: Path | None,
) -> None:
    """Run the *_test.yaml cases beside the rules through the real engine.

    --coverage reports, for every criterion, how many cases gave it each status (met,
    not met, unknown where it can be) and made it decisive, and which items of each
    any/all decided it; --min-coverage 100 fails the run when anything is left.

    Exit code 0 when all pass, 2 when a case fails or coverage is below --min-coverage,
    1 when a file cannot load.

    \b
    Examples:
      screening rules test rules/ -v
      screening rules test --coverage --min-coverage 100
      screening rules test -k pregnancy --format json --junit rule-tests.xml
    """
    from screening.authoring.casetests import load_cases, run_directory
    from screening.intake import Screener
    from screening.screener import default_rules_dir

    directory = directory or default_rules_dir()
    try:
        screener = Screener(directory)
    except RuleSetError as error:
        click.echo(str(error), err=True)
        for problem in load_cases(directory).problems:  # the test files' own, all at once
            click.echo(str(problem), err=True)
        sys.exit(1)
    results, problems = run_directory(screener, directory, pattern)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    failed = [r for r in results if not r.passed]
    measured = None
    if coverage or min_coverage is not None:
        from screening.authoring.coverage import measure

        measured = measure(screener.ruleset, [r.decision for r in results if r.decision is not None])
    below = measured is not None and min_coverage is not None and measured.percent < min_coverage
    if junit:
        from screening.authoring.coverage import junit_xml

        junit.write_bytes(junit_xml(results))
    if output_format == "json":
        body: dict[str, Any] = {
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "cases": [
                {"file": r.file, "line": r.line, "name": r.name, "passed": r.passed, "failures": r.failures}
                for r in results
                if verbose or not r.passed
            ],
        }
        if measured is not None:
            body["coverage"] = measured.as_dict()
            body["min_coverage"] = min_coverage
        click.echo(json.dumps(body, indent=2))
        sys.exit(2 if failed or below else 0)
    for result in results:
        if not result.passed:
            click.echo(f"FAIL {result.where}: {result.name}")
            for failure in result.failures:
                click.echo(f"    {failure}")
        elif verbose:
            click.echo(f"ok   {result.where}: {result.name}")
    if measured is not None:
        click.echo("\n".join(measured.table()))
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if below and measured is not None:
        click.echo(f"coverage {measured.percent:.1f}% is below --min-coverage {min_coverage:g}", err=True)
    sys.exit(2 if failed or below else 0)


@rules.command("show")
@click.argument("targets", nargs=-1)
@click.option("--compiled", is_flag=True, help="Show the durable-rules ruleset definitions instead.")
@click.option("--codes", is_flag=True, help="With a criterion: list the codes of its value sets.")
@rules_option
@params_option
@reports_errors
def rules_show(
    targets: tuple[str, ...], compiled: bool, codes: bool, rules_dir: Path | None, params_file: Path | None
) -> None:
    """Show the rule set (criteria, parameters, sources), one criterion in full, or the
    compiled rules as JSON.

    TARGETS are criterion ids and at most one rule directory (as for validate and test;
    --rules also works). A criterion is shown the way a clinician reads it: its effect,
    its condition with the parameters resolved, each fact it reads with its window, the
    value sets behind them (--codes lists the codes), what leaves it unknown, the names
    its texts use (those made by also: included), its reasons and its sources.

    \b
    Examples:
      screening rules show
      screening rules show EXC-BP-UNCONTROLLED
      screening rules show EXC-PSYCHOSIS rules/ --params site.yaml --codes
      screening rules show --compiled > compiled.json
    """
    from screening.authoring.show import find_criterion, show_criterion
    from screening.engine.compiler import compile_ruleset
    from screening.ruleset.loading import load_ruleset
    from screening.screener import default_rules_dir

    directories = [t for t in targets if Path(t).is_dir()]
    ids = [t for t in targets if t not in directories]
    if len(directories) + (rules_dir is not None) > 1:
        raise InputError("give one rule directory (an argument or --rules), not several")
    directory = rules_dir or (Path(directories[0]) if directories else default_rules_dir())
    ruleset = load_ruleset(directory, params_file)
    if compiled:
        click.echo(json.dumps(compile_ruleset(ruleset), indent=2, sort_keys=True))
        return
    if ids:
        for number, criterion_id in enumerate(ids):
            criterion = find_criterion(ruleset, criterion_id)
            if criterion is None:
                raise InputError(
                    f"no criterion {criterion_id!r} in rule set {ruleset.id} (and no directory of that name); "
                    f"its criteria are {', '.join(c.id for c in ruleset.criteria)}"
                )
            if number:
                click.echo()
            click.echo("\n".join(show_criterion(ruleset, criterion, codes)))
        return
    click.echo(f"{ruleset.title}\n{ruleset.id} {ruleset.version}  sha256 {ruleset.sha256}\n")
    for criterion in ruleset.criteria:
        sources = ", ".join(s.label or s.id for s in criterion.sources)
        click.echo(f"{criterion.id:<26} {criterion.effect:<10} {criterion.title}  [{sources}]")
        if criterion.params:
            values = ", ".join(f"{p}={ruleset.parameters[p].value}" for p in criterion.params)
            click.echo(f"{'':<37} parameters: {values}")


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option(
    "--criterion",
    "-c",
    "criteria",
    multiple=True,
    help="Criterion id (repeatable; default: the decisive ones).",
)
@click.option("--fails", is_flag=True, help="Keep only the branches that decided the result.")
@click.option("--as-of", help="Screening date, YYYY-MM-DD (default: today).")
@rules_option
@params_option
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@reports_errors
def explain(
    file: Any,
    criteria: tuple[str, ...],
    fails: bool,
    as_of: str | None,
    rules_dir: Path | None,
    params_file: Path | None,
    output_format: str,
) -> None:
    """Show why a criterion has its status for one record: its condition as a tree, each
    fact's value and each node's result (true, false or unknown), as `opa eval --explain`.

    The status is the one the engine gave in the decision; --fails keeps only the
    branches that made the result (for a failed or unknown criterion, what failed or is
    unknown). A FHIR Bundle explains each of its patients.

    \b
    Examples:
      screening explain examples/ineligible.json --criterion EXC-BP-UNCONTROLLED --as-of 2026-11-22
      screening explain examples/needs_information.json -c INC-REFRACTORY --fails --format json
    """
    from screening.engine.explain import explain_decision
    from screening.intake import InputKind, Screener, classify
    from screening.record import load_json, not_a_record

    source = getattr(file, "name", "<stdin>")
    data = load_json(file.read(), source=source)
    screener = Screener(rules_dir, params_file)
    kind = classify(data)
    if kind is InputKind.FHIR:
        found = screener.screen_fhir(data, as_of=as_of, source=source)
        for result in found:
            if isinstance(result, RecordError):
                raise result
        decisions = [d for d in found if isinstance(d, Decision)]  # not screened: skipped
    elif kind is not InputKind.NOT_AN_OBJECT:
        try:
            result = screener.screen(data, as_of=as_of)
        except RecordError as error:
            error.source = source
            raise
        if isinstance(result, NotScreened):
            _refuse_not_screened(result)
        decisions = [result]
    else:
        raise not_a_record(data, source)
    out: list[dict[str, Any]] = []
    for decision in decisions:
        wanted = criteria or tuple(c.id for c in decision.criteria if c.decisive)
        for criterion_id in wanted:
            explanation = explain_decision(screener.ruleset, decision, criterion_id)
            if output_format == "json":
                out.append(explanation.as_dict(fails))
            else:
                if out:
                    click.echo()
                out.append({})
                click.echo("\n".join(explanation.text(fails)))
        if not wanted and output_format == "text":
            click.echo(
                f"record {decision.record_id}: no decisive criterion (eligible); name one with --criterion"
            )
    if output_format == "json":
        click.echo(json.dumps(out, indent=2, default=str))


@main.command()
def schema() -> None:
    """Print the JSON Schema of the native intake record.

    \b
    Example:
      screening schema > record.schema.json
    """
    from screening.record import Record

    click.echo(json.dumps(Record.model_json_schema(), indent=2))


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True, path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Output JSONL (- for standard output), or Parquet for a name ending in .parquet.",
)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), help="Write the counts as CSV.")
@click.option(
    "--worklist",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write who needs which information as CSV: a row per record and missing item.",
)
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Processes (default: one per core).")
@click.option("--as-of", help="Screening date, YYYY-MM-DD (default: today; on --resume, the earlier run's).")
@rules_option
@params_option
@click.option(
    "--input-format",
    type=click.Choice(FORMATS),
    help="Default: detected. json: a record (or an array of them) per file, as check reads.",
)
@click.option("--resume", is_flag=True, help="Skip the records already in --out and append the rest.")
@click.option("--force", is_flag=True, help="Overwrite an --out that already holds results.")
@click.option(
    "--compact",
    is_flag=True,
    help="Leave out of each decision what every line repeats (criterion titles, effects, "
    "parameters, sources: see 'screening rules show'); about 60% smaller. Same as --detail compact.",
)
@click.option(
    "--detail",
    type=click.Choice(DETAILS),
    help="JSONL lines: full decisions (default), compact ones, or the outcome, decisive "
    "criteria, missing items and each status, without reasons (fastest).",
)
@click.option(
    "--out-format",
    type=click.Choice(OUT_FORMATS),
    help="Default: parquet for an --out ending in .parquet, else jsonl.",
)
@click.option(
    "--row-group-size",
    type=click.IntRange(min=1),
    default=ROW_GROUP_SIZE,
    show_default=True,
    help="Parquet: records per row group (and per part file written while the run goes on).",
)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=250, show_default=True, help="Records per task."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no closing summary.")
@click.option(
    "--mode",
    "file_mode",
    default="600",
    show_default=True,
    callback=lambda ctx, param, value: _octal_mode(value),
    help="Permissions of --out, --report, --summary and --worklist, in octal (they hold patient data).",
)
@reports_errors
def batch(
    inputs: tuple[Path, ...],
    out: Path,
    report: Path | None,
    summary: Path | None,
    worklist: Path | None,
    workers: int | None,
    as_of: str | None,
    rules_dir: Path | None,
    params_file: Path | None,
    input_format: str | None,
    resume: bool,
    force: bool,
    compact: bool,
    detail: str | None,
    out_format: str | None,
    row_group_size: int,
    chunk_size: int,
    quiet: bool,
    file_mode: int,
) -> None:
    """Screen many records in parallel: JSONL, JSON files, CSV, FHIR Bundles or a Bulk Data export.

    Writes one JSONL line per input record, in input order, with its "position", "source"
    (file:line), "record_id" and a "decision", a "not_screened" or an "error" that names
    the field. Exit code 0 when every record was screened, 2 when some had errors (each
    has its line), 1 when the batch could not run, 130 when interrupted: run the same
    command with --resume to finish.

    \b
    CSV input: one patient per row, a header, blank = not recorded. Columns:
      id, birth_date, age, sex, deceased, weight_kg, breastfeeding, pregnancy_status,
      pregnancy_date, pain_code, pain_display, pain_onset, pain_duration_months,
      pain_score, pain_score_date, systolic, diastolic, bp_date, treatments,
      psychiatric_history, substance_use_history, conditions, medications, allergies,
      alt, alt_upper_limit, ast, ast_upper_limit, liver_tests_date, phq9_item9,
      phq9_total, phq9_date
    List cells hold items separated by ';', each with '|'-separated parts:
      treatments "gabapentin|ineffective;physical_therapy|partial_response"
      (name|outcome|class), diagnoses "F11.21|remission||2025-01-10"
      (code|status|onset|last_active), medications "lorazepam|2" (name|daily_dose_mg|code).
    For the three histories (treatments, psychiatric_history, substance_use_history) a
    blank cell means "not asked" (unknown) and "none" means an explicit none.

    \b
    Examples:
      screening generate --count 10000 --seed 1 --out patients.jsonl
      screening batch patients.jsonl --out results.jsonl --report report.html --as-of 2026-11-22
      screening batch registry.csv bundles/ --out results.jsonl --workers 2 --summary counts.csv
      screening batch patients.jsonl --out results.jsonl --resume
      screening batch patients.jsonl --out results.jsonl --worklist worklist.csv
      screening batch examples/ --out - --as-of 2026-11-22      # a folder of JSON records
      screening batch big.jsonl --out results.jsonl --compact --workers 8
      screening batch big.jsonl --out outcomes.jsonl --detail outcome
      screening batch big.jsonl --out results.parquet --as-of 2026-11-22
    """
    from screening.batch.output import prepare_output
    from screening.batch.run import run_batch
    from screening.present.report import write_csv, write_html
    from screening.present.worklist import write_worklist

    if worklist and str(out) == "-":
        raise InputError("--worklist is read back from the output file; it cannot be standard output ('-')")
    progress = not quiet and sys.stderr.isatty()
    try:
        result = run_batch(
            inputs,
            out,
            input_format=input_format,
            rules=rules_dir,
            params=params_file,
            as_of=as_of,
            workers=workers,
            resume=resume,
            force=force,
            chunk_size=chunk_size,
            progress=progress,
            compact=compact,
            reports=[path for path in (report, summary, worklist) if path],
            mode=file_mode,
            detail=detail,
            out_format=out_format,
            row_group_size=row_group_size,
        )
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once; lines already written are whole
        click.echo(f"interrupted: rerun with --resume to finish {out}", err=True)
        sys.exit(130)
    if report:
        prepare_output(report, file_mode)
        write_html(result.summary, result.run_info(), report)
    if summary:
        prepare_output(summary, file_mode)
        write_csv(result.summary, summary)
    if worklist:
        prepare_output(worklist, file_mode)
        write_worklist(out, worklist, result.ruleset)
    counts = result.summary
    if not quiet:
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        outcomes = ", ".join(f"{n:,} {o}" for o, n in counts.outcomes.most_common())
        resumed = f" (after {result.resumed:,} already written)" if result.resumed else ""
        click.echo(
            f"{result.records:,} records{resumed} in {result.seconds:.1f} s "
            f"({result.run_info().rate:,.0f}/s, {result.workers} worker{'s' if result.workers > 1 else ''}): {outcomes or 'none screened'}; "
            f"{counts.not_screened:,} not screened; {counts.failed:,} with errors -> {'standard output' if str(out) == '-' else out}",
            err=True,
        )
    if result.interrupted:
        click.echo(f"interrupted: {out} holds {counts.assessed:,} records; rerun with --resume", err=True)
        sys.exit(130)
    sys.exit(2 if counts.failed else 0)


def _octal_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"{value!r} is not a file mode in octal, such as 600 or 640")
    return mode


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(allow_dash=True, path_type=Path))
@click.option("--as-of", required=True, help="Screening date, YYYY-MM-DD (the same for both sides).")
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Changes, JSONL."
)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, path_type=Path), help="New rules.")
@click.option(
    "--params", "params_file", type=click.Path(dir_okay=False, path_type=Path), help="New site file."
)
@click.option(
    "--baseline-rules", type=click.Path(file_okay=False, path_type=Path), help="Old rules (default: shipped)."
)
@click.option("--baseline-params", type=click.Path(dir_okay=False, path_type=Path), help="Old site file.")
@click.option("--workers", "-w", type=click.IntRange(min=1), help="Processes (default: one per core).")
@click.option(
    "--input-format", type=click.Choice(["jsonl", "csv", "fhir", "bulk"]), help="Default: detected."
)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=250, show_default=True, help="Records per task."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no closing summary.")
@reports_errors
def impact(
    inputs: tuple[Path, ...],
    as_of: str,
    out: Path,
    report: Path | None,
    rules_dir: Path | None,
    params_file: Path | None,
    baseline_rules: Path | None,
    baseline_params: Path | None,
    workers: int | None,
    input_format: str | None,
    chunk_size: int,
    quiet: bool,
) -> None:
    """Show which patients a rule or parameter change moves, and why.

    Screens the cohort under the baseline rules and the new ones (each defaults to the
    shipped rule set with no site parameters), with the batch machinery, and writes one
    JSONL line per patient whose outcome, decisive criteria or missing items changed:
    its record_id, before, after, and each criterion whose status changed with both
    reasons. --report adds the 5x5 outcome matrix, the criteria behind each flip and the
    rule diff (criteria, facts, value sets by sha256; parameter values).

    \b
    Examples:
      screening impact cohort.jsonl --params site.yaml --as-of 2026-11-22 --out changes.jsonl
      screening impact cohort.jsonl --rules new-rules/ --baseline-rules rules/ \\
          --as-of 2026-11-22 --out changes.jsonl --report impact.html
    """
    from screening.authoring.impact import run_impact, write_report

    progress = not quiet and sys.stderr.isatty()
    try:
        result = run_impact(
            inputs,
            out,
            as_of=as_of,
            rules=rules_dir,
            params=params_file,
            baseline_rules=baseline_rules,
            baseline_params=baseline_params,
            workers=workers,
            input_format=input_format,
            chunk_size=chunk_size,
            progress=progress,
        )
    except KeyboardInterrupt:
        click.echo(f"interrupted: {out} is incomplete; run again", err=True)
        sys.exit(130)
    if report:
        write_report(result, report)
    if not quiet:
        diff = result.diff
        changes = [f"{p['id']} {p['before']} -> {p['after']}" for p in diff.parameters]
        changes += [f"criterion {c['id']} {c['change']}" for c in diff.criteria]
        changes += [f"fact {c['id']} {c['change']}" for c in diff.facts]
        changes += [f"value set {c['id']} {c['change']}" for c in diff.value_sets]
        click.echo(f"rule diff: {'; '.join(changes) or 'none'}", err=True)
        for (was, now), count in sorted(result.matrix.items()):
            if was != now:
                blamed = ", ".join(result.responsible.get((was, now), {}))
                click.echo(
                    f"  {was} -> {now}: {count:,} ({blamed or 'no decisive criterion changed'})", err=True
                )
        click.echo(result.summary_line(), err=True)


@main.command()
@click.option("--count", "-n", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--as-of", help="The date the records are current on, YYYY-MM-DD (default: today).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default="-")
@click.option(
    "--format", "output_format", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@reports_errors
def generate(count: int, seed: int, as_of: str | None, out: Path, output_format: str) -> None:
    """Write realistic synthetic patient records (JSONL, or the batch CSV layout).

    The records mix all five outcomes; some miss data, some sit on thresholds, a few
    patients are deceased. The same --seed, --count and --as-of give the same file.

    \b
    Examples:
      screening generate --count 100000 --seed 7 --as-of 2026-11-22 --out patients.jsonl
      screening generate -n 500 --format csv --out registry.csv
    """
    from screening.batch.synthetic import write_records

    write_records(out, count, seed, as_of, output_format)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@rules_option
@params_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes.")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require the bearer token in this file (or in SCREENING_TOKEN); never on the command line.",
)
@click.option("--token", "token_given", hidden=True, help="Refused: a token on the command line shows in ps.")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=10.0, show_default=True)
@click.option("--batch-limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a request body may take to arrive after its headers (then 408).",
)
@click.option(
    "--healthcheck-timeout",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="With --workers > 1: seconds a busy worker may take to answer the supervisor before it is restarted.",
)
@click.option(
    "--fhir-server",
    "fhir_servers",
    multiple=True,
    help="A FHIR server base URL that CDS Hooks may fetch missing prefetch from (repeatable).",
)
@click.option(
    "--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info"
)
@click.option(
    "--trusted-clients",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CDS clients whose signed JWTs are accepted: YAML or JSON, issuer -> jwks_url or jwks. Needs --base-url.",
)
@click.option("--base-url", help="The service's public URL: the JWT audience, and links on CDS cards.")
@click.option(
    "--cors-origin", "cors_origins", multiple=True, help="A browser origin allowed by CORS (repeatable)."
)
@click.option("--decision-log", help="Log every decision to this JSONL file (rotated), or to sqlite:PATH.")
@click.option(
    "--decision-log-max-bytes", type=click.IntRange(min=1024), default=50 * 1024 * 1024, show_default=True
)
@click.option(
    "--decision-log-backups",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Rotated files kept.",
)
@click.option(
    "--decision-log-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The key record ids are hashed with in the decision log (or SCREENING_DECISION_LOG_KEY).",
)
@click.option(
    "--decision-cache",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Recent decisions per process whose full explanation GET /decisions/ID keeps.",
)
@reports_errors
def serve(
    host: str,
    port: int,
    rules_dir: Path | None,
    params_file: Path | None,
    workers: int,
    token_file: Path | None,
    token_given: str | None,
    max_body_mb: float,
    batch_limit: int,
    body_timeout: float,
    healthcheck_timeout: int,
    fhir_servers: tuple[str, ...],
    log_level: str,
    trusted_clients: Path | None,
    base_url: str | None,
    cors_origins: tuple[str, ...],
    decision_log: str | None,
    decision_log_max_bytes: int,
    decision_log_backups: int,
    decision_log_key_file: Path | None,
    decision_cache: int,
) -> None:
    """Run the HTTP service: POST /screen, /screen/batch, GET /rules, /health, CDS Hooks.

    Each worker process loads the rule set once; OpenAPI docs are at /docs. Patient data
    is never logged. Bad rules fail here, before the server starts.

    The bearer token comes from --token-file or the SCREENING_TOKEN environment variable,
    never from the command line, where every user of the machine can read it with ps.

    \b
    Examples:
      screening serve --port 8080 --workers 4
      screening serve --token-file /run/secrets/screening-token --params site.yaml
      screening serve --trusted-clients clients.yaml --base-url https://cds.example.org \\
        --decision-log /var/log/screening/decisions.jsonl --decision-log-key-file /run/secrets/log-key
      curl -s localhost:8080/screen -H 'Content-Type: application/json' -d @examples/eligible.json
    """
    import os
    import shutil
    import tempfile

    from screening.ruleset.loading import load_ruleset
    from screening.screener import default_rules_dir
    from screening.service.app import serve as run

    if token_given is not None:
        raise click.UsageError(
            "--token is not accepted: a token on the command line is visible to every user "
            "in ps. Put it in a file and pass --token-file PATH, or set SCREENING_TOKEN."
        )
    token = os.environ.get("SCREENING_TOKEN") or ""
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise click.UsageError(f"--token-file {token_file}: the file is empty")
    load_ruleset(rules_dir or default_rules_dir(), params_file)  # fail fast, with file:line
    if trusted_clients is not None:
        from screening.service.auth import load_trusted_clients

        load_trusted_clients(trusted_clients)  # fail fast, naming the issuer and field
        if not base_url:
            raise click.UsageError("--trusted-clients needs --base-url: a JWT's aud must name this service")
    log_key = os.environ.get("SCREENING_DECISION_LOG_KEY") or ""
    if decision_log_key_file is not None:
        log_key = decision_log_key_file.read_text(encoding="utf-8").strip()
        if not log_key:
            raise click.UsageError(f"--decision-log-key-file {decision_log_key_file}: the file is empty")
    settings = {
        "SCREENING_RULES": str(rules_dir or ""),
        "SCREENING_PARAMS": str(params_file or ""),
        "SCREENING_TOKEN": token,
        "SCREENING_MAX_BODY": str(int(max_body_mb * 1024 * 1024)),
        "SCREENING_BATCH_LIMIT": str(batch_limit),
        "SCREENING_BODY_TIMEOUT": str(body_timeout),
        "SCREENING_FHIR_SERVERS": " ".join(fhir_servers),
        "SCREENING_TRUSTED_CLIENTS": str(trusted_clients or ""),
        "SCREENING_BASE_URL": base_url or "",
        "SCREENING_CORS_ORIGINS": " ".join(cors_origins),
        "SCREENING_DECISION_LOG": decision_log or "",
        "SCREENING_DECISION_LOG_MAX_BYTES": str(decision_log_max_bytes),
        "SCREENING_DECISION_LOG_BACKUPS": str(decision_log_backups),
        "SCREENING_DECISION_LOG_KEY": log_key,
        "SCREENING_DECISION_CACHE": str(decision_cache),
    }
    # The seen JWT ids, shared by the workers so that a token replayed to another is refused.
    scratch = tempfile.mkdtemp(prefix="screening-serve-")
    settings["SCREENING_REPLAY_DB"] = str(Path(scratch) / "seen-jti.db")
    os.environ.update(settings)  # the worker processes read their settings from here
    try:
        run(host, port, workers, log_level, healthcheck_timeout)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
