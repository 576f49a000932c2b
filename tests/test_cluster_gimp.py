"""Issue 16's "Done when", tried with the real plug-in: a local cluster of two workers
(``serve --ray local --workers 2``) serves GIMP and a second client at the same time, and a worker
killed under GIMP's job costs GIMP nothing.

One GIMP start (3.2, console batch: the harness of test_gimp_plugin.py) stylizes a layer through the
cluster's tcp front while a ``RawClient`` (a second user, written from docs/PROTOCOL.md) runs its own
job; ``status`` shows both running at once on different workers. Then the worker running GIMP's job is
SIGKILLed: the front retries the job on the next free worker and GIMP still gets its layer. The plug-in
is the installed one, unchanged: it only knows the endpoint (``install.py --endpoint``).
"""
from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e .[cluster], or install.py --cluster)")

import test_gimp_plugin as harness
from server_fixtures import FAST, Daemon, RawClient, free_port, terminal_of, wait_until
from test_cluster_daemon import _running, _worker_pids, start_cluster, two_running_on_both_workers
from test_gimp_plugin import (
    QUICK_ARGS,
    assert_finished_layer,
    assert_source_untouched,
    finish_session,
    gimp_log,
    mean_abs_diff,
    pixels,
    run_session,
    step,
)

pytestmark = pytest.mark.gimp

GIMP_VERSION = "3.2"  # one version is enough here: the plug-in's talk to a cluster is the same on 3.0
# GIMP's job: long enough (some seconds on a 1-thread worker) to be seen running beside the other
# client's, and killed mid-way; its retry starts again from the first iteration.
GIMP_ARGS = {**QUICK_ARGS, "iterations": 250, "timeout": 60}
OTHER_JOB = dict(FAST, iterations=600, progress_every=5)


@pytest.fixture(scope="module")
def gimp_root():
    """GIMP 3.2's root, where the harness's selection ($NEURAL_STYLE_GIMP_VERSIONS) includes it."""
    if GIMP_VERSION not in harness.GIMP_VERSIONS:
        pytest.skip(f"GIMP {GIMP_VERSION} is not among NEURAL_STYLE_GIMP_VERSIONS={harness.GIMP_VERSIONS}")
    root, reason = harness.prepare_root(GIMP_VERSION)
    if root is None:
        pytest.skip(reason)
    return root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, gimp_root) -> Iterator[Daemon]:
    """The cluster front on tcp (GIMP in its root reaches the host's loopback); the harness's ``share``
    installs the plug-in against it."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster-gimp"), f"tcp://127.0.0.1:{free_port()}")
    yield cluster
    if cluster.alive():
        assert cluster.stop(60) == 0, cluster.log()[-3000:]


share = harness.share


def _gimps(other: RawClient) -> dict | None:
    """GIMP's running job as the second client sees it (another client's: no id), once it reports progress."""
    return next((job for job in _running(other) if job["id"] == "" and job["iteration"] > 0), None)


def test_gimp_and_a_second_client_share_the_cluster_and_a_killed_worker_costs_gimp_nothing(
        gimp_root, share, daemon: Daemon) -> None:
    steps = [step(share, "cluster", {**GIMP_ARGS, "endpoint": daemon.endpoint})]
    proc = run_session(gimp_root, share, "cluster", steps, background=True)
    try:
        with RawClient(daemon.endpoint) as other:  # the second user, also watching `status`
            wait_until(lambda: proc.poll() is None and _gimps(other) is not None, 120,
                       "GIMP's job running on the cluster")
            other.stylize("other", OTHER_JOB, seed=9)

            running = two_running_on_both_workers(other)  # GIMP's job and the other client's, at once
            assert sorted(job["id"] for job in running) == ["", "other"], running  # GIMP's id is not the other's to see

            gimps = _gimps(other)
            assert gimps is not None, _running(other)
            killed = gimps["worker"]
            os.kill(_worker_pids(daemon)[killed], signal.SIGKILL)

            end = terminal_of(other.stream("other", timeout=120))
            assert end["type"] == "result" and end["iterations"] == OTHER_JOB["iterations"], end
        result, out = finish_session(proc, share, "cluster", steps)["cluster"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    log = daemon.log()
    lost = re.findall(rf"{killed} lost job \d+ id='([^']*)' client=\w+ mid-job", log)
    assert len(lost) == 1 and lost[0] != "other", log[-3000:]  # GIMP's job, lost once with its worker
    assert re.search(rf"id='{re.escape(lost[0])}' client=\w+ retried on the next free worker", log), log[-3000:]
    new = assert_finished_layer(result)
    assert new["name"] == "Neural Style: starry_night", new
    assert_source_untouched(share, out)
    assert mean_abs_diff(pixels(out / "new_layer.png"), pixels(out / "source_before.png")) > 10, \
        f"the new layer equals the source:\n{gimp_log(share, 'cluster')}"
    # GIMP's job ended once, in a result, after its retry (the plug-in's id, from the daemon's log)
    results = re.findall(r"id='([^']*)' client=\w+ result: .* on (worker-\d)", log)
    assert sum(1 for job, _ in results if job == "other") == 1, results
    assert [job for job, _ in results].count(lost[0]) == 1, results
    gimp_lines = (share / "out" / "cluster.gimp.log").read_text(errors="replace")
    assert "painting the preview" in gimp_lines, gimp_log(share, "cluster")  # progress streamed from a worker to GIMP
