"""The fact vocabulary: aggregates that turn a record into the facts rule files name.

``base`` holds the registry, :class:`~screening.aggregates.base.Finding`, evidence and the
shared helpers; ``diagnoses``, ``observations`` and ``treatment`` hold the aggregates, which
register themselves when this package is imported (so importing any part of it loads them all).
"""

from screening.aggregates import diagnoses, observations, treatment  # noqa: F401  (registration)
