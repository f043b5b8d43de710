"""CDS Hooks: the ``patient-view`` service that screens from prefetch and answers with cards.

    GET  /cds-services                  -> discovery(ruleset)
    POST /cds-services/ketamine-screening -> read_hook(...), then cards(...)

The service declares prefetch templates for the seven resource types the screener reads.
The client's prefetch may use other keys (the resources are recognised by type), give a
Bundle or a single resource per key, or ``null`` (no data, per the specification). A type
that was not provided at all is *unavailable*: it is fetched from ``fhirServer`` when the
server allows it (:mod:`screening.fhir_fetch`); otherwise the decision is made without it
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
from typing import Any

from .decision import OUTCOME_ORDER, CriterionResult, Decision, Outcome
from .errors import InputError, NotScreened, RecordError
from .fhir import Entry, FhirRecord, flatten, is_fhir, read_entries
from .fhir_map import TREATMENT_TYPES
from .fhir_terms import OBSERVATION_SETS
from .ruleset import RuleSet

SERVICE_ID = "ketamine-screening"
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
                "hook": "patient-view",
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

    @property
    def unavailable(self) -> list[str]:
        return [kind for kind in PREFETCH_TYPES.values() if kind not in self.provided]

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


def read_hook(data: Any, source: str = "request") -> HookRequest:
    """Check a CDS Hooks request and gather its prefetch; InputError names the field."""
    if not isinstance(data, Mapping):
        raise InputError("a CDS Hooks request must be a JSON object", source)
    hook = data.get("hook")
    if not isinstance(hook, str) or not hook:
        raise InputError("the request has no hook", source, "hook")
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
    """The patient's record from what the request (and any fetch) provided."""
    provided = request.provided
    records = read_entries(
        request.entries,
        ruleset,
        source,
        patient_id=request.patient_id,
        conditions_known="Condition" in provided,
        treatments_known=all(kind in provided for kind in TREATMENT_TYPES),
    )
    found = records[0]
    found.notes[:0] = request.notes
    return found


def cards(
    result: Decision | NotScreened | RecordError, ruleset: RuleSet, unavailable: list[str]
) -> list[dict[str, Any]]:
    """The cards for a screening result, and one for unavailable data if there was any."""
    out = []
    if isinstance(result, Decision):
        out.append(decision_card(result, ruleset))
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
        lines = [f"- **{kind}**: {UNAVAILABLE_EFFECT[kind]}" for kind in unavailable]
        detail = (
            "The EHR did not provide this data and it could not be fetched, so the screening "
            "above was made without it:\n\n" + "\n".join(lines)
        )
        summary = _clip("Ketamine screening without some data: " + ", ".join(unavailable))
        out.append(_card("warning", summary, detail, ruleset))
    return out


def decision_card(decision: Decision, ruleset: RuleSet) -> dict[str, Any]:
    """The card of a decision: indicator by outcome, the decisive reason in the summary."""
    decisive = [c for c in decision.criteria if c.decisive]
    if decision.outcome == Outcome.needs_information and decision.missing_information:
        reason = "missing " + decision.missing_information[0]
    elif decisive:
        reason = decisive[0].reason
    else:
        reason = "refer for clinician assessment"
    card = _card(
        INDICATOR[decision.outcome],
        _clip(f"{HEADLINE[decision.outcome]}: {reason}"),
        detail(decision),
        ruleset,
        decisive[0] if decisive else None,
    )
    return card


def detail(decision: Decision) -> str:
    """The markdown detail: outcome, findings with evidence and sources, what is missing."""
    rs = decision.ruleset
    lines = [
        f"**{decision.outcome.value.replace('_', ' ').capitalize()}** as of {decision.as_of} "
        f"(rule set {rs['id']} {rs['version']}, sha256 {rs['sha256'][:12]}).",
        "",
        _md(decision.summary),
    ]
    findings = [c for c in decision.criteria if c.level is not None]
    if findings:
        lines += ["", "### Findings"]
        for result in sorted(
            findings, key=lambda c: (not c.decisive, OUTCOME_ORDER.index(c.level or Outcome.eligible))
        ):
            lines += _criterion(result)
    if decision.missing_information:
        lines += ["", "### Missing information"] + [f"- {_md(m)}" for m in decision.missing_information]
    passed = [c.id for c in decision.criteria if c.level is None and c.status != "unknown"]
    if passed:
        lines += ["", f"Criteria without findings: {', '.join(passed)}."]
    if decision.recommendations:
        lines += ["", "### Next steps"] + [f"- {_md(r)}" for r in decision.recommendations]
    notes = decision.extra.get("input_notes") or []
    if notes:
        lines += ["", "### Data read but not used"] + [f"- {_md(n)}" for n in notes[:20]]
        if len(notes) > 20:
            lines.append(f"- ... and {len(notes) - 20} more")
    return "\n".join(lines)


def _criterion(result: CriterionResult) -> list[str]:
    mark = " (decisive)" if result.decisive else ""
    out = [
        f"- **{result.id}** {_md(result.title)}: {result.status.replace('_', ' ')}{mark}. {_md(result.reason)}"
    ]
    for item in result.evidence:
        where = ", ".join(
            filter(None, [item.get("date"), f"`{item['source']}`" if item.get("source") else None])
        )
        out.append(f"  - {_md(item['what'])}" + (f" ({where})" if where else ""))
    cited = [
        f"[{s.get('label') or s['id']}]({s['url']})" if s.get("url") else _md(s.get("label") or s["id"])
        for s in result.sources
    ]
    if cited:
        out.append(f"  - Sources: {'; '.join(cited)}")
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
    }


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _md(text: str) -> str:
    """Text safe inside markdown: no HTML, no accidental emphasis or links."""
    return text.replace("<", "&lt;").replace("*", "\\*").replace("[", "\\[")
