"""Pure policy modules: each reads a domain's stored answers and returns its columns, never the network.

Every module in :data:`MODULES` has the shape of :class:`PolicyModule`; ``analysis`` runs
:mod:`.apex` first (nothing else is asked until the apex answers are in), then each of these in
order. A new record kind is a new module here, added to :data:`MODULES`, with its columns in
``store.DOMAIN_COLUMNS``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..answers import AnswerSet
from . import apex, bimi, dane, dkim, dmarc, mta_sts, spf, tlsrpt


class PolicyModule(Protocol):
    """What ``analysis`` asks of a policy module (a module object satisfies it)."""

    #: The domains-table columns :func:`analyze` returns, every one of them, always.
    COLUMNS: tuple[str, ...]

    def first_queries(self, name: str, dns: AnswerSet) -> tuple[tuple[str, str], ...]:
        """The (qname, qtype) that :func:`analyze` asks first and alone, for an existing
        ``name`` (normal form) whose apex answers are in: the collector asks them without
        running the module when one is missing (``analysis.analyze_parts``)."""
        ...

    def analyze(self, domain: str, dns: AnswerSet) -> dict[str, Any]:
        """The module's columns of ``domain``, asking ``dns`` for what they need; never raises."""
        ...


#: The policy modules after the apex, in the order ``analysis`` runs them.
MODULES: tuple[PolicyModule, ...] = (spf, dmarc, dkim, mta_sts, tlsrpt, bimi, dane)

__all__ = [
    "MODULES",
    "PolicyModule",
    "apex",
    "bimi",
    "dane",
    "dkim",
    "dmarc",
    "mta_sts",
    "spf",
    "tlsrpt",
]
