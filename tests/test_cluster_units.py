"""The cluster worker's own logic without Ray: ``StyleWorker`` driven as a plain object (start, poll,
cancel), weights handed over as bytes when the node has no file, requests made picklable, and
``serve --ray`` options.  The real cluster is tests/test_cluster_daemon.py."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest
from server_fixtures import rgb_bytes

from neural_style.daemon.cluster.actor import StyleWorker, WorkerSpec, is_terminal, portable_request
from neural_style.daemon.cluster.connect import ClusterSettings
from neural_style.daemon.engine.params import StyleParams
from neural_style.daemon.server.jobs import StylizeRequest
from neural_style.daemon.server.worker import ModelSettings
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Error, Progress, Result


def _request(iterations: int) -> StylizeRequest:
    content = ImageData.raw(memoryview(rgb_bytes(40, 32)), 40, 32, 3)  # as received: a view of a frame
    style = ImageData.raw(memoryview(rgb_bytes(24, 24, seed=1)), 24, 24, 3)
    params = StyleParams(iterations=iterations, size=32, progress_every=1, preview=True,
                         content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))
    return StylizeRequest(params, content, [style])


def _messages_until_terminal(worker: StyleWorker, timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    out: list = []
    while time.monotonic() < deadline:
        out += [message for message, _detail in worker.poll(0.2)]
        if out and is_terminal(out[-1]):
            return out
    raise AssertionError(f"no terminal message within {timeout}s: {out}")


@pytest.fixture(scope="module")
def worker() -> StyleWorker:
    return StyleWorker("worker-1", WorkerSpec(ModelSettings(weights="random", device="cpu"), 10_000_000))


def test_a_request_with_received_views_pickles_once_made_portable() -> None:
    request = _request(3)
    with pytest.raises(TypeError):
        pickle.dumps(request)
    again = pickle.loads(pickle.dumps(portable_request(request)))
    assert bytes(again.content.data) == bytes(request.content.data)
    assert again.params == request.params


def test_a_job_streams_previews_and_ends_in_one_result(worker: StyleWorker) -> None:
    assert worker.start("j", portable_request(_request(4)))
    messages = _messages_until_terminal(worker)
    assert [type(m) for m in messages[:-1]] == [Progress] * (len(messages) - 1)
    assert any(m.image is not None for m in messages[:-1])
    assert isinstance(messages[-1], Result) and messages[-1].iterations == 4
    assert worker.poll(0.3) == []  # nothing after the terminal message


def test_one_job_at_a_time_and_cancel_stops_it(worker: StyleWorker) -> None:
    assert worker.start("long", portable_request(_request(4000)))
    assert not worker.start("second", portable_request(_request(3)))  # the front's slot never does this
    first = worker.poll(30)
    assert first and isinstance(first[0][0], Progress)
    assert worker.cancel("cancelled by the client")
    end = _messages_until_terminal(worker)[-1]
    assert isinstance(end, Error) and end.code == "cancelled" and end.message.startswith("cancelled by the client")
    deadline = time.monotonic() + 10
    while worker.cancel("again") and time.monotonic() < deadline:  # the job's thread lets go of the slot
        time.sleep(0.05)
    assert not worker.cancel("nothing runs")


def test_weights_come_from_the_front_when_the_node_has_no_file(torchvision_weights_file: Path,
                                                                tmp_path: Path) -> None:
    missing = tmp_path / "not-on-this-node" / "vgg19.pth"
    spec = WorkerSpec(ModelSettings(weights=str(missing), device="cpu"), 10_000_000)
    received = StyleWorker("worker-2", spec, weights=torchvision_weights_file.read_bytes())
    assert "VGG19 from" in received.info().description
    assert str(missing) not in received.info().description  # loaded from the bytes handed over


def test_serve_options_build_the_cluster_settings() -> None:
    from neural_style.daemon.cli import build_parser
    from neural_style.daemon.server.main import config_from_args

    args = build_parser().parse_args(["serve", "--ray", "local", "--workers", "3", "--worker-threads", "2",
                                      "--ray-timeout", "7"])
    cluster = config_from_args(args).cluster
    assert cluster == ClusterSettings("local", workers=3, worker_threads=2, connect_timeout=7.0)
    assert cluster.local
    plain = config_from_args(build_parser().parse_args(["serve"]))
    assert plain.cluster is None


def test_the_plain_daemon_never_imports_ray() -> None:
    """Ray is optional: building a plain daemon's configuration and job runner leaves it unimported
    (a subprocess, since this test process may have imported Ray for other tests)."""
    import subprocess
    import sys

    code = ("import sys, zmq\n"
            "from neural_style.daemon.cli import build_parser\n"
            "from neural_style.daemon.server.main import _job_runner, config_from_args\n"
            "config = config_from_args(build_parser().parse_args(['serve', '--weights', 'random']))\n"
            "runner = _job_runner(config, zmq.Context(), 'inproc://x')\n"
            "print(type(runner).__name__, runner.slots, 'ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Worker", "1", "False"]


def test_style_affinity_hands_a_job_to_the_idle_worker_that_has_its_style() -> None:
    from neural_style.daemon.cluster.affinity import StyleAffinity, style_key
    from neural_style.daemon.engine.params import StyleParams
    from neural_style.daemon.server.jobs import StylizeRequest
    from neural_style.protocol import ImageData

    def request(style: bytes, **params) -> StylizeRequest:
        return StylizeRequest(StyleParams(**params), None, [ImageData.raw(style, 2, 2, 3)])

    a, b = style_key(request(bytes(12))), style_key(request(bytes(range(12))))
    assert a != b and a == style_key(request(memoryview(bytes(12))))  # received styles are memoryviews
    assert a != style_key(request(bytes(12), size=64))  # another size: other targets
    routes = StyleAffinity(3, remember=2)
    routes.ran(1, a)
    assert routes.claim(0, a) is None  # slot 1 has it but is not idle
    routes.waiting(1)
    routes.waiting(2)
    assert routes.claim(1, a) is None  # the slot that has it runs it itself
    assert routes.claim(0, b) is None  # nobody has b
    assert routes.claim(0, a) == 1  # handed to slot 1, now busy ...
    assert routes.busy(1) is False  # ... so its own take goes back to the queue
    assert routes.claim(2, a) is None
    routes.ran(1, b)
    routes.ran(1, style_key(request(bytes([1] * 12))))  # remembers 2: a is forgotten, like an evicted entry
    routes.waiting(1)
    assert routes.claim(0, a) is None and routes.claim(0, b) == 1
    routes.waiting(1)
    routes.forget(1)  # replaced: its cache is gone
    assert routes.claim(0, b) is None and routes.busy(1) is False
