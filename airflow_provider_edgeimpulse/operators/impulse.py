"""Create (or replace) the project's impulse from a definition: a dict, a JSON text or a JSON file (local or in
object storage)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeimpulse.operators._base import EdgeImpulseBaseOperator
from airflow_provider_edgeimpulse.storage import is_object_path, is_url, shown_location, storage_path

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

BLOCK_LISTS = ("inputBlocks", "dspBlocks", "learnBlocks")


def load_definition(definition: Any) -> dict[str, Any]:
    """The impulse definition as a dict, checked for the three block lists Studio needs."""
    source = "definition"
    if is_object_path(definition) or (isinstance(definition, str) and is_url(definition)):
        path = storage_path("definition", definition)
        if not path.is_file():
            raise ValueError(f"definition {shown_location(path)!r}: no such object in its store")
        source = f"definition file {shown_location(path)!r}"
        definition = path.read_text(encoding="utf-8")
    elif isinstance(definition, os.PathLike):
        definition = os.fspath(definition)
    if isinstance(definition, str):
        text = definition.strip()
        if not text.startswith("{") and source == "definition":
            path = Path(text).expanduser()
            if not path.is_file():
                raise ValueError(f"definition {definition!r} is neither a JSON object nor an existing JSON file")
            source = f"definition file {str(path)!r}"
            text = path.read_text(encoding="utf-8")
        try:
            definition = json.loads(text)
        except ValueError as err:
            raise ValueError(f"{source} is not valid JSON: {err}") from None
    if not isinstance(definition, dict):
        raise ValueError(
            f"{source} must be a JSON object with {', '.join(BLOCK_LISTS)}; got {type(definition).__name__}"
        )
    problems = []
    for key in BLOCK_LISTS:
        blocks = definition.get(key)
        if not isinstance(blocks, list):
            problems.append(f"{key} is missing or not a list")
        elif not all(isinstance(b, dict) and b.get("type") for b in blocks):
            problems.append(f"every entry of {key} must be an object with a 'type'")
    if not problems and not definition["inputBlocks"]:
        problems.append("inputBlocks is empty")
    if not problems and not definition["learnBlocks"]:
        problems.append("learnBlocks is empty")
    if problems:
        raise ValueError(f"{source} is not an impulse: " + "; ".join(problems))
    return definition


class EdgeImpulseCreateImpulseOperator(EdgeImpulseBaseOperator):
    """
    Create the project's impulse (``POST impulse``), replacing the one it has.

    The definition is checked (``inputBlocks``, ``dspBlocks`` and ``learnBlocks`` present, as lists of
    blocks with a ``type``) before anything is sent. Creating the same definition again is harmless, so a
    retried task simply posts it again.

    :param definition: ``{name?, inputBlocks, dspBlocks, learnBlocks}`` as a dict, as JSON text, or a JSON
        file: a local path, a URL of Airflow's object storage (``s3://bucket/impulse.json``) or an
        ``ObjectStoragePath``. Templated (a dict's string values are rendered too).
    :param edgeimpulse_conn_id: the Airflow connection to Edge Impulse.
    :param project_id: overrides the connection's project. Templated.
    :return: the new impulse's id (``int``).
    """

    template_fields: Sequence[str] = ("project_id", "definition")
    template_fields_renderers = {"definition": "json"}

    def __init__(self, *, definition: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.definition = definition

    def execute(self, context: Context) -> int:
        definition = load_definition(self.definition)
        answer = self.hook.create_impulse(definition)
        impulse_id = answer.get("id")
        if isinstance(impulse_id, bool) or not isinstance(impulse_id, int | str) or not str(impulse_id).isdigit():
            raise ValueError(f"Edge Impulse created the impulse but answered no impulse id: {answer!r}")
        url = self.push_studio_url(context, "create-impulse")
        self.log.info("Created Edge Impulse impulse %s: %s", impulse_id, url)
        return int(impulse_id)
