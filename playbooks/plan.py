"""The Plan a mutating command becomes, what approvers see, and its digest.

The digest binds approvals to exactly what was shown: verb, target, steps (with their typed
parameters) and the facts the plan was built on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class StepParams(BaseModel):
    """What one planned step needs to run, fixed at planning time and approved with the plan.

    Each step kind subclasses this with `step: Literal["<step name>"] = "<step name>"`; the
    `step` field is the discriminator a stored plan's steps are read back by.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Step name -> its parameters model, filled as the models are defined.
    kinds: ClassVar[dict[str, type[StepParams]]] = {}

    step: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        names = get_args(cls.model_fields["step"].annotation)
        if len(names) != 1 or cls.model_fields["step"].default != names[0]:
            raise TypeError(
                f'{cls.__name__}.step must be `Literal["name"] = "name"` (one step name, defaulted)'
            )
        known = StepParams.kinds.get(names[0])
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"step {names[0]!r} has two parameter models: {known} and {cls}")
        StepParams.kinds[names[0]] = cls

    @classmethod
    def read(cls, value: Any) -> StepParams:
        """A stored step's parameters as the model its step name says."""
        if isinstance(value, StepParams):
            return value
        if not isinstance(value, dict) or value.get("step") not in StepParams.kinds:
            raise ValueError(f"unknown step parameters: {value!r}")
        return StepParams.kinds[value["step"]].model_validate(value)


class PlannedStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    title: str
    touches: list[str] = Field(default_factory=list)
    # None only for steps of playbooks not yet converted to typed parameters (legacy path).
    params: SerializeAsAny[StepParams] | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _params_by_step_name(cls, value: Any) -> StepParams | None:
        return None if value is None else StepParams.read(value)

    @model_validator(mode="after")
    def _name_matches_params(self) -> PlannedStep:
        if self.params is not None and self.params.step != self.name:
            raise ValueError(f"step {self.name!r} carries parameters of {self.params.step!r}")
        return self

    @classmethod
    def of(cls, params: StepParams, title: str, *, touches: list[str] | None = None) -> PlannedStep:
        return cls(name=params.step, title=title, touches=touches or [], params=params)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    verb: str
    cluster: str
    target: str
    title: str
    steps: list[PlannedStep]
    # Risk-bearing observations re-checked before execution (never resourceVersions). Read by
    # drift checks and shown to approvers; steps get what they need from their parameters.
    facts: dict[str, Any] = Field(default_factory=dict)
    preview: list[str] = Field(default_factory=list)
    risk: Literal["low", "medium", "high"] = "low"
    # Set when the cluster is already as asked: reported, not repeated.
    nothing_to_do: str | None = None
    locks: list[str] = Field(default_factory=list)
    # Raised each time the plan goes back for approval (drift, a closed execution window). Votes
    # bind to the digest, so a vote given for an earlier revision never counts for this one.
    revision: int = 0

    @property
    def digest(self) -> str:
        bound = self.model_dump(
            mode="json", include={"verb", "cluster", "target", "steps", "facts", "revision"}
        )
        return hashlib.sha256(canonical_json(bound).encode()).hexdigest()

    @property
    def short_digest(self) -> str:
        return self.digest[:6]
