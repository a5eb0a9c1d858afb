"""The LoCoMo reading that locomo.py and compression.py share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def locomo_data(bench: Callable[[str], ModuleType]) -> ModuleType:
    return bench("locomo_data")


def test_session_dates_are_utc_in_every_format(locomo_data: ModuleType) -> None:
    parse = locomo_data.parse_date
    assert parse(" 1:56 pm on 8 May, 2023 ").isoformat() == "2023-05-08T13:56:00+00:00"
    assert parse("10:02 am on 2 Jun, 2023").isoformat() == "2023-06-02T10:02:00+00:00"
    assert parse("8 May, 2023").isoformat() == "2023-05-08T00:00:00+00:00"
    with pytest.raises(ValueError, match="matches none of"):
        parse("May 8th")


def test_turns_render_with_either_caption_label(locomo_data: ModuleType) -> None:
    turn = locomo_data.Turn("D1:1", "Ana", "Look!", "a bowl")
    assert turn.render() == 'Ana said, "Look!" [shares a bowl]'
    assert turn.render("See!", caption_label="shares:") == 'Ana said, "See!" [shares: a bowl]'
    assert locomo_data.Turn("D1:1", "Ana", "Look!").render() == 'Ana said, "Look!"'


def test_evidence_recall_counts_no_evidence_as_found(locomo_data: ModuleType) -> None:
    assert locomo_data.evidence_recall(["D1:2", "D9:9"], ("D1:2", "D2:1")) == 0.5
    assert locomo_data.evidence_recall([], ()) == 1.0
    assert locomo_data.evidence_recall({1, 3}, [1, 2, 3, 4]) == 0.5


def test_the_reader_keeps_sessions_observations_and_questions(
    locomo_data: ModuleType, locomo_file: Callable[..., Path]
) -> None:
    sessions = {
        2: ("10:02 am on 2 June, 2023", [("Ben", "Hi"), ("Ana", "Look!", "a bowl"), ("Ben", "Oh")]),
        1: ("1:56 pm on 8 May, 2023", [("Ana", "Hello")]),
    }
    observation = {"session_2_observation": {"Ben": [["Ben said hi.", [["D2:1"], "D2:3"]]]}}
    qa = [{"question": "Who said hi?", "evidence": ["D2:3; D2:1"], "category": 4},
          {"question": "Anything?", "evidence": []}]  # fmt: skip
    (conv,) = locomo_data.read_locomo(locomo_file(sessions, qa, observation=observation))
    assert [s.number for s in conv.sessions] == [1, 2]  # numeric order, whatever the file's
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D2:1", "D2:2", "D2:3"]
    assert conv.turns[2].caption == "a bowl" and conv.turns[1].caption is None
    (obs,) = conv.sessions[1].observations
    assert (obs.speaker, obs.evidence) == ("Ben", ("D2:1", "D2:3"))
    assert [(q.category, q.evidence) for q in conv.questions] == [(4, ("D2:3", "D2:1")), (None, ())]
    assert locomo_data.read_locomo(locomo_file(sessions, qa), limit=1)[0].sample_id == "conv-t1"


def test_evidence_ids_keep_order_and_evidence_turns_sort(locomo_data: ModuleType) -> None:
    assert locomo_data.evidence_ids(["D2:1; D1:2", "D:1:3", "D1:2"]) == ("D2:1", "D1:2")
    assert locomo_data.evidence_ids("D1:2") == ()  # a bare string is read item by item
    assert locomo_data.evidence_turns("D2:1 D1:2") == ["D1:2", "D2:1"]
    assert locomo_data.evidence_turns([["D1:10", "D1:9"], "D1:9"]) == ["D1:10", "D1:9"]
    assert locomo_data.session_of("D12:3") == 12
    with pytest.raises(ValueError, match="D<session>:<turn>"):
        locomo_data.session_of("D:1:3")
