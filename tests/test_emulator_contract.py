"""Schemathesis holds the emulator to schema/nexus-share.openapi.yaml, over HTTP."""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
from conftest import PROJECT, EmulatorServer
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

CONTRACT = PROJECT / "schema" / "nexus-share.openapi.yaml"
# Examples per operation, sized to the suite's time budget; runs with 120 (and
# 60 stateful scenarios) found nothing more. derandomize makes every run send
# the same requests.
EXAMPLES = 12
STATEFUL_EXAMPLES = 10

schema = schemathesis.openapi.from_path(str(CONTRACT))
session = requests.Session()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_emulator_keeps_its_contract(case, api: EmulatorServer) -> None:
    # A request can be valid by the schema and still be refused by a rule no
    # schema can say (a scheduledFor in the past, a reused idempotency key,
    # an unknown id); every other check runs, negative data included.
    case.call_and_validate(
        base_url=api.url,
        session=session,
        headers=api.bearer("schemathesis"),
        excluded_checks=[positive_data_acceptance],
    )


def test_the_emulator_keeps_its_contract_along_the_links(api: EmulatorServer) -> None:
    # The links of POST /messages lead to real ids, so the answers of GET,
    # PATCH, DELETE and publish for existing messages are checked too.
    headers = api.bearer("schemathesis-stateful")

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": api.url, "session": session, "headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

    api.clear_requests()
    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )

    # The links were followed: existing messages were read, changed and sent.
    statuses = {(e["endpoint"], e["status"]) for e in api.requests()["log"]}
    assert {
        ("GET /messages/{id}", 200),
        ("PATCH /messages/{id}", 200),
        ("POST /messages/{id}/publish", 200),
    } <= statuses
