"""Screening many records: the run (``run``), its inputs (``inputs``, ``csv_layout``), ordered
resumable output (``output``), the worker processes (``pool``, ``worker``), Dask
(``distributed``), and synthetic cohorts for tests and benchmarks (``synthetic``)."""
