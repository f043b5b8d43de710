"""The HTTP service (``app``, FastAPI), CDS Hooks (``cdshooks``) and fetching missing FHIR data
from the EHR (``fhir_fetch``). Nothing outside this package imports FastAPI."""
