"""The choices of ``screening batch`` outputs, in a module light enough for the CLI to import."""

from __future__ import annotations

DETAILS = ("full", "compact", "outcome")
"""How much of each decision a JSONL line holds (``screening batch --detail``): all of it;
without what every line repeats (``--compact``); or the outcome, the decisive criteria, the
missing items and each status, without any reason (``Decision.as_outcome_dict``)."""

OUT_FORMATS = ("jsonl", "parquet")

ROW_GROUP_SIZE = 10_000
"""Records per Parquet row group, and per part file while a run goes on."""
