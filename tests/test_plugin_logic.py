"""The plug-in's pure helpers (plugin/neural_style_gimp/nsgimp): no GIMP needed."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugin" / "neural_style_gimp"
sys.path.insert(0, str(PLUGIN_DIR))

from nsgimp import advice, bootstrap, remembered, stylefile  # noqa: E402
from nsgimp import settings as S  # noqa: E402
from nsgimp.progress import ProgressText  # noqa: E402
from nsgimp.sandbox import detect_sandbox  # noqa: E402

from neural_style.protocol.reports import duration  # noqa: E402

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"\xff\xd9"


def test_plugin_file_is_a_gimp3_plugin():
    main = PLUGIN_DIR / "neural_style_gimp.py"
    source = main.read_text()
    assert source.startswith("#!/usr/bin/env python3\n")
    assert main.stat().st_mode & 0o111, "GIMP ignores plug-ins that are not executable"
    assert PLUGIN_DIR.name == main.stem, "GIMP 3 wants plug-ins/NAME/NAME.py"
    assert "Gimp.main(" in source and "GimpUi.ProcedureDialog" in source
    assert "traceback.print_exc" in source and "NEURAL_STYLE_DEBUG" in source  # only on request
    assert "def do_quit" in source and "undo_freeze" in source and "S.WORKER_NAME" in source
    # the protocol only through the top-level package (its modules may be renamed)
    assert "neural_style.protocol." not in source
    for module in (PLUGIN_DIR / "nsgimp").glob("*.py"):
        assert "neural_style.protocol." not in module.read_text(), module.name


def test_help_pages_map_the_procedure():
    xml = (PLUGIN_DIR / "help" / "en" / "gimp-help.xml").read_text()
    assert f'id="{S.PROCEDURE_NAME}" ref="index.html"' in xml
    page = (PLUGIN_DIR / "help" / "en" / "index.html").read_text()
    for argument in ("style", "strength", "working-size", "full-resolution", "autostart"):
        assert S.label(argument) in page, argument


@pytest.mark.parametrize("strength, weight", [(0, 10.0), (50, 1000.0), (100, 1e5), (25, 10 ** 2.0)])
def test_strength_maps_to_style_weight_on_a_log_scale(strength, weight):
    assert S.style_weight_from_strength(strength) == pytest.approx(weight)
    assert S.strength_from_style_weight(weight) == pytest.approx(strength)


def test_strength_is_clamped_and_default_is_the_papers_ratio():
    assert S.style_weight_from_strength(-5) == pytest.approx(10.0)
    assert S.style_weight_from_strength(500) == pytest.approx(1e5)
    assert S.CONTENT_WEIGHT / S.style_weight_from_strength(S.STRENGTH_DEFAULT) == pytest.approx(1e-3)
    assert S.strength_from_style_weight(0) == 0


def _settings(tmp_path, **kw):
    style = tmp_path / "starry_night.png"
    style.write_bytes(PNG)
    return S.Settings(style=str(style), endpoint="tcp://127.0.0.1:5570", **kw)


def test_params_use_the_protocol_names(tmp_path):
    st = _settings(tmp_path, strength=75, iterations=300, size=256, preserve_color="luminance", init="content", seed=7,
                   preview_size=128)
    st.validate()
    assert st.params() == {
        "iterations": 300, "size": 256, "content_weight": 1.0, "style_weight": pytest.approx(10 ** 4.0),
        "preserve_color": "luminance", "init": "content", "seed": 7, "progress_every": 6, "preview": True,
        "preview_size": 128,
    }
    full = _settings(tmp_path)
    assert full.full_resolution and full.params()["size"] == 0, "full resolution is the default: size 0"
    assert full.params()["preview_size"] == S.SCHEMA.default("preview_size")
    assert st.style_blend is None and st.style_paths == [st.style]
    assert S.progress_every_for(10) == 1 and S.progress_every_for(250) == 5 and S.progress_every_for(5000) == 10


def test_params_are_accepted_by_the_engine(tmp_path):
    engine_params = pytest.importorskip("neural_style.daemon.engine.params")
    st = _settings(tmp_path, strength=10, iterations=3, size=64)
    engine_params.StyleParams.from_mapping(st.params())  # raises ParamError on unknown names


def test_two_styles_blend(tmp_path):
    st = _settings(tmp_path, blend=0.25)
    st.style2 = str(tmp_path / "scream.png")
    assert st.style_blend == [0.75, 0.25]
    assert S.layer_name(st.style, st.style2) == "Neural Style: starry_night + scream"


@pytest.mark.parametrize("change, words, argument", [
    ({"style": ""}, "Choose a 'Style image'", "style"),
    ({"blend": 1.5}, "'Style blend'", "blend"),
    ({"iterations": 0}, "'Iterations'", "iterations"),
    ({"size": 8}, "'Working size (px)'", "working-size"),
    ({"preview_size": 8}, "'Preview size (px)'", "preview-size"),
    ({"init": "zeros"}, "'Start from'", "init"),
    ({"endpoint": "localhost:5570"}, "not a ZeroMQ address", "endpoint"),
])
def test_bad_settings_say_what_to_fix_in_the_dialogs_words(tmp_path, change, words, argument):
    st = _settings(tmp_path)
    for k, v in change.items():
        setattr(st, k, v)
    with pytest.raises(S.SettingsError) as err:
        st.validate()
    assert words in str(err.value) and err.value.argument == argument


def test_limits_come_from_the_daemon(tmp_path):
    st = _settings(tmp_path, size=4096, iterations=300)
    problem = S.over_limits(st, {"max_size": 2048, "max_iterations": 5000})
    assert problem is not None and problem.argument == "working-size"
    assert "4096 pixels" in str(problem) and "at most 2048 pixels" in str(problem)
    assert S.over_limits(st, {}) is None  # an older daemon that reports none: the daemon's own check decides
    assert S.over_limits(_settings(tmp_path, iterations=9000), {"max_iterations": 5000}).argument == "iterations"
    assert S.SIZE_MAX > 2048, "the argument range is not the daemon's limit"
    assert S.over_limits(_settings(tmp_path, size=0), {"max_size": 2048}) is None, "full resolution: no size"
    assert S.size_from_dialog(True, 300) == 0 and S.size_from_dialog(False, 300) == 300
    assert S.over_limits(_settings(tmp_path), {"max_pixels": 100}, (20, 5)) is None
    assert S.over_limits(_settings(tmp_path), {"max_pixels": 100}, (20, 6)).argument == "full-resolution"
    # A working size that covers the layer is its own size to the daemon: max_pixels bounds it, not max_size.
    assert S.over_limits(_settings(tmp_path, size=3000), {"max_size": 2048, "max_pixels": 10**7}, (3000, 2000)) is None
    covering = S.over_limits(_settings(tmp_path, size=3000), {"max_size": 2048, "max_pixels": 10**6}, (3000, 2000))
    assert covering.argument == "working-size" and "layer's own size" in str(covering)
    assert S.over_limits(_settings(tmp_path, size=2500), {"max_size": 2048}, (3000, 2000)).argument == "working-size"


def test_the_dialog_says_what_full_resolution_computes():
    assert S.size_note(4000, 3000, False) == "The layer is 4000 × 3000 px (12 megapixels)."
    assert S.size_note(200, 150, True) == "The selection's bounds are 200 × 150 px (0.03 megapixels)."


def test_the_argument_tag_round_trips():
    assert S.split_argument(S.tag_argument("Lower it.", "size")) == ("Lower it.", "size")
    assert S.split_argument(S.tag_argument("No daemon.", None)) == ("No daemon.", None)
    assert S.split_argument("plain") == ("plain", None)


def test_formats_and_sizes():
    assert S.choose_format(True) == ("R'G'B'A u8", 4)
    assert S.choose_format(False) == ("R'G'B' u8", 3)
    assert S.fit_within(4000, 3000, 512) == (512, 384)
    assert S.fit_within(10, 5000, 64) == (1, 64)
    assert S.sent_size(4000, 3000, S.FULL_RESOLUTION) == (4000, 3000)
    assert S.sent_size(400, 300, 512) == (400, 300)  # the daemon never scales up: sent at its own size
    assert S.sent_size(4000, 3000, 512) == (512, 384)
    with pytest.raises(ValueError):
        S.fit_within(0, 0, 10)


# --------------------------------------------------------------------------- style files
def test_style_files_are_checked_and_named(tmp_path):
    good_png, good_jpeg = tmp_path / "a.png", tmp_path / "b.jpg"
    good_png.write_bytes(PNG)
    good_jpeg.write_bytes(JPEG)
    assert stylefile.check_style_file(str(good_png)) == "PNG"
    assert stylefile.check_style_file(str(good_jpeg), "style2") == "JPEG"
    webp, tga = tmp_path / "c.webp", tmp_path / "d.tga"
    webp.write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 ")
    tga.write_bytes(b"\x00\x00\x02" + b"\x00" * 20)
    assert stylefile.check_style_file(str(webp)) == "WebP" and stylefile.check_style_file(str(tga)) == "TGA"
    cases = {
        "notes.txt": (b"just some words\n", "is not an image file"),
        "cut.png": (PNG[:-20], "incomplete PNG"),
        "cut.jpg": (JPEG[:-2] + b"\x00" * 2000, "incomplete JPEG"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(S.SettingsError, match=words) as err:
            stylefile.check_style_file(str(path), "style2")
        assert str(path) in str(err.value) and "'Second style image'" in str(err.value)
        assert err.value.argument == "style2"
    with pytest.raises(S.SettingsError, match="does not exist") as err:
        stylefile.check_style_file(str(tmp_path / "gone.jpg"))
    assert "gone.jpg" in str(err.value)


# --------------------------------------------------------------------------- progress wording
def test_progress_says_queue_start_iteration_and_time_left_never_loss():
    text = ProgressText(100)
    assert text.waiting("queued", 2) == ("Neural Style: queued behind 2 jobs", None)
    assert text.waiting("queued", 1)[0] == "Neural Style: queued behind 1 job"
    assert text.waiting("running", 0)[0] == "Neural Style: starting…"
    first = text.progress(10, 100, 3.0)  # the base: includes the style targets' one-off cost
    assert first == ("Neural Style: iteration 10/100", 0.1)
    second = text.progress(20, 100, 4.0)  # 10 iterations in 1 s: 80 left → about 8 s
    assert second == ("Neural Style: iteration 20/100 · about 8 s left", 0.2)
    assert text.progress(100, 100, 12.0) == ("Neural Style: iteration 100/100", 1.0)
    assert "loss" not in " ".join(t for t, _ in (first, second)).lower()
    assert duration(0.2, rough=True) == "about 1 s" and duration(150, rough=True) == "about 2 min"
    assert duration(4900, rough=True) == "about 1 h 22 min"


# --------------------------------------------------------------------------- messages
def test_advice_names_files_and_dialog_labels():
    assert "--weights" in advice.daemon_error_text("no_weights", "")
    too_large = advice.daemon_error_text("too_large", "styles[1] is 9000x9000", ["/a/x.jpg", "/b/y.png"], "styles[1]")
    assert "the style image /b/y.png cannot be used" in too_large and "a smaller copy" in too_large
    assert "'Working size (px)'" in advice.daemon_error_text("too_large", "size 4096 is over", [], "params.size")
    assert advice.daemon_error_text("weird_new_code", "x").startswith("Neural Style:")
    off = advice.no_daemon_text("tcp://127.0.0.1:1", command=["/v/ns", "serve"], autostart=False)
    assert "no daemon answers at tcp://127.0.0.1:1" in off
    assert "Start it with: /v/ns serve --bind tcp://127.0.0.1:1" in off
    assert "tick 'Start the daemon if needed'" in off and "'Advanced'" in off
    failed = advice.start_failed_text("ipc:///s", ["/v/ns", "serve"], "could not start `/v/ns`: no such file")
    assert failed.endswith("/v/ns serve --bind ipc:///s")
    assert "could not start `/v/ns`: no such file" in failed and "did not help" not in failed
    assert "stopped answering" in advice.lost_text("e", "silent for 5 s")
    missing = advice.missing_dependency_text(["zmq"], " (the wheels … were fetched for Python 3.11, GIMP runs 3.13)")
    assert "python3-zmq" in missing and "3.11" in missing


@pytest.mark.parametrize("sandbox, service", [("Flatpak", None), ("Snap", None), ("Flatpak", "systemd")])
def test_sandboxed_gimp_is_told_the_host_command(sandbox, service):
    text = advice.no_daemon_text("tcp://127.0.0.1:5570", command=["/home/u/ns/.venv/bin/neural-style", "serve"],
                                 autostart=True, sandbox=sandbox, service=service,
                                 service_command="systemctl --user enable --now neural-style.service")
    assert f"{sandbox} sandbox" in text and "On the host, run:" in text
    if service:
        assert text.endswith("systemctl --user enable --now neural-style.service")
    else:
        assert "/home/u/ns/.venv/bin/neural-style serve --bind tcp://127.0.0.1:5570" in text
        assert "install.py --service" in text


def test_sandbox_detection():
    assert detect_sandbox({}, exists=lambda p: p == "/.flatpak-info") == "Flatpak"
    assert detect_sandbox({"SNAP": "/snap/gimp/1"}, exists=lambda p: False) == "Snap"
    assert detect_sandbox({}, exists=lambda p: False) is None


# --------------------------------------------------------------------------- remembered values
def test_values_are_remembered_whatever_the_run_became(tmp_path):
    path = remembered.attempt_path(str(tmp_path))
    remembered.save_attempt(path, {"style": "/x/a.jpg", "style2": None, "strength": 70, "iterations": 9,
                                   "preserve-colors": True, "init": "noise", "unknown": 1})
    defaults = {"style": None, "style2": None, "strength": 50.0, "iterations": 200, "preserve-colors": False,
                "init": "content"}
    back = remembered.load_attempt(path, defaults)
    assert back == {"style": "/x/a.jpg", "style2": None, "strength": 70.0, "iterations": 9,
                    "preserve-colors": True, "init": "noise"}
    assert isinstance(back["strength"], float)
    Path(path).write_text(json.dumps({"format": 1, "values": {"iterations": "many", "strength": True}}))
    assert remembered.load_attempt(path, defaults) == {}  # wrong types are ignored
    assert remembered.restore_file(str(tmp_path / "gone.jpg")) is None


# --------------------------------------------------------------------------- the wheels
def test_vendor_goes_last_and_only_for_its_python(tmp_path):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    path = ["/usr/lib/python3/dist-packages"]
    added = bootstrap.extend_sys_path(str(tmp_path), path, version_info=(3, 13))
    assert path == [str(tmp_path), "/usr/lib/python3/dist-packages", str(vendor)], "system packages must win"
    assert set(added) == {str(tmp_path), str(vendor)}
    assert bootstrap.extend_sys_path(str(tmp_path), path) == []  # idempotent

    (vendor / bootstrap.WHEELS_RECORD).write_text(json.dumps({"python": "3.11"}))
    path = []
    bootstrap.extend_sys_path(str(tmp_path), path, version_info=(3, 13))
    assert path == [str(tmp_path)], "wheels for another Python must not be used"
    assert "fetched for Python 3.11, GIMP runs 3.13" in bootstrap.vendor_problem(str(tmp_path), (3, 13))
    assert bootstrap.vendor_problem(str(tmp_path), (3, 11)) is None
    assert bootstrap.missing_modules(("json", "surely_not_a_module_xyz")) == ["surely_not_a_module_xyz"]


def test_a_broken_system_module_falls_back_to_the_vendor(tmp_path, monkeypatch):
    system, plugin = tmp_path / "system", tmp_path / "plugin"
    (system / "nsfake_dep").mkdir(parents=True)
    (system / "nsfake_dep" / "__init__.py").write_text("raise ImportError('built for another Python')\n")
    (plugin / "vendor" / "nsfake_dep").mkdir(parents=True)
    (plugin / "vendor" / "nsfake_dep" / "__init__.py").write_text("WHERE = 'vendor'\n")
    path = [str(system)]
    bootstrap.extend_sys_path(str(plugin), path)
    monkeypatch.setattr(sys, "path", path)
    missing, note = bootstrap.import_dependencies(str(plugin), path, names=("nsfake_dep",))
    assert missing == [] and sys.modules["nsfake_dep"].WHERE == "vendor" and note == ""
    del sys.modules["nsfake_dep"]


# --------------------------------------------------------------------------- install.py shares the facts
def test_install_py_uses_the_protocols_connection_module():
    spec = importlib.util.spec_from_file_location("install_mod", REPO / "install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert Path(mod.connection.__file__) == REPO / "protocol" / "connection.py"
    assert Path(mod.bootstrap.__file__) == PLUGIN_DIR / "nsgimp" / "bootstrap.py"
    assert not hasattr(mod, "DEFAULT_ENDPOINT") and not hasattr(mod, "CONFIG_NAME"), "a restated fact"
    assert PLUGIN_DIR.name == mod.PLUGIN_NAME
    source = (REPO / "install.py").read_text()
    assert "tcp://127.0.0.1:5570" not in source and '"NEURAL_STYLE_ENDPOINT"' not in source


def test_ranges_and_choices_come_from_the_engines_schema():
    engine = pytest.importorskip("neural_style.daemon.engine.params")
    specs = engine.PARAM_SPECS
    assert S.INITS == engine.INITS and S.INIT_DEFAULT in S.INITS and set(S.INIT_LABELS) <= set(S.INITS)
    assert (specs["iterations"].minimum, specs["size"].minimum, specs["preview_size"].minimum) == (
        S.ITERATIONS_MIN, S.SIZE_MIN, S.PREVIEW_SIZE_MIN)
    assert (specs["iterations"].maximum, specs["size"].maximum) == (S.ITERATIONS_MAX, S.SIZE_MAX)
    assert (specs["preview_size"].default, specs["size"].default) == (S.PREVIEW_SIZE_DEFAULT, S.WORKING_SIZE_DEFAULT)
    assert specs["size"].zero_means and S.FULL_RESOLUTION == 0
    source = (PLUGIN_DIR / "nsgimp" / "settings.py").read_text()
    for literal in ("1_000_000", "16_384", "65536", '"noise", "content", "style")', "1024"):
        assert literal not in source, f"settings.py restates {literal}"


def test_the_schema_file_round_trips_and_a_missing_one_says_so(tmp_path):
    from nsgimp import schema

    data = {"params": {"iterations": {"type": "int", "default": 500, "minimum": 1, "maximum": 9}}}
    schema.schema_path(tmp_path).write_text(schema.dumps(data), encoding="utf-8")  # what install.py writes
    assert schema.read_schema(tmp_path) == {"format": schema.SCHEMA_FORMAT, **data}
    assert schema.Schema(schema.read_schema(tmp_path)).maximum("iterations") == 9
    with pytest.raises(schema.SchemaMissing, match=r"run install\.py again"):
        schema.read_schema(tmp_path / "nowhere", fallback=lambda: None)
    (tmp_path / schema.SCHEMA_NAME).write_text("[1, 2]")
    with pytest.raises(schema.SchemaMissing, match="could not be read"):
        schema.read_schema(tmp_path)
    (tmp_path / schema.SCHEMA_NAME).write_text(json.dumps({"format": schema.SCHEMA_FORMAT + 1, **data}))
    with pytest.raises(schema.SchemaMissing, match=r"\(format 2, this plug-in reads format 1\): run install\.py again"):
        schema.read_schema(tmp_path)


def test_the_readme_table_lists_every_argument_with_its_default():
    rows = {}
    for line in (REPO / "plugin" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    assert set(rows) == set(S.ARGUMENTS)
    defaults = {"blend": S.BLEND_DEFAULT, "strength": S.STRENGTH_DEFAULT, "iterations": S.ITERATIONS_DEFAULT,
                "size": S.SIZE_DEFAULT, "timeout": S.TIMEOUT_DEFAULT, "init": S.INIT_DEFAULT,
                "preview-size": S.PREVIEW_SIZE_DEFAULT, "full-resolution": str(S.FULL_RESOLUTION_DEFAULT).lower(),
                "working-size": S.WORKING_SIZE_DEFAULT}
    for name, value in defaults.items():
        assert rows[name] == f"{value:g}" if isinstance(value, float) else rows[name] == str(value), (name, rows[name])


# GimpProcedureDialog's own buttons and their mnemonics (GIMP 3.0.4 warns on a clash with a label):
# _Help, _Reset, _Cancel, _OK, _Load Saved Settings, _Save Settings.
DIALOG_BUTTON_MNEMONICS = set("hrcols")


def test_every_mnemonic_in_the_dialog_is_its_own():
    shown = [name for name in S.ARGUMENTS if name != "size"]  # 'size' is the dialog's two aux arguments
    keys = [S.ARGUMENTS[name][0].split("_", 1)[1][0].lower() for name in shown]
    keys.append(S.REMOVE_STYLE2_LABEL.split("_", 1)[1][0].lower())
    assert len(keys) == len(set(keys)), sorted(keys)
    assert not set(keys) & DIALOG_BUTTON_MNEMONICS, set(keys) & DIALOG_BUTTON_MNEMONICS


def test_the_new_layer_goes_above_the_source_and_the_earlier_results():
    from nsgimp import placement

    # GIMP's order: 0 is the top. [text overlay, result 2, result 1, photo]
    results = [False, True, True, False]
    assert placement.insert_position(3, results) == 1  # above both tries, under the user's own overlay
    assert placement.insert_position(0, [False]) == 0  # a first run: directly above the source
    assert placement.insert_position(2, [True, False, False]) == 2  # a result above something else: not ours
    assert placement.is_result("Neural Style: starry_night", False)
    assert placement.is_result("renamed by the user", True)  # the parasite marks it
    assert not placement.is_result("Background", False)



def test_the_dialogs_estimate_comes_from_the_last_runs_speed(tmp_path):
    from nsgimp import speed

    path = speed.speed_path(str(tmp_path))
    assert speed.load(path) is None
    assert "first run measures" in speed.estimate_text(100, 512 * 384, None)
    speed.record(path, seconds=80.0, iterations=100, pixels=512 * 384)  # 0.8 s an iteration at 0.197 MP
    rate = speed.load(path)
    assert rate == pytest.approx(80.0 / 100 / (512 * 384 / 1e6))
    # the same settings again: what the last run took; four times the pixels and twice the iterations: 8×
    assert speed.estimate_text(100, 512 * 384, rate) == \
        "At these settings: about 1 min on this computer (measured on the last run)."
    assert "about 11 min" in speed.estimate_text(200, 1024 * 768, rate)
    (tmp_path / "plug-in-settings" / speed.FILE_NAME).write_text('{"format": 1, "seconds_per_iteration_megapixel": -1}')
    assert speed.load(path) is None  # nonsense is no measurement


# --------------------------------------------------------------------------- issue 17: regions and colour modes
def test_the_colour_mode_is_a_choice_of_the_engines_three_and_the_old_boolean_still_reads(tmp_path):
    engine = pytest.importorskip("neural_style.daemon.engine.params")
    assert S.PRESERVE_COLORS == engine.PRESERVE_COLORS == ("off", "luminance", "histogram")
    assert S.PRESERVE_COLOR_DEFAULT == "off" and set(S.PRESERVE_COLOR_LABELS) == set(S.PRESERVE_COLORS)
    assert _settings(tmp_path).params()["preserve_color"] == "off"  # the default: today's look
    assert _settings(tmp_path, preserve_color="histogram").params()["preserve_color"] == "histogram"
    # a script's (or GIMP's remembered) boolean keeps its meaning, as on the wire
    assert (S.preserve_color_choice(True), S.preserve_color_choice(False)) == ("luminance", "off")
    assert S.preserve_color_choice("histogram") == "histogram"
    with pytest.raises(S.SettingsError, match="must be one of off, luminance, histogram") as bad:
        _settings(tmp_path, preserve_color="sepia").validate()
    assert bad.value.argument == "preserve-colors"


def test_values_remembered_before_the_colour_modes_come_back_in_their_meaning(tmp_path):
    path = remembered.attempt_path(str(tmp_path))
    defaults = {"preserve-colors": "off", "iterations": 50}
    for old, new in ((True, "luminance"), (False, "off")):
        remembered.save_attempt(path, {"preserve-colors": old, "iterations": 9})
        assert remembered.load_attempt(path, defaults, S.upgrade_remembered) == {"preserve-colors": new,
                                                                                 "iterations": 9}
    remembered.save_attempt(path, {"preserve-colors": "histogram"})
    assert remembered.load_attempt(path, defaults, S.upgrade_remembered) == {"preserve-colors": "histogram"}
    remembered.save_attempt(path, {"preserve-colors": True})
    assert remembered.load_attempt(path, defaults) == {}, "without the upgrade a boolean does not fit a choice"


def test_gimps_own_last_values_of_before_are_written_in_the_choice():
    old = '# settings\n\n(iterations 2)\n(preserve-colors yes)\n(init "content")\n# end of settings\n'
    assert S.upgrade_gimp_last_values(old) == old.replace("(preserve-colors yes)", '(preserve-colors "luminance")')
    assert '(preserve-colors "off")' in S.upgrade_gimp_last_values(old.replace("yes", "no"))
    new = old.replace("(preserve-colors yes)", '(preserve-colors "histogram")')
    assert S.upgrade_gimp_last_values(new) == new
    assert S.gimp_last_values_path("/p", "plug-in-neural-style").endswith(
        "plug-in-settings/GimpProcedureConfigRun-plug-in-neural-style.last")


def test_regions_default_to_the_whole_layer_and_send_no_masks(tmp_path):
    from nsgimp import regions

    st = _settings(tmp_path, style2=str(tmp_path / "starry_night.png"))
    st.validate()
    assert st.regions == ["layer", "layer"]
    assert regions.resolve(st.regions, lambda i: pytest.fail("nothing is read")) is None  # today's request
    assert not regions.selection_is_a_region(st.regions)
    assert _settings(tmp_path, style2_region="channel").regions == ["layer"], "one style, one region"


def test_a_style_without_a_region_sends_no_mask_beside_one_that_has():
    from nsgimp import regions

    painted = bytes([0, 64, 255, 255])
    assert regions.resolve(["layer", "channel"], lambda i: painted) == [None, painted]  # the engine: it takes the rest
    assert regions.resolve(["selection", "channel"], lambda i: bytes([i])) == [bytes([0]), bytes([1])]
    assert regions.is_blank(bytes(4)) and not regions.is_blank(bytes([0, 0, 1, 0]))
    assert regions.selection_is_a_region(["layer", "selection"])
    assert regions.describe(bytes([255, 0, 255, 0]), 2) == "2x2, covering 1.000 of the left half and 0.000 of the right"


def test_a_region_that_is_not_one_of_the_choices_is_named(tmp_path):
    st = _settings(tmp_path, style2=str(tmp_path / "starry_night.png"), style2_region="everywhere")
    with pytest.raises(S.SettingsError, match="must be one of layer, selection, channel") as bad:
        st.validate()
    assert bad.value.argument == "style2-region" and S.label("style2-region") in str(bad.value)


def test_a_second_region_without_a_second_style_is_named(tmp_path):
    with pytest.raises(S.SettingsError, match="there is no 'Second style image'") as bad:
        _settings(tmp_path, style2_region="channel").validate()
    assert bad.value.argument == "style2-region"


@pytest.mark.parametrize("region, channel_offsets, sent, crop", [
    ((0, 0, 160, 120), (0, 0), (160, 120), (0, 0, 160, 120, 1.0)),  # the whole layer at full resolution
    ((40, 30, 80, 60), (0, 0), (80, 60), (40, 30, 80, 60, 1.0)),  # a selection's bounds: the image's pixels
    ((47, 35, 160, 120), (7, 5), (160, 120), (40, 30, 160, 120, 1.0)),  # a layer mask moves with its layer
    ((0, 0, 160, 120), (0, 0), (48, 36), (0, 0, 48, 36, 0.3)),  # a working size: the same mipmap scale
    ((40, 30, 80, 60), (0, 0), (40, 30), (20, 15, 40, 30, 0.5)),
])
def test_a_mask_is_read_exactly_where_and_at_the_scale_the_content_is(region, channel_offsets, sent, crop):
    from nsgimp import regions

    got = regions.mask_crop(region, channel_offsets, sent)
    assert (got.x, got.y, got.width, got.height) == crop[:4] and got.scale == pytest.approx(crop[4])
    assert (got.width, got.height) == sent, "a mask frame has the content's size"


def test_the_daemons_refusal_of_a_mask_names_the_styles_region():
    text = advice.daemon_error_text("bad_request", "style_masks[1] is all black", ["a.jpg", "b.jpg"],
                                    "style_masks[1]")
    assert "'Style 2's region' cannot be used" in text and "all black" in text and advice.MASK_ADVICE in text
    assert advice.blamed_argument("bad_request", "style_masks[0]", False) == "style-region"
    assert advice.blamed_argument("bad_request", "style_masks[1]", True) == "style2-region"
    assert advice.blamed_argument("bad_request", "params.preserve_color", False) == "preserve-colors"
    assert advice.style_index("style_masks[1]") is None, "a mask is not the style image"
