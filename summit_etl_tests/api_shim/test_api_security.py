"""The issue's probes against the real service: cross-site requests, foreign Host names,
tokens with roles, hostile input, tracebacks in run errors."""

from __future__ import annotations

import json

import httpx

from summit_etl_tests.api_shim.conftest import Stack


def test_a_web_page_cannot_drive_the_api_on_loopback(api: httpx.Client) -> None:
    page = {"origin": "http://evil.example", "content-type": "text/plain"}
    assert api.post("/admin/stop-all", headers=page).status_code == 403
    assert api.post("/pipelines", content=b"{}", headers=page).status_code == 403
    fetch = {"sec-fetch-site": "cross-site"}
    assert api.post("/pipelines/users-cdc/cdc/stop", headers=fetch).status_code == 403
    assert api.get("/quality/reports/latest", headers=fetch).status_code == 403
    # Without Origin (a form some browsers post without one) the form's type gives it away.
    form = api.post("/admin/stop-all", content=b"", headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    schedules = api.post("/pipelines/users-sync/execute", content=b"{}", headers={"content-type": "text/plain"})
    assert schedules.status_code == 415
    # DNS rebinding: the page's own name arrives in Host.
    rebound = api.get("/pipelines", headers={"host": "evil.example:4020"})
    assert rebound.status_code == 400 and "ETL_ALLOWED_HOSTS" in rebound.json()["error"]
    # What curl sends (no Origin, no Content-Type, no body), and a same-origin page, pass.
    assert api.post("/pipelines/users-cdc/cdc/stop").status_code == 200
    same = {"origin": api.base_url.scheme + "://" + api.base_url.netloc.decode(), "sec-fetch-site": "same-origin"}
    assert api.post("/pipelines/users-cdc/cdc/stop", headers=same).status_code == 200


def test_hostile_input_is_a_4xx_naming_what(api: httpx.Client) -> None:
    nul = api.get("/pipelines/%00/runs")
    assert nul.status_code == 400 and "control character" in nul.json()["error"]
    assert api.get("/quality/reports/latest?pipelineId=%00").status_code == 400
    json_headers = {"content-type": "application/json"}
    deep = api.post("/pipelines", content=b"[" * 50_000 + b"]" * 50_000, headers=json_headers)
    assert deep.status_code == 400 and "nests deeper" in deep.json()["error"]
    named = api.post("/pipelines", content=json.dumps({"id": "x\x00y"}).encode(), headers=json_headers)
    assert named.status_code == 400 and named.json()["details"] == {"field": "id"}
    invalid_utf8 = api.post("/pipelines", content=b'{"id": "\xff"}', headers=json_headers)
    assert invalid_utf8.status_code == 400 and "UTF-8" in invalid_utf8.json()["error"]
    huge = api.post("/pipelines/users-sync/execute", content=b'{"fullReload": 1e999}', headers=json_headers)
    assert huge.status_code == 400
    wrong = api.post("/pipelines/users-sync/execute", json={"fullReload": "yes"})
    assert wrong.status_code == 400 and wrong.json()["details"][0].startswith("fullReload:")
    unknown = api.post("/pipelines/users-sync/execute", json={"fullRelaod": True})
    assert unknown.status_code == 400 and unknown.json()["details"][0].startswith("fullRelaod:")
    assert api.get("/pipelines/users-sync/runs?limit=99999999999999999999").status_code == 400


def test_run_errors_carry_the_stage_and_no_traceback(api: httpx.Client) -> None:
    run = api.post("/pipelines/broken-load/execute?wait=true").json()
    assert run["status"] == "failed" and run["errors"]
    fetched = api.get(f"/pipelines/broken-load/runs/{run['id']}").json()
    for error in [*run["errors"], *fetched["errors"]]:
        assert error["stage"] in ("extraction", "transformation", "validation", "loading")
        assert error["message"] and "Traceback" not in error["message"]
        assert 'File "' not in error["message"] and ".py" not in error["message"]


TOKENS = "legacy-admin-tok,operate:op-tok,read:read-tok"


def test_tokens_have_roles_and_every_route_but_health_needs_one(stack: Stack) -> None:
    with stack.api(ETL_API_TOKENS=TOKENS) as url, httpx.Client(base_url=url, timeout=60) as client:
        def bearer(token: str) -> dict[str, str]:
            return {"authorization": f"Bearer {token}"}

        assert client.get("/health").status_code == 200
        for path in ("/pipelines", "/metrics", "/quality/reports/latest", "/pipelines/users-sync/runs"):
            missing = client.get(path)
            assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer"), path
            assert client.get(path, headers=bearer("nope")).status_code == 401, path
        assert client.get("/pipelines", headers=bearer("read-tok")).status_code == 200
        # operate: runs and CDC, not pipeline changes or stop-all.
        assert client.post("/pipelines/users-sync/cdc/start", headers=bearer("read-tok")).status_code == 403
        assert client.post("/pipelines/users-sync/cdc/start", headers=bearer("op-tok")).status_code == 409  # not a CDC pipeline
        assert client.post("/admin/stop-all", headers=bearer("op-tok")).status_code == 403
        assert client.delete("/pipelines/users-sync", headers=bearer("op-tok")).status_code == 403
        # A bare token (the older form) is an admin token.
        assert client.delete("/pipelines/users-sync", headers=bearer("legacy-admin-tok")).status_code == 409  # a YAML pipeline
        assert "securitySchemes" in client.get("/openapi.json").json()["components"]
    log = stack.log_file.read_text()
    assert not any(token in log for token in ("legacy-admin-tok", "op-tok", "read-tok"))
