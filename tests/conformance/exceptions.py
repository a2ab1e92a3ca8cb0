"""
Every departure from ``openapi.yaml`` that the conformance check allows, each with its reason: the one place to
read them. Where the definition and Edge Impulse's generated client (``edgeimpulse-api``) disagree, the client is
newer and is what Studio answers, so the definition is amended to match the client, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Amendment:
    """Changes the node at a JSON pointer of the definition (``change`` gets the node, returns its new value, or
    None to remove it)."""

    pointer: str
    change: Callable[[Any], Any]
    reason: str

    def apply(self, definition: dict[str, Any]) -> None:
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in self.pointer.split("/")[1:]]
        node: Any = definition
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = self.change(node.get(last))
        if value is None:
            del node[last]
        else:
            node[last] = value


def _schema(name: str) -> str:
    return f"/components/schemas/{name}"


def _set(value: Any) -> Callable[[Any], Any]:
    def change(old: Any) -> Any:
        if old == value:
            raise AssertionError(f"openapi.yaml already has {value!r} here: drop the amendment")
        return value

    return change


def _not_required(*names: str) -> Callable[[Any], Any]:
    def change(required: list[str]) -> list[str] | None:
        missing = [name for name in names if name not in required]
        if missing:
            # The definition was replaced by one that no longer needs this amendment: drop it here.
            raise AssertionError(f"{missing} are not required in openapi.yaml any more")
        # OpenAPI 3.0 wants a 'required' list to have an item, else no list at all.
        return [name for name in required if name not in names] or None

    return change


_CLIENT = "edgeimpulse-api 1.96.3"

AMENDMENTS: tuple[Amendment, ...] = (
    Amendment(
        "/paths/~1api~1{projectId}~1deployment~1history~1{deploymentVersion}~1download",
        _set(
            {
                "get": {
                    "operationId": "downloadHistoricDeployment",
                    "parameters": [
                        {"$ref": "#/components/parameters/ProjectIdParameter"},
                        {"name": "deploymentVersion", "in": "path", "required": True, "schema": {"type": "integer"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "ZIP or BIN file",
                            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                        }
                    },
                }
            }
        ),
        f"Not in openapi.yaml; {_CLIENT} has it (DeploymentApi.download_historic_deployment: GET, path parameters "
        "projectId and deploymentVersion, 200 application/zip). The provider downloads the build a job made by "
        "its deploymentVersion, so a later build cannot be downloaded in its place.",
    ),
    Amendment(
        _schema("ProjectInfoResponse") + "/allOf/1/required",
        _not_required("downloads"),
        f"{_CLIENT}'s ProjectInfoResponse has no 'downloads' field at all.",
    ),
    Amendment(
        _schema("ProjectInfoResponse") + "/allOf/1/properties/dataSummaryPerCategory/required",
        _set(["training", "testing", "validation", "postProcessing"]),
        f"{_CLIENT} requires training, testing, validation and postProcessing in dataSummaryPerCategory and has no "
        "'anomaly' (Studio's categories today; 'anomaly' is the old third one).",
    ),
    *(
        Amendment(
            _schema(block) + "/required",
            _not_required("primaryVersion"),
            f"{_CLIENT}'s {block} has no 'primaryVersion' field; the provider sends impulses in the client's shape.",
        )
        for block in ("ImpulseInputBlock", "ImpulseDspBlock", "ImpulseLearnBlock")
    ),
    Amendment(
        _schema("LearnBlockType") + "/enum",
        _set(
            [
                "anomaly",
                "anomaly-gmm",
                "keras",
                "keras-transfer-image",
                "keras-transfer-kws",
                "keras-object-detection",
                "keras-regression",
                "keras-akida",
                "keras-akida-transfer-image",
                "keras-akida-object-detection",
                "keras-visual-anomaly",
                "keras-freeform",
                "keras-anomaly",
                "vlm",
            ]
        ),
        f"{_CLIENT}'s LearnBlockType adds keras-freeform, keras-anomaly and vlm to the definition's list.",
    ),
    Amendment(
        "/components/parameters/RawDataCategoryQueryParameter/schema/enum",
        _set(["training", "testing", "validation", "post-processing", "all"]),
        f"{_CLIENT} types this parameter as RawDataFilterCategory: training, testing, validation, post-processing "
        "and 'all' (the provider counts and lists a whole project with 'all'); no 'anomaly'.",
    ),
    Amendment(
        _schema("TunerTrial") + "/properties/blocks/items/required",
        _not_required("blockId"),
        f"{_CLIENT}'s TunerTrialBlocksInner requires id, retries, status and type; it has no 'blockId' (nor does the "
        "definition's own list of properties).",
    ),
    Amendment(
        _schema("TunerTrialImpulse") + "/required",
        _not_required("inputBlock", "dspBlock", "learnBlock"),
        "The definition requires inputBlock, dspBlock and learnBlock but its properties are inputBlocks, dspBlocks "
        f"and learnBlocks; {_CLIENT}'s TunerTrialImpulse has the plural ones, all optional.",
    ),
    Amendment(
        _schema("ModelVariantStats") + "/required",
        _not_required("confusionMatrixRowHeaders", "confusionMatrixColumnHeaders"),
        f"{_CLIENT}'s ModelVariantStats has no confusionMatrixRowHeaders or confusionMatrixColumnHeaders.",
    ),
    Amendment(
        _schema("ClassifyJobResponse") + "/allOf/1/properties/accuracy/required",
        _not_required("rows"),
        f"{_CLIENT}'s ClassifyJobResponseAllOfAccuracy has no 'rows' field.",
    ),
)

# Rules that are not amendments of one place in the definition.
ERROR_RULE = (
    "The definition documents only the 200 answer of each operation, yet Studio answers errors with 4xx/5xx too. "
    "An answer with status >= 400 is checked against the generic error shape, a JSON body {success: false, error: "
    "string} (the definition's GenericApiResponse with an error; what the provider's error model reads), not "
    "against the operation's 200 schema. So is a 200 answer whose JSON says success: false, Studio's other way "
    "of answering an error."
)
STREAM_RULE = (
    "A streamed answer (a deployment download) is checked for its status and media type; its bytes are not "
    "buffered for the check."
)
OUT_OF_SCOPE = {
    "/api/": "ingestion (POST /api/{category}/files) is Edge Impulse's ingestion service, not in this definition",
    "/socket.io": "the Socket.IO endpoint is not a REST operation; the codec's tests cover its frames",
    "/_emulator/": "the emulator's own control API, not Edge Impulse's",
}
