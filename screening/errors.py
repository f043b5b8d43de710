"""Every error the package raises, rooted at one base class.

::

    ScreeningError                 code: a stable snake_case string
    ├── RuleSetError               rule files or a site parameter file cannot be used;
    │                              .problems lists every Problem (file:line:col: code: message)
    ├── RecordError                a patient record is invalid; .record_id and .problems
    │                              (each naming the field)
    ├── InputError                 input that is not a record at all: unreadable JSON, an
    │                              unknown format; .source and .position say where
    └── EngineError                durable-rules failed or contradicted itself; raised only
                                   by screening.engine.durable, which maps every engine failure here

A user never sees a raw pydantic, YAML or engine traceback: each is translated into one of
these where it happens. Every error has one shape, :meth:`ScreeningError.as_dict`: ``code``,
``message``, ``field``, ``record_id`` and ``problems`` (a subclass may add keys after them),
and each interface turns errors into its own form in one place: the CLI's
``reports_errors``, the service's ``error_response`` and the batch worker's line.

A record that must not be screened (a deceased patient) is not an error: it is a result,
:class:`screening.decision.NotScreened`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PROBLEMS = 20
"""A RecordError lists at most this many problems, then says how many more there were: a
record with a million bad items must not give a million-line error."""


def clip(text: str, limit: int) -> str:
    """The text cut to ``limit`` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_shape(
    code: str,
    message: str | None,
    field: str | None = None,
    record_id: str | None = None,
    problems: list[dict[str, str]] | None = None,
) -> dict[str, object]:
    """The one error shape: what :meth:`ScreeningError.as_dict` gives, and what the HTTP
    service answers for errors of its own (a bad query parameter, a 404)."""
    return {
        "code": code,
        "message": message,
        "field": field,
        "record_id": record_id,
        "problems": problems or [],
    }


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a rule file, a site parameter file or a record."""

    file: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        return f"{where}: {self.code}: {self.message}"


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field of a record: its dotted path, a stable code and a message."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class ScreeningError(Exception):
    """Base of every error this package raises."""

    code = "screening_error"
    field: str | None = None
    """The field (or position in the input) the error is about, when there is one."""
    record_id: str | None = None
    """The id of the record the error is about, when it is known."""

    def problem_dicts(self) -> list[dict[str, str]]:
        return []

    def as_dict(self) -> dict[str, object]:
        """The one error shape of every interface; subclasses may add keys after these."""
        return error_shape(self.code, str(self), self.field, self.record_id, self.problem_dicts())


class RuleSetError(ScreeningError):
    """The rule set (or a site parameter file) has problems; all of them are listed."""

    code = "invalid_rules"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the rule set:\n{lines}")


class RecordError(ScreeningError):
    """A patient record failed validation. The invalid fields are listed, the first
    MAX_PROBLEMS of them; ``more_problems`` counts the rest."""

    code = "invalid_record"

    source: str | None = None
    """The file or input the record came from, when the caller knows it."""

    def __init__(self, record_id: str | None, problems: list[FieldProblem], more: int = 0) -> None:
        self.record_id = record_id
        self.problems = problems[:MAX_PROBLEMS]
        self.more_problems = more + len(problems) - len(self.problems)
        self.field = self.problems[0].field if self.problems else None
        who = f"record {clip(record_id, 80)!r}" if record_id else "record"
        details = "; ".join(str(p) for p in self.problems)
        if self.more_problems:
            details += f"; and {self.more_problems:,} more problem{'s' if self.more_problems != 1 else ''}"
        super().__init__(f"{who}: {details}")

    def problem_dicts(self) -> list[dict[str, str]]:
        return [p.as_dict() for p in self.problems]

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "more_problems": self.more_problems}


class InputError(ScreeningError):
    """Input that could not be read as a record: bad JSON, an unknown shape."""

    code = "invalid_input"

    def __init__(self, message: str, source: str | None = None, position: str | None = None):
        self.source = source
        self.position = position
        self.field = position  # a field name, or line:column in unreadable JSON
        where = ":".join(p for p in (source, position) if p)
        super().__init__(f"{where}: {message}" if where else message)

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "source": self.source, "position": self.position}


class EngineError(ScreeningError):
    """durable-rules failed, or its result contradicted the facts it was given."""

    code = "engine_error"


class InternalError(ScreeningError):
    """A failure that is not one of the above (a bug): the batch goes on and names it."""

    code = "internal_error"

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
