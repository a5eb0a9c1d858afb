"""The LoCoMo reading that locomo.py and compression.py share."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def locomo_data(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    import locomo_data

    return locomo_data


def test_session_dates_are_utc_in_every_format(locomo_data: ModuleType) -> None:
    parse = locomo_data.parse_date
    assert parse(" 1:56 pm on 8 May, 2023 ").isoformat() == "2023-05-08T13:56:00+00:00"
    assert parse("10:02 am on 2 Jun, 2023").isoformat() == "2023-06-02T10:02:00+00:00"
    assert parse("8 May, 2023").isoformat() == "2023-05-08T00:00:00+00:00"
    with pytest.raises(ValueError, match="matches none of"):
        parse("May 8th")


def test_turns_render_with_either_caption_label(locomo_data: ModuleType) -> None:
    turn = {"speaker": "Ana", "text": "Look!", "blip_caption": "a bowl"}
    assert locomo_data.render_turn(turn) == 'Ana said, "Look!" [shares a bowl]'
    assert (
        locomo_data.render_turn(turn, "See!", caption_label="shares:")
        == 'Ana said, "See!" [shares: a bowl]'
    )
    assert locomo_data.render_turn({**turn, "blip_caption": ""}) == 'Ana said, "Look!"'


def test_evidence_ids_keep_order_and_evidence_turns_sort(locomo_data: ModuleType) -> None:
    assert locomo_data.evidence_ids(["D2:1; D1:2", "D:1:3", "D1:2"]) == ("D2:1", "D1:2")
    assert locomo_data.evidence_ids("D1:2") == ()  # a bare string is read item by item
    assert locomo_data.evidence_turns("D2:1 D1:2") == ["D1:2", "D2:1"]
    assert locomo_data.evidence_turns([["D1:10", "D1:9"], "D1:9"]) == ["D1:10", "D1:9"]
    assert locomo_data.session_of("D12:3") == 12
    with pytest.raises(ValueError, match="D<session>:<turn>"):
        locomo_data.session_of("D:1:3")
