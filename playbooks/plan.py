"""The Plan a mutating command becomes, what approvers see, and its digest.

The digest binds approvals to exactly what was shown: verb, target, steps and the facts
the plan was built on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class PlannedStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    touches: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    verb: str
    cluster: str
    target: str
    title: str
    steps: list[PlannedStep]
    # Risk-bearing observations re-checked before execution (never resourceVersions).
    facts: dict[str, Any] = Field(default_factory=dict)
    preview: list[str] = Field(default_factory=list)
    risk: Literal["low", "medium", "high"] = "low"
    # Set when the cluster is already as asked: reported, not repeated.
    nothing_to_do: str | None = None
    locks: list[str] = Field(default_factory=list)

    @property
    def digest(self) -> str:
        bound = self.model_dump(include={"verb", "cluster", "target", "steps", "facts"})
        return hashlib.sha256(canonical_json(bound).encode()).hexdigest()

    @property
    def short_digest(self) -> str:
        return self.digest[:6]
