"""Schemathesis holds the emulator to schema/nexus-share.openapi.yaml, over HTTP."""

from __future__ import annotations

import requests
import schemathesis
from conftest import PROJECT, EmulatorServer
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

CONTRACT = PROJECT / "schema" / "nexus-share.openapi.yaml"
# Examples per operation: enough to find what the full run (150) found, within
# the suite's time budget. derandomize makes every run send the same requests.
EXAMPLES = 15

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
