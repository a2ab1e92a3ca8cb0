"""
The Airflow UI's connection form for our connection type, in headless Chromium against the real stack.

It proves what a user sees: the "Edge Impulse" type offered in "Add Connection", the relabelled standard fields
with the API key masked, our extra fields (from get_provider_info's conn-fields), and that a connection saved
through the form works: the hook's test_connection() succeeds with it, in a process on the stack's metadata DB,
and so does Airflow's connection test endpoint (the one the UI's Test button calls).

Screenshots land in test-artifacts/e2e/ (ui-*.png).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser import CHROMIUM_FLAGS, ensure_chromium
from tests.e2e.stack import ADMIN_USER, EMULATOR_PROJECT_ID, AirflowStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.e2e

CONN_ID = "edgeimpulse_ui"
CONN_TYPE_LABEL = "Edge Impulse"  # "hook-name" in get_provider_info
STANDARD_LABELS = ("Studio URL", "Username (JWT only)", "API key or password")
EXTRA_LABELS = ("Project ID", "Auth type", "API key", "Ingestion URL", "Request timeout (seconds)")
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_FLAGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, airflow_stack: AirflowStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def log_in(page: Page, stack: AirflowStack) -> None:
    page.goto(f"{stack.url}/")
    page.wait_for_url("**/auth/login**")  # SimpleAuthManager's own login page
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.url}/")


def field(dialog: Locator, name: str) -> Locator:
    # By form name: the UI's labels of password-format extras do not point at their inputs (for= mismatch).
    return dialog.locator(f'[name="{name}"]')


def hook_test_connection(stack: AirflowStack, conn_id: str) -> dict[str, Any]:
    """EdgeImpulseHook(...).test_connection() in a fresh process on the stack's AIRFLOW_HOME and metadata DB."""
    code = (
        "import json\n"
        "from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook\n"
        f"ok, message = EdgeImpulseHook(edgeimpulse_conn_id={conn_id!r}).test_connection()\n"
        "print('RESULT ' + json.dumps({'ok': ok, 'message': message}))\n"
    )
    # "server" context: outside a task, Airflow 3's SDK reads connections from the metadata DB only in a server
    # process (what `airflow connections test` sets too); a plain script would see env-var connections only.
    result = stack.run_python(code, extra_env={"_AIRFLOW_PROCESS_CONTEXT": "server"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )
    return dict(json.loads(lines[-1].removeprefix("RESULT ")))


def test_add_an_edge_impulse_connection_through_the_ui(page: Page, airflow_stack: AirflowStack) -> None:
    stack = airflow_stack
    artifacts = stack.settings.artifacts
    log_in(page, stack)
    page.goto(f"{stack.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    dialog.get_by_role("combobox", name="Connection Type").fill(CONN_TYPE_LABEL)
    page.get_by_role("option", name=CONN_TYPE_LABEL, exact=True).click()

    # Standard fields, relabelled by ui-field-behaviour; port and schema hidden; the secret masked.
    for label in STANDARD_LABELS:
        assert dialog.get_by_text(label, exact=True).is_visible(), f"standard field {label!r} missing"
    assert field(dialog, "password").get_attribute("type") == "password"
    assert field(dialog, "port").count() == 0 and field(dialog, "schema").count() == 0
    field(dialog, "host").fill(stack.emulator_url)
    field(dialog, "password").fill(stack.settings.credentials.api_key)

    # Extra fields, from conn-fields; the API-key extra is masked too (schema format: password).
    dialog.get_by_text("Extra Fields", exact=True).click()
    for label in EXTRA_LABELS:
        assert dialog.get_by_text(label, exact=True).is_visible(), f"extra field {label!r} missing"
    assert field(dialog, "element_api_key").get_attribute("type") == "password"
    field(dialog, "element_project_id").fill(str(EMULATOR_PROJECT_ID))
    field(dialog, "element_ingestion_host").fill(stack.emulator_url)
    page.screenshot(path=str(artifacts / "ui-add-connection.png"), full_page=True)

    with page.expect_response(lambda r: r.url.endswith("/api/v2/connections") and r.request.method == "POST") as saved:
        dialog.get_by_role("button", name="Save").click()
    assert saved.value.status == 201, saved.value.text()
    page.get_by_role("row").filter(has_text=CONN_ID).wait_for()
    page.screenshot(path=str(artifacts / "ui-connections.png"))

    stored = stack.api("GET", f"/connections/{CONN_ID}")
    assert (stored["conn_type"], stored["host"], stored["password"]) == ("edgeimpulse", stack.emulator_url, "***")
    extra = json.loads(stored["extra"])
    assert (extra["project_id"], extra["ingestion_host"]) == (EMULATOR_PROJECT_ID, stack.emulator_url)

    # The saved connection works for the hook, read back from the stack's metadata DB.
    tested = hook_test_connection(stack, CONN_ID)
    assert tested["ok"] is True, tested
    assert f"project {EMULATOR_PROJECT_ID}" in tested["message"]


def test_the_connection_test_endpoint_runs_our_hook(airflow_stack: AirflowStack) -> None:
    """POST /api/v2/connections/test: the api-server builds our hook and calls its test_connection()."""
    body = {
        "connection_id": "edgeimpulse_probe",
        "conn_type": "edgeimpulse",
        "host": airflow_stack.emulator_url,
        "password": airflow_stack.settings.credentials.api_key,
        "extra": json.dumps({"project_id": EMULATOR_PROJECT_ID}),
    }
    good = airflow_stack.api("POST", "/connections/test", json=body)
    assert good["status"] is True and f"project {EMULATOR_PROJECT_ID}" in good["message"], good
    wrong_key = "ei_not_the_key_0123456789abcdef"
    bad = airflow_stack.api("POST", "/connections/test", json={**body, "password": wrong_key})
    assert bad["status"] is False and "401" in bad["message"], bad
    assert wrong_key not in bad["message"], "a failed test must not echo the key"
