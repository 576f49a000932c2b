"""Long-term consistency (issue 15): earlier frames besides t−1, each pixel held by the closest one where it is
visible; on the wire (``stylize.earlier``, a real daemon process), in the loop (resume) and in the CLI."""
from __future__ import annotations

import io

import numpy as np
import pytest
from server_fixtures import FAST, RawClient, raw_image, shared_daemon
from test_cli_video import FAST as CLI_FAST
from test_cli_video import _pngs, cli, inputs  # noqa: F401  (inputs: the fixture of tiny frames)
from test_sequence_protocol import HEIGHT, WIDTH, _raw, _u8

from neural_style.daemon.sequence.frame_start import frame_start
from neural_style.daemon.sequence.frames import read_image, write_frame
from neural_style.daemon.sequence.synthetic import pan_with_occluder
from neural_style.protocol import Client, Result
from neural_style.protocol.messages import Earlier, Previous, Stylize, decode_request


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    photo = np.repeat(np.repeat(rng.random((24, 20, 3), dtype=np.float32), 4, 0), 4, 1)
    sequence = pan_with_occluder(photo, rng.random((16, 16, 3), dtype=np.float32), 4, HEIGHT, WIDTH,
                                 pan=(3, 1), speed=(-2, 1), side=10)
    return [_u8(f) for f in sequence.frames]


# ------------------------------------------------------------------ the weights (pure, real flow)


def test_a_pixel_lost_in_the_previous_frame_is_held_by_an_earlier_one_where_visible() -> None:
    """A cut in frame t−1 (unrelated noise) leaves little certain there; frame t−2 shows frame t itself,
    so it holds what t−1 cannot: its weight is 1 − c. With a good t−1 the earlier frame holds nothing."""
    rng = np.random.default_rng(1)
    photo = np.repeat(np.repeat(rng.random((16, 24, 3), dtype=np.float32), 4, 0), 4, 1)  # 64×96
    cut = rng.random(photo.shape, dtype=np.float32)
    stylized = np.full_like(photo, 0.25)
    lost = frame_start(photo, cut, stylized, (64, 96), "dis", [(photo, stylized * 2)])
    c, w = lost.certainty, lost.earlier[0].weight
    assert c.mean() < 0.7  # the cut: much of frame t is not visible in t−1
    inner = (slice(3, -3), slice(3, -3))  # the checks' own frame edge (p + w must stay inside) aside
    np.testing.assert_allclose(w[inner], 1.0 - c[inner], atol=1e-5)  # it sees all of it, holds the rest
    np.testing.assert_allclose(lost.earlier[0].image, 0.5, atol=1e-3)  # its own result, warped (no motion)

    held = frame_start(photo, photo, stylized, (64, 96), "dis", [(cut, stylized)])
    assert held.certainty[inner].min() > 0.99 and held.earlier[0].weight[inner].max() < 1e-6  # t−1 holds them


def test_each_weight_is_what_the_closer_frames_leave(frames) -> None:
    """On the pan with the occluder: t−1's certainty is unchanged, the weights never add up past 1."""
    f = [x / 255.0 for x in frames]
    prepared = frame_start(f[3], f[2], f[2], (HEIGHT, WIDTH), "dis", [(f[1], f[1]), (f[0], f[0])])
    plain = frame_start(f[3], f[2], f[2], (HEIGHT, WIDTH), "dis")
    np.testing.assert_array_equal(prepared.certainty, plain.certainty)
    np.testing.assert_array_equal(prepared.start, plain.start)  # the start is still the warped t−1
    total = prepared.certainty + sum(e.weight for e in prepared.earlier)
    assert total.max() <= 1.0 + 1e-5 and len(prepared.earlier) == 2
    with pytest.raises(ValueError, match="different sizes"):
        frame_start(f[3], f[2], f[2], (HEIGHT, WIDTH), "dis", [(f[0][:-2], f[0])])


# ------------------------------------------------------------------ the wire


def test_earlier_travels_last_and_decodes_back_absent_is_todays_bytes() -> None:
    import msgpack

    image = _raw(np.zeros((2, 2, 3), np.uint8))
    previous = Previous(image, image)
    today = Stylize("s", image, [image], {}, None, previous).to_frames()
    assert "earlier" not in msgpack.unpackb(bytes(today[0]))
    frames = Stylize("s", image, [image], {}, None, previous, earlier=[Earlier(image, image, 10)]).to_frames()
    header = msgpack.unpackb(bytes(frames[0]))
    assert list(header)[-1] == "earlier" and len(frames) == 7
    assert header["earlier"] == [{"content": header["earlier"][0]["content"], "stylized":
                                  header["earlier"][0]["stylized"], "offset": 10}]
    decoded = decode_request(frames)
    assert isinstance(decoded, Stylize) and decoded.earlier is not None and decoded.earlier[0].offset == 10


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    return shared_daemon(tmp_path_factory)


def test_a_frame_with_earlier_frames_and_the_most_of_everything_fits_one_request(daemon, frames) -> None:
    """The frame bound counts ``max_earlier`` earlier frames beside the previous one and ``max_styles``
    styles; the result comes back and the daemon held the frame to them."""
    with Client(daemon.endpoint, timeout=60) as client:
        limits = client.ping().limits
        style = _raw(np.full((16, 16, 3), 90, np.uint8))
        earlier = [Earlier(_raw(frames[0]), _raw(frames[0]), 2 + i) for i in range(limits["max_earlier"])]
        events = list(client.stylize(_raw(frames[2]), [style] * limits["max_styles"],
                                     {**FAST, "iterations": 1}, previous=Previous(_raw(frames[1]), _raw(frames[1])),
                                     earlier=earlier))
    assert isinstance(events[-1], Result)


def test_bad_earlier_frames_are_refused_before_accepted_with_their_field(daemon, frames) -> None:
    content = np.ascontiguousarray(frames[2]).tobytes()
    small = bytes(40 * 30 * 3)
    style = bytes(24 * 24 * 3)
    base = {"content": raw_image(1, WIDTH, HEIGHT), "styles": [raw_image(2, 24, 24)], "params": FAST}
    previous = {"content": raw_image(3, WIDTH, HEIGHT), "stylized": raw_image(4, WIDTH, HEIGHT)}

    def frame(first: int, offset: int, width: int = WIDTH, height: int = HEIGHT) -> dict:
        return {"content": raw_image(first, width, height), "stylized": raw_image(first + 1, width, height),
                "offset": offset}

    cases = [  # (header extra, extra payloads, code, field)
        ({"earlier": [frame(3, 2)]}, [content, content], "bad_request", "earlier"),  # without previous
        ({"previous": previous, "earlier": [frame(5, 10), frame(7, 10)]}, [content] * 6, "bad_request",
         "earlier[1].offset"),  # offsets not increasing
        ({"previous": previous, "earlier": [frame(5, 1)]}, [content] * 4, "bad_request",
         "earlier[0].offset"),  # 1 is the previous frame
        ({"previous": previous, "earlier": [frame(5, 5, 40, 30)]}, [content, content, small, small],
         "bad_request", "earlier[0].content"),  # another size
        ({"previous": previous, "earlier": [{**frame(5, 5), "stylized": raw_image(6, 40, 40)}]},
         [content, content, content, bytes(40 * 40 * 3)], "bad_request", "earlier[0].stylized"),  # another shape
        ({"previous": previous, "earlier": [{"content": raw_image(5, WIDTH, HEIGHT), "offset": 3}]},
         [content, content, content], "bad_request", "earlier[0].stylized"),  # half a frame
    ]
    with RawClient(daemon.endpoint) as client:
        most = client.request({"type": "ping", "id": "limits"})["limits"]["max_earlier"]
        many = [frame(5 + 2 * i, 2 + i) for i in range(most + 1)]
        cases.append(({"previous": previous, "earlier": many}, [content] * (2 + 2 * len(many)), "too_large",
                      "earlier"))
        for i, (extra, payloads, code, field) in enumerate(cases):
            reply = client.request({"type": "stylize", "id": f"bad{i}", **base, **extra}, content, style, *payloads)
            assert reply["type"] == "error", reply
            assert (reply["code"], reply.get("field")) == (code, field), reply
            assert reply["message"]
        assert client.request({"type": "ping", "id": "after"})["type"] == "pong"  # still serving


# ------------------------------------------------------------------ the loop and the CLI


def test_a_resumed_run_hands_on_the_earlier_frames_read_back_from_the_files(inputs, tmp_path) -> None:  # noqa: F811
    """The loop's logic (a recording stylizer): frames on disk are read back as earlier frames with their
    offsets, only the offsets the history already holds."""
    from neural_style.daemon.progress_bar import FrameProgress
    from neural_style.daemon.sequence_run import open_source, run_sequence

    folder, _video, _style = inputs
    out = tmp_path / "out"
    marker = np.full((32, 48, 3), 7, np.uint8)
    write_frame(out, "shot1", marker)
    write_frame(out, "shot2", marker + 1)
    seen: list[list[tuple[int, int]]] = []

    def stylize_frame(content, previous, on_progress, *, stop=None, earlier=()):
        seen.append([(e.offset, int(e.stylized[0, 0, 0])) for e in earlier])
        return np.full_like(content, 100 + len(seen))

    done = run_sequence(open_source(folder), out, stylize_frame, FrameProgress(4, 3, stream=io.StringIO()),
                        long_term=(2, 3))
    assert done == 2
    assert seen == [[(2, 7)], [(2, 8), (3, 7)]]  # frame 3: shot1 as written; frame 4: shot2 and shot1


def test_the_cli_long_term_option_through_the_daemon_and_locally(tmp_path_factory, inputs, tmp_path) -> None:  # noqa: F811
    daemon = shared_daemon(tmp_path_factory)
    folder, _video, style = inputs
    through = cli("video", str(folder), str(style), "-o", str(tmp_path / "d"), "--long-term", "2,3",
                  "--endpoint", daemon.endpoint, "--no-autostart", *CLI_FAST)
    assert through.returncode == 0, through.stderr
    too_many = cli("video", str(folder), str(style), "-o", str(tmp_path / "m"), "--long-term", "2,3,4,5,6",
                   "--endpoint", daemon.endpoint, "--no-autostart", *CLI_FAST)
    assert too_many.returncode == 2 and "at most 4" in too_many.stderr and not (tmp_path / "m").exists()
    local = cli("video", str(folder), str(style), "-o", str(tmp_path / "l"), "--long-term", "2", "--local",
                *CLI_FAST)
    assert local.returncode == 0, local.stderr
    for out in (tmp_path / "d", tmp_path / "l"):
        assert _pngs(out) == ["shot1.png", "shot2.png", "shot3.png", "shot4.png"]
        assert read_image(out / "shot4.png").shape == (32, 48, 3)
    bad = cli("video", str(folder), str(style), "-o", str(tmp_path / "b"), "--long-term", "1,10", "--local",
              *CLI_FAST)
    assert bad.returncode == 2 and "2 or more" in bad.stderr


def test_a_square_that_turns_back_has_its_true_flow() -> None:
    """``turn``: after it the square goes back the way it came; the true flow follows it, so that warping frame
    t−1 by it gives frame t on every pixel marked visible (the measure of bench/temporal_bench.py --turn)."""
    from neural_style.daemon.sequence.flow import warp

    rng = np.random.default_rng(2)
    photo = rng.random((60, 80, 3), dtype=np.float32)
    seq = pan_with_occluder(photo, rng.random((12, 12, 3), dtype=np.float32), 6, 40, 56, pan=(2, 1),
                            speed=(-3, 1), side=12, turn=3)
    xs = [box[0] for box in seq.occluder_boxes]
    assert xs[1] - xs[0] == -3 and xs[4] - xs[3] == 3 and xs[5] == xs[1]  # there and back
    for t in range(1, 6):
        backward, visible = seq.backward[t], seq.visible[t]
        assert backward is not None and visible is not None
        moved = warp(seq.frames[t - 1], backward)
        np.testing.assert_allclose(moved[visible], seq.frames[t][visible], atol=1e-5)


def test_temporal_inputs_give_one_target_per_frame_and_none_at_weight_0() -> None:
    """The adapter both paths use: frame t−1's target first, then each earlier frame's with its weight."""
    import torch

    from neural_style.daemon.engine.params import StyleParams
    from neural_style.daemon.temporal_inputs import temporal_inputs

    rng = np.random.default_rng(4)
    photo = torch.from_numpy(np.repeat(np.repeat(rng.random((3, 8, 12), dtype=np.float32), 4, 1), 4, 2))
    cut = torch.rand(photo.shape, generator=torch.Generator().manual_seed(0))
    params = StyleParams(size=48, temporal_weight=1e4)
    start, targets = temporal_inputs(photo, cut, photo, params, "dis", [(photo, photo * 0.5), (cut, cut)])
    assert tuple(start.shape) == (3, 32, 48) and len(targets) == 3
    weights = torch.stack([t.certainty[0] for t in targets])
    assert float(weights.sum(0).max()) <= 1.0 + 1e-5 and float(targets[1].certainty.mean()) > 0.2
    _start, none = temporal_inputs(photo, cut, photo, params.replace(temporal_weight=0.0), "dis", [(photo, photo)])
    assert none == ()
