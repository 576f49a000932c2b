"""The plug-in's pure helpers (plugin/neural_style_gimp/nsgimp): no GIMP needed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin" / "neural_style_gimp"
sys.path.insert(0, str(PLUGIN_DIR))

from nsgimp import advice, bootstrap, config, settings as S  # noqa: E402


def test_plugin_file_is_a_gimp3_plugin():
    main = PLUGIN_DIR / "neural_style_gimp.py"
    assert main.read_text().startswith("#!/usr/bin/env python3\n")
    assert main.stat().st_mode & 0o111, "GIMP ignores plug-ins that are not executable"
    assert PLUGIN_DIR.name == main.stem, "GIMP 3 wants plug-ins/NAME/NAME.py"
    source = main.read_text()
    assert "Gimp.main(" in source and "GimpUi.ProcedureDialog" in source
    assert "traceback.print_exc" in source and "NEURAL_STYLE_DEBUG" in source  # only on request


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
    style = tmp_path / "starry_night.jpg"
    style.write_bytes(b"\xff\xd8\xff" + b"0" * 10)
    return S.Settings(style=str(style), endpoint="tcp://127.0.0.1:5570", **kw)


def test_params_use_the_protocol_names(tmp_path):
    st = _settings(tmp_path, strength=75, iterations=300, size=256, preserve_color=True, init="content", seed=7)
    st.validate()
    params = st.params()
    assert params == {
        "iterations": 300, "size": 256, "content_weight": 1.0, "style_weight": pytest.approx(10 ** 4.0),
        "preserve_color": True, "init": "content", "seed": 7, "progress_every": 6, "preview": True,
    }
    assert st.style_blend is None and st.style_paths == [st.style]


def test_params_are_accepted_by_the_engine(tmp_path):
    engine_params = pytest.importorskip("neural_style.daemon.engine.params")
    st = _settings(tmp_path, strength=10, iterations=3, size=64)
    engine_params.StyleParams.from_mapping(st.params())  # raises ParamError on unknown names


def test_two_styles_blend(tmp_path):
    st = _settings(tmp_path, blend=0.25)
    second = tmp_path / "scream.png"
    second.write_bytes(b"\x89PNG\r\n\x1a\n")
    st.style2 = str(second)
    st.validate()
    assert st.style_blend == [0.75, 0.25]
    assert S.layer_name(st.style, st.style2) == "Neural Style: starry_night + scream"


@pytest.mark.parametrize("change, words", [
    ({"style": ""}, "Choose a style image"),
    ({"style": "/nonexistent/x.jpg"}, "does not exist"),
    ({"blend": 1.5}, "blend"),
    ({"iterations": 0}, "Iterations"),
    ({"size": 8}, "processing size"),
    ({"init": "zeros"}, "Init"),
    ({"endpoint": "localhost:5570"}, "not a ZeroMQ address"),
])
def test_bad_settings_say_what_to_fix(tmp_path, change, words):
    st = _settings(tmp_path)
    for k, v in change.items():
        setattr(st, k, v)
    with pytest.raises(S.SettingsError, match=words):
        st.validate()


def test_formats_and_sizes():
    assert S.choose_format(True) == ("R'G'B'A u8", 4)
    assert S.choose_format(False) == ("R'G'B' u8", 3)
    assert S.fit_within(4000, 3000, 512) == (512, 384)
    assert S.fit_within(10, 5000, 64) == (1, 64)
    with pytest.raises(ValueError):
        S.fit_within(0, 0, 10)


def test_progress_text():
    assert S.progress_text(40, 200, 123456.0) == "Neural Style: iteration 40/200, loss 1.23e+05"
    assert S.progress_text(1, 2, float("nan")) == "Neural Style: iteration 1/2"
    assert S.progress_fraction(50, 200) == 0.25 and S.progress_fraction(5, 0) == 0.0
    assert S.progress_every_for(10) == 1 and S.progress_every_for(250) == 5 and S.progress_every_for(5000) == 10
    assert "2 jobs ahead" in S.queue_text(2) and "1 job ahead" in S.queue_text(1)


def test_config_round_trip_and_env_override(tmp_path):
    cfg = config.PluginConfig(endpoint="tcp://127.0.0.1:6000", daemon_command=["/x/neural-style", "serve"])
    config.write_config(str(tmp_path), cfg)
    loaded = config.load_config(str(tmp_path), environ={})
    assert (loaded.endpoint, loaded.daemon_command, loaded.autostart, loaded.problem) == (
        "tcp://127.0.0.1:6000", ["/x/neural-style", "serve"], True, None)
    assert config.load_config(str(tmp_path), environ={"NEURAL_STYLE_ENDPOINT": "ipc:///tmp/ns"}).endpoint == "ipc:///tmp/ns"


def test_config_missing_or_broken_gives_defaults_and_a_reason(tmp_path):
    missing = config.load_config(str(tmp_path), environ={})
    assert missing.endpoint == S.DEFAULT_ENDPOINT and "install.py" in missing.problem
    (tmp_path / config.CONFIG_NAME).write_text(json.dumps({"endpoint": 5}))
    broken = config.load_config(str(tmp_path), environ={})
    assert broken.endpoint == S.DEFAULT_ENDPOINT and "could not be read" in broken.problem


def test_config_name_matches_install_py():
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_mod", PLUGIN_DIR.parents[1] / "install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.CONFIG_NAME == config.CONFIG_NAME
    assert mod.DEFAULT_ENDPOINT == S.DEFAULT_ENDPOINT
    assert mod.PLUGIN_NAME == PLUGIN_DIR.name


def test_bootstrap_puts_plugin_dir_first(tmp_path):
    (tmp_path / "vendor").mkdir()
    path = ["/usr/lib/python3"]
    added = bootstrap.extend_sys_path(str(tmp_path), path)
    assert path[:2] == [str(tmp_path), str(tmp_path / "vendor")]
    assert set(added) == {str(tmp_path), str(tmp_path / "vendor")}
    assert bootstrap.extend_sys_path(str(tmp_path), path) == []  # idempotent
    assert bootstrap.missing_modules(("json", "surely_not_a_module_xyz")) == ["surely_not_a_module_xyz"]


def test_advice_says_what_to_do():
    assert "--weights" in advice.daemon_error_text("no_weights", "")
    assert "processing size" in advice.daemon_error_text("too_large", "max 4 MP")
    assert "daemon said: max 4 MP" in advice.daemon_error_text("too_large", "max 4 MP")
    assert "queue is full" in advice.daemon_error_text("busy", "")
    assert advice.daemon_error_text("weird_new_code", "x").startswith("Neural Style:")
    text = advice.unavailable_text("tcp://127.0.0.1:1", autostart=False, command=["ns", "serve"])
    assert "no daemon answers at tcp://127.0.0.1:1" in text and "Start it with: ns serve" in text
    assert "Starting it did not help" in advice.unavailable_text("e", autostart=True, command=["ns"])
    assert "stopped answering" in advice.unavailable_text("e", autostart=False, command=None, mid_run=True)
    assert "python3-zmq" in advice.missing_dependency_text(["zmq"])
