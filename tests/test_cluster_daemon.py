"""``neural-style serve --ray local --workers 2``: a real daemon process starting a real local Ray cluster
(2 CPU workers of 1 thread each), driven by real ZeroMQ clients written from docs/PROTOCOL.md.

Why one daemon for the module: starting Ray and loading two models costs tens of seconds on the
2-core CI machine; every test here leaves both workers idle again for the next.  The last test
stops the daemon with SIGTERM and checks that no Ray process outlives it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install -e .[cluster], or install.py --cluster)")

from server_fixtures import FAST, Daemon, RawClient, start_daemon, terminal_of, wait_until

# A job long enough to be seen running (cancelled or killed before it ends), and a short one.
LONG = dict(FAST, iterations=4000, progress_every=1)
SHORT = dict(FAST, iterations=6, progress_every=2, preview=True)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Ray's GCS, raylet, workers…), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _worker_pids(daemon: Daemon) -> dict[str, int]:
    """Each worker's current process, from the daemon's log lines ("worker-1 ready: pid 123 …")."""
    return {name: int(pid) for name, pid in re.findall(r"(worker-\d+) ready: pid (\d+)", daemon.log())}


def start_cluster(tmp: Path, endpoint: str) -> Daemon:
    """``serve --ray local --workers 2`` (1 thread each) on ``endpoint``, once both workers are ready
    (tests/test_cluster_gimp.py starts its own on tcp, for GIMP in its root)."""
    from server_fixtures import wait_for_ping

    daemon = start_daemon(tmp, "--ray", "local", "--workers", "2", "--worker-threads", "1",
                          endpoint=endpoint, env={"OMP_NUM_THREADS": "1"}, wait=False)
    try:  # a cluster that does not come up is stopped all the same: no Ray process outlives the tests
        wait_for_ping(daemon, 180)
        wait_until(lambda: len(_worker_pids(daemon)) == 2, 120, "both workers ready")
    except BaseException:
        daemon.stop(60)
        raise
    return daemon


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("cluster")
    daemon = start_cluster(tmp, f"ipc://{tmp}/cluster.sock")
    yield daemon
    if daemon.alive():
        daemon.stop(60)


def _running(client: RawClient) -> list[dict]:
    reply = client.request({"type": "status", "id": f"s{time.monotonic_ns()}"})
    return ([reply["running"]] if reply["running"] else []) + list(reply.get("also_running") or [])


def two_running_on_both_workers(client: RawClient) -> list[dict]:
    """``status``'s two running jobs, as ``client`` sees them, once both report progress: one on each worker."""
    def both_progressing() -> bool:
        running = _running(client)
        return len(running) == 2 and all(job["iteration"] > 0 for job in running)

    wait_until(both_progressing, 60, "both jobs running and reporting progress")
    running = _running(client)
    assert {job["worker"] for job in running} == {"worker-1", "worker-2"}, running
    return running


def test_pong_names_the_pool(cluster: Daemon) -> None:
    with RawClient(cluster.endpoint) as client:
        pong = client.request({"type": "ping", "id": "p"})
    assert pong["weights_loaded"] is True
    assert pong["device"].startswith("ray: 2 worker(s)"), pong
    assert pong["workers"] == 2  # a client with many jobs keeps two in flight


def test_two_clients_jobs_run_at_once_on_different_workers(cluster: Daemon) -> None:
    with RawClient(cluster.endpoint) as a, RawClient(cluster.endpoint) as b:
        a.stylize("a", LONG)
        b.stylize("b", LONG, seed=3)
        assert a.recv_for("a", 30)[0]["type"] == "accepted"
        assert b.recv_for("b", 30)[0]["type"] == "accepted"

        running = two_running_on_both_workers(a)
        assert sorted(job["id"] for job in running) == ["", "a"]  # b's id is not a's to see
        for client, job in ((a, "a"), (b, "b")):
            client.send({"type": "cancel", "id": f"c-{job}", "target": job})
        for client, job in ((a, "a"), (b, "b")):
            assert terminal_of(client.stream(job, timeout=60))["code"] == "cancelled"


def test_previews_stream_from_a_worker_and_the_result_arrives(cluster: Daemon) -> None:
    with RawClient(cluster.endpoint) as client:
        client.stylize("p", SHORT)
        stream = client.stream("p", timeout=120)
    progress = [(h, frames) for h, frames in stream if h["type"] == "progress"]
    assert len(progress) >= 2
    previews = [(h["image"], frames) for h, frames in progress if "image" in h]
    assert previews, [h for h, _ in progress]
    image, frames = previews[-1]
    assert len(frames[image["frame"] - 1]) == image["width"] * image["height"] * image["channels"]
    result = terminal_of(stream)
    assert result["type"] == "result" and result["iterations"] == SHORT["iterations"]


def test_cancel_stops_a_running_job_on_its_worker(cluster: Daemon) -> None:
    with RawClient(cluster.endpoint) as client:
        client.stylize("c", LONG)
        wait_until(lambda: any(job["id"] == "c" and job["iteration"] > 0 for job in _running(client)), 60,
                   "the job running")
        ack = client.request({"type": "cancel", "id": "x", "target": "c"})
        assert ack["type"] == "cancel_ack" and ack["state"] == "running"
        end = terminal_of(client.stream("c", timeout=30))
    assert end["code"] == "cancelled" and "iterations" in end["message"]
    assert end["message"].startswith("cancelled by the client")


def test_a_worker_killed_mid_job_costs_no_job(cluster: Daemon) -> None:
    """SIGKILL the worker running a job: the job is retried on the other worker and ends in exactly
    one terminal message (its result); the killed worker is replaced and the next job is served."""
    with RawClient(cluster.endpoint) as client:
        job = dict(FAST, iterations=400, progress_every=5)  # seconds: still running when killed
        client.stylize("k", job)
        wait_until(lambda: any(j["id"] == "k" and j["iteration"] > 0 for j in _running(client)), 60,
                   "the job running")
        worker = next(j["worker"] for j in _running(client) if j["id"] == "k")
        pids = _worker_pids(cluster)
        os.kill(pids[worker], signal.SIGKILL)
        stream = client.stream("k", timeout=180)
        end = terminal_of(stream)
        assert end["type"] == "result", end
        assert end["iterations"] == 400
        assert "retried on the next free worker" in cluster.log()
        wait_until(lambda: _worker_pids(cluster)[worker] != pids[worker], 120, f"{worker} replaced")
        client.stylize("next", SHORT)
        assert terminal_of(client.stream("next", timeout=120))["type"] == "result"


def test_a_job_whose_retry_is_killed_too_ends_in_worker_lost(cluster: Daemon) -> None:
    """Both workers killed under one job: it is retried once, then ends in ``worker_lost``, and
    both replaced workers serve the next jobs."""
    def running_on() -> str | None:
        job = next((j for j in _running(client) if j["id"] == "w" and j["iteration"] > 0), None)
        return job["worker"] if job is not None else None

    with RawClient(cluster.endpoint) as client:
        client.stylize("w", LONG)
        wait_until(lambda: running_on() is not None, 60, "the job running")
        first = running_on()
        os.kill(_worker_pids(cluster)[first], signal.SIGKILL)
        wait_until(lambda: running_on() not in (None, first), 120, "the job running again on the other worker")
        second = running_on()
        before = _worker_pids(cluster)
        os.kill(before[second], signal.SIGKILL)
        end = terminal_of(client.stream("w", timeout=120))
        assert end["code"] == "worker_lost", end
        assert second in end["message"]
        wait_until(lambda: len(_worker_pids(cluster)) == 2 and _worker_pids(cluster)[second] != before[second]
                   and client.request({"type": "ping", "id": "p"})["device"].startswith("ray: 2 "), 180,
                   "both workers replaced")
        for i in range(2):
            client.stylize(f"n{i}", SHORT)
        assert [terminal_of(client.stream(f"n{i}", timeout=120, quiet=0))["type"] for i in range(2)] == ["result"] * 2


def test_a_style_goes_back_to_the_worker_that_has_its_targets(cluster: Daemon) -> None:
    """Style-affine routing: jobs with a style one worker already ran go to that worker while it is free
    (the other worker, first in line for the queue, hands them over), however many are sent."""
    def worker_of(job: str) -> str:
        found = re.findall(rf"id='{job}' client=\w+ result: .* on (worker-\d)", cluster.log())
        assert len(found) == 1, cluster.log()[-3000:]
        return found[0]

    with RawClient(cluster.endpoint) as client:
        for i in range(5):
            client.stylize(f"affine{i}", SHORT, seed=40)  # a style (seed 41) no other test sends
            assert terminal_of(client.stream(f"affine{i}", timeout=120, quiet=0))["type"] == "result"
            time.sleep(0.5)  # both slots back at the queue: the next job could go to either
    workers = [worker_of(f"affine{i}") for i in range(5)]
    assert workers == [workers[0]] * 5, workers


CLI_FAST = ("--weights", "random", "--size", "32", "--iterations", "150", "--progress-every", "10",
            "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1")


def _cli_while_watching(cluster: Daemon, *args: str) -> tuple[subprocess.CompletedProcess, int, str, str]:
    """Run ``neural-style ARGS`` against the cluster; (its outcome, the most jobs seen running at once,
    the daemon's log lines written meanwhile, what ``neural-style status`` printed while two ran)."""
    import argparse
    import contextlib
    import io

    from neural_style.daemon import remote

    before = len(cluster.log())
    status = io.StringIO()
    command = [sys.executable, "-m", "neural_style.daemon.cli", *args, "--endpoint", cluster.endpoint,
               "--no-autostart", *CLI_FAST]
    most = 0
    with RawClient(cluster.endpoint) as watcher, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1")) as process:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            running = len(_running(watcher))
            if running == 2 and not status.getvalue():
                with contextlib.redirect_stdout(status):  # what `neural-style status` runs, in-process
                    remote.status(argparse.Namespace(endpoint=cluster.endpoint))
            most = max(most, running)
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        out, err = process.communicate(timeout=30)
    return (subprocess.CompletedProcess(command, process.returncode, out, err), most, cluster.log()[before:],
            status.getvalue())


def _photos(folder: Path, count: int, seed: int) -> None:
    import numpy as np

    from neural_style.daemon.sequence.frames import write_frame

    rng = np.random.default_rng(seed)
    for i in range(count):
        write_frame(folder, f"photo{i}", (rng.random((32, 32, 3)) * 255).astype(np.uint8))


def test_a_folder_of_photos_is_spread_over_both_workers(cluster: Daemon, tmp_path) -> None:
    """``neural-style stylize DIR -o OUT`` through the cluster's one endpoint: two jobs in flight at once,
    one on each worker, every photo written."""
    _photos(tmp_path / "photos", 4, seed=5)
    _photos(tmp_path, 1, seed=6)
    run, most, log, status = _cli_while_watching(cluster, "stylize", str(tmp_path / "photos"),
                                                 str(tmp_path / "photo0.png"), "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"photo{i}.png" for i in range(4)]
    assert "4 photos, 2 at a time" in run.stderr
    assert most == 2, (most, log)
    assert "workers: 2 (jobs at once)" in status, status
    assert sorted(re.findall(r"running: \(another client\) on (worker-\d) iteration", status)) == [
        "worker-1", "worker-2"], status  # also_running too, each job with its worker
    assert len(re.findall(r"result: .* on worker-1", log)) >= 1 and len(re.findall(r"result: .* on worker-2", log)) >= 1


def test_a_video_goes_in_chunks_one_per_worker(cluster: Daemon, tmp_path) -> None:
    """``neural-style video`` through the cluster: 6 frames in two chunks run at once, the second starting
    one frame early (7 jobs, that lead frame not written); run again after losing a frame, only it is redone."""
    _photos(tmp_path / "frames", 6, seed=7)
    _photos(tmp_path, 1, seed=8)
    args = ("video", str(tmp_path / "frames"), str(tmp_path / "photo0.png"), "-o", str(tmp_path / "out"),
            "--overlap", "1")
    run, most, log, _status = _cli_while_watching(cluster, *args)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"photo{i}.png" for i in range(6)]
    assert "6 frames in 2 chunks (0-2, 3-5), each starting 1 frame(s) early" in run.stderr
    assert most == 2, (most, log)
    assert len(re.findall(r"result: .* on worker-\d", log)) == 7, log
    (tmp_path / "out" / "photo4.png").unlink()
    again, _most, log, _status = _cli_while_watching(cluster, *args)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out" / "photo4.png").is_file() and len(re.findall(r"result: .* on worker-\d", log)) == 1, log


def test_sigterm_leaves_no_ray_process_behind(cluster: Daemon) -> None:
    """With a job running, SIGTERM ends it with ``cancelled``, and the local cluster the daemon
    started (GCS, raylet, both workers) ends with the daemon."""
    ray_processes = _descendants(cluster.process.pid)
    assert len(ray_processes) >= 3, ray_processes  # at least the GCS, the raylet and the workers
    assert set(_worker_pids(cluster).values()) <= ray_processes
    with RawClient(cluster.endpoint) as client:
        client.stylize("t", LONG)
        wait_until(lambda: any(j["id"] == "t" for j in _running(client)), 60, "the job running")
        cluster.process.send_signal(signal.SIGTERM)
        end = terminal_of(client.stream("t", timeout=60, quiet=0))
    assert end["code"] == "cancelled"
    assert cluster.process.wait(60) == 0, cluster.log()  # the one SIGTERM above (a second one exits at once)
    assert "left the Ray cluster (the local cluster is stopped)" in cluster.log()
    wait_until(lambda: not any(_alive(pid) for pid in ray_processes), 30, "every Ray process gone")


def test_jobs_are_refused_while_the_cluster_is_unreachable(tmp_path) -> None:
    """Nothing listens at the address: ``ping`` answers (weights not loaded), ``stylize`` gets
    ``cluster_unavailable`` within the join's bound, and the daemon keeps serving and exits cleanly."""
    from server_fixtures import free_port, wait_for_ping

    daemon = start_daemon(tmp_path, "--ray", f"127.0.0.1:{free_port()}", "--ray-timeout", "3",
                          endpoint=f"ipc://{tmp_path}/down.sock", wait=False)
    try:
        pong = wait_for_ping(daemon, 60, weights_loaded=False)
        assert pong["device"] == "ray"
        with RawClient(daemon.endpoint) as client:
            client.stylize("j", FAST)
            first = client.recv_for("j", 60)[0]
            if first["type"] == "accepted":  # sent while the first join was still under way
                first = terminal_of(client.stream("j", timeout=60))
            assert first["type"] == "error" and first["code"] == "cluster_unavailable", first
            assert "Ray cluster" in first["message"]
            client.stylize("j2", FAST)
            again = client.recv_for("j2", 30)[0]
            assert again["code"] == "cluster_unavailable", again
            assert client.request({"type": "ping", "id": "p2"})["type"] == "pong"
    finally:
        assert daemon.stop(60) == 0, daemon.log()
