"""ConsolidationPolicy: defaults, validation, and loading from JSON or TOML files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from engramdb.consolidation import (
    DEFAULT_CLUSTER_THRESHOLD,
    DEFAULT_DUPLICATE_THRESHOLD,
    ConsolidationPolicy,
)
from engramdb.consolidation.calibration import PAIRS, calibrate
from engramdb.errors import ValidationError


def test_defaults_run_every_stage() -> None:
    policy = ConsolidationPolicy()
    assert policy.stages() == ["expire", "dedup", "cluster", "forget"]
    assert policy.dedup.threshold == DEFAULT_DUPLICATE_THRESHOLD
    assert policy.cluster.threshold == DEFAULT_CLUSTER_THRESHOLD
    assert policy.cluster.archive_members
    assert policy.summarize is None


def test_toml_and_json_files_give_the_same_policy(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('clock = "wall"\n[dedup]\nthreshold = 0.9\n[forget]\nenabled = false\n')
    js = tmp_path / "p.json"
    js.write_text(
        json.dumps({"clock": "wall", "dedup": {"threshold": 0.9}, "forget": {"enabled": False}})
    )
    a, b = ConsolidationPolicy.from_file(toml), ConsolidationPolicy.from_file(js)
    assert a == b
    assert a.stages() == ["expire", "dedup", "cluster"]
    assert a.dedup.threshold == 0.9 and a.clock == "wall"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"dedup": {"threshold": 1.5}}', "dedup.threshold"),
        ('{"dedup": {"treshold": 0.9}}', "dedup.treshold"),
        ('{"forget": {"archive_below": 0.01, "delete_below": 0.1}}', "delete_below"),
        ('{"cluster": {"min_size": 5, "max_size": 3}}', "max_size"),
        ('{"summarize": "no_such_module_xyz:f"}', "cannot import"),
        ("[1, 2]", "mapping"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        ConsolidationPolicy.from_file(path)


def test_missing_policy_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        ConsolidationPolicy.from_file(tmp_path / "absent.toml")


def test_summarize_can_be_an_import_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_summary_mod.py").write_text("def first(texts):\n    return texts[0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = ConsolidationPolicy.from_mapping({"summarize": "my_summary_mod:first"})
    assert policy.summarize is not None and policy.summarize(["a", "b"]) == "a"
    assert "summarize" not in policy.model_dump()  # a callable is not serialized
    sys.modules.pop("my_summary_mod", None)


def test_calibration_runs_on_any_embedder() -> None:
    from engramdb.embeddings import HashingEmbedder

    result = calibrate(HashingEmbedder().embed)
    assert set(result.quantiles) == {"reworded", "paraphrase", "contrast", "topic", "different"}
    assert result.duplicate_rates["contrast"] <= 0.05
    assert result.cluster_rates["topic"] == 0.0
    assert len(PAIRS) == 48


@pytest.mark.model
def test_defaults_are_the_calibration_of_the_bundled_model(minilm: object) -> None:
    result = calibrate(minilm.embed)  # type: ignore[attr-defined]
    assert result.duplicate == DEFAULT_DUPLICATE_THRESHOLD
    assert result.cluster == pytest.approx(DEFAULT_CLUSTER_THRESHOLD)
    assert result.duplicate_rates["reworded"] >= 0.9
    assert np.isclose(result.cluster_rates["different"], 0.0)
