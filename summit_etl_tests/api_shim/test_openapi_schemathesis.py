"""Schemathesis against the real service, from its own /openapi.json: no 5xx, status codes,
content types, headers and bodies as documented, schema-valid input accepted and invalid input
refused, and the stateful links (create -> execute -> runs -> report) followed.

Bounded: a few examples per operation, a fixed seed, so it stays within seconds and repeats.
Generated ids only (no ids picked from responses): the session's shared pipelines are not
run or switched by it; pipelines it manages to create are deleted afterwards.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from api_shim.app import TABLE
from summit_etl_tests.api_shim.conftest import BIN, Stack

CONFIG = """
request-timeout = 120
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


def test_schemathesis_finds_nothing(stack: Stack, api: httpx.Client, tmp_path: Path) -> None:
    before = {p["id"] for p in api.get("/pipelines").json()}
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    try:
        done = subprocess.run(
            [str(BIN / "st"), "--config-file", str(config), "run", f"{stack.api_url}/openapi.json",
             "--checks", CHECKS, "--no-color"],
            capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        )
    finally:
        for pipeline in api.get("/pipelines").json():
            if pipeline["id"] not in before:
                api.delete(f"/pipelines/{pipeline['id']}")
        api.post("/admin/resume-all")  # whatever its stop-all stopped
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
    operations = sum(len(methods) for methods in TABLE.paths.values())
    assert f"{operations} selected / {operations} total" in done.stdout
    assert "API Links:" in done.stdout  # the stateful phase ran
