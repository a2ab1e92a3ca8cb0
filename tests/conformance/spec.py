"""Edge Impulse's OpenAPI definition (a copy beside this file), amended where the generated client says otherwise.

Parsing the 1 MB YAML takes most of a second: it happens once per process, on the first request checked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openapi_core import OpenAPI

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
# The definition's only server; requests are checked as if sent to it, whatever port the emulator has.
STUDIO_ORIGIN = "https://studio.edgeimpulse.com"
STUDIO_PREFIX = "/v1/"

_lock = threading.Lock()
_api: OpenAPI | None = None


def load_definition() -> dict[str, Any]:
    """The definition as published, with the amendments of ``exceptions.AMENDMENTS`` applied."""
    import yaml

    from tests.conformance.exceptions import AMENDMENTS

    with SPEC_PATH.open("rb") as stream:
        definition: dict[str, Any] = yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for amendment in AMENDMENTS:
        amendment.apply(definition)
    return definition


def studio_api() -> OpenAPI:
    """The amended definition, parsed once per process (several emulator threads may ask at once)."""
    global _api
    with _lock:
        if _api is None:
            from openapi_core import Config, OpenAPI

            # The definition's own validity is a test of its own (test_conformance.py), not a per-process cost.
            _api = OpenAPI.from_dict(load_definition(), config=Config(spec_validator_cls=None))
        return _api
