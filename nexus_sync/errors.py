"""The one tree of errors that nexus-sync raises for people to read."""

from __future__ import annotations


class NexusSyncError(Exception):
    """Something the user has to act on; the command layer prints it and exits 1."""


class ConfigError(NexusSyncError):
    """A setting in nexus-sync.yaml, the environment or the flags is wrong."""


class FileProblem(NexusSyncError):
    """One problem in one file a person wrote, with the line it is on."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


class PostError(FileProblem):
    """One problem in one post file, with the line it is on."""


class InvalidConfig(ConfigError):
    """Every problem found in nexus-sync.yaml, each at its line."""

    def __init__(self, problems: list[FileProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


class InvalidPosts(NexusSyncError):
    """Every problem found in the post files; nothing is sent while any remain."""

    def __init__(self, problems: list[PostError]) -> None:
        super().__init__(f"{len(problems)} problem(s) in post files")
        self.problems = problems


class ApiError(NexusSyncError):
    """The service answered with an error body `{"error", "details"}`."""

    def __init__(
        self, status: int, error: str, details: str, message_id: str | None = None
    ) -> None:
        where = f" for {message_id}" if message_id else ""
        super().__init__(f"Nexus Share answered {status}{where}: {error}: {details}")
        self.status = status
        self.error = error
        self.details = details
        self.message_id = message_id


class AuthError(NexusSyncError):
    """Logging in or renewing the token failed."""


class ServiceUnreachable(NexusSyncError):
    """No answer came from the service, even after retrying."""


class OutcomeUnknown(NexusSyncError):
    """A request that is not safe to repeat was sent, and its answer was lost.

    The service may or may not have carried it out; only a look at the account
    can tell, so it is never simply sent again.
    """


class PublishFailed(NexusSyncError):
    """The service took a publish and could not post the message (FAILED)."""


class UnsafePlan(NexusSyncError):
    """The plan is not safe to apply as it is."""


class TooMuchChange(UnsafePlan):
    """The plan deletes or patches more managed messages than the threshold allows."""


class PlanMismatch(UnsafePlan):
    """A saved or expected plan differs from the plan made now."""


class WriteBackError(NexusSyncError):
    """A post file's `nexus:` block could not be written without harm."""
