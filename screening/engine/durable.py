"""The only module that imports durable-rules. Every one of its sharp edges stays here.

What durable-rules 2.0.28 does, and what this module does about it:

* A fact that matches no rule raises ``MessageNotHandledException`` in its ``Host`` API.
  We call the C-level functions instead, where that is result code 1: "nothing fired".
* ``post`` (events) fires only the first matching rule. We assert one *fact* per record,
  so every matching rule fires.
* Each ruleset holds at most 1,024 live session ids (then ``MemoryError``, later a
  segfault), and a session is costly to create and delete. An engine keeps one session:
  each record's fact gets a fresh fact id, its actions are drained, and it is retracted.
  The session is then checked to hold no fact, so no record sees another's; if it does
  hold one, or if anything fails mid-record, the session is deleted (in a ``finally``)
  and the next record starts a fresh one. This halves the engine's time per record
  against a sid per record with ``delete_state`` (``bench/bench.py``).
* ``delete_state`` on a sid that never ran an action can segfault. Each session runs one
  warm-up action when it opens.
* The stock ``Host`` starts timer threads that steal actions from the caller. We never
  create a ``Host``; actions are drained synchronously with ``start_action_for_state``
  and ``complete_and_start_action``.
* The C core is not thread-safe and holds the GIL for each call. One lock serialises
  calls on an engine; scale with processes, one engine per process.
* Ruleset names are global and cannot be registered twice. Each engine gets a unique
  name from the process id and a counter.
* ``delete_state`` frees ~300 KB, which glibc trims and then faults back in on the next
  record. Raising glibc's trim and mmap thresholds once per process avoids that cost.
* A "field is absent" condition (``$nex``) also matches the engine's own state fact. The
  compiler never emits one; every rule is guarded by ``t == "screening"``.
* Its JSON parser rejects a number with an exponent but no decimal point (``1e-7``,
  ``1e+16``: error code 204), which is how orjson and ``repr`` write very small and very
  large floats, and it saturates integers outside 64 bits. :func:`engine_json` writes
  every fact and ruleset in a form it reads as the same value (``1.0e-07``).

Every exception from durable-rules is translated into :class:`EngineError` by
:func:`_translate`, the one place that maps them.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import durable_rules_engine as _dre
import orjson

from screening.errors import EngineError

WARMUP_RULE = "$warmup"
_WARMUP_TYPE = "$warmup"
_NOT_HANDLED = 1
_names = itertools.count(1)
_malloc_tuned = False
_INT64 = 2**63
_PLAIN = frozenset({str, bool, type(None)})
T = TypeVar("T")


def engine_json(value: Any) -> str:
    """JSON text that durable-rules' own parser reads as ``value``, for facts and rulesets.

    orjson writes it, with each number it would write in a form the engine misreads
    replaced by raw text that the engine reads right (:func:`_number`).
    """
    return orjson.dumps(_for_engine(value)).decode()


def _for_engine(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        # orjson writes no exponent between 1e-6 and 1e16; only other floats need a look.
        return value if value == 0 or 1e-4 <= abs(value) < 1e15 else _number(value)
    if kind is int:
        return value if -_INT64 <= value < _INT64 else _number(value)
    if kind is dict:
        return {key: item if type(item) in _PLAIN else _for_engine(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_for_engine(item) for item in value]
    return value


def _number(value: float) -> float | orjson.Fragment:
    """A number as durable-rules reads it: exponents after a decimal point, 64-bit integers.

    An integer outside 64 bits (the engine would saturate it to the largest one, equal to
    any other such integer) is written as the nearest float, which keeps its order against
    every threshold a rule set may hold (rule set numbers stay within 2**53).
    """
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            value = sys.float_info.max if value > 0 else -sys.float_info.max
    if not math.isfinite(value):
        raise EngineError("durable-rules cannot be given a number that is not finite")
    text = orjson.dumps(value)
    mantissa, exponent, power = text.partition(b"e")
    if not exponent or b"." in mantissa:
        return value
    return orjson.Fragment(mantissa + b".0e" + power)


def _tune_malloc() -> None:
    """Keep freed per-sid memory in the heap instead of trimming it (glibc only)."""
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)


def _translate(what: str, call: Callable[[], T]) -> T:
    """Run one durable-rules call; any exception it raises becomes an EngineError."""
    try:
        return call()
    except EngineError:
        raise
    except Exception as error:  # the C extension raises plain Exception subclasses
        raise EngineError(f"durable-rules failed to {what}: {type(error).__name__}: {error}") from error


class DurableEngine:
    """One compiled durable-rules ruleset, evaluated through its C-level calls: the production
    :class:`screening.engine.base.RuleEngine`."""

    def __init__(self, definition: Mapping[str, Any], label: str = "screening") -> None:
        _tune_malloc()
        self.name = f"{label}_{os.getpid()}_{next(_names)}"
        rules = dict(definition)
        rules[WARMUP_RULE] = {"all": [{"m": {"t": _WARMUP_TYPE}}]}
        text = engine_json(rules)
        self._handle = _translate("create the ruleset", lambda: _dre.create_ruleset(self.name, text))
        # durable-rules keeps a ruleset and its session (about 0.9 MiB for the default rule
        # set) until both are deleted: delete them when the engine is dropped, not only on
        # close(). Not at interpreter exit, when the extension's state may already be going.
        self._live: list[str | None] = [None]  # the open session, shared with the finalizer
        self._finalizer = weakref.finalize(self, _delete_ruleset, self._handle, self._live)
        self._finalizer.atexit = False
        self._lock = threading.Lock()
        self._sessions = itertools.count(1)
        self._fact_ids = itertools.count(1)
        self._open_session()

    @property
    def _sid(self) -> str | None:
        return self._live[0]

    @_sid.setter
    def _sid(self, sid: str | None) -> None:
        self._live[0] = sid

    @property
    def session(self) -> str | None:
        """The session id records are asserted in (a new one after any failure)."""
        return self._sid

    def held_facts(self) -> int:
        """Facts the session holds between records: always 0."""
        with self._lock:
            return len(self._facts_in_session()) if self._sid else 0

    def fired(self, fact: Mapping[str, Any]) -> frozenset[str]:
        """The names of the rules that fire for one fact, seen by no other record."""
        with self._lock:
            if self._sid is None:
                self._open_session()
            return self._run(fact)

    def _open_session(self) -> None:
        self._sid = f"s{next(self._sessions)}"
        warmup = self._run({"t": _WARMUP_TYPE})
        if warmup != {WARMUP_RULE}:
            raise EngineError(f"warm-up fired {sorted(warmup)} instead of {WARMUP_RULE}")

    def _run(self, fact: Mapping[str, Any]) -> frozenset[str]:
        sid = self._sid
        assert sid is not None
        payload = dict(fact)
        payload["sid"] = sid
        payload["id"] = str(next(self._fact_ids))
        text = engine_json(payload)
        clean = False
        try:
            fired = self._assert_and_drain(sid, text)
            _translate("retract a fact", lambda: _dre.retract_fact(self._handle, text))
            clean = not self._facts_in_session()
            return fired
        finally:
            if not clean:  # a failure, or a fact left behind: the next record gets a new session
                self._sid = None
                _translate("delete a session", lambda: _dre.delete_state(self._handle, sid))

    def _assert_and_drain(self, sid: str, text: str) -> frozenset[str]:
        result = _translate("assert a fact", lambda: _dre.assert_fact(self._handle, text))
        code, state = result[0], result[1]
        if code == _NOT_HANDLED:
            return frozenset()
        if code != 0:
            raise EngineError(f"durable-rules returned result code {code} in session {sid}")
        fired: list[str] = []
        action = _translate("start an action", lambda: _dre.start_action_for_state(self._handle, state))
        message = action[1] if action else None
        while message:
            fired.append(_rule_of(message))
            message = _translate(
                "complete an action", lambda: _dre.complete_and_start_action(self._handle, state)
            )
        return frozenset(fired)

    def _facts_in_session(self) -> list[Any]:
        sid = self._sid
        held = _translate("read the session's facts", lambda: _dre.get_facts(self._handle, sid))
        return list(orjson.loads(held))

    def close(self) -> None:
        """Delete the session and the ruleset from durable-rules (once; later calls do nothing)."""
        with self._lock:
            self._finalizer()


def _delete_ruleset(handle: Any, live: list[str | None]) -> None:
    # A finalizer must not raise; the ruleset is unreachable either way. Its session goes
    # first: delete_ruleset alone leaves the session's memory behind.
    if live[0] is not None:
        with contextlib.suppress(Exception):  # the C extension raises plain Exception subclasses
            _dre.delete_state(handle, live[0])
        live[0] = None
    with contextlib.suppress(Exception):
        _dre.delete_ruleset(handle)


def _rule_of(message: str) -> str:
    # An action message is {"<rule name>": {"m": {...fact...}}}; rule names never hold quotes.
    if not message.startswith('{"'):
        raise EngineError(f"unexpected action message from durable-rules: {message[:80]!r}")
    return message[2 : message.index('"', 2)]
