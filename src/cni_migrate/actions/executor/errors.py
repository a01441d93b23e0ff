"""Errors of the executor, each mapped to an exit code by the CLI."""

from __future__ import annotations


class ExecutorError(Exception):
    """Something went wrong while running a plan (exit 1: the run stopped; the journal says where)."""


class PlanInputError(ExecutorError):
    """The plan, its journal or its backups cannot be used as given (exit 2); nothing was written."""


class StepFailed(ExecutorError):
    def __init__(self, step: str, message: str) -> None:
        self.step = step
        super().__init__(f"step {step}: {message}")


class GateClosed(ExecutorError):
    """The run reached a gate nobody approved (exit 1: waiting); ``apply --resume --approve STEP`` continues."""

    def __init__(self, step: str, prompt: str, details: list[str]) -> None:
        self.step = step
        self.prompt = prompt
        self.details = details
        super().__init__(f"step {step} waits at a gate: {prompt}")


class Interrupted(ExecutorError):
    """Ctrl-C (or SIGTERM): stopped after the current action, journal written."""


class LeaseHeld(PlanInputError):
    """Another executor runs this plan."""
