"""A /predict answer as a few lines of text for a terminal.

The answer is parsed with the service's own response models (``app.answer.schema`` holds
pydantic models only, no numerical imports), so a field renamed on the server fails here
loudly instead of printing a wrong figure.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.answer.schema import ModalityReport, PredictResponse
from app.client import UnexpectedAnswerError

# the README's severity bands of the rounded total
BANDS = {
    "none": "0-4",
    "mild": "5-9",
    "moderate": "10-14",
    "moderately_severe": "15-19",
    "severe": "20-24",
}
MODALITIES = ("visual", "audio", "text")
# one telling quality figure per modality (README: inputs.<modality>.quality)
QUALITY_FIGURES = {
    "face_found_ratio": "face in {:.0%} of frames",
    "speech_seconds": "{:.1f} s of speech",
    "words": "{:.0f} words",
}
BAR_WIDTH = 12
WIDTH = 88


def parse_answer(body: Mapping[str, Any]) -> PredictResponse:
    try:
        return PredictResponse.model_validate(body)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
        raise UnexpectedAnswerError(f"the answer does not have the documented shape (at {fields})") from None


def score_bar(value: float, maximum: float, width: int = BAR_WIDTH) -> str:
    """``[####........]``: ``value`` out of ``maximum`` in ``width`` cells (ASCII, any terminal)."""
    filled = round(width * min(max(value / maximum, 0.0), 1.0)) if maximum > 0 else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _modality_line(name: str, weight: float, report: ModalityReport) -> str:
    if not report.used:
        return f"    {name:<8}{weight:5.2f}  not used: {report.reason or 'no reason given'}"
    facts = [report.source] if report.source else []
    if report.duration_s is not None:
        facts.append(f"{report.duration_s:.1f} s")
    facts += [text.format(report.quality[key]) for key, text in QUALITY_FIGURES.items() if key in report.quality]
    facts.append(f"{report.windows} window" + ("" if report.windows == 1 else "s"))
    return f"    {name:<8}{weight:5.2f}  {score_bar(weight, 1.0)}  used: {', '.join(facts)}"


def format_summary(body: Mapping[str, Any]) -> str:
    """The readable summary: total and interval, band, P(total >= cutoff), items, modality
    weights and use, warnings, model, request id and the research-use notice."""
    answer = parse_answer(body)
    phq8, weights = answer.phq8, answer.attention.modalities
    interval = phq8.interval
    lines = [
        "PHQ-8 estimate (research use only, not a diagnosis)",
        f"  total           {phq8.total:.1f} / 24   "
        f"{interval.level:.0%} interval {interval.low:.1f} - {interval.high:.1f}",
        f"  severity band   {phq8.severity.replace('_', ' ')} ({BANDS.get(phq8.severity, '?')}, "
        f"from the rounded total {phq8.total_rounded})",
        f"  P(total >= {phq8.cutoff:g})  {phq8.probability_at_or_above_cutoff:.0%}",
        "  items (expected score, 0-3)",
    ]
    lines += [f"    {item.item:<15}{item.score:4.1f}  {score_bar(item.score, 3.0)}" for item in phq8.items]
    lines.append("  modality weights")
    lines += [_modality_line(name, getattr(weights, name), getattr(answer.inputs, name)) for name in MODALITIES]
    if answer.warnings:
        lines.append("  warnings")
        for warning in answer.warnings:
            lines += textwrap.wrap(warning, WIDTH, initial_indent="    - ", subsequent_indent="      ")
    model = answer.model
    validated = "clinically validated" if model.clinically_validated else "not clinically validated"
    lines += [
        f"  model           {model.name} v{model.version} on {model.provider} "
        f"(trained on {model.training_data} data, {validated})",
        f"  request id      {answer.request_id}",
        "",
        *textwrap.wrap(answer.notice, WIDTH),
    ]
    return "\n".join(lines)
