"""Schemathesis against the real service, from its own /openapi.json: no 5xx, status codes,
content types, headers and bodies as documented, schema-valid input accepted and invalid input
refused, and the stateful links (create -> execute -> runs -> report) followed.

Bounded: a few examples per operation and a fixed seed, so it stays within seconds and repeats.
It draws its own ids: the two operations that list the session's shared pipelines are left
to the second test, so schemathesis never runs, switches or waits on those pipelines; what it
manages to create is deleted afterwards.
"""

from __future__ import annotations

import re
import subprocess
from contextlib import nullcontext
from pathlib import Path

import httpx
import jsonschema_rs
import pytest

from api_shim.app import TABLE
from summit_etl_tests.api_shim.conftest import BIN, Stack

CONFIG = """
request-timeout = 60
workers = 1
seed = 20261130
[generation]
max-examples = 3
database = "none"
[phases.examples.extra-data-sources]
responses = false
[phases.coverage.extra-data-sources]
responses = false
[phases.fuzzing.extra-data-sources]
responses = false
[phases.stateful]
max-steps = 4
[phases.stateful.inference]
algorithms = []

# PipelineConfig's rules across fields (a source has a table or a query, identifiers are SQL
# names, queries are one SELECT, ...) go beyond what JSON Schema says, so a schema-valid body
# may still be refused with a 400 naming the problem; every other check stays as strict.
[[operations]]
include-operation-id-regex = "^(createPipeline|replacePipeline)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "409"]
"""
CHECKS = ",".join(
    [
        "not_a_server_error", "status_code_conformance", "content_type_conformance",
        "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
        "positive_data_acceptance", "missing_required_header", "unsupported_method",
        "allow_header_conformance", "use_after_free", "ensure_resource_availability", "ignored_auth",
    ]
)
LISTING = ("listPipelines", "getLatestQualityReport")
TOKEN = "schemathesis-admin-token"


@pytest.mark.parametrize("tokens", [False, True], ids=["loopback-without-tokens", "with-tokens"])
def test_schemathesis_finds_nothing(stack: Stack, api: httpx.Client, tmp_path: Path, tokens: bool) -> None:
    """With tokens the document declares bearer auth, and `ignored_auth` checks it is enforced."""
    before = {p["id"] for p in api.get("/pipelines").json()}
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    excluded = [arg for operation_id in LISTING for arg in ("--exclude-operation-id", operation_id)]
    auth = ["-H", f"Authorization: Bearer {TOKEN}"] if tokens else []
    service = stack.api(ETL_API_TOKENS=f"admin:{TOKEN}") if tokens else nullcontext(stack.api_url)
    try:
        with service as url:
            done = subprocess.run(
                [str(BIN / "st"), "--config-file", str(config), "run", f"{url}/openapi.json",
                 "--checks", CHECKS, *excluded, *auth, "--no-color"],
                capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
            )
    finally:
        for pipeline in api.get("/pipelines").json():
            if pipeline["id"] not in before:
                api.delete(f"/pipelines/{pipeline['id']}")
        api.post("/admin/resume-all")  # whatever its stop-all stopped
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    # Every operation but the listings (and /openapi.json itself, which schemathesis skips).
    counted = re.search(r"(\d+) selected / (\d+) total", done.stdout)
    assert counted, done.stdout
    selected, total = map(int, counted.groups())
    assert total == sum(len(methods) for methods in TABLE.paths.values()) - 1
    assert selected == total - len(LISTING)
    assert "API Links:" in done.stdout  # the stateful phase ran


def test_the_listings_answer_as_documented(api: httpx.Client) -> None:
    api.post("/pipelines/users-quality/execute?wait=true")  # so a quality report exists
    document = api.get("/openapi.json").json()

    def check(path: str, status: int, body: object) -> None:
        operation = document["paths"][path]["get"]["responses"][str(status)]
        schema = {**operation["content"]["application/json"]["schema"], "components": document["components"]}
        jsonschema_rs.validator_for(schema).validate(body)

    listed = api.get("/pipelines")
    assert listed.status_code == 200 and len(listed.json()) >= 5
    check("/pipelines", 200, listed.json())
    report = api.get("/quality/reports/latest", params={"pipelineId": "users-quality"})
    assert report.status_code == 200
    check("/quality/reports/latest", 200, report.json())
    missing = api.get("/quality/reports/latest", params={"pipelineId": "broken-load"})  # no rules
    assert missing.status_code == 404
    check("/quality/reports/latest", 404, missing.json())
