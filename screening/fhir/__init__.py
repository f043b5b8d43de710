"""FHIR R4 read into native records: resources and Bundles (``bundle``), what each resource
means (``map``, ``observations``), code lists from the value sets (``terms``), a patient's
record put together (``assemble``), Bulk Data exports (``bulk``), and screening of FHIR input
(``screening``)."""
