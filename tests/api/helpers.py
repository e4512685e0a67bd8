"""Checks shared by the API tests."""

from __future__ import annotations

import re

from app.answer.schema import PredictResponse
from app.contract import MODALITIES


def valid_answer(body: dict, used: set[str]) -> PredictResponse:
    """Parse an answer and check the invariants every /predict answer must hold."""
    answer = PredictResponse.model_validate(body)
    weights = answer.attention.modalities.model_dump()
    assert abs(sum(weights.values()) - 1.0) < 2e-3, weights
    for name in MODALITIES:
        report = getattr(answer.inputs, name)
        assert report.used == (name in used), (name, report)
        if name not in used:
            assert weights[name] == 0.0
            assert all(getattr(w, name) == 0.0 for w in answer.attention.per_item.values())
        else:
            assert weights[name] > 0.0
    assert len(answer.phq8.items) == 8
    assert abs(sum(i.score for i in answer.phq8.items) - answer.phq8.total) < 0.01
    assert answer.phq8.interval.low <= answer.phq8.total <= answer.phq8.interval.high + 0.125
    assert answer.model.training_data == "synthetic" and answer.model.clinically_validated is False
    assert any("synthetic" in w for w in answer.warnings)
    assert "Research use only" in answer.notice
    return answer


def metric_sample(metrics: str, name: str, **labels: str) -> float:
    """Value of the sample ``name`` whose label set is exactly ``labels`` (0 when absent)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")) == labels:
            return float(match.group(2))
    return 0.0
