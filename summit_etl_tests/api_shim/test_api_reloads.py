"""Pipeline changes reload the code location in place: however many creates and deletes,
the service keeps one code server (plus the process it reloads) and its memory stays put."""

from __future__ import annotations

import os
import time

import httpx
import psutil

from summit_etl_tests.api_shim.conftest import Stack

# The figure is 200 cycles; the suite runs fewer (each is two reloads), enough to
# show that processes and memory do not grow with the count. SUMMIT_RELOAD_CYCLES=200 for all.
CYCLES = int(os.environ.get("SUMMIT_RELOAD_CYCLES", "3"))


def service(stack: Stack) -> list[psutil.Process]:
    root = psutil.Process(stack.processes[0].pid)
    return [root, *root.children(recursive=True)]


def code_servers(stack: Stack) -> list[psutil.Process]:
    """`dagster code-server start` and the `dagster api grpc` process it loads the code in."""
    found = []
    for process in service(stack):
        try:
            command = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "code-server" in command or " api grpc" in command:
            found.append(process)
    return found


def rss_mb(stack: Stack) -> float:
    total = 0
    for process in service(stack):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def settle(stack: Stack, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while len(servers := code_servers(stack)) > 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    return len(servers)


def test_create_delete_cycles_keep_code_servers_and_memory_bounded(api: httpx.Client, stack: Stack) -> None:
    assert settle(stack) == 2
    before = rss_mb(stack)
    started = time.perf_counter()
    for cycle in range(CYCLES):
        body = {"id": f"churn-{cycle}", "name": "Churn",
                "source": {"url": "${SOURCE_URL}", "table": "public.users"},
                "loading": {"strategy": "bulk", "targetTable": f"dw.churn_{cycle}", "targetUrl": "${TARGET_URL}"}}
        assert api.post("/pipelines", json=body).status_code == 201
        assert api.delete(f"/pipelines/churn-{cycle}").status_code == 204
        assert len(code_servers(stack)) <= 3  # the old definitions process may still be exiting
    elapsed = time.perf_counter() - started
    assert settle(stack) == 2
    after = rss_mb(stack)
    print(f"{CYCLES} create/delete cycles in {elapsed:.0f} s: service RSS {before:.0f} -> {after:.0f} MB")
    assert after - before < 200
