"""The stages of a run, and the error that says which one failed."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    extraction = "extraction"
    transformation = "transformation"
    validation = "validation"
    loading = "loading"


class StageFailure(RuntimeError):
    """A run failed in `stage`; the message is the underlying error's, secrets excluded."""

    def __init__(self, stage: Stage | str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {cause}")
        self.stage = Stage(stage)
        self.cause = cause
