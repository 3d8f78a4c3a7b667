"""A seeded, bounded property-based run over the whole OpenAPI document, as an admin.

Schemathesis draws requests from each operation's documented parameters and bodies, both
valid ones and ones that break the schema; every response must be documented (status,
content type, body schema), no request may get a 5xx, and invalid input must be refused.
Cases are drawn first (deterministically: a fixed seed, no example database) and then sent
through the app in process, one at a time, each with a fresh admin session, so that a
logout or a password change drawn earlier cannot lock the later cases out.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.services import Services
from server.settings import Settings
from tests.conftest import REDIS_URL
from tests.world import World, login_as

SEED = 20261126
# Examples drawn per operation and generation mode: enough to reach the edges (huge integers, NUL bytes, wrong
# types), few enough that the run stays well under a minute on two slow cores for both backends.
EXAMPLES = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def settings(backend: str) -> Settings:
    """The usual test settings, with a payment API, so that its webhook is tried as it runs (not as 503)."""
    return Settings(
        _env_file=None,
        ENVIRONMENT="test",
        REDIS_URL=REDIS_URL if backend == "postgresql" else None,
        PAYMENT_API_URL="http://payments.invalid",
        PAYMENT_API_KEY="fuzz-webhook-key",
    )


# The document is the same on both backends: its cases are drawn once and sent to each.
_DRAWN: dict[str, list[tuple[str, str, Case[Any]]]] = {}


def _all_cases(document: dict[str, Any]) -> list[tuple[str, str, Case[Any]]]:
    """Every operation's cases in both modes, as (label, mode, case), drawn once per document."""
    key = json.dumps(document, sort_keys=True)
    if key not in _DRAWN:
        schema = schemathesis.openapi.from_dict(document)
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the document has an operation schemathesis cannot read: {result}"
            operations.append(result.ok())
        _DRAWN[key] = [
            (operation.label, mode.value, case)
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for case in _draw(operation, mode)
        ]
    return _DRAWN[key]


def _draw(operation: Any, mode: GenerationMode) -> list[Case[Any]]:
    """The cases of one operation in one mode, drawn deterministically."""
    drawn: list[Case[Any]] = []

    @seed(SEED)
    @hypothesis.settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def collect(case: Case[Any]) -> None:
        drawn.append(case)

    try:
        collect()
    except Unsatisfiable:  # nothing to break: an operation without parameters or body has no invalid form
        pass
    return drawn


async def _send(client: httpx.AsyncClient, case: Case[Any], headers: dict[str, str]) -> httpx.Response:
    """Send one case through the app, as schemathesis would have sent it."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    data = kwargs.get("data")
    if isinstance(data, str | bytes):  # raw bodies (a form that is not a mapping) go as content
        kwargs["content"], data = data, None
    request = client.build_request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        json=kwargs.get("json"),
        content=kwargs.get("content"),
        data=data,
        files=kwargs.get("files"),
    )
    return await asyncio.wait_for(client.send(request), timeout=30)


# Drawing the cases costs more than sending them: both backends' runs share one worker process, which draws once.
@pytest.mark.xdist_group("schema-fuzz")
async def test_every_operation_answers_as_documented(
    client: httpx.AsyncClient, services: Services, world: World
) -> None:
    """Drawn requests, valid and invalid, never get a 5xx and always get a documented answer."""
    document = (await asyncio.wait_for(client.get("/api/v1/openapi.json"), timeout=10)).json()
    failures: list[str] = []
    for label, mode, case in _all_cases(document):
        headers = await asyncio.wait_for(login_as(services, world.admin.id), timeout=10)
        response = await _send(client, case, headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as failure:  # one failed check, or several
            failures.append(f"{label} [{mode}]: {str(failure)[:1500]}")
    assert not failures, f"{len(failures)} failing cases:\n\n" + "\n\n".join(failures)
