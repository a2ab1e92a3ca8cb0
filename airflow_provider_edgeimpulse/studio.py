"""
Edge Impulse Studio's names that every layer uses: the default connection, sample categories, model variants,
and the addresses of Studio pages. Ground floor: imports nothing, so a DAG file that imports a sensor does not
pull in the hook for a constant.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_CONN_ID = "edgeimpulse_default"
DEFAULT_STUDIO_URL = "https://studio.edgeimpulse.com"

# The categories samples are kept in (RawDataFilterCategory of edgeimpulse-api 1.96). The older OpenAPI file
# says "anomaly" where the newer client says "post-processing".
SAMPLE_CATEGORIES = ("training", "testing", "validation", "post-processing")
# Where the ingestion service files an upload ("split": 80/20 between training and testing).
UPLOAD_CATEGORIES = ("training", "testing", "anomaly", "split")
# The variants a trained model is built, tested and deployed in (Studio's modelType / model variant names).
MODEL_VARIANTS = ("int8", "float32", "akida")


def studio_page_url(studio_url: str, project_id: int, page: str) -> str:
    """The Studio page ``page`` (e.g. ``"acquisition/training"``) of a project."""
    return f"{studio_url}/studio/{project_id}/{page}"


def studio_job_url(studio_url: str, project_id: int, job_id: int, *, tuner: bool = False) -> str:
    """The Studio page of a job, or of an EON Tuner run (``tuner``)."""
    return studio_page_url(studio_url, project_id, f"tuner/{job_id}" if tuner else f"jobs/{job_id}")


def deployment_asset_uri(project_id: int, deployment_format: str, studio_url: str = DEFAULT_STUDIO_URL) -> str:
    """
    The Asset a built deployment is announced as: ``edgeimpulse://<studio host>/project/<id>/deployment/<format>``.

    The Studio host keeps projects of two Studio instances apart; the format keeps a firmware team's Arduino
    library apart from the C++ library of the same project.
    """
    return f"edgeimpulse://{studio_host(studio_url)}/project/{project_id}/deployment/{deployment_format}"


def samples_asset_uri(project_id: int, category: str, studio_url: str = DEFAULT_STUDIO_URL) -> str:
    """
    The Asset a project's new samples of one category are announced as (an asset watcher's events):
    ``edgeimpulse://<studio host>/project/<id>/samples/<category>``, named like the deployment Asset.
    """
    return f"edgeimpulse://{studio_host(studio_url)}/project/{project_id}/samples/{category}"


def studio_host(studio_url: str) -> str:
    """The ``host[:port]`` of a Studio URL, never its user info: what names a Studio in Asset and lineage names."""
    return urlsplit(studio_url).netloc.rsplit("@", 1)[-1] or studio_url.strip("/")


def studio_versions_url(studio_url: str, project_id: int) -> str:
    """The Studio page that lists a project's versions."""
    return studio_page_url(studio_url, project_id, "versions")
