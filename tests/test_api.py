"""The notebook API is the CLI's engine, and importing the package stays cheap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import mailauth_survey as ms
from mailauth_survey import analysis, collect, report
from mailauth_survey.policies import spf


def test_api_names_are_the_engine_functions() -> None:
    assert ms.load is report.load
    assert ms.adoption is report.adoption
    assert ms.scan is collect.scan
    assert ms.reanalyze is analysis.reanalyze
    assert ms.check_host is spf.check_host


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        ms.no_such_thing  # noqa: B018


def test_import_does_not_load_pandas() -> None:
    code = "import sys, mailauth_survey; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_single_machine_path_does_not_import_distributed() -> None:
    code = "import sys, mailauth_survey.collect, mailauth_survey.cli; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("given", [None, "jemalloc"])
def test_notebook_gets_the_clis_arrow_memory_pool(given) -> None:
    """`import mailauth_survey` (as a notebook does, before pyarrow) chooses the system allocator,
    as the CLI always did; a pool the user chose in the environment is kept."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if given:
        env["ARROW_DEFAULT_MEMORY_POOL"] = given
    code = "import mailauth_survey, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == (given or "system")
