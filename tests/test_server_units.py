"""Unit tests of the daemon's small parts, without processes: the style-target LRU, the coalescing
and capped outbox, the frame-by-frame request reader (on an inproc pair), the bind-address
check, request limits and the job queue."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import msgpack
import pytest
import torch
import zmq
from server_fixtures import png_bytes, rgb_bytes

from neural_style.daemon.server.admission import admit_stylize
from neural_style.daemon.server.jobs import Job, JobQueue, JobState
from neural_style.daemon.server.limits import Limits
from neural_style.daemon.server.outbox import Outbox, Outgoing
from neural_style.daemon.server.reader import MessageBounds, RequestReader
from neural_style.daemon.server.security import (
    SecurityError,
    SecuritySettings,
    check_bind_allowed,
    generate_keys,
    is_local_endpoint,
)
from neural_style.daemon.server.style_cache import StyleTargetCache, estimate_bytes
from neural_style.protocol.errors import CodedError
from neural_style.protocol.image_data import ImageData
from neural_style.protocol.messages import Stylize


# ---------------------------------------------------------------------- style cache
def _grams(n: int) -> dict[str, torch.Tensor]:
    return {"relu1_1": torch.zeros(n, n)}  # n*n*4 bytes


def test_style_cache_evicts_least_recently_used_by_count():
    cache = StyleTargetCache(max_entries=2, max_bytes=10**9)
    cache["a"], cache["b"] = _grams(2), _grams(2)
    assert cache.get("a") is not None  # touch a: b is now the oldest
    cache["c"] = _grams(2)
    assert set(cache) == {"a", "c"} and cache.stats().evictions == 1


def test_style_cache_respects_its_byte_budget():
    cache = StyleTargetCache(max_entries=100, max_bytes=3 * 64 * 64 * 4)
    for key in "abcd":
        cache[key] = _grams(64)
    assert len(cache) == 3 and "a" not in cache and cache.nbytes == 3 * 64 * 64 * 4
    cache["huge"] = _grams(200)  # larger than the whole budget: not kept, nothing evicted for it
    assert "huge" not in cache and len(cache) == 3
    del cache["b"]
    assert cache.nbytes == 2 * 64 * 64 * 4


def test_style_cache_size_zero_disables_it():
    cache = StyleTargetCache(max_entries=0)
    cache["a"] = _grams(2)
    assert len(cache) == 0 and cache.get("a") is None


def test_estimate_bytes_walks_containers():
    assert estimate_bytes({"x": [torch.zeros(10), (torch.zeros(5, dtype=torch.float64),)]}) == 40 + 40
    assert estimate_bytes("not a tensor") == 0


# ---------------------------------------------------------------------- outbox
def test_outbox_coalesces_progress_and_heartbeats_but_keeps_everything_else():
    box = Outbox()
    box.add(Outgoing("accepted", "j", [b"a"]))
    box.add(Outgoing("progress", "j", [b"p1"]))
    box.add(Outgoing("heartbeat", "j", [b"h1"]))
    box.add(Outgoing("progress", "other", [b"o1"]))
    box.add(Outgoing("progress", "j", [b"p2"]))  # replaces p1
    box.add(Outgoing("heartbeat", "j", [b"h2"]))  # replaces h1
    box.add(Outgoing("result", "j", [b"r"]))
    box.add(Outgoing("progress", "j", [b"late"]))  # never happens in the daemon, but must not drop the result
    order = [(item.kind, item.frames[0]) for item in box]
    assert order == [("accepted", b"a"), ("progress", b"o1"), ("progress", b"p2"), ("heartbeat", b"h2"),
                     ("result", b"r"), ("progress", b"late")]
    assert box.replaced == 2


def test_outbox_keeps_essential_messages_and_caps_droppable_ones():
    """The outbox alone: coalesced messages stay one per job and kind; droppable ones beyond the cap
    push the oldest droppable out; essential ones are never dropped; new jobs are refused while
    an essential one or ``cap`` messages wait."""
    box = Outbox(cap=3)
    box.add(Outgoing("accepted", "j", [b"a"], essential=True))
    for n in range(10):
        box.add(Outgoing("pong", f"p{n}", [b"p"]))
        box.add(Outgoing("progress", "j", [f"{n}".encode()]))
    box.add(Outgoing("result", "j", [b"r"], essential=True))
    kinds = [(item.kind, item.request_id) for item in box]
    assert kinds == [("accepted", "j"), ("pong", "p7"), ("pong", "p8"), ("pong", "p9"), ("progress", "j"),
                     ("result", "j")]
    assert box.dropped == 7 and box.refuses_jobs
    while box:
        box.pop()
    assert not box.refuses_jobs and len(box) == 0
    box.add(Outgoing("pong", "again", [b"p"]))  # the droppable count followed the pops
    assert [item.request_id for item in box] == ["again"] and not box.refuses_jobs
    box.add(Outgoing("result", "k", [b"r"], essential=True))
    assert box.refuses_jobs  # one unread job message is enough


def test_reader_counts_frames_and_bytes_and_keeps_nothing_of_a_refused_message():
    """In-process, on an inproc pair: a message within the bounds keeps its frames; one over them keeps
    only its header (for the id); reading in small slices resumes in the middle of a message."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        router.bind("inproc://reader-test")
        dealer.connect("inproc://reader-test")
        reader = RequestReader(router, MessageBounds(max_frames=3, max_bytes=100))
        dealer.send_multipart([msgpack.packb({"id": "a"}), b"x" * 10, b"y" * 10])  # fits
        dealer.send_multipart([msgpack.packb({"id": "b"})] + [b"z"] * 50)  # too many frames
        dealer.send_multipart([msgpack.packb({"id": "c"}), b"w" * 200])  # too many bytes
        got: list[Any] = []
        while len(got) < 3:
            router.poll(1000)
            got += reader.read(frame_budget=7, message_budget=64)  # small slices: resumed mid-message
        ok, many, big = got
        assert ok.refused_code is None and [len(f) for f in ok.frames] == [len(msgpack.packb({"id": "a"})), 10, 10]
        assert (many.refused_code, many.frame_count, many.frames, many.request_id) == ("too_large", 51, [], "b")
        big_size = len(msgpack.packb({"id": "c"})) + 200
        assert (big.refused_code, big.size, big.frames, big.request_id) == ("too_large", big_size, [], "c")
        assert "51 frames" in many.refused_message and f"{big_size} bytes" in big.refused_message
    finally:
        router.close(0)
        dealer.close(0)
        ctx.term()


# ---------------------------------------------------------------------- security
@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5570", True), ("tcp://127.9.9.9:1", True), ("tcp://localhost:5570", True),
    ("tcp://[::1]:5570", True), ("ipc:///tmp/x.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5570", False), ("tcp://*:5570", False), ("tcp://192.168.1.4:5570", False),
    ("tcp://[::]:5570", False),
])
def test_is_local_endpoint(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_check_bind_allowed(tmp_path):
    check_bind_allowed("tcp://127.0.0.1:1", SecuritySettings())
    with pytest.raises(SecurityError, match="--curve-dir"):
        check_bind_allowed("tcp://0.0.0.0:1", SecuritySettings())
    check_bind_allowed("tcp://0.0.0.0:1", SecuritySettings(insecure=True))
    check_bind_allowed("tcp://0.0.0.0:1", SecuritySettings(curve_dir=tmp_path))
    with pytest.raises(SecurityError, match="transport"):
        check_bind_allowed("udp://0.0.0.0:1", SecuritySettings())


def test_generate_keys_is_idempotent(tmp_path):
    server, client = generate_keys(tmp_path)
    before = (tmp_path / "server.key_secret").read_bytes()
    generate_keys(tmp_path)
    assert (tmp_path / "server.key_secret").read_bytes() == before
    assert server.is_file() and client.is_file() and (tmp_path / "clients" / "client.key").is_file()


def test_ipc_lock_is_exclusive_and_cleans_up_only_what_it_owns(tmp_path):
    from neural_style.daemon.server.bind import EndpointBusy, IpcLock

    endpoint = f"ipc://{tmp_path}/d.sock"
    first, second = IpcLock(endpoint), IpcLock(endpoint)
    first.acquire()
    with pytest.raises(EndpointBusy):
        second.acquire()
    (tmp_path / "d.sock").write_text("someone else's socket")  # first never bound: not its to remove
    first.release()
    assert (tmp_path / "d.sock").exists() and not (tmp_path / "d.sock.lock").exists()
    second.acquire()
    second.owns_socket = True
    second.release()
    assert not (tmp_path / "d.sock").exists()
    IpcLock("tcp://127.0.0.1:5570").acquire()  # TCP needs no lock: the kernel refuses a second bind


# ---------------------------------------------------------------------- CPU threads
def test_thread_policies_parse_resolve_and_prepare_the_environment():
    from neural_style.daemon.server.threads import ThreadPolicy

    assert ThreadPolicy.parse("auto") == ThreadPolicy() and ThreadPolicy.parse(" Torch ").mode == "torch"
    assert ThreadPolicy.parse("3") == ThreadPolicy("fixed", 3) and str(ThreadPolicy.parse("3")) == "3"
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="--threads"):
            ThreadPolicy.parse(bad)
    # the measured default: one thread per physical core (docs/PERFORMANCE.md)
    assert ThreadPolicy().resolved(4) == ThreadPolicy("fixed", 4) and ThreadPolicy("load").resolved(4).mode == "load"
    env: dict[str, str] = {}
    ThreadPolicy("torch").prepare_environment(env)
    assert env == {}  # torch's defaults are left alone
    ThreadPolicy().prepare_environment(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    ThreadPolicy.parse("2").prepare_environment(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"  # an explicit setting wins


def test_thread_controller_sets_torch_threads_and_load_follows_the_idle_cores():
    from neural_style.daemon.server.threads import ThreadController, ThreadPolicy, physical_cores

    before = torch.get_num_threads()
    try:
        assert "1 CPU thread(s) (--threads 1, 2 physical core(s)" in ThreadController(ThreadPolicy("fixed", 1),
                                                                                      cores=2).configure()
        assert torch.get_num_threads() == 1
        load = ThreadController(ThreadPolicy("load"), cores=2)
        load._sampler.others = lambda: 1.6  # type: ignore[union-attr,method-assign]  # others busy on 1.6 cores
        load.before_job()
        assert torch.get_num_threads() == 1
        load._sampler.others = lambda: 0.0  # type: ignore[union-attr,method-assign]
        load.before_job()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert physical_cores() >= 1


# ---------------------------------------------------------------------- limits
def _request(width: int = 40, height: int = 32, **params) -> Stylize:
    return Stylize("id", ImageData.raw(rgb_bytes(width, height), width, height, 3),
                   [ImageData.raw(rgb_bytes(8, 8), 8, 8, 3)], params)


def test_limits_accept_a_normal_request():
    request = admit_stylize(_request(iterations=10, style_layers=["relu1_1"]), Limits())
    assert request.params.iterations == 10 and request.params.style_layers == ("relu1_1",)


@pytest.mark.parametrize("params, code, words", [
    ({"iterations": 6000}, "too_large", "iterations"),
    ({"size": 80}, "too_large", "size 80 is over this daemon's max_size of 64 pixels, which bounds every "
                                "working size but a content's own; size 0 (the content's own 100x50, within "
                                "max_pixels) is accepted"),
    ({"iterations": 0}, "bad_request", "iterations"),
    ({"content_layers": ["conv9_9"]}, "bad_request", "conv9_9"),
    ({"optimiser": "adam"}, "bad_request", "optimiser"),
])
def test_limits_reject_params(params, code, words):
    with pytest.raises(CodedError) as err:
        admit_stylize(_request(100, 50, **params), Limits(max_size=64))
    assert err.value.code == code and words in err.value.message


@pytest.mark.parametrize("params", [
    {"size": 0},  # the content's own size: bounded by max_pixels, not max_size
    {"size": 100},  # no smaller than the content's longest side: the engine never scales up, so native too
    {"size": 5000},
    {"size": 64, "style_scale": 100.0},  # a style image is used at most at its own size: its pixels bound it
])
def test_limits_accept_native_jobs_over_max_size(params):
    assert admit_stylize(_request(100, 50, **params), Limits(max_size=64)).params.size == params["size"]


def test_limits_bound_a_native_job_by_max_pixels_and_a_texture_by_max_size():
    with pytest.raises(CodedError, match="100x50 = 5000 pixels; this daemon accepts at most 4999") as err:
        admit_stylize(_request(100, 50, size=0), Limits(max_pixels=4999))
    assert err.value.code == "too_large"
    def texture(**params) -> Stylize:
        return Stylize("id", None, [ImageData.raw(rgb_bytes(8, 8), 8, 8, 3)], params)

    for params, words in (({"size": 0, "width": 65, "height": 16}, "width 65 is over"),
                          ({"width": 64}, "size 512 is over")):  # the height is the size's
        with pytest.raises(CodedError, match=words) as err:
            admit_stylize(texture(**params), Limits(max_size=64))
        assert err.value.code == "too_large"
    admit_stylize(texture(width=64, height=64), Limits(max_size=64))  # the default size 512 is not used


def test_admission_applies_the_engines_size_rule_without_importing_torch():
    """The socket loop admits requests; it must stay torch-free while using the engine's own size rule."""
    code = ("import sys\n"
            "from neural_style.daemon.server.admission import admit_stylize\n"
            "from neural_style.daemon.engine.sizes import output_size\n"
            "from neural_style.daemon.engine import StyleParams\n"
            "assert output_size(StyleParams(size=100), (50, 100)) == (50, 100)\n"
            "assert output_size(StyleParams(size=64), (50, 100)) == (32, 64)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("daemon, asked, job", [
    (4096, 2048, 2048),  # the request's smaller budget
    (4096, 8192, 4096),  # capped to the daemon's
    (4096, 0, 4096),  # none asked: the daemon's
    (0, 2048, 2048),  # no daemon budget: the request's
    (0, 0, 0),  # neither: what the device gives
])
def test_a_jobs_memory_is_the_smaller_of_the_daemons_and_the_requests(daemon, asked, job):
    request = admit_stylize(_request(max_memory=asked), Limits(max_memory=daemon))
    assert request.params.max_memory == job


@pytest.mark.parametrize("daemon, asked, job", [(40, 0, 40), (40, 20, 20), (40, 1024, 40), (0, 0, 0), (0, 20, 20)])
def test_a_jobs_preview_size_is_capped_by_the_daemons(daemon, asked, job):
    request = admit_stylize(_request(preview=True, preview_size=asked), Limits(max_preview_size=daemon))
    assert request.params.preview_size == job


@pytest.mark.parametrize("limits, words", [
    ({"max_memory": 10}, "^max_memory must be 0"),
    ({"max_preview_size": 8}, "^max_preview_size must be 0"),
    ({"max_size": 0}, "max_size must be at least 1"),
])
def test_limits_refuse_values_the_parameters_could_not_take(limits, words):
    with pytest.raises(ValueError, match=words):
        Limits(**limits)


def test_limits_probe_encoded_images_without_decoding():
    ok = Stylize("id", ImageData.png(png_bytes(40, 30)), [ImageData.raw(rgb_bytes(8, 8), 8, 8, 3)], {})
    admit_stylize(ok, Limits(max_pixels=40 * 30))
    with pytest.raises(CodedError) as err:
        admit_stylize(ok, Limits(max_pixels=40 * 30 - 1))
    assert err.value.code == "too_large"
    wrong_hint = Stylize("id", ImageData(png_bytes(40, 30), 41, 30, None, "png"),
                         [ImageData.raw(rgb_bytes(8, 8), 8, 8, 3)], {})
    with pytest.raises(CodedError, match="41x30"):
        admit_stylize(wrong_hint, Limits())


# ---------------------------------------------------------------------- job queue
def _job(name: str) -> Job:
    return Job(client=b"c", request_id=name, request=admit_stylize(_request(iterations=1), Limits()))


def test_job_queue_is_bounded_fifo_and_closable():
    queue = JobQueue(max_length=2)
    a, b, c = _job("a"), _job("b"), _job("c")
    assert queue.put(a) == 1 and queue.put(b) == 2 and queue.put(c) is None
    assert queue.remove(b) and not queue.remove(b)
    assert queue.take(timeout=0) is a and a.state is JobState.RUNNING
    assert queue.take(timeout=0.01) is None
    queue.put(c)
    assert queue.drain() == [c] and queue.put(_job("d")) is None


def test_unfinished_job_states_are_the_protocols():
    from neural_style.daemon.server.jobs import JobState
    from neural_style.protocol.messages import JOB_STATES

    assert {state.value for state in JobState if state is not JobState.DONE} == set(JOB_STATES)


def test_job_queue_take_wakes_on_put():
    queue = JobQueue(max_length=1)
    got: list[Job | None] = []
    taker = threading.Thread(target=lambda: got.append(queue.take(timeout=10)))
    taker.start()
    job = _job("a")
    queue.put(job)
    taker.join(10)
    assert got == [job]


def test_max_queue_zero_still_runs_one_job_at_a_time(tmp_path):
    """--max-queue 0: an idle daemon takes a job; a second one while it runs is busy."""
    import threading

    from server_fixtures import ENDLESS, FAST, RawClient, terminal_of

    from neural_style.daemon.server.main import ServerConfig, run_server
    from neural_style.daemon.server.worker import ModelSettings

    endpoint = f"ipc://{tmp_path}/q0.sock"
    config = ServerConfig(bind=endpoint, model=ModelSettings("random", device="cpu"), limits=Limits(max_queue=0))
    stop = threading.Event()
    thread = threading.Thread(target=run_server, args=(config, stop))
    thread.start()
    try:
        with RawClient(endpoint) as client:
            client.stylize("one", ENDLESS)
            assert client.recv_for("one", timeout=60)[0]["type"] == "accepted"
            client.stylize("two", {**FAST, "iterations": 1})
            assert client.recv_for("two")[0]["code"] == "busy"
            client.request({"type": "cancel", "id": "c", "target": "one"})
            assert terminal_of(client.stream("one", quiet=0))["code"] == "cancelled"
    finally:
        stop.set()
        thread.join(30)


def test_protocol_md_lists_every_limit_with_its_default():
    """PROTOCOL.md section 9's table is pong's keys, the serve options and Limits' defaults, one row each."""
    import dataclasses
    import re
    from pathlib import Path

    from neural_style.daemon.server.limits import MiB

    text = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    table = text[text.index("| key | option | default | what it bounds |"):].split("\n\n")[0].splitlines()[2:]
    rows = {cells[0].strip("` "): cells[1:3] for cells in (line.strip("|").split("|") for line in table)}
    defaults = Limits()
    assert set(rows) == {f.name for f in dataclasses.fields(Limits)}
    for name, (option, default) in rows.items():
        assert option.strip(" `") == "--" + name.replace("_", "-").replace("bytes", "mb"), name
        number = int(re.sub(r"[ ,]|MiB", "", default))
        assert number * (MiB if "MiB" in default else 1) == getattr(defaults, name), name
