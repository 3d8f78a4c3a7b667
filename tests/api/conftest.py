"""Fixtures of the AsyncAPI tests: the document of the device protocol, built once per module."""

from __future__ import annotations

from typing import Any

import pytest

from server.api.asyncapi import asyncapi_document
from server.settings import Settings
from tests.api.asyncapi_helpers import COMMANDS


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as the real registry produces it."""
    return asyncapi_document(Settings(_env_file=None), COMMANDS)
