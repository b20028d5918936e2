"""mailauth-survey: email authentication and transport security adoption across .jp.

The notebook API, the same engine as the command line::

    import mailauth_survey as ms
    ms.scan(["jp-names.txt"], "results", snapshot="2026Q4", options=ms.ScanOptions(resolvers=["127.0.0.1"]))
    df = ms.load("results")
    ms.adoption(df[df.snapshot == "2026Q4"], by="category")

Attributes are imported on first use, so ``import mailauth_survey`` stays cheap.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# The system allocator for Arrow, in a notebook as on the command line: the Parquet writer's C++
# side allocates from the pool chosen when pyarrow loads (pa.set_memory_pool does not reach it),
# and the system allocator gives freed buffers back where mimalloc keeps them per thread. Set here,
# before anything of this package imports pyarrow, so `import mailauth_survey` first is enough;
# a value the user set wins, and the --workers processes inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

_API = {
    "load": "report",
    "adoption": "report",
    "report": "report",
    "trend": "report",
    "diff": "report",
    "methods": "report",
    "chart": "charts",
    "scan": "collect",
    "retry_errors": "collect",
    "ScanOptions": "collect",
    "reanalyze": "analysis",
    "analyze_domain": "analysis",
    "check_host": "policies.spf",
    "Answer": "answers",
    "AnswerSet": "answers",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'mailauth_survey' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    """The lazy API names too, so ``dir(mailauth_survey)`` and tab completion show them."""
    return sorted({*globals(), *_API})
