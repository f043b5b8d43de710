"""The only module that imports durable-rules. Every one of its sharp edges stays here.

What durable-rules 2.0.28 does, and what this module does about it:

* A fact that matches no rule raises ``MessageNotHandledException`` in its ``Host`` API.
  We call the C-level functions instead, where that is result code 1: "nothing fired".
* ``post`` (events) fires only the first matching rule. We assert one *fact* per record,
  so every matching rule fires.
* Each ruleset holds at most 1,024 live session ids (then ``MemoryError``, later a
  segfault). Each record gets a fresh sid, and ``delete_state`` runs in a ``finally``.
* ``delete_state`` on a sid that never ran an action can segfault. One warm-up action
  runs when the engine is built.
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

Every exception from durable-rules is translated into :class:`EngineError` by
:func:`_translate`, the one place that maps them.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import durable_rules_engine as _dre
import orjson

from .errors import EngineError

WARMUP_RULE = "$warmup"
_WARMUP_TYPE = "$warmup"
_NOT_HANDLED = 1
_names = itertools.count(1)
_malloc_tuned = False
T = TypeVar("T")


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


class Engine:
    """One compiled durable-rules ruleset, evaluated through its C-level calls."""

    def __init__(self, definition: Mapping[str, Any], label: str = "screening") -> None:
        _tune_malloc()
        self.name = f"{label}_{os.getpid()}_{next(_names)}"
        rules = dict(definition)
        rules[WARMUP_RULE] = {"all": [{"m": {"t": _WARMUP_TYPE}}]}
        text = orjson.dumps(rules).decode()
        self._handle = _translate("create the ruleset", lambda: _dre.create_ruleset(self.name, text))
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self._live = 0
        warmup = self._run({"t": _WARMUP_TYPE})
        if warmup != {WARMUP_RULE}:
            raise EngineError(f"warm-up fired {sorted(warmup)} instead of {WARMUP_RULE}")

    @property
    def live_sessions(self) -> int:
        """Session ids currently held in the engine (0 between records)."""
        return self._live

    def fired(self, fact: Mapping[str, Any]) -> frozenset[str]:
        """The names of the rules that fire for one fact, in a session of its own."""
        with self._lock:
            return self._run(fact)

    def _run(self, fact: Mapping[str, Any]) -> frozenset[str]:
        sid = str(next(self._sids))
        payload = dict(fact)
        payload["sid"] = sid
        payload["id"] = sid
        text = orjson.dumps(payload).decode()
        fired: list[str] = []
        self._live += 1
        try:
            result = _translate("assert a fact", lambda: _dre.assert_fact(self._handle, text))
            code, state = result[0], result[1]
            if code == _NOT_HANDLED:
                return frozenset()
            if code != 0:
                raise EngineError(f"durable-rules returned result code {code} for a fresh session")
            action = _translate("start an action", lambda: _dre.start_action_for_state(self._handle, state))
            message = action[1] if action else None
            while message:
                fired.append(_rule_of(message))
                message = _translate(
                    "complete an action", lambda: _dre.complete_and_start_action(self._handle, state)
                )
        finally:
            self._live -= 1
            _translate("delete a session", lambda: _dre.delete_state(self._handle, sid))
        return frozenset(fired)

    def close(self) -> None:
        """Remove the ruleset from durable-rules' global registry."""
        with self._lock:
            _translate("delete the ruleset", lambda: _dre.delete_ruleset(self._handle))


def _rule_of(message: str) -> str:
    # An action message is {"<rule name>": {"m": {...fact...}}}; rule names never hold quotes.
    if not message.startswith('{"'):
        raise EngineError(f"unexpected action message from durable-rules: {message[:80]!r}")
    return message[2 : message.index('"', 2)]
