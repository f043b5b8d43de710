"""Tests of screening.engine: the compiler, the durable-rules engine and the reference engine."""
