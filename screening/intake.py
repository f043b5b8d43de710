"""The one way in: what kind of input a parsed JSON value is, and a Screener for every kind.

Every interface (the CLI, the service, batch) asks :func:`classify` and screens with
:class:`Screener`, so a record is read the same way whichever door it came through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import Any

from screening.decision import Decision, NotScreened
from screening.errors import RecordError
from screening.fhir.bundle import is_fhir
from screening.fhir.screening import screen_bundle, screen_read_record
from screening.screener import RecordScreener


class InputKind(StrEnum):
    NATIVE = "native"
    """A native intake record: a JSON object that is neither of the others."""
    FHIR = "fhir"
    """A FHIR R4 resource or Bundle (an object with a string ``resourceType``)."""
    CDS_HOOKS = "cds-hooks"
    """A CDS Hooks request (an object with ``hook`` and a ``context`` or ``prefetch``)."""
    NOT_AN_OBJECT = "not-an-object"
    """Anything else (an array, a string, a number): not a record."""


def is_hook_request(data: object) -> bool:
    """Whether parsed JSON looks like a CDS Hooks request: a hook with a context or prefetch
    (not yet validated: :func:`screening.service.cdshooks.read_hook` does that)."""
    return isinstance(data, Mapping) and "hook" in data and ("context" in data or "prefetch" in data)


def classify(data: object) -> InputKind:
    """The kind of a parsed JSON value. Nothing is validated here: each kind's reader does that."""
    if not isinstance(data, Mapping):
        return InputKind.NOT_AN_OBJECT
    if is_fhir(data):
        return InputKind.FHIR
    if is_hook_request(data):
        return InputKind.CDS_HOOKS
    return InputKind.NATIVE


class Screener(RecordScreener):
    """Screens native records, FHIR Bundles and records read from FHIR against one rule set.

    >>> from screening import Screener
    >>> screener = Screener()                       # the default rule set
    >>> decision = screener.screen(record_dict, as_of="2026-11-22")
    >>> results = screener.screen_fhir(bundle, as_of="2026-11-22")
    """

    def screen_fhir(
        self, data: Mapping[str, Any], as_of: date | str | None = None, source: str | None = None
    ) -> list[Decision | NotScreened | RecordError]:
        """Screen each Patient of a FHIR Bundle (or resource): its decision, or why there is none.

        A malformed resource fails only its own patient: that patient's result is a
        RecordError naming the resource and the field (one whose patient cannot be told is
        a RecordError of its own). Raises InputError when the input is not readable FHIR
        or holds no Patient.
        """
        return screen_bundle(self, data, as_of, source)

    def screen_fhir_record(
        self, record: Mapping[str, Any], as_of: date | str | None = None, notes: Sequence[str] = ()
    ) -> Decision | NotScreened:
        """Screen a record read from FHIR; items dated after ``as_of`` are left out and noted.

        The notes (what was read but not used) are in the decision's ``input_notes``.
        """
        return screen_read_record(self, record, as_of, notes)
