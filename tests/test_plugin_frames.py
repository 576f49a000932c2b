"""An animation's frames for the plug-in (nsgimp/frames.py): frame order, the names' delays and disposal, the
previous-frame bookkeeping through the job's loop (a scripted fake client), the progress bar's words.

Real GIMP and a real daemon meet in tests/test_gimp_frames.py."""
from __future__ import annotations

import sys
from pathlib import Path

from fake_client import FakeClient
from test_plugin_job import PIXEL, RecordingView, connection, progress, settings

from neural_style.protocol import ImageData, Loss, Previous, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin" / "neural_style_gimp"))
from nsgimp import frames, job


def test_names_carry_the_delay_and_the_disposal_as_gimps_gif_export_reads_them():
    assert frames.parse_frame_name("Frame 3 (100ms) (combine)") == frames.FrameTags(100, "combine")
    assert frames.parse_frame_name("Frame 1 (replace) (40 ms)") == frames.FrameTags(40, "replace")
    assert frames.parse_frame_name("walk (250MS)(Replace)") == frames.FrameTags(250, "replace")
    assert frames.parse_frame_name("Background") == frames.FrameTags(None, None)
    assert frames.parse_frame_name("Frame 2 (fast) (ms)") == frames.FrameTags(None, None)


def test_the_bottom_layer_is_the_first_frame():
    assert frames.frame_order(4) == [3, 2, 1, 0]  # positions in image.get_layers(), top first
    assert frames.frame_order(1) == [0]
    assert frames.frame_order(0) == []


def test_a_combine_frame_is_drawn_over_the_one_before_and_a_replace_frame_alone():
    names = ["Frame 1 (100ms) (combine)", "Frame 2 (100ms) (combine)", "Frame 3 (replace)", "Frame 4"]
    assert [frames.draws_alone(names, i) for i in range(4)] == [True, False, True, False]


def test_a_result_is_a_whole_frame_its_name_keeps_the_delay_and_says_replace():
    assert frames.result_name("Frame 3 (100ms) (combine)") == "Frame 3 (100ms) (replace)"
    assert frames.result_name("Frame 1 (replace) (40ms)") == "Frame 1 (replace) (40ms)"
    assert frames.result_name("Frame 2 (80ms)") == "Frame 2 (80ms) (replace)"
    assert frames.parse_frame_name(frames.result_name("x (70ms) (COMBINE)")) == frames.FrameTags(70, "replace")


def test_the_new_image_is_named_after_the_animation():
    assert frames.result_file_name("walk.gif") == "walk-neural-style.xcf"
    assert frames.result_file_name("my.walk.webp") == "my.walk-neural-style.xcf"
    assert frames.result_file_name(".hidden") == ".hidden-neural-style.xcf"
    assert frames.result_file_name("frames") == "frames-neural-style.xcf"


def _image(value: int) -> ImageData:
    return ImageData.raw(bytes([value]) * 3, 1, 1, 3)


def test_each_frame_after_the_first_carries_the_frame_before_it(tmp_path):
    contents = [_image(10), _image(20), _image(30)]
    stylized = [_image(110), _image(120), _image(130)]
    st = settings(tmp_path, iterations=4)
    chain, clock = frames.FrameChain(), frames.SequenceClock(3)
    requests = []
    for content, result_image in zip(contents, stylized):
        client = FakeClient([progress(2, 4, 1.0), Result("j", result_image, Loss(), 4, 1.0)])
        clock.start_frame()
        result = job.run_job(connection(client), st, content, [PIXEL], RecordingView(), previous=chain.previous(),
                             text=frames.FrameProgressText(st.iterations, clock=clock))
        chain.advance(content, result.image)
        clock.finish_frame()
        requests.append(client.requests[0])
    assert requests[0]["previous"] is None
    assert requests[1]["previous"] == Previous(contents[0], stylized[0], "dis")
    assert requests[2]["previous"] == Previous(contents[1], stylized[1], "dis")
    assert [r["content"] for r in requests] == contents


def test_progress_says_frame_i_of_n_and_the_sequences_time_left(tmp_path):
    clock = frames.SequenceClock(3)
    client = FakeClient([progress(1, 10, 1.0), progress(5, 10, 5.0, seconds_left=20.0),
                         Result("j", PIXEL, Loss(), 10, 6.0)])
    view = RecordingView()
    clock.done = [30.0]  # frame 1 took 30 s: frame 2 of 3 runs, one frame after it
    job.run_job(connection(client), settings(tmp_path, iterations=10), PIXEL, [PIXEL], view,
                text=frames.FrameProgressText(10, clock=clock))
    texts = [t for t in view.texts if "iteration" in t]
    assert texts[0] == "Neural Style: frame 2 of 3 · iteration 1/10"  # nothing measured yet
    assert texts[1] == "Neural Style: frame 2 of 3 · iteration 5/10 · about 50 s left"  # 20 s + one 30 s frame
    fractions = [f for t, f in view.shown if "iteration" in t]
    assert fractions == [(1 + 0.1) / 3, (1 + 0.5) / 3]


def test_the_time_left_before_a_frame_has_finished_is_the_current_frames_length_for_each_frame_left():
    clock = frames.SequenceClock(4)
    clock.started = 100.0
    # 10 s into frame 1, 30 s left in it: each of the 3 frames after it takes about 40 s
    assert clock.seconds_left(30.0, now=110.0) == 30.0 + 3 * 40.0
    assert clock.seconds_left(None, now=110.0) is None
    clock.done = [10.0, 20.0, 30.0]  # the last frame: nothing after it
    assert clock.seconds_left(5.0) == 5.0


def test_waiting_in_the_queue_names_the_frame(tmp_path):
    text = frames.FrameProgressText(10, clock=frames.SequenceClock(6, done=[1.0, 1.0]))
    assert text.waiting("queued", 2) == ("Neural Style: frame 3 of 6 · queued behind 2 jobs", 2 / 6)


def test_the_frames_dialogs_size_note_counts_every_frame_of_the_animation():
    assert frames.size_note(6, 200, 150) == ("The animation is 6 frames of 200 × 150 px "
                                             "(6 × 0.03 megapixels = 0.18 megapixels).")
    assert frames.size_note(1, 4000, 3000).startswith("The animation is 1 frame of 4000 × 3000 px (1 × 12 megapixels")


def test_a_frame_deleted_during_the_run_is_found_from_the_frame_asked_on():
    ids = [31, 30, 29, 28]  # frame order: the bottom layer first
    assert frames.missing_frame(ids, [28, 29, 30, 31]) is None
    assert frames.missing_frame(ids, [28, 30, 31]) == 2  # the third frame's layer went
    assert frames.missing_frame(ids, [28, 29, 30, 99], first=1) is None  # frame 1, done already, does not matter
    assert frames.missing_frame(ids, [], first=4) is None  # every frame read
    text = frames.frame_gone_text(2, 4, "Frame 3 (100ms)")
    assert text.startswith("Neural Style: frame 3 of 4 ('Frame 3 (100ms)') was deleted from the animation")
