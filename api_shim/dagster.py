"""The Dagster webserver's GraphQL API, as the operations the REST routes need."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from api_shim.errors import ApiError, DependencyDown
from summit_etl.orchestration.keys import CODE_LOCATION

log = logging.getLogger("summit_etl.api")
# A start or stop is read back after the daemons' ticks in flight wrote their state
# (milliseconds after they read it; more under load).
_SWITCH_SETTLE_SECONDS = 0.3
_SWITCH_ATTEMPTS = 3

LOCATION = CODE_LOCATION
REPOSITORY = "__repository__"
_REPOSITORY_SELECTOR = {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}

RELOAD_TIMEOUT_SECONDS = 120.0

# Dagster run statuses in the SPEC's words.
RUN_STATUS = {
    "QUEUED": "pending",
    "NOT_STARTED": "pending",
    "STARTING": "pending",
    "MANAGED": "pending",
    "STARTED": "running",
    "CANCELING": "running",
    "SUCCESS": "success",
    "FAILURE": "failed",
    "CANCELED": "cancelled",
}


@dataclass(frozen=True)
class InstigatorState:
    """A schedule or sensor and whether it is running, with the ids stopping it takes."""

    name: str
    status: str  # RUNNING | STOPPED
    origin_id: str
    selector_id: str


# Per kind: the mutation's variables and arguments, and the type of its answer on success.
_STOP_MUTATIONS = {
    "schedule": (
        "stopRunningSchedule",
        ("$origin: String!, $selector: String!",
         "scheduleOriginId: $origin, scheduleSelectorId: $selector"),
        "ScheduleStateResult",
    ),
    "sensor": (
        "stopSensor",
        ("$origin: String!, $selector: String!", "jobOriginId: $origin, jobSelectorId: $selector"),
        "StopSensorMutationResult",
    ),
}
_START_MUTATIONS = {
    "schedule": (
        "startSchedule",
        ("$selector: ScheduleSelector!", "scheduleSelector: $selector"),
        "ScheduleStateResult",
    ),
    "sensor": ("startSensor", ("$selector: SensorSelector!", "sensorSelector: $selector"), "Sensor"),
}


def _names(groups: Sequence[Sequence[InstigatorState]]) -> list[str]:
    return sorted(s.name for group in groups for s in group)


def _not_yet(
    now: Sequence[InstigatorState], wanted: Sequence[InstigatorState], running: bool
) -> list[InstigatorState]:
    """Those of the `wanted` instigators that `now` finds not yet `running` (or stopped)."""
    names = {s.name for s in wanted}
    return [s for s in now if (s.status == "RUNNING") != running and s.name in names]


class DagsterClient:
    def __init__(self, graphql_url: str, timeout: float) -> None:
        self.graphql_url = graphql_url
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def query(
        self,
        document: str,
        variables: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.post(
                self.graphql_url,
                json={"query": document, "variables": variables or {}},
                timeout=timeout if timeout is not None else self._http.timeout,
            )
        except httpx.HTTPError as exc:
            raise DependencyDown("dagster", f"{type(exc).__name__}: {exc}") from exc
        try:
            # Dagster answers some resolver errors with HTTP 500 and a normal GraphQL body.
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "data" not in payload:
            raise DependencyDown("dagster", f"GraphQL answered HTTP {response.status_code}")
        if payload.get("errors"):
            raise ApiError(502, "Dagster rejected the request", payload["errors"])
        return dict(payload["data"])

    # --- runs --------------------------------------------------------------------------

    def launch_run(self, job_name: str, tags: dict[str, str]) -> str:
        data = self.query(
            """
            mutation Launch($params: ExecutionParams!) {
              launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message }
                ... on Error { message }
              }
            }
            """,
            {
                "params": {
                    "selector": {**_REPOSITORY_SELECTOR, "jobName": job_name},
                    "runConfigData": {},
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in tags.items()]
                    },
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise ApiError(
                502, f"Dagster did not launch {job_name}: {data.get('message', data['__typename'])}"
            )
        return str(data["run"]["runId"])

    def run(self, run_id: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """The run's status and failure events, None when Dagster does not know it."""
        data = self.query(
            """
            query Run($runId: ID!) {
              runOrError(runId: $runId) {
                __typename
                ... on Run {
                  runId status
                  eventConnection {
                    events {
                      __typename
                      ... on MessageEvent { message timestamp stepKey }
                      ... on ExecutionStepFailureEvent { error { message className cause { message className } } }
                      ... on RunFailureEvent { pipelineName }
                    }
                  }
                }
              }
            }
            """,
            {"runId": run_id},
            timeout=timeout,
        )["runOrError"]
        if data["__typename"] != "Run":
            return None
        failures = [
            e
            for e in data["eventConnection"]["events"]
            if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
        ]
        return {"status": data["status"], "failures": failures}

    def runs(
        self,
        tags: dict[str, str] | None = None,
        statuses: list[str] | None = None,
        run_ids: list[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        data = self.query(
            """
            query Runs($filter: RunsFilter) {
              runsOrError(filter: $filter, limit: 1000) {
                __typename
                ... on Runs { results { runId status jobName tags { key value } } }
              }
            }
            """,
            {
                "filter": {
                    "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
                    "statuses": statuses or [],
                    **({"runIds": run_ids} if run_ids is not None else {}),
                }
            },
            timeout=timeout,
        )["runsOrError"]
        return list(data.get("results", []))

    def terminate(self, run_id: str, *, force: bool = False) -> tuple[bool, str]:
        """Ask the run to stop; `force` marks it cancelled at once, for a run whose
        worker cannot be reached (a run still starting)."""
        data = self.query(
            """
            mutation Terminate($runId: String!, $policy: TerminateRunPolicy) {
              terminateRun(runId: $runId, terminatePolicy: $policy) {
                __typename
                ... on TerminateRunFailure { message }
                ... on PythonError { message }
                ... on RunNotFoundError { message }
              }
            }
            """,
            {
                "runId": run_id,
                "policy": "MARK_AS_CANCELED_IMMEDIATELY" if force else "SAFE_TERMINATE",
            },
        )["terminateRun"]
        return data["__typename"] == "TerminateRunSuccess", data.get("message", "")

    def backfills(self, status: str) -> list[dict[str, Any]]:
        """Backfills in `status` (REQUESTED: still launching or running), with their tags
        and runs."""
        data = self.query(
            """
            query Backfills($status: BulkActionStatus) {
              partitionBackfillsOrError(status: $status, limit: 1000) {
                __typename
                ... on PartitionBackfills {
                  results { id status tags { key value } runs { runId status } }
                }
              }
            }
            """,
            {"status": status},
        )["partitionBackfillsOrError"]
        return list(data.get("results", []))

    def cancel_backfill(self, backfill_id: str) -> tuple[bool, str]:
        data = self.query(
            """
            mutation Cancel($id: String!) {
              cancelPartitionBackfill(backfillId: $id) {
                __typename ... on PythonError { message } ... on UnauthorizedError { message }
              }
            }
            """,
            {"id": backfill_id},
        )["cancelPartitionBackfill"]
        return data["__typename"] == "CancelBackfillSuccess", data.get("message", "")

    def launch_asset_backfill(self, asset_path: list[str], tags: dict[str, str]) -> str:
        selection = {"partitionsByAssets": [{"assetKey": {"path": asset_path}, "partitions": None}]}
        return self._launch_backfill(selection, tags, "Full reload")

    def launch_job_backfill(self, job: str, tags: dict[str, str]) -> str:
        """A backfill of every partition of a partitioned job."""
        # Dagster names a job's partition set `<job>_partition_set`.
        selector = {
            "partitionSetName": f"{job}_partition_set",
            "repositorySelector": _REPOSITORY_SELECTOR,
        }
        return self._launch_backfill(
            {"selector": selector, "allPartitions": True}, tags, f"Every partition of {job}"
        )

    def _launch_backfill(self, selection: dict[str, Any], tags: dict[str, str], title: str) -> str:
        data = self.query(
            """
            mutation Backfill($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message }
                ... on Error { message }
              }
            }
            """,
            {
                "params": {
                    **selection,
                    "tags": [{"key": k, "value": v} for k, v in tags.items()],
                    "title": title,
                }
            },
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise ApiError(
                502,
                f"Dagster did not launch the backfill: {data.get('message', data['__typename'])}",
            )
        return str(data["backfillId"])

    # --- schedules and sensors --------------------------------------------------------

    def instigators(
        self, *, timeout: float | None = None
    ) -> tuple[list[InstigatorState], list[InstigatorState]]:
        """(schedules, sensors) of the code location, with their running state."""
        data = self.query(
            """
            query Instigators($selector: RepositorySelector!) {
              repositoryOrError(repositorySelector: $selector) {
                __typename
                ... on Repository {
                  schedules { name scheduleState { id selectorId status } }
                  sensors { name sensorState { id selectorId status } }
                }
              }
            }
            """,
            {"selector": _REPOSITORY_SELECTOR},
            timeout=timeout,
        )["repositoryOrError"]
        if data["__typename"] != "Repository":
            raise DependencyDown("dagster", f"code location {LOCATION} is not loaded")

        def states(items: list[dict[str, Any]], key: str) -> list[InstigatorState]:
            return [
                InstigatorState(i["name"], i[key]["status"], i[key]["id"], i[key]["selectorId"])
                for i in items
            ]

        return states(data["schedules"], "scheduleState"), states(data["sensors"], "sensorState")

    def start_instigators(
        self,
        schedules: Sequence[InstigatorState] = (),
        sensors: Sequence[InstigatorState] = (),
    ) -> None:
        """Start the schedules and sensors not running yet, and check that the starts held.

        The scheduler writes a stopped schedule's state back at its checkpoint, from a copy
        it read at the start of its pass: a start landing in between is undone and the
        schedule stays stopped (seen under load: resume-all answered, and the next stop-all
        found nothing running). What is stopped again is started again."""
        self._switch_checked(schedules, sensors, running=True)

    def stop_instigators(
        self,
        schedules: Sequence[InstigatorState] = (),
        sensors: Sequence[InstigatorState] = (),
    ) -> None:
        """Stop the schedules and sensors still running, and check that the stops held.

        Dagster's daemons write an instigator's state back from a copy they read a moment
        before: the sensor daemon at the start of every tick, the scheduler at its hourly
        checkpoint. A stop that lands in between is undone and the instigator keeps going
        (seen under load: a deleted CDC pipeline's live run went on for its whole idle
        window). What runs again is stopped again."""
        self._switch_checked(schedules, sensors, running=False)

    def _switch_checked(
        self,
        schedules: Sequence[InstigatorState],
        sensors: Sequence[InstigatorState],
        *,
        running: bool,
    ) -> None:
        """Switch each instigator to `running`, then read the states again once the
        daemons' writes in flight landed, and switch again what they undid."""
        verb, doing = ("start", "starting") if running else ("stop", "stopping")
        pending = (_not_yet(schedules, schedules, running), _not_yet(sensors, sensors, running))
        for attempt in range(_SWITCH_ATTEMPTS):
            if not any(pending):
                return
            for kind, states in zip(("schedule", "sensor"), pending, strict=True):
                for state in states:
                    self._switch(kind, state, running)
            time.sleep(_SWITCH_SETTLE_SECONDS)
            schedules_now, sensors_now = self.instigators()
            pending = (
                _not_yet(schedules_now, pending[0], running),
                _not_yet(sensors_now, pending[1], running),
            )
            if any(pending):
                log.warning(
                    f"a Dagster daemon undid a {verb}; {doing} again",
                    extra={"instigators": _names(pending), "attempt": attempt + 1},
                )
        if any(pending):
            kept = "stopped" if running else "running"
            raise ApiError(502, f"Dagster kept {_names(pending)} {kept}; {verb} again")

    def _switch(self, kind: str, state: InstigatorState, running: bool) -> None:
        """Start one schedule or sensor (`kind`) by name, or stop it by the ids Dagster
        gave its state."""
        if running:
            mutation, arguments, answered = _START_MUTATIONS[kind]
            variables: dict[str, Any] = {
                "selector": {**_REPOSITORY_SELECTOR, f"{kind}Name": state.name}
            }
        else:
            mutation, arguments, answered = _STOP_MUTATIONS[kind]
            variables = {"origin": state.origin_id, "selector": state.selector_id}
        result = self.query(
            f"""
            mutation Switch({arguments[0]}) {{
              {mutation}({arguments[1]}) {{
                __typename ... on PythonError {{ message }} ... on Error {{ message }}
              }}
            }}
            """,
            variables,
        )[mutation]
        self._expect(result, answered, f"{'start' if running else 'stop'} {kind} {state.name}")

    @staticmethod
    def _expect(result: dict[str, Any], typename: str, action: str) -> None:
        if result["__typename"] != typename:
            raise ApiError(
                502, f"Dagster could not {action}: {result.get('message', result['__typename'])}"
            )

    # --- the code location and the instance ------------------------------------------

    def reload_location(self) -> None:
        """Reload the code location so pipelines created or changed through the API show."""
        result = self.query(
            """
            mutation Reload($name: String!) {
              reloadRepositoryLocation(repositoryLocationName: $name) {
                __typename
                ... on WorkspaceLocationEntry { locationOrLoadError { __typename ... on PythonError { message } } }
                ... on PythonError { message }
              }
            }
            """,
            {"name": LOCATION},
            # The code server swaps its definitions process for one that imports every
            # pipeline anew: seconds, more on a loaded machine; the caller waits on purpose.
            timeout=RELOAD_TIMEOUT_SECONDS,
        )["reloadRepositoryLocation"]
        error = (result.get("locationOrLoadError") or {}).get("message") or result.get("message")
        if error:
            raise ApiError(502, f"Dagster could not reload the code location: {error}")

    def wait_for_job(self, job_name: str, timeout: float = RELOAD_TIMEOUT_SECONDS) -> None:
        """After a reload, wait until the location serves `job_name`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.query(
                """
                query Job($selector: PipelineSelector!) {
                  pipelineOrError(params: $selector) { __typename }
                }
                """,
                {"selector": {**_REPOSITORY_SELECTOR, "pipelineName": job_name}},
            )
            if data["pipelineOrError"]["__typename"] == "Pipeline":
                return
            time.sleep(0.2)
        raise DependencyDown("dagster", f"job {job_name} did not appear after reloading")

    def health(self, timeout: float) -> tuple[bool, bool, list[dict[str, Any]]]:
        """(webserver answers, every required daemon healthy, daemon statuses)."""
        data = self.query(
            """
            query Health {
              version
              instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } }
            }
            """,
            timeout=timeout,
        )
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = all(s["healthy"] for s in statuses if s["required"])
        return True, healthy, statuses
