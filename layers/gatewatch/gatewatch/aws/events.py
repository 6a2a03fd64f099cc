"""Typed Lambda events: the Step Functions state as it reaches each task (Powertools Parser models).

Extra keys are kept (the state machine adds ``diag``, ``walk``, ``record``... as it goes), the keys a step needs
are checked, so a malformed event fails at the edge with the field named.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DiagnosisState(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    incident_id: str = Field(min_length=1, max_length=80)
    target: str = Field(min_length=1, max_length=63)
    outside: dict[str, Any]
    config: dict[str, Any] = Field(default_factory=dict)
    host: dict[str, Any] = Field(default_factory=dict)
    onbox_params: str = ""


def parse_record_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The RecordFunction is called twice: with the state (verdict) and with ``{mode: outcome, state}``."""
    if event.get("mode") == "outcome":
        state = DiagnosisState.model_validate(event.get("state") or {})
        return "outcome", state.model_dump(by_alias=True, exclude_none=True)
    return "verdict", DiagnosisState.model_validate(event).model_dump(by_alias=True, exclude_none=True)
