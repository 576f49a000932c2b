"""install.py in a sandbox: HOME, XDG folders, TORCH_HOME and the manifest all point into tmp_path.

Nothing here touches the real ~/.config, ~/.cache or ~/.local; the virtual-environment step
is skipped (--no-venv) except in --dry-run, which only prints it.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "install.py"
PLUGIN = "neural_style_gimp"
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    for k in ("APPDATA", "LOCALAPPDATA", "NEURAL_STYLE_ENDPOINT", "NEURAL_STYLE_WEIGHTS_URL"):
        env.pop(k, None)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CACHE_HOME=str(home / ".cache"), TORCH_HOME=str(home / "torch"),
               NEURAL_STYLE_STATE_DIR=str(home / "state"))

    def run(*args, extra_env=None, check=True):
        # The Python a user runs install.py with: the base interpreter, which cannot import neural_style
        # (the venv's could, and would hide an install step that needs the package before it exists).
        proc = subprocess.run([BASE_PYTHON, str(INSTALL), *args], capture_output=True, text=True,
                              env={**env, **(extra_env or {})}, timeout=300)
        text = proc.stdout + proc.stderr
        assert "Traceback" not in text, text
        if check:
            assert proc.returncode == 0, text
        return proc, text

    run.home = home
    return run


QUIET = ("--no-venv", "--no-weights", "--no-wheels")


def test_dry_run_changes_nothing(sandbox):
    home = sandbox.home
    before = snapshot(home)
    _, text = sandbox("--dry-run", "--gimp-dir", str(home / "prof"))
    assert snapshot(home) == before
    assert "[dry-run] would create the virtual environment" in text or "exists: reusing it" in text
    assert "[dry-run] would copy the plug-in" in text
    assert "[dry-run] would download" in text
    assert "Dry run: nothing was changed." in text


def test_install_into_gimp_dir_then_uninstall_leaves_nothing(sandbox, tmp_path):
    home = sandbox.home
    other = home / "prof" / "plug-ins" / "someone_elses_plugin"
    other.mkdir(parents=True)
    (other / "someone_elses_plugin.py").write_text("# not ours\n")
    before = snapshot(home)

    _, text = sandbox("--gimp-dir", str(home / "prof"), *QUIET, "--endpoint", "tcp://127.0.0.1:6123")
    dest = home / "prof" / "plug-ins" / PLUGIN
    main = dest / f"{PLUGIN}.py"
    assert main.is_file() and os.access(main, os.X_OK)
    assert (dest / "neural_style" / "protocol" / "client.py").is_file()
    assert (dest / "nsgimp" / "settings.py").is_file()
    cfg = json.loads((dest / "neural_style_gimp.json").read_text())
    assert cfg["endpoint"] == "tcp://127.0.0.1:6123"
    assert cfg["daemon_command"][1:] == ["serve"], "the starter sets the address ($NEURAL_STYLE_ENDPOINT)"
    assert cfg["daemon_command"][0].endswith(os.path.join("bin", "neural-style"))
    assert "Installed" in text
    from neural_style.daemon.engine.params import parameter_schema

    schema = json.loads((dest / "neural_style_params.json").read_text())
    assert schema.pop("format") == 1 and schema == json.loads(json.dumps(parameter_schema())), \
        "the plug-in's schema is not the engine's"

    # The copied protocol is importable from the plug-in folder alone (as GIMP's Python would).
    probe = subprocess.run([sys.executable, "-I", "-c",
                            "import sys; sys.path[:0] = [sys.argv[1]] + [p for p in sys.argv[2:]];"
                            "import neural_style.protocol.client as c, nsgimp.settings as s;"
                            "print(c.__file__, s.SCHEMA.data.get('format'))", str(dest),
                            *[p for p in sys.path if "site-packages" in p]],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(dest))
    assert probe.stdout.split()[-1] == "1", "the plug-in did not read the installed schema file"

    # Twice is harmless: same files, same config.
    after_first = snapshot(home)
    sandbox("--gimp-dir", str(home / "prof"), *QUIET, "--endpoint", "tcp://127.0.0.1:6123")
    assert snapshot(home) == after_first

    _, text = sandbox("--uninstall", "--gimp-dir", str(home / "prof"))
    assert not dest.exists()
    assert (other / "someone_elses_plugin.py").is_file()
    assert snapshot(home) == before, "uninstall left something behind or removed too much"
    _, text = sandbox("--uninstall")
    assert snapshot(home) == before


def test_finds_every_gimp3_profile(sandbox):
    """Every build's folder, every 3.x version in it (3.0 and 3.2 here, and a 3.4 to come); GIMP 2.10's
    profile and a backup copy are not GIMP 3 profiles."""
    home = sandbox.home
    appdata = home / "AppData" / "Roaming"
    profiles = [home / ".config" / "GIMP" / "3.0", home / ".config" / "GIMP" / "3.2",
                home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / "3.2",
                home / "snap" / "gimp" / "current" / ".config" / "GIMP" / "3.2",
                home / "Library" / "Application Support" / "GIMP" / "3.4",
                appdata / "GIMP" / "3.2"]
    not_gimp3 = [home / ".config" / "GIMP" / "2.10", home / ".config" / "GIMP" / "3.2.bak"]
    for folder in profiles + not_gimp3:
        folder.mkdir(parents=True)
    _, text = sandbox(*QUIET, extra_env={"APPDATA": str(appdata)})
    for profile in profiles:
        assert (profile / "plug-ins" / PLUGIN / f"{PLUGIN}.py").is_file(), (profile, text)
    for folder in not_gimp3:
        assert not (folder / "plug-ins").exists(), folder
    sandbox("--uninstall", extra_env={"APPDATA": str(appdata)})
    for profile in profiles:
        assert not (profile / "plug-ins").exists() and profile.is_dir()  # the profiles were the user's: kept


def test_a_home_with_only_gimp_3_2(sandbox):
    """What GIMP 3.2's first start leaves (issue 18): ~/.config/GIMP/3.2 and no 3.0."""
    profile = sandbox.home / ".config" / "GIMP" / "3.2"
    profile.mkdir(parents=True)
    _, text = sandbox(*QUIET, extra_env={"PATH": "/nonexistent"})
    assert (profile / "plug-ins" / PLUGIN / f"{PLUGIN}.py").is_file(), text
    assert "no GIMP 3 profile found" not in text and "WARNING" not in text
    assert not (sandbox.home / ".config" / "GIMP" / "3.0").exists()


def fake_gimp(tmp_path: Path, name: str, version: str) -> Path:
    """A command that answers --version as GIMP does (no GIMP on this host; real GIMP runs in tests/gimp)."""
    bin_dir = tmp_path / "fakegimp"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho 'GNU Image Manipulation Program version {version}'\n")
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("command", "version", "profile"), [
    ("gimp-console-3.2", "3.2.6", "3.2"), ("gimp-3", "3.2.6", "3.2"), ("gimp-3.0", "3.0.4", "3.0"),
    ("gimp", "3.2.6", "3.2")])
def test_gimp_without_a_profile_yet(sandbox, tmp_path, command, version, profile):
    """GIMP installed but never started: the profile its first start will create, by its version."""
    bin_dir = fake_gimp(tmp_path, command, version)
    _, text = sandbox(*QUIET, extra_env={"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"})
    assert (sandbox.home / ".config" / "GIMP" / profile / "plug-ins" / PLUGIN / f"{PLUGIN}.py").is_file(), text
    assert f"GIMP {profile} found" in text


def test_gimp_2_alone_is_no_gimp_3(sandbox, tmp_path):
    bin_dir = fake_gimp(tmp_path, "gimp", "2.10.34")
    (sandbox.home / ".config" / "GIMP" / "2.10").mkdir(parents=True)
    _, text = sandbox(*QUIET, extra_env={"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"})
    assert "no GIMP 3 profile found (run GIMP 3 once" in text
    assert not (sandbox.home / ".config" / "GIMP" / "2.10" / "plug-ins").exists()


def test_no_gimp_found_is_a_warning(sandbox):
    env = {"PATH": "/nonexistent"}
    _proc, text = sandbox(*QUIET, extra_env=env)
    assert "no GIMP 3 profile found" in text and "--gimp-dir" in text


def test_failed_weights_download_warns_and_exits_0(sandbox):
    home = sandbox.home
    proc, text = sandbox("--no-venv", "--no-plugin",
                         extra_env={"NEURAL_STYLE_WEIGHTS_URL": "http://127.0.0.1:9/vgg19-dcbb9e9d.pth"})
    assert proc.returncode == 0
    assert "WARNING: could not download the VGG19 weights" in text
    assert not (home / "torch").exists(), "a failed download left folders behind"


def test_corrupt_weights_download_is_rejected(sandbox, tmp_path):
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not the weights")
    proc, text = sandbox("--no-venv", "--no-plugin", extra_env={"NEURAL_STYLE_WEIGHTS_URL": bogus.as_uri()})
    assert proc.returncode == 0 and "SHA-256" in text
    assert not list((sandbox.home).rglob("*.pth"))


def test_weights_file_is_recorded_in_the_daemon_command(sandbox, tmp_path):
    weights = tmp_path / "my-vgg19.pth"
    weights.write_bytes(b"x")
    sandbox("--gimp-dir", str(sandbox.home / "prof"), "--no-venv", "--no-wheels", "--weights", str(weights))
    cfg = json.loads((sandbox.home / "prof" / "plug-ins" / PLUGIN / "neural_style_gimp.json").read_text())
    assert cfg["daemon_command"][-2:] == ["--weights", str(weights)]
    proc, text = sandbox("--no-venv", "--no-plugin", "--weights", str(tmp_path / "missing.pth"), check=False)
    assert proc.returncode == 1 and "no such file" in text


def test_wheels_for_a_gimp_python_without_zmq(sandbox, tmp_path):
    bare = tmp_path / "gimp-python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    lacks = subprocess.run([str(python), "-c", "import zmq"], capture_output=True)
    if lacks.returncode == 0:
        pytest.skip("this interpreter already has zmq")
    home = sandbox.home
    _proc, text = sandbox("--gimp-dir", str(home / "prof"), "--no-venv", "--no-weights", "--gimp-python", str(python))
    if "could not fetch" in text:
        pytest.skip("pip cannot reach a package index here: " + text[-300:])
    vendor = home / "prof" / "plug-ins" / PLUGIN / "vendor"
    record = json.loads((vendor / ".neural-style-wheels.json").read_text())
    version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    assert record["python"] == version and record["interpreter"] == [str(python)], record
    check = subprocess.run([str(python), "-c", "import sys; sys.path.insert(0, sys.argv[1]); import zmq, msgpack;"
                            "print(zmq.__file__)", str(vendor)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(vendor))
    sandbox("--uninstall", "--gimp-dir", str(home / "prof"))
    assert not (home / "prof").exists()


def fake_systemctl(tmp_path: Path) -> tuple[Path, Path]:
    """A systemctl that records its arguments (this machine has no systemd user manager)."""
    bin_dir, calls = tmp_path / "fakebin", tmp_path / "systemctl.calls"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n")
    script.chmod(0o755)
    return bin_dir, calls


def test_service_unit_is_written_enabled_and_removed(sandbox, tmp_path):
    home = sandbox.home
    before = snapshot(home)
    bin_dir, calls = fake_systemctl(tmp_path)
    path_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    _, text = sandbox("--service", "--gimp-dir", str(home / "prof"), *QUIET, "--endpoint", "tcp://127.0.0.1:6124",
                      extra_env=path_env)
    unit = home / ".config" / "systemd" / "user" / "neural-style.service"
    body = unit.read_text()
    assert f"ExecStart={REPO / '.venv' / 'bin' / 'neural-style'} serve --bind tcp://127.0.0.1:6124\n" in body
    assert "Restart=on-failure" in body and "WantedBy=default.target" in body
    assert calls.read_text().splitlines() == ["--user daemon-reload", "--user enable --now neural-style.service"]
    cfg = json.loads((home / "prof" / "plug-ins" / PLUGIN / "neural_style_gimp.json").read_text())
    assert cfg["service"] == "systemd", "the plug-in must know which host command starts the service"
    assert "WARNING" not in text

    _, text = sandbox("--uninstall", extra_env=path_env)
    assert calls.read_text().splitlines()[2:] == ["--user disable --now neural-style.service", "--user daemon-reload"]
    assert snapshot(home) == before, "uninstall left the unit (or its folders) behind"


def test_service_without_systemctl_is_written_with_a_warning(sandbox, tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    proc, text = sandbox("--service", "--no-venv", "--no-plugin", "--no-weights",
                         extra_env={"PATH": str(empty)})
    assert proc.returncode == 0
    assert "WARNING: the service is written but not started" in text
    assert "systemctl --user enable --now neural-style.service" in text
    assert (sandbox.home / ".config" / "systemd" / "user" / "neural-style.service").is_file()
    sandbox("--uninstall", extra_env={"PATH": str(empty)})
    assert not (sandbox.home / ".config" / "systemd").exists()


def test_service_starts_under_a_real_systemd_user_manager(tmp_path):
    """Opt-in (NEURAL_STYLE_TEST_SYSTEMD=1): the real user manager reads the real ~/.config, so this
    installs a unit there for a moment, waits for the daemon it starts, and uninstalls it."""
    probe = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True) \
        if shutil.which("systemctl") else None
    if probe is None or probe.stdout.strip() not in ("running", "degraded"):
        reason = "no systemctl" if probe is None else (probe.stdout + probe.stderr).strip()[:200]
        pytest.skip(f"no systemd user manager runs here ({reason}); the unit file is checked above")
    if os.environ.get("NEURAL_STYLE_TEST_SYSTEMD") != "1":
        pytest.skip("a user manager runs here; set NEURAL_STYLE_TEST_SYSTEMD=1 to let the test install a "
                    "unit in the real ~/.config/systemd/user for a moment")
    from neural_style.protocol import Client, DaemonUnavailable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    state = ["--state-dir", str(tmp_path / "state")]
    run = subprocess.run([sys.executable, str(INSTALL), "--service", "--no-venv", "--no-plugin", "--weights", "random",
                          "--endpoint", endpoint, *state], capture_output=True, text=True, timeout=300)
    try:
        assert run.returncode == 0 and "WARNING" not in run.stdout, run.stdout + run.stderr
        deadline = time.monotonic() + 90
        pong = None
        while pong is None and time.monotonic() < deadline:
            try:
                with Client(endpoint, timeout=1.0) as client:
                    pong = client.ping()
            except DaemonUnavailable:
                time.sleep(0.5)
        assert pong is not None, "the service's daemon never answered"
    finally:
        subprocess.run([sys.executable, str(INSTALL), "--uninstall", *state], capture_output=True, timeout=300)
    with pytest.raises(DaemonUnavailable), Client(endpoint, timeout=1.0) as client:
        client.ping()
