"""CDS Hooks: the ``patient-view`` service that screens from prefetch and answers with cards.

    GET  /cds-services                  -> discovery(ruleset)
    POST /cds-services/ketamine-screening -> read_hook(...), then cards(...)

The service declares prefetch templates for the seven resource types the screener reads.
The client's prefetch may use other keys (the resources are recognised by type), give a
Bundle or a single resource per key, or ``null`` (no data, per the specification). A type
that was not provided at all is *unavailable*: it is fetched from ``fhirServer`` when the
server allows it (:mod:`screening.service.fhir_fetch`); otherwise the decision is made without it
and a card says which data was unavailable. Conditions that are unavailable leave the
psychiatric and substance use histories *unknown*, not empty; without all of
MedicationStatement, MedicationRequest and Procedure the treatment history is unknown.

Cards: ``critical`` for ineligible, ``warning`` for needs_review and needs_information,
``info`` for eligible and eligible_with_cautions. The summary (under 140 characters) names
the decisive reason; the markdown detail lists the criteria with their evidence and the
FHIR resources it came from.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from screening.aggregates.base import DIAGNOSES, DIAGNOSIS_FIELDS
from screening.decision import CriterionResult, Decision, NotScreened
from screening.errors import InputError, RecordError
from screening.fhir.bundle import Entry, FhirRecord, flatten, is_fhir, keys_of, read_entries, ref_key
from screening.fhir.map import MEDICATION_TYPES, PATIENT_REFERENCE, TREATMENT_TYPES
from screening.fhir.terms import OBSERVATION_SETS
from screening.ruleset.model import Fact, RuleSet
from screening.vocabulary import Effect, Outcome, Status, effect_rank

if TYPE_CHECKING:
    from screening.intake import Screener

SERVICE_ID = "ketamine-screening"
HOOK = "patient-view"
PATIENT_TOKEN = "{{context.patientId}}"
# prefetch key -> resource type
PREFETCH_TYPES = {
    "patient": "Patient",
    "conditions": "Condition",
    "observations": "Observation",
    "medicationStatements": "MedicationStatement",
    "medicationRequests": "MedicationRequest",
    "procedures": "Procedure",
    "allergies": "AllergyIntolerance",
}
SUMMARY_LIMIT = 139
OVERRIDE_SYSTEM = "urn:screening:cds-hooks:override-reason"
"""The code system of the override reasons this service offers on its cards (our own naming)."""
OVERRIDE_REASONS = (
    {"code": "patient-declined", "system": OVERRIDE_SYSTEM, "display": "Patient declined"},
    {"code": "clinical-judgement", "system": OVERRIDE_SYSTEM, "display": "Clinical judgement"},
    {"code": "chart-data-wrong", "system": OVERRIDE_SYSTEM, "display": "Data in the chart is wrong"},
)
FEEDBACK_OUTCOMES = ("accepted", "overridden")
_PATIENT_ELEMENTS = ("subject", "patient")
INDICATOR = {
    Outcome.ineligible: "critical",
    Outcome.needs_information: "warning",
    Outcome.needs_review: "warning",
    Outcome.eligible_with_cautions: "info",
    Outcome.eligible: "info",
}
HEADLINE = {
    Outcome.ineligible: "Ketamine infusion not eligible",
    Outcome.needs_information: "Ketamine screening incomplete",
    Outcome.needs_review: "Ketamine infusion needs clinician review",
    Outcome.eligible_with_cautions: "Ketamine infusion criteria met, with cautions",
    Outcome.eligible: "Ketamine infusion criteria met",
}
UNAVAILABLE_EFFECT = {
    "Patient": "age and sex",
    "Condition": "diagnoses (psychiatric, substance use, cardiac, hepatic and pain conditions)",
    "Observation": "blood pressure, pain score, PHQ-9, liver tests, pregnancy status and weight",
    "MedicationStatement": "current medications and treatment trials",
    "MedicationRequest": "current medications and treatment trials",
    "Procedure": "physical therapy, interventional and psychological treatment trials",
    "AllergyIntolerance": "ketamine allergy",
}


# -- OpenAPI models of the service's request and answer (the code reads plain JSON) --


class Card(BaseModel):
    model_config = ConfigDict(extra="allow")

    uuid: str
    summary: str = Field(max_length=140)
    indicator: Literal["info", "warning", "critical"]
    detail: str
    source: dict[str, str]
    overrideReasons: list[dict[str, str]] = Field(description="Codings a clinician may give to override")
    links: list[dict[str, str]] | None = Field(
        default=None, description="With --base-url: the full explanation of the decision"
    )
    extension: dict[str, str] | None = Field(default=None, description="decision_id: the decision's id")


class CardsBody(BaseModel):
    cards: list[Card]


class HookRequestBody(BaseModel):
    """A CDS Hooks ``patient-view`` request."""

    model_config = ConfigDict(extra="allow")

    hook: Literal["patient-view"]
    hookInstance: str
    context: dict[str, Any] = Field(description="With patientId (and userId)")
    prefetch: dict[str, Any] | None = Field(default=None, description="FHIR resources or Bundles, or null")
    fhirServer: str | None = None
    fhirAuthorization: dict[str, Any] | None = None


class FeedbackItem(BaseModel):
    """One user's action on a card (CDS Hooks 2.0 feedback)."""

    model_config = ConfigDict(extra="forbid")

    card: str = Field(description="The uuid of a card this service returned")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, str]] | None = Field(default=None, description="Only when accepted")
    overrideReason: dict[str, Any] | None = Field(
        default=None, description="Only when overridden: reason (a Coding) and userComment (not logged)"
    )
    outcomeTimestamp: str = Field(description="ISO 8601 date and time, with a time zone")
    extension: dict[str, Any] | None = None


class FeedbackRequestBody(BaseModel):
    """A CDS Hooks feedback request."""

    model_config = ConfigDict(extra="forbid")

    feedback: list[FeedbackItem] = Field(min_length=1)
    extension: dict[str, Any] | None = None


def queries(ruleset: RuleSet) -> dict[str, str]:
    """The FHIR query of each resource type, with the patient token (observations by code)."""
    codes = sorted({code for name in OBSERVATION_SETS for code in ruleset.value_sets[name].loinc})
    out = {"Patient": f"Patient/{PATIENT_TOKEN}"}
    for kind in PREFETCH_TYPES.values():
        if kind != "Patient":
            out[kind] = f"{kind}?patient={PATIENT_TOKEN}"
    out["Observation"] += "&code=" + ",".join(f"http://loinc.org|{code}" for code in codes)
    return out


def discovery(ruleset: RuleSet) -> dict[str, Any]:
    """The discovery document (``GET /cds-services``)."""
    templates = queries(ruleset)
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "IV ketamine for chronic pain: eligibility screening",
                "description": (
                    f"Screens the patient against {ruleset.title} ({ruleset.id} {ruleset.version}) "
                    "and returns one card with the outcome, its reasons and what is missing."
                ),
                "prefetch": {key: templates[kind] for key, kind in PREFETCH_TYPES.items()},
                "usageRequirements": (
                    "Decision support for a clinician: it never recommends giving ketamine. "
                    "Missing prefetch is fetched from fhirServer only for allowed servers."
                ),
            }
        ]
    }


@dataclass
class HookRequest:
    """What the service uses of a CDS Hooks request."""

    hook: str
    patient_id: str
    fhir_server: str | None
    token: str | None
    entries: list[Entry] = field(default_factory=list)
    provided: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Resource types a fetch from fhirServer failed for (in part), with the reason."""

    @property
    def unavailable(self) -> list[str]:
        return [kind for kind in PREFETCH_TYPES.values() if kind not in self.provided or kind in self.failed]

    def own(self) -> set[str]:
        """The references that name ``context.patientId``: ``Patient/<id>``, ``urn:uuid:<id>``
        and the ``fullUrl`` of its Patient entry."""
        own = {f"Patient/{self.patient_id}", f"urn:uuid:{self.patient_id}"}
        for entry in self.entries:
            if entry.type == "Patient" and entry.resource.get("id") == self.patient_id:
                own |= keys_of(entry)
        return own

    def mismatch(self) -> str | None:
        """Why the prefetch is not about ``context.patientId``, if it is not.

        A resource about another patient refuses the whole request, also where it names
        that patient in the wrong element (an Observation's ``patient``, an
        AllergyIntolerance's ``subject``): the EHR sent the wrong chart."""
        own = self.own()
        patients = [e for e in self.entries if e.type == "Patient"]
        if patients and not any(e.resource.get("id") == self.patient_id for e in patients):
            return f"the prefetch Patient is {patients[0].label}, not Patient/{self.patient_id}"
        for entry in self.entries:
            key = PATIENT_REFERENCE.get(entry.type)
            if key is None:
                continue
            for element in (key, *(e for e in _PATIENT_ELEMENTS if e != key)):
                value = entry.resource.get(element)
                ref = value.get("reference") if isinstance(value, Mapping) else None
                if not isinstance(ref, str) or ref_key(ref) in own or ref in own:
                    continue
                if element == key:
                    return f"{entry.label} is about {ref}, not Patient/{self.patient_id}"
                if ref_key(ref).startswith("Patient/") or ref.startswith("urn:"):
                    return f"{entry.label} is about {ref} (in its {element}), not Patient/{self.patient_id}"
        return None

    def untied(self, entry: Entry, own: set[str]) -> str | None:
        """Why a resource cannot be tied to ``context.patientId`` (None when it can).

        It must name the patient in its own element (``subject``; ``patient`` for an
        AllergyIntolerance) by a reference the request resolves: relative, the Patient
        entry's fullUrl, or an absolute URL on the request's ``fhirServer``. An identifier
        or a display alone, another server's URL or no reference at all could be another
        patient's record, so the resource is left out rather than screened as this one's.
        """
        element = PATIENT_REFERENCE.get(entry.type)
        if element is None:
            return None
        value = entry.resource.get(element)
        if value is None:
            return f"it has no {element}"
        ref = value.get("reference") if isinstance(value, Mapping) else None
        if not isinstance(value, Mapping) or (ref is not None and not isinstance(ref, str)):
            return None  # malformed: the reader makes it the patient's error, naming the field
        if ref is None:
            only = next((part for part in ("identifier", "display") if value.get(part) is not None), None)
            return (
                f"its {element} has only {'an' if only == 'identifier' else 'a'} {only}"
                if only
                else (f"its {element} has no reference")
            )
        if ref in own:
            return None
        if "://" in ref:
            base = (self.fhir_server or "").rstrip("/")
            if base and ref.startswith(base + "/") and ref_key(ref) in own:
                return None
            return f"its {element} {ref[:200]} is not on the request's FHIR server"
        return None if ref_key(ref) in own else f"its {element} is {ref[:200]}"

    def add(self, value: Any, position: str, kind: str | None, source: str) -> None:
        """Take one prefetch (or fetched) value: a Bundle, a resource, or null."""
        if isinstance(value, Mapping) and not is_fhir(value) and "resource" in value:
            value = value["resource"]  # the early (1.0 draft) form: {"response": ..., "resource": ...}
        if value is None:
            if kind:
                self.provided.add(kind)  # null: the client has no data of this kind
            return
        if not is_fhir(value):
            raise InputError("a prefetch value must be a FHIR resource or null", source, position)
        if value["resourceType"] == "OperationOutcome":
            self.notes.append(f"{position}: the client could not prefetch this data (OperationOutcome)")
            return
        found = [e for e in flatten(value, source, position) if e.type != "OperationOutcome"]
        self.entries.extend(found)
        if kind:
            self.provided.add(kind)
        self.provided.update(e.type for e in found)


def read_hook(data: Any, source: str = "request", any_hook: bool = False) -> HookRequest:
    """Check a CDS Hooks request and gather its prefetch; InputError names the field.

    The service answers only its own hook; ``any_hook`` reads the prefetch of any hook
    (``screening check`` screens the patient of an order-sign request too)."""
    if not isinstance(data, Mapping):
        raise InputError("a CDS Hooks request must be a JSON object", source)
    hook = data.get("hook")
    if not isinstance(hook, str) or not hook:
        raise InputError("the request has no hook", source, "hook")
    if hook != HOOK and not any_hook:
        raise InputError(f"this service answers the {HOOK} hook, not {hook[:100]!r}", source, "hook")
    instance = data.get("hookInstance")
    if not isinstance(instance, str) or not instance.strip():
        raise InputError("the request has no hookInstance (a string, e.g. a UUID)", source, "hookInstance")
    context = data.get("context")
    if not isinstance(context, Mapping):
        raise InputError("the request has no context object", source, "context")
    patient = context.get("patientId")
    if not isinstance(patient, str) or not patient.strip():
        raise InputError("the request's context has no patientId", source, "context.patientId")
    patient_id = patient.strip().removeprefix("Patient/")
    server = data.get("fhirServer") if isinstance(data.get("fhirServer"), str) else None
    auth = data.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, Mapping) else None
    request = HookRequest(hook, patient_id, server, token if isinstance(token, str) else None)
    prefetch = data.get("prefetch") or {}
    if not isinstance(prefetch, Mapping):
        raise InputError("prefetch must be an object", source, "prefetch")
    for key, value in prefetch.items():
        request.add(value, f"prefetch.{key}", PREFETCH_TYPES.get(key), source)
    return request


def hook_record(request: HookRequest, ruleset: RuleSet, source: str = "request") -> FhirRecord:
    """The patient's record from what the request (and any fetch) provided.

    A resource that cannot be tied to the patient (:meth:`HookRequest.untied`) is left out
    with a note, and its type is then not complete: a problem list without it is not
    "no such condition"."""
    own = request.own()
    entries, notes, incomplete = [], [], set(request.unavailable)
    for entry in request.entries:
        why = request.untied(entry, own)
        if why is None:
            entries.append(entry)
        else:
            notes.append(f"{entry.label}: not tied to Patient/{request.patient_id} ({why}); not used")
            incomplete.add(entry.type)
    records = read_entries(
        entries,
        ruleset,
        source,
        patient_id=request.patient_id,
        conditions_known="Condition" not in incomplete,
        treatments_known=not any(kind in incomplete for kind in TREATMENT_TYPES),
        medications_known=not any(kind in incomplete for kind in MEDICATION_TYPES),
        allergies_known="AllergyIntolerance" not in incomplete,
        strict=False,
    )
    found = records[0]
    found.notes[:0] = request.notes + notes
    return found


def screen_hook(
    screener: Screener, request: HookRequest, as_of: date | str | None, source: str = "request"
) -> Decision | NotScreened | RecordError:
    """Screen the patient of a hook request from what it (and any fetch) provided."""
    found = hook_record(request, screener.ruleset, source)
    failed = found.failure()
    if failed is not None:
        return failed
    try:
        return screener.screen_fhir_record(found.record, as_of, found.notes)
    except RecordError as error:
        return error


def cards(
    result: Decision | NotScreened | RecordError,
    ruleset: RuleSet,
    unavailable: list[str],
    reasons: Mapping[str, str] | None = None,
    link: str | None = None,
) -> list[dict[str, Any]]:
    """The cards for a screening result, and one for unavailable data if there was any.

    ``reasons`` says why a type is unavailable where it was fetched and the fetch failed;
    ``link``, the URL of the decision's full explanation, goes on the decision's card."""
    out = []
    if isinstance(result, Decision):
        out.append(decision_card(result, ruleset, unchecked(result, ruleset, unavailable), link))
    elif isinstance(result, NotScreened):
        out.append(
            _card("info", _clip(f"Ketamine screening not done: {result.reason}"), result.reason, ruleset)
        )
    else:
        detail = "The patient's data could not be screened:\n\n" + "\n".join(
            f"- {p}" for p in result.problems
        )
        out.append(
            _card("warning", "Ketamine screening could not run: the chart data is not valid", detail, ruleset)
        )
    if unavailable:
        reasons = reasons or {}
        lines = [
            f"- **{kind}**: {UNAVAILABLE_EFFECT[kind]}"
            + (f" ({_md(reasons[kind])})" if kind in reasons else "")
            for kind in unavailable
        ]
        detail = (
            "The EHR did not provide this data and it could not be fetched, so the screening "
            "above was made without it:\n\n" + "\n".join(lines)
        )
        summary = _clip("Ketamine screening without some data: " + ", ".join(unavailable))
        out.append(_card("warning", summary, detail, ruleset))
    return out


# The record fields each resource type gives, and the fields each aggregate reads: a
# criterion that reads a field of a type that was not provided was not really checked.
_DIAGNOSES = frozenset(DIAGNOSIS_FIELDS)
TYPE_FIELDS = {
    "Patient": frozenset({"birth_date", "age", "sex", "deceased"}),
    "Condition": _DIAGNOSES | {"breastfeeding"},
    "Observation": frozenset(
        {"blood_pressure", "heart_rate", "pain_scores", "phq9", "labs", "pregnancy_status", "weight_kg"}
    ),
    "MedicationStatement": frozenset({"medications", "treatments"}),
    "MedicationRequest": frozenset({"medications", "treatments"}),
    "Procedure": frozenset({"treatments"}),
    "AllergyIntolerance": frozenset({"allergies"}),
}
# The fields read by the aggregates that declare no ``reads`` (they read plain fields).
AGGREGATE_FIELDS = {
    "age_years": frozenset({"birth_date", "age"}),
    "breastfeeding_status": frozenset({"breastfeeding", "sex"}),
}
_ALL_FIELDS = frozenset().union(*TYPE_FIELDS.values())


def _reads(fact: Fact) -> frozenset[str]:
    """The record fields a fact reads: from its aggregate's ``reads``, else as listed above,
    else (an aggregate this module does not know) every field."""
    aggregate = fact.aggregate
    if aggregate.name == "record_field":
        return frozenset({str(fact.args.get("field"))})
    if aggregate.reads is not None:
        return frozenset(
            name for item in aggregate.reads for name in (_DIAGNOSES if item == DIAGNOSES else {item})
        )
    return AGGREGATE_FIELDS.get(aggregate.name, _ALL_FIELDS)


def unchecked(decision: Decision, ruleset: RuleSet, unavailable: list[str]) -> dict[str, list[str]]:
    """Criteria the decision settled (met or not met) that read data of an unavailable type.

    Their status rests on data that was not provided, not on the chart: the card must not
    count them as passed. Returns criterion id -> the unavailable types it reads.
    """
    if not unavailable:
        return {}
    missing: dict[str, list[str]] = {}
    for kind in unavailable:
        for name in TYPE_FIELDS.get(kind, ()):
            missing.setdefault(name, []).append(kind)
    specs = {c.id: c for c in ruleset.criteria}
    out: dict[str, list[str]] = {}
    for result in decision.criteria:
        spec = specs.get(result.id)
        if result.status == Status.unknown or spec is None:
            continue
        kinds: set[str] = set()
        for name in spec.facts:
            fact = ruleset.facts.get(name)
            if fact is None:
                continue
            reads = _reads(fact)
            kinds.update(k for field_name in reads for k in missing.get(field_name, ()))
        if kinds:
            out[result.id] = [k for k in unavailable if k in kinds]
    return out


def mismatch_card(problem: str, patient_id: str, ruleset: RuleSet) -> dict[str, Any]:
    """The card when the prefetch is about another patient than ``context.patientId``."""
    detail_text = (
        f"The request is for Patient/{_md(patient_id)}, but {_md(problem)}. Screening one patient "
        "from another patient's data would be wrong, so no screening was done. Check the "
        "prefetch templates of the EHR."
    )
    summary = "Ketamine screening not done: the prefetch does not match the patient"
    return _card("warning", summary, detail_text, ruleset)


def decision_card(
    decision: Decision,
    ruleset: RuleSet,
    not_checked: Mapping[str, list[str]] | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """The card of a decision: indicator by outcome, the decisive reason in the summary.

    With criteria ``not_checked`` (they read data that was unavailable), an eligible outcome,
    or one that only such criteria decide, is reported as incomplete, never as "criteria met".
    """
    not_checked = not_checked or {}
    decisive = [c for c in decision.criteria if c.decisive]
    trusted = [c for c in decisive if c.id not in not_checked]
    indicator, headline = INDICATOR[decision.outcome], HEADLINE[decision.outcome]
    lead = trusted[0] if trusted else None
    if not_checked and (
        decision.outcome in (Outcome.eligible, Outcome.eligible_with_cautions) or not trusted
    ):
        kinds = list(dict.fromkeys(k for found in not_checked.values() for k in found))
        indicator, headline = "warning", HEADLINE[Outcome.needs_information]
        reason = f"no {', '.join(kinds)} data, so {', '.join(not_checked)} not checked"
    elif decision.outcome == Outcome.needs_information:
        # The criteria that leave the outcome open, not whatever is first on the list to ask;
        # the pain condition first, since the others (its onset, its grade) presuppose it.
        unknown = [c for c in trusted if c.status == Status.unknown] or trusted
        # The indication first: without the pain condition, the questions about it cannot be asked.
        unknown.sort(key=lambda c: (c.effect != Effect.indication, effect_rank(c.effect)))
        lead = unknown[0] if unknown else None
        if lead is not None and lead.missing:
            others = len({m for c in unknown for m in c.missing} - {lead.missing[0]})
            reason = f"missing {lead.missing[0]}" + (f" (and {others} more)" if others else "")
        elif lead is not None:
            reason = lead.reason
        else:
            reason = "missing " + (decision.missing_information or ["information"])[0]
    elif lead is not None:
        reason = lead.reason
    else:
        reason = "refer for clinician assessment"
    card = _card(
        indicator, _clip(f"{headline}: {reason}"), detail(decision, not_checked, link), ruleset, lead
    )
    if link:
        card["links"] = [{"label": "Full explanation of this screening", "url": link, "type": "absolute"}]
    return card


def detail(
    decision: Decision, not_checked: Mapping[str, list[str]] | None = None, link: str | None = None
) -> str:
    """The markdown detail, short enough to read in the EHR: the outcome, the decisive
    findings with their evidence, what is missing, the next steps. The other findings are
    named in one line; ``link``, where the service has one, leads to the full explanation
    (``screening check --all`` gives it on the command line)."""
    rs = decision.ruleset
    lines = [
        f"**{decision.outcome.value.replace('_', ' ').capitalize()}** as of {decision.as_of} "
        f"(rule set {rs['id']} {rs['version']}, sha256 {rs['sha256'][:12]}).",
        "",
        _md(decision.summary),
    ]
    not_checked = not_checked or {}
    if not_checked:
        lines += ["", "### Not checked: the data was not provided"]
        for result in decision.criteria:
            if result.id in not_checked:
                lines.append(
                    f"- **{result.id}** {_md(result.title)}: no {', '.join(not_checked[result.id])} data; "
                    f"read as {result.status.replace('_', ' ')} only for want of it"
                )
    decisive = [c for c in decision.criteria if c.decisive]
    if decisive:
        lines += ["", "### Findings"]
        for result in decisive:
            lines += _criterion(result)
    others = [c for c in decision.criteria if c.level is not None and not c.decisive]
    if others:
        lines += [
            "",
            "Also: " + "; ".join(f"{c.id} {_md(c.title)} ({_STATUS[c.status]})" for c in others) + ".",
        ]
    if decision.missing_information:
        lines += ["", "### Missing information"] + [f"- {_md(m)}" for m in decision.missing_information]
    if decision.not_checked:  # cautions left unknown, and data taken as absent
        lines += ["", "### Not checked"] + [f"- {_md(n)}" for n in decision.not_checked]
    if decision.recommendations:
        lines += ["", "### Next steps"] + [f"- {_md(r)}" for r in decision.recommendations]
    notes = decision.extra.get("input_notes") or []
    if notes:
        lines += ["", "### Data read but not used"] + [f"- {_md(n)}" for n in notes[:_NOTES_SHOWN]]
        if len(notes) > _NOTES_SHOWN:
            lines.append(f"- and {len(notes) - _NOTES_SHOWN} more")
    if link:
        lines += ["", f"[Full explanation]({link})"]
    return "\n".join(lines)


_STATUS: dict[str, str] = {Status.met: "met", Status.not_met: "not met", Status.unknown: "unknown"}
_EVIDENCE_SHOWN = 5
_NOTES_SHOWN = 5


def _criterion(result: CriterionResult) -> list[str]:
    out = [f"- **{result.id}** {_md(result.title)}: {_STATUS[result.status]}. {_md(result.reason)}"]
    for item in result.evidence[:_EVIDENCE_SHOWN]:
        where = ", ".join(
            filter(None, [item.get("date"), f"`{item['source']}`" if item.get("source") else None])
        )
        out.append(f"  - {_md(item['what'])}" + (f" ({where})" if where else ""))
    if len(result.evidence) > _EVIDENCE_SHOWN:
        out.append(f"  - and {len(result.evidence) - _EVIDENCE_SHOWN} more")
    return out


def _card(
    indicator: str, summary: str, text: str, ruleset: RuleSet, criterion: CriterionResult | None = None
) -> dict[str, Any]:
    source = next((s for s in criterion.sources if s.get("url")), None) if criterion else None
    if source is None:
        source = next((s.as_dict() for s in ruleset.sources.values() if s.url), {"label": ruleset.title})
    card_source = {"label": source.get("label") or source.get("citation") or ruleset.title}
    if source.get("url"):
        card_source["url"] = source["url"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": indicator,
        "detail": text,
        "source": card_source,
        "overrideReasons": [dict(reason) for reason in OVERRIDE_REASONS],
    }


def _clip(text: str) -> str:
    """At most SUMMARY_LIMIT characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= SUMMARY_LIMIT:
        return text
    cut = text[:SUMMARY_LIMIT]  # one character for the ellipsis
    space = cut.rfind(" ")
    cut = cut[:space] if space > SUMMARY_LIMIT // 2 else cut[: SUMMARY_LIMIT - 1]
    return cut.rstrip(" ,;:-/(") + "…"


def _md(text: str) -> str:
    """Text safe inside markdown: no HTML, no accidental emphasis or links."""
    return text.replace("<", "&lt;").replace("*", "\\*").replace("[", "\\[")


def read_feedback(data: Any, source: str = "request body") -> list[dict[str, Any]]:
    """Check a CDS Hooks feedback request (``{"feedback": [...]}``, CDS Hooks 2.0) strictly and
    return each item as a decision log row's feedback fields; InputError names the field.

    A ``userComment`` is free text that may name the patient: the row says only whether
    there was one. An override reason may be the client's own coding, not one of ours."""
    if not isinstance(data, Mapping):
        raise InputError("a feedback request must be a JSON object", source)
    unknown = sorted(set(data) - {"feedback", "extension"})
    if unknown:
        raise InputError(f"unknown field {unknown[0][:100]!r}", source, unknown[0][:100])
    items = data.get("feedback")
    if not isinstance(items, list) or not items:
        raise InputError("feedback must be a non-empty array of feedback items", source, "feedback")
    return [_feedback_item(item, f"feedback[{n}]", source) for n, item in enumerate(items)]


_FEEDBACK_FIELDS = frozenset(
    {"card", "outcome", "acceptedSuggestions", "overrideReason", "outcomeTimestamp", "extension"}
)


def _feedback_item(item: Any, at: str, source: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InputError("each feedback item must be an object", source, at)
    unknown = sorted(set(item) - _FEEDBACK_FIELDS)
    if unknown:
        raise InputError(f"unknown field {unknown[0][:100]!r}", source, f"{at}.{unknown[0][:100]}")
    card = item.get("card")
    try:
        card_uuid = str(uuid.UUID(card)) if isinstance(card, str) else None
    except ValueError:
        card_uuid = None
    if card_uuid is None:
        raise InputError("card must be the uuid of a card this service returned", source, f"{at}.card")
    outcome = item.get("outcome")
    if outcome not in FEEDBACK_OUTCOMES:
        raise InputError("outcome must be 'accepted' or 'overridden'", source, f"{at}.outcome")
    stamp = item.get("outcomeTimestamp")
    try:
        when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InputError(
            "outcomeTimestamp must be an ISO 8601 date and time with a time zone",
            source,
            f"{at}.outcomeTimestamp",
        )
    accepted = item.get("acceptedSuggestions")
    suggestions: list[str] | None = None
    if accepted is not None:
        if outcome != "accepted":
            raise InputError(
                "acceptedSuggestions is only for the accepted outcome", source, f"{at}.acceptedSuggestions"
            )
        if not isinstance(accepted, list):
            raise InputError("acceptedSuggestions must be an array", source, f"{at}.acceptedSuggestions")
        suggestions = []
        for n, suggestion in enumerate(accepted):
            ident = suggestion.get("id") if isinstance(suggestion, Mapping) else None
            if not isinstance(ident, str) or not ident:
                raise InputError(
                    "each accepted suggestion is an object with an id",
                    source,
                    f"{at}.acceptedSuggestions[{n}].id",
                )
            suggestions.append(ident[:100])
    override = item.get("overrideReason")
    reason: dict[str, str] | None = None
    comment = False
    if override is not None:
        if outcome != "overridden":
            raise InputError(
                "overrideReason is only for the overridden outcome", source, f"{at}.overrideReason"
            )
        if not isinstance(override, Mapping):
            raise InputError("overrideReason must be an object", source, f"{at}.overrideReason")
        unknown = sorted(set(override) - {"reason", "userComment"})
        if unknown:
            raise InputError(
                f"unknown field {unknown[0][:100]!r}", source, f"{at}.overrideReason.{unknown[0][:100]}"
            )
        coding = override.get("reason")
        if coding is not None:
            if (
                not isinstance(coding, Mapping)
                or not isinstance(coding.get("code"), str)
                or not coding["code"]
            ):
                raise InputError(
                    "reason must be a Coding with a code", source, f"{at}.overrideReason.reason.code"
                )
            system = coding.get("system")
            if system is not None and not isinstance(system, str):
                raise InputError(
                    "a Coding's system is a URI string", source, f"{at}.overrideReason.reason.system"
                )
            reason = {"system": (system or "")[:200], "code": coding["code"][:100]}
        remark = override.get("userComment")
        if remark is not None and not isinstance(remark, str):
            raise InputError("userComment must be a string", source, f"{at}.overrideReason.userComment")
        comment = bool(remark)
    return {
        "card_uuid": card_uuid,
        "feedback_outcome": outcome,
        "override_reason": reason,
        "accepted_suggestions": suggestions,
        "outcome_timestamp": when.isoformat(),
        "has_user_comment": comment,
    }
