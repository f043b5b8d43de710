"""The Parquet output of ``screening batch``: one row per input record, resumable.

A Parquet file cannot be appended to: its footer, written last, says where every row group
is. So a run writes its rows as numbered part files in a directory beside the output
(``results.parquet.parts/part-000000010000.parquet``, named by the position of their first
row), each one row group of ``row_group_size`` records, written to a temporary name,
fsynced and renamed: a part is whole or absent. When every record has its row, the parts
are copied, row group by row group, into ``results.parquet`` (a temporary name, fsynced,
renamed) and the directory is removed.

``--resume`` counts the rows of the parts (or of the finished file, which it first moves
into the directory as its first part) exactly as it counts JSONL lines: positions
``0 .. count-1``, each record id checked against the input. A run killed with ``SIGKILL``
loses at most the rows not yet in a part, which the resumed run screens again; one killed
while assembling the file still has every part. The rows come from the workers' lines of
``--detail outcome`` (:meth:`~screening.decision.Decision.as_outcome_dict`), so no reason
is ever rendered for Parquet.

Columns: ``position``, ``source``, ``record_id``, ``outcome``, ``decisive`` and ``missing``
(lists of strings), one status column per criterion (named by its id: ``met``, ``not_met``,
``unknown``, or null for a record that was not screened), ``error_code``, ``error_message``
and ``not_screened`` (the reason). The file's key-value metadata holds the rule set's id,
version and sha256, the screening date and the site parameters (``screening.*`` keys).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import orjson

from screening.batch.options import ROW_GROUP_SIZE
from screening.batch.output import OUTPUT_MODE, Written, id_key, open_output
from screening.decision import PROFILE_FACTS
from screening.errors import InputError
from screening.ruleset.model import RuleSet

FIXED_BEFORE = ("position", "source", "record_id", "outcome", "decisive", "missing")
FIXED_AFTER = ("error_code", "error_message", "not_screened")
PREFIX = "screening."
_ARROW_TYPES: dict[str, Any] = {
    "number": lambda pa: pa.float64(),
    "boolean": lambda pa: pa.bool_(),
    "string": lambda pa: pa.string(),
}
_PART = re.compile(r"part-(\d{12})\.parquet")


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise InputError("Parquet output needs pyarrow: pip install pyarrow") from None
    return pa, pq


def parts_dir(path: Path) -> Path:
    """The directory of a Parquet output's part files while it is being written."""
    return path.with_name(path.name + ".parts")


def holds_results(path: Path) -> bool:
    """The output, or its parts, already holds rows (a new run needs --force or --resume)."""
    parts = parts_dir(path)
    if parts.is_dir() and any(_PART.fullmatch(p.name) for p in parts.iterdir()):
        return True
    return path.is_file() and path.stat().st_size > 0


def schema(ruleset: RuleSet, as_of: str) -> Any:
    """The Arrow schema of the rows, with the run's metadata."""
    pa, _ = _pyarrow()
    criteria = [c.id for c in ruleset.criteria]
    profile = [name for name in PROFILE_FACTS if name in ruleset.facts]
    clash = sorted(set(criteria) & set(FIXED_BEFORE + FIXED_AFTER + PROFILE_FACTS))
    if clash:
        raise InputError(f"criterion ids {clash} are also column names of the Parquet output; use JSONL")
    text = pa.string()
    fields = [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("source", text),
        pa.field("record_id", text),
        pa.field("outcome", text),
        pa.field("decisive", pa.list_(text)),
        pa.field("missing", pa.list_(text)),
        # Who the patient is, for breakdowns (the report's, and an analyst's GROUP BY).
        *(pa.field(name, _ARROW_TYPES[ruleset.facts[name].type](pa)) for name in profile),
        *(pa.field(cid, text) for cid in criteria),
        *(pa.field(name, text) for name in FIXED_AFTER),
    ]
    metadata = {
        "ruleset_id": ruleset.id,
        "ruleset_version": ruleset.version,
        "ruleset_sha256": ruleset.sha256,
        "as_of": as_of,
        "parameters": orjson.dumps(dict(ruleset.overrides)).decode(),
    }
    return pa.schema(fields, metadata={PREFIX + k: v for k, v in metadata.items()})


def row_of(line: dict[str, Any]) -> dict[str, Any]:
    """A row, from an output line of ``--detail outcome``."""
    row: dict[str, Any] = {
        "position": line["position"],
        "source": line["source"],
        "record_id": line["record_id"],
    }
    decision = line.get("decision")
    if decision is not None:
        row["outcome"] = decision["outcome"]
        row["decisive"] = decision["decisive"]
        row["missing"] = decision["missing_information"]
        row.update(decision.get("facts", {}))
        for criterion in decision["criteria"]:
            row[criterion["id"]] = criterion["status"]
    elif "not_screened" in line:
        row["not_screened"] = line["not_screened"]["reason"]
    else:
        row["error_code"] = line["error"]["code"]
        row["error_message"] = line["error"]["message"]
    return row


def _line_of(row: dict[str, Any], criteria: list[str]) -> dict[str, Any]:
    """The parts of a row's output line that the report counts (``Summary.add_line``)."""
    if row["outcome"] is not None:
        decisive = set(row["decisive"] or ())
        return {
            "decision": {
                "outcome": row["outcome"],
                "criteria": [{"id": c, "status": row[c], "decisive": c in decisive} for c in criteria],
                "missing_information": row["missing"] or [],
                "facts": {name: row[name] for name in PROFILE_FACTS if name in row},
            }
        }
    if row["not_screened"] is not None:
        return {"not_screened": {"reason": row["not_screened"]}}
    return {"error": {"code": row["error_code"]}}


def _parts(path: Path) -> list[Path]:
    directory = parts_dir(path)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _PART.fullmatch(p.name))


def scan_parquet(path: Path) -> Written:
    """What a Parquet output (its parts, or the finished file) holds, for ``--resume``."""
    _, pq = _pyarrow()
    written = Written()
    files = _parts(path) or ([path] if path.is_file() and path.stat().st_size else [])
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except Exception as error:  # pyarrow raises several kinds for a file that is not Parquet
            raise InputError(f"not a Parquet output of screening batch ({error})", str(file)) from None
        meta = {k.decode(): v.decode() for k, v in (parquet.schema_arrow.metadata or {}).items()}
        if PREFIX + "ruleset_sha256" not in meta:
            raise InputError("not a Parquet output of screening batch (no screening metadata)", str(file))
        if written.as_of is None:
            written.as_of = meta[PREFIX + "as_of"]
            written.ruleset_sha256 = meta[PREFIX + "ruleset_sha256"]
            written.overrides = orjson.loads(meta[PREFIX + "parameters"])
        names = parquet.schema_arrow.names
        criteria = [
            n for n in names[len(FIXED_BEFORE) : len(names) - len(FIXED_AFTER)] if n not in PROFILE_FACTS
        ]
        for group in range(parquet.num_row_groups):
            for row in parquet.read_row_group(group).to_pylist():
                if row["position"] != written.count:
                    raise InputError(
                        f"position {row['position']} where {written.count} was expected; "
                        "the parts were not written by one screening batch",
                        str(file),
                    )
                written.count += 1
                written.last_source = row["source"]
                written.ids.append(id_key(row["record_id"]))
                written.summary.add_line(_line_of(row, criteria))
    return written


class ParquetWriter:
    """Takes finished blocks of ``--detail outcome`` lines, as :class:`LineWriter` does,
    and writes their rows as part files; :meth:`finish` assembles the output."""

    def __init__(
        self,
        path: Path,
        ruleset: RuleSet,
        as_of: str,
        *,
        resume: bool,
        first: int,
        mode: int = OUTPUT_MODE,
        row_group_size: int = ROW_GROUP_SIZE,
    ) -> None:
        """``first``: the position of the first row to come (the rows already written).

        Nothing changes on disk before the first part is written or the run finishes: a
        run that fails at once leaves an existing output as it was."""
        self.path = path
        self.parts = parts_dir(path)
        self._schema = schema(ruleset, as_of)
        self._resume = resume
        self._mode = mode
        self._size = max(1, row_group_size)
        self._next = first  # the position of the first buffered row
        self._rows: list[dict[str, Any]] = []
        self._ready = False
        self.lines = 0

    def _prepare(self) -> None:
        """Make the parts directory ready: emptied for a new run; for a resumed one, holding
        what was written (a finished file becomes its first part), less any temporary file."""
        if self._ready:
            return
        if not self._resume:  # a new run: nothing of an earlier one stays beside it
            if self.parts.exists():
                shutil.rmtree(self.parts)
            self.path.unlink(missing_ok=True)
        if self._resume and not _parts(self.path) and self.path.is_file() and self.path.stat().st_size:
            self.parts.mkdir(mode=0o700, exist_ok=True)
            os.replace(self.path, self.parts / _part_name(0))
            _fsync_dir(self.parts)
        self.parts.mkdir(mode=0o700, exist_ok=True)
        for leftover in self.parts.glob(".tmp-*"):
            leftover.unlink()
        self._ready = True

    def write(self, block: bytes, lines: int) -> None:
        for line in block.splitlines():
            self._rows.append(row_of(orjson.loads(line)))
        self.lines += lines
        while len(self._rows) >= self._size:
            self._flush(self._size)

    def _flush(self, count: int) -> None:
        """Write the first ``count`` buffered rows as one part: whole, or not at all."""
        pa, pq = _pyarrow()
        self._prepare()
        rows, self._rows = self._rows[:count], self._rows[count:]
        table = pa.Table.from_pylist(rows, schema=self._schema)
        name = _part_name(self._next)
        _write_atomically(self.parts, name, self._mode, lambda file: pq.write_table(table, file))
        self._next += len(rows)

    def flush(self) -> None:
        """Write the buffered rows as a part (the run stops here; a resume goes on after them)."""
        if self._rows:
            self._flush(len(self._rows))

    def finish(self) -> None:
        """Every record has its row: copy the parts, row group by row group, into the output."""
        _, pq = _pyarrow()
        self.flush()
        self._prepare()

        def assemble(file: Any) -> None:
            with pq.ParquetWriter(file, self._schema) as writer:
                for part in _parts(self.path):
                    parquet = pq.ParquetFile(part)
                    for group in range(parquet.num_row_groups):
                        writer.write_table(parquet.read_row_group(group))

        _write_atomically(self.path.parent, self.path.name, self._mode, assemble, final=self.path)
        shutil.rmtree(self.parts)

    def __enter__(self) -> ParquetWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        # The buffered rows are whole and in order, also after a second Ctrl-C: keep them.
        if kind is None or issubclass(kind, KeyboardInterrupt):
            self.flush()


def _part_name(position: int) -> str:
    return f"part-{position:012d}.parquet"


def _write_atomically(directory: Path, name: str, mode: int, write: Any, final: Path | None = None) -> None:
    """Write a file under a temporary name, fsync it, and rename it into place."""
    temporary = directory / f".tmp-{name}" if final is None else final.with_name(f".{final.name}.tmp")
    fd = open_output(temporary, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, directory / name)
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
