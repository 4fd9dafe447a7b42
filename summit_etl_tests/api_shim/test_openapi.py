"""The OpenAPI document is generated from the route table and the models, so it cannot drift."""

from __future__ import annotations

from starlette.testclient import TestClient

from api_shim import models, openapi
from api_shim.app import TABLE, create_app
from api_shim.settings import ApiSettings, parse_tokens
from summit_etl.config import PipelineConfig

OPEN = openapi.document(TABLE, auth=False)
WITH_TOKENS = openapi.document(TABLE, auth=True)


def test_every_route_is_documented_and_nothing_else() -> None:
    served = {(path, method) for path, ops in TABLE.paths.items() for method in ops}
    assert served == set(openapi.DOCS)
    documented = {(path, method.upper()) for path, ops in OPEN["paths"].items() for method in ops}
    assert documented == served


def test_bodies_are_the_models_that_validate_and_serialize() -> None:
    schemas = OPEN["components"]["schemas"]
    assert {"fullReload", "watermarkFrom", "watermarkTo"} <= set(schemas["Run"]["properties"])
    assert set(schemas["Run"]["properties"]) == {f.alias for f in models.Run.model_fields.values()}
    pipeline_config = PipelineConfig.model_json_schema(by_alias=True)
    assert schemas["PipelineConfig"]["properties"].keys() == pipeline_config["properties"].keys()
    assert schemas["Pipeline"]["properties"]["config"] == {"$ref": "#/components/schemas/PipelineConfig"}
    create = OPEN["paths"]["/pipelines"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"] == {"$ref": "#/components/schemas/PipelineConfig"}
    execute = OPEN["paths"]["/pipelines/{pipeline_id}/execute"]["post"]["requestBody"]
    assert execute["required"] is False
    assert schemas["ExecuteRequest"]["additionalProperties"] is False


def test_stored_reads_document_their_cache_status_and_only_they() -> None:
    stored = {(path, method) for path, ops in TABLE.paths.items() for method, op in ops.items() if op.stored}
    assert ("/pipelines/{pipeline_id}/runs", "GET") in stored and ("/health", "GET") not in stored
    for path, ops in OPEN["paths"].items():
        for method, operation in ops.items():
            headers = operation["responses"].get("200", {}).get("headers", {})
            assert ("Cache-Status" in headers) == ((path, method.upper()) in stored), (path, method)


def test_delete_answers_204_without_content() -> None:
    deleted = OPEN["paths"]["/pipelines/{pipeline_id}"]["delete"]["responses"]["204"]
    assert "content" not in deleted


def test_auth_is_described_as_configured() -> None:
    assert "securitySchemes" not in OPEN["components"]
    assert all("security" not in op for ops in OPEN["paths"].values() for op in ops.values())
    for path, ops in WITH_TOKENS["paths"].items():
        for method, op in ops.items():
            needs = path not in ("/health", "/openapi.json")
            assert ("security" in op) is needs, (path, method)
            assert ("401" in op["responses"]) is needs, (path, method)
    stop_all = WITH_TOKENS["paths"]["/admin/stop-all"]["post"]
    assert stop_all["description"] == "Needs a bearer token of role admin or above."


def test_links_chain_create_execute_runs_report() -> None:
    created = OPEN["paths"]["/pipelines"]["post"]["responses"]["201"]["links"]
    assert created["ExecutePipeline"]["operationId"] == "executePipeline"
    launched = OPEN["paths"]["/pipelines/{pipeline_id}/execute"]["post"]["responses"]["202"]["links"]
    assert {link["operationId"] for link in launched.values()} == {"getRun", "listRuns", "getQualityReport"}
    operation_ids = {op["operationId"] for ops in OPEN["paths"].values() for op in ops.values()}
    assert {link["operationId"] for link in [*created.values(), *launched.values()]} <= operation_ids


def test_served_document_follows_the_settings_and_405_names_every_method() -> None:
    settings = ApiSettings(tokens=parse_tokens("read:r"), database_url="postgresql://127.0.0.1:1/none")
    client = TestClient(create_app(settings), base_url="http://localhost")
    assert "securitySchemes" in client.get("/openapi.json").json()["components"]
    response = client.patch("/pipelines", headers={"authorization": "Bearer r"})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
