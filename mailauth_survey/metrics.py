"""The names of the adoption metrics (SPEC.md "Metrics"), without importing pandas.

`report` computes them; the command line lists them in its help, which must stay cheap to load.
"""

from __future__ import annotations

#: Every metric, in SPEC.md order (report columns, JSON keys, table rows).
METRICS: tuple[str, ...] = (
    "domains", "has_mx", "null_mx",
    "spf_valid", "spf_permerror",
    "spf_all_fail", "spf_all_softfail", "spf_all_neutral", "spf_all_pass", "spf_all_none",
    "dmarc_valid", "dmarc_invalid",
    "dmarc_none", "dmarc_quarantine", "dmarc_reject", "dmarc_enforcing", "dmarc_rua",
    "dkim_domainkey", "dkim_selector",
    "mta_sts", "tlsrpt", "bimi", "bimi_declined",
    "mta_sts_enforce", "mta_sts_mismatch", "starttls", "dane", "dnssec",
    "nxdomain", "servfail", "timeout", "refused", "error",
)  # fmt: skip

#: Rows of the people's table that SPEC.md's JSON/CSV keys do not list (the keys are "exactly the
#: metric names above"): left out of JSON and CSV unless asked for with ``--metric``.
TABLE_ONLY: tuple[str, ...] = ("bimi_declined",)

#: Metrics that count a final status; their percentages are of all listed domains.
ERROR_METRICS: tuple[str, ...] = ("nxdomain", "servfail", "timeout", "refused", "error")

#: Metrics whose input can be missing for some domains (a probe not run, a resolver that does not
#: validate): they carry ``<metric>_measured`` and are null for a group where none was measured.
PARTIAL_METRICS: tuple[str, ...] = (
    "mta_sts_enforce", "mta_sts_mismatch", "starttls", "dane", "dnssec",
)  # fmt: skip

#: Built-in groupings; ``--by`` also takes a column of the input lists.
GROUPINGS: tuple[str, ...] = ("category", "mx_provider", "dns_provider")
PROVIDER_GROUPINGS: tuple[str, ...] = ("mx_provider", "dns_provider")
#: Providers shown by name at most (report and chart alike).
DEFAULT_TOP = 15
