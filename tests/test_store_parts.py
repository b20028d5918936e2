"""Parquet parts from the collector's record tuples: what goes in comes back, row groups and all."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailauth_survey import store
from mailauth_survey.collect.domain import record_dict


def _record(i: int) -> tuple:
    answers = (f'd{i}.jp. 300 IN TXT "v=spf1 -all"',) if i % 3 else ()
    rcode = "NOERROR" if i % 3 else "NXDOMAIN"
    return (f"d{i}.jp", f"d{i}.jp", "TXT", rcode, answers, i % 2 == 0, 1.5, 1, "r", "udp", i)


def test_write_tuples_round_trip_over_row_groups(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(store, "TUPLE_CHUNK_ROWS", 4)  # 10 rows: three row groups
    rows = [_record(i) for i in range(10)]
    part = store.write_tuples(tmp_path, "part-00000.parquet", rows, store.RECORDS_SCHEMA)
    table = store.read_table(part)
    assert table.schema.equals(store.RECORDS_SCHEMA)
    got = table.to_pylist()
    assert got == [record_dict(r) for r in rows]
    assert got[3]["queried_at"] == datetime(1970, 1, 1, 0, 0, 0, 3, tzinfo=UTC)


def test_write_tuples_refuses_a_row_of_the_wrong_width(tmp_path) -> None:
    rows = [_record(0), _record(1)[:-1]]  # (a row one value short)
    with pytest.raises(ValueError, match="rows of 11 values"):
        store.write_tuples(tmp_path, "part-00000.parquet", rows, store.RECORDS_SCHEMA)
    assert not list(tmp_path.glob("*.parquet"))  # nothing half written under the part's name
