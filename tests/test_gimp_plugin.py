"""Real GIMP 3 runs the plug-in (issue 4): no fake ``gi`` module anywhere.

GIMP 3 comes from a Debian trixie root that tests/gimp/build_root.sh builds once with
debootstrap and caches (default /var/cache/neural-style/trixie-root, or
$NEURAL_STYLE_GIMP_ROOT).  Each case runs ``gimp-console-3.0`` inside it through
tests/gimp/in_root.sh (unshare --mount --pid --fork + chroot; the network namespace is the
host's, so the plug-in reaches a daemon on the host at tcp://127.0.0.1:PORT).  The plug-in
is installed into a throw-away GIMP profile with ``install.py --gimp-dir``; the daemon runs
on the host with random weights.  tests/gimp/batch_neural_style.py calls the procedure
non-interactively and saves an XCF and PNGs that these tests check from outside.

Where the root cannot be built or entered (not root, no debootstrap, no Debian mirror,
unshare not permitted) every test here is skipped with that reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gimp

REPO = Path(__file__).resolve().parents[1]
GIMP_TESTS = REPO / "tests" / "gimp"
sys.path.insert(0, str(GIMP_TESTS))
import xcf  # noqa: E402

ROOT = Path(os.environ.get("NEURAL_STYLE_GIMP_ROOT", "/var/cache/neural-style/trixie-root"))
IMAGES = Path(os.environ.get("NEURAL_STYLE_IMAGES", REPO.parent / "shared" / "images"))
PROCEDURE = "plug-in-neural-style"
CONTENT_SIZE = (160, 120)
STYLE_SIZE = (256, 256)
GIMP_TIMEOUT = 240
QUICK_ARGS = {"iterations": 4, "size": 48, "init": "noise", "autostart": False, "timeout": 20}


# --------------------------------------------------------------------------- the root
def _skip_reason_for_machine() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the real-GIMP tests need Linux (debootstrap, unshare, chroot)"
    if os.geteuid() != 0:
        return "the real-GIMP tests need root (debootstrap, chroot, mount namespaces)"
    for tool in ("unshare", "chroot", "flock"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="session")
def gimp_root() -> Path:
    reason = _skip_reason_for_machine()
    if reason:
        pytest.skip(reason)
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount --pid is not permitted here: {probe.stderr.strip()}")
    started = time.monotonic()
    try:
        build = subprocess.run([str(GIMP_TESTS / "build_root.sh"), str(ROOT)], capture_output=True, text=True,
                               timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.skip(f"building the trixie root in {ROOT} took more than 30 minutes")
    if build.returncode != 0:
        tail = "\n".join((build.stdout + build.stderr).strip().splitlines()[-8:])
        pytest.skip(f"cannot build the Debian trixie root with GIMP 3 in {ROOT} "
                    f"(build_root.sh exit {build.returncode}):\n{tail}")
    elapsed = time.monotonic() - started
    if elapsed > 5:
        print(f"\nbuilt the trixie root in {elapsed:.0f} s: {ROOT}", file=sys.stderr)
    return ROOT


# --------------------------------------------------------------------------- the daemon
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_command(endpoint: str) -> list[str]:
    exe = Path(sys.executable).with_name("neural-style")
    if exe.exists():
        return [str(exe), "serve", "--weights", "random", "--bind", endpoint]
    return [sys.executable, "-m", "neural_style.daemon.server", "--weights", "random", "--bind", endpoint]


class Daemon:
    def __init__(self, log_dir: Path) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.log_path = log_dir / f"daemon-{self.endpoint.rsplit(':', 1)[1]}.log"
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(daemon_command(self.endpoint), stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 120.0) -> None:
        from neural_style.protocol.client import Client
        from neural_style.protocol.errors import DaemonUnavailable

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with Client(self.endpoint, timeout=1.0) as client:
                    if client.ping().weights_loaded:
                        return
            except DaemonUnavailable:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the daemon did not answer within {timeout} s:\n{self.log_tail()}")

    def running_job(self, min_iteration: int = 0) -> bool:
        from neural_style.protocol.client import Client
        from neural_style.protocol.errors import NeuralStyleError

        try:
            with Client(self.endpoint, timeout=1.0) as client:
                status = client.status()
        except NeuralStyleError:
            return False
        return status.running is not None and status.running.iteration >= min_iteration

    def log_tail(self) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("daemon"))
    try:
        d.wait_ready()
    except RuntimeError as exc:
        d.stop()
        pytest.fail(str(exc))
    yield d
    d.stop()


# --------------------------------------------------------------------------- the share folder
def _photo_like(size):
    """A stand-in for tubingen.jpg when ../shared/images is absent: sky, hills, houses, noise."""
    from PIL import Image, ImageDraw, ImageFilter
    import random

    rng = random.Random(4)
    w, h = size
    im = Image.new("RGB", size)
    px = im.load()
    for y in range(h):
        for x in range(w):
            t = y / h
            px[x, y] = (int(90 + 80 * t), int(140 + 60 * t), int(230 - 60 * t))
    d = ImageDraw.Draw(im)
    d.polygon([(0, h * 0.6), (w * 0.3, h * 0.35), (w * 0.6, h * 0.55), (w, h * 0.4), (w, h), (0, h)], fill=(60, 110, 50))
    for i in range(6):
        x0 = int(w * (0.05 + i * 0.15))
        d.rectangle([x0, int(h * 0.45), x0 + int(w * 0.1), int(h * 0.8)],
                    fill=(rng.randrange(150, 250), rng.randrange(80, 200), rng.randrange(50, 150)))
    noise = Image.effect_noise(size, 20).convert("RGB")
    return Image.blend(im, noise, 0.1).filter(ImageFilter.SMOOTH)


def _swirl_style(size=(128, 128)):
    from PIL import Image
    import math

    im = Image.new("RGB", size)
    px = im.load()
    for y in range(size[1]):
        for x in range(size[0]):
            v = math.sin(x / 6.0 + 3 * math.sin(y / 11.0))
            px[x, y] = (int(40 + 40 * v), int(60 + 50 * v), int(160 + 90 * v))
    return im


@pytest.fixture(scope="module")
def share(tmp_path_factory, gimp_root, daemon):
    """The folder mounted at /share inside the root: profile with the plug-in, inputs, batch script."""
    from PIL import Image

    base = tmp_path_factory.mktemp("gimp-share")
    (base / "home").mkdir()
    (base / "in").mkdir()
    (base / "out").mkdir()
    tubingen, starry = IMAGES / "tubingen.jpg", IMAGES / "starry_night.jpg"
    if tubingen.is_file() and starry.is_file():
        content = Image.open(tubingen).convert("RGB")
        content.thumbnail(CONTENT_SIZE)
        style = Image.open(starry).convert("RGB")
        style.thumbnail(STYLE_SIZE)  # the daemon works at a small size anyway: keep the test quick
        style.save(base / "in" / "starry_night.jpg", quality=92)
        base.joinpath("images-source.txt").write_text(f"{IMAGES}\n")
    else:
        print(f"\n{IMAGES} has no tubingen.jpg/starry_night.jpg: using generated images", file=sys.stderr)
        content = _photo_like(CONTENT_SIZE)
        _swirl_style().save(base / "in" / "starry_night.jpg", quality=92)
    content.save(base / "in" / "content.png")
    scream = IMAGES / "the_scream.jpg"
    if scream.is_file():
        style = Image.open(scream).convert("RGB")
        style.thumbnail(STYLE_SIZE)
        style.save(base / "in" / "the_scream.jpg", quality=92)
    else:
        _swirl_style().transpose(Image.Transpose.ROTATE_90).save(base / "in" / "the_scream.jpg", quality=92)
    rgba = content.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, rgba.size[0] // 4, rgba.size[1]))  # the left quarter is transparent
    rgba.putalpha(alpha)
    rgba.save(base / "in" / "content_alpha.png")
    shutil.copy(GIMP_TESTS / "batch_neural_style.py", base / "batch_neural_style.py")
    profile = base / "home" / ".config" / "GIMP" / "3.0"
    install = subprocess.run(
        [sys.executable, str(REPO / "install.py"), "--gimp-dir", str(profile), "--state-dir", str(base / "state"),
         "--no-venv", "--no-weights", "--no-wheels", "--endpoint", daemon.endpoint],
        capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    plugin = profile / "plug-ins" / "neural_style_gimp" / "neural_style_gimp.py"
    assert plugin.is_file() and os.access(plugin, os.X_OK)
    return base


def run_case(root: Path, share: Path, name: str, args: dict, *, select=None, source_offsets=None,
             background: bool = False, image: str = "content.png", binds=(), interactive: bool = False):
    out = share / "out" / name
    case = {"name": name, "image": f"/share/in/{image}", "out_dir": f"/share/out/{name}",
            "procedure": PROCEDURE, "args": {"style": "/share/in/starry_night.jpg", **args}}
    if select:
        case["select"] = list(select)
    if source_offsets:
        case["source_offsets"] = list(source_offsets)
    case["interactive"] = interactive
    (share / "case.json").write_text(json.dumps(case))
    gimp = ["gimp-console-3.0"]
    if interactive:  # the GUI binary on a private Xvfb; with_display.sh clicks the dialog's OK
        shutil.copy(GIMP_TESTS / "with_display.sh", share / "with_display.sh")
        gimp = ["env", "PRESS_OK_TITLE=Neural Style", f"PRESS_OK_REPORT=/share/out/{name}.dialog.txt",
                "/share/with_display.sh", "gimp-3.0"]
    command = [str(GIMP_TESTS / "in_root.sh"), str(root), str(share), *[f"{p}:{p}" for p in binds], "--",
               "env", "NEURAL_STYLE_DEBUG=1", *gimp, "-idf", "--batch-interpreter=python-fu-eval",
               "-b", "exec(open('/share/batch_neural_style.py').read())", "--quit"]
    log = open(share / "out" / f"{name}.gimp.log", "wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if background:
        return proc, out
    return finish_case(proc, share, name, out)


def finish_case(proc, share: Path, name: str, out: Path):
    try:
        rc = proc.wait(GIMP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"GIMP did not finish case {name} within {GIMP_TIMEOUT} s:\n{gimp_log(share, name)}")
    log = gimp_log(share, name)
    assert rc == 0, f"GIMP exited with {rc} (64 = the batch script failed):\n{log}"
    result_path = out / "result.json"
    assert result_path.is_file(), f"the batch script left no result:\n{log}"
    result = json.loads(result_path.read_text())
    assert "harness_error" not in result, f"{result['harness_error']}\n{(out / 'batch.log').read_text()}\n{log}"
    assert result["procedure_found"], f"GIMP did not register {PROCEDURE}:\n{log}"
    assert "Traceback" not in log, log
    return result, out


def gimp_log(share: Path, name: str) -> str:
    path = share / "out" / f"{name}.gimp.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    noise = ("scriptfu-WARNING", "Gtk-WARNING", "Broken pipe", "theme.css", "test-sphere")
    return "\n".join(l for l in lines if l.strip() and not any(n in l for n in noise))[-4000:]


# --------------------------------------------------------------------------- checks
def pixels(path: Path, mode="RGB"):
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert(mode)
    if mode == "RGBA":  # fully transparent pixels have no colour: PNG writers may zero it
        transparent = im.getchannel("A").point(lambda a: 255 if a == 0 else 0)
        im.paste((0, 0, 0, 0), mask=transparent)
    return im


def mean_abs_diff(a, b) -> float:
    from PIL import ImageChops, ImageStat

    assert a.size == b.size, (a.size, b.size)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def assert_source_untouched(share: Path, out: Path, image: str = "content.png", mode: str = "RGB") -> None:
    original = pixels(share / "in" / image, mode)
    before, after = pixels(out / "source_before.png", mode), pixels(out / "source_after.png", mode)
    assert before.tobytes() == original.tobytes(), "GIMP did not load the content image as given"
    assert after.tobytes() == before.tobytes(), "the source layer was modified"


# --------------------------------------------------------------------------- tests
def test_gimp_adds_stylized_layer_above_source(gimp_root, share, daemon):
    result, out = run_case(gimp_root, share, "basic", {**QUICK_ARGS, "endpoint": daemon.endpoint},
                           source_offsets=(7, 5))
    assert result["status"] == "success", result
    assert result["menu_label"] == "Neural Style…" and "<Image>/Filters/Artistic" in result["menu_paths"]
    for arg in ("style", "style2", "blend", "strength", "iterations", "size", "preserve-colors", "init", "seed",
                "endpoint", "autostart"):
        assert arg in result["arguments"], arg
    before, after = result["layers_before"], result["layers_after"]
    assert len(after) == len(before) + 1
    new, source = after[0], after[1]
    assert result["source_index_after"] == 1, "the new layer is not directly above the source"
    assert new["name"] == "Neural Style: starry_night"
    assert (new["width"], new["height"], new["offsets"]) == (source["width"], source["height"], [7, 5])
    assert not new["has_mask"]

    saved = xcf.read_xcf(str(out / "image.xcf"))  # the file, read from outside GIMP
    assert [l.name for l in saved.layers] == ["Neural Style: starry_night", "Background"]
    assert saved.layers[0].offsets == saved.layers[1].offsets == (7, 5)
    assert (saved.layers[0].width, saved.layers[0].height) == CONTENT_SIZE

    assert_source_untouched(share, out)
    stylized = pixels(out / "new_layer.png")
    assert stylized.size == CONTENT_SIZE, "the result was not scaled to the layer's size"
    assert mean_abs_diff(stylized, pixels(out / "source_before.png")) > 10, "the new layer equals the source"


def test_gimp_selection_limits_the_effect(gimp_root, share, daemon):
    box = (40, 30, 80, 60)
    result, out = run_case(gimp_root, share, "selection", {**QUICK_ARGS, "endpoint": daemon.endpoint}, select=box)
    assert result["status"] == "success", result
    assert len(result["layers_after"]) == len(result["layers_before"]) + 1
    new = result["layers_after"][0]
    assert new["has_mask"], "the selection did not become the new layer's mask"
    assert (new["offsets"], new["width"], new["height"]) == ([40, 30], 80, 60), new
    assert result["mask_mean"] == pytest.approx(1.0, abs=0.01)  # the whole box is selected
    saved = xcf.read_xcf(str(out / "image.xcf"))
    assert saved.layers[0].has_mask and saved.layers[0].offsets == (40, 30)
    assert_source_untouched(share, out)
    crop = pixels(out / "source_before.png").crop((40, 30, 120, 90))
    assert mean_abs_diff(pixels(out / "new_layer.png"), crop) > 10


def test_gimp_no_daemon_gives_clear_error(gimp_root, share):
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    result, out = run_case(gimp_root, share, "no-daemon", {**QUICK_ARGS, "endpoint": endpoint, "timeout": 5})
    assert result["status"] == "execution-error", result
    message = result["error"] or ""
    assert f"no daemon answers at {endpoint}" in message and "Start it with" in message, message
    assert "Traceback" not in message
    assert len(result["layers_after"]) == len(result["layers_before"])
    assert result["elapsed"] < 60
    assert_source_untouched(share, out)


def test_gimp_autostart_failure_is_reported(gimp_root, share):
    # The recorded daemon command is a host path that does not exist inside the root, so
    # autostart fails: the plug-in must say so in one message, not crash.
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    args = {**QUICK_ARGS, "endpoint": endpoint, "timeout": 5, "autostart": True}
    result, out = run_case(gimp_root, share, "autostart-fails", args)
    assert result["status"] == "execution-error", result
    assert "Starting it did not help" in (result["error"] or ""), result["error"]
    assert len(result["layers_after"]) == len(result["layers_before"])
    assert_source_untouched(share, out)


def test_gimp_daemon_killed_mid_run(gimp_root, share, tmp_path):
    victim = Daemon(tmp_path)
    try:
        victim.wait_ready()
        args = {**QUICK_ARGS, "endpoint": victim.endpoint, "iterations": 2000, "size": 64, "timeout": 20}
        proc, out = run_case(gimp_root, share, "killed", args, background=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not victim.running_job():
            assert proc.poll() is None, gimp_log(share, "killed")
            time.sleep(0.2)
        assert victim.running_job(), f"the job never reached the daemon:\n{gimp_log(share, 'killed')}"
        time.sleep(2.0)  # let it work for a while
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        killed_at = time.monotonic()
        result, out = finish_case(proc, share, "killed", out)
    finally:
        victim.stop()
    assert time.monotonic() - killed_at < 90
    assert result["status"] == "execution-error", result
    assert "stopped answering" in (result["error"] or ""), result["error"]
    assert len(result["layers_after"]) == len(result["layers_before"]), "the unfinished layer was left behind"
    assert_source_untouched(share, out)


def test_gimp_two_styles_alpha_and_preserved_colours(gimp_root, share, daemon):
    args = {**QUICK_ARGS, "endpoint": daemon.endpoint, "style2": "/share/in/the_scream.jpg", "blend": 0.3,
            "strength": 70.0, "preserve-colors": True, "seed": 3}
    result, out = run_case(gimp_root, share, "two-styles-alpha", args, image="content_alpha.png")
    assert result["status"] == "success", result
    new, source = result["layers_after"][0], result["layers_after"][1]
    assert new["name"] == "Neural Style: starry_night + the_scream"
    assert source["has_alpha"] and new["has_alpha"]
    assert_source_untouched(share, out, "content_alpha.png", "RGBA")
    stylized = pixels(out / "new_layer.png", "RGBA")
    w, h = stylized.size
    alpha = stylized.getchannel("A")
    assert alpha.crop((0, 0, w // 4 - 6, h)).getextrema()[1] < 30, "the content's transparency was lost"
    assert alpha.crop((w // 4 + 6, 0, w, h)).getextrema()[0] > 225, "opaque pixels (or the edges) became transparent"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _plugin_pid(gimp_pid: int) -> int | None:
    for pid in _descendants(gimp_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"neural_style_gimp.py" in cmdline:
            return pid
    return None


def test_gimp_cancel_kills_plugin_daemon_notices_last_preview_stays(gimp_root, share, daemon):
    """Cancelling GIMP's progress bar kills the plug-in process; simulate exactly that."""
    from neural_style.protocol.client import Client

    args = {**QUICK_ARGS, "endpoint": daemon.endpoint, "iterations": 2000, "size": 64, "timeout": 20}
    proc, out = run_case(gimp_root, share, "cancelled", args, background=True)
    try:
        deadline = time.monotonic() + 120
        # progress_every is 10 for 2000 iterations: past iteration 12 a preview has been painted
        while time.monotonic() < deadline and not daemon.running_job(min_iteration=12):
            assert proc.poll() is None, gimp_log(share, "cancelled")
            time.sleep(0.2)
        assert daemon.running_job(min_iteration=12), gimp_log(share, "cancelled")
        time.sleep(0.5)
        pid = _plugin_pid(proc.pid)
        assert pid is not None, "cannot find the plug-in process"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while daemon.running_job() and time.monotonic() - killed_at < 30:
            time.sleep(0.2)
        noticed = time.monotonic() - killed_at
        result, out = finish_case(proc, share, "cancelled", out)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not daemon.running_job(), "the daemon kept working for a plug-in that was gone"
    assert noticed < 10, f"the daemon noticed the vanished plug-in only after {noticed:.1f} s"
    assert result["status"] != "success", result
    assert len(result["layers_after"]) == len(result["layers_before"]) + 1, "the painted layer should stay"
    assert_source_untouched(share, out)
    preview = pixels(out / "new_layer.png")
    assert mean_abs_diff(preview, pixels(out / "source_before.png")) > 10, "no preview was painted into the layer"
    with Client(daemon.endpoint, timeout=5) as client:  # and it still serves
        assert client.ping().weights_loaded


def test_gimp_autostarts_the_recorded_daemon(gimp_root, share, daemon, tmp_path):
    """No daemon answers: the plug-in starts the command install.py recorded, waits, and stylizes.

    The recorded command is this checkout's virtual environment, so it must run inside the
    root: the checkout and the base interpreter are bind-mounted at their own paths.
    """
    base = Path(sys.base_prefix).resolve()
    if base in (Path("/"), Path("/usr")) or not str(base).startswith(("/root/", "/opt/", "/home/", "/usr/local/")):
        pytest.skip(f"the venv's base interpreter lives in {base}, which cannot be bind-mounted into the root")
    if not str(Path(sys.prefix).resolve()).startswith(str(REPO)):
        pytest.skip("the virtual environment is not inside the checkout")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    install = subprocess.run(
        [sys.executable, str(REPO / "install.py"), "--gimp-dir", str(share / "home" / ".config" / "GIMP" / "3.0"),
         "--state-dir", str(tmp_path / "state"), "--no-venv", "--no-wheels", "--weights", "random",
         "--endpoint", endpoint], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    try:
        args = {**QUICK_ARGS, "endpoint": "", "autostart": True, "timeout": 30}  # "" = the recorded endpoint
        result, out = run_case(gimp_root, share, "autostart", args, binds=(base, REPO))
    finally:  # put the module's recorded endpoint back for the other tests
        subprocess.run([sys.executable, str(REPO / "install.py"), "--gimp-dir",
                        str(share / "home" / ".config" / "GIMP" / "3.0"), "--state-dir", str(tmp_path / "state"),
                        "--no-venv", "--no-wheels", "--no-weights", "--endpoint", daemon.endpoint],
                       capture_output=True, timeout=120)
    daemon_log = share / "home" / ".cache" / "neural-style" / "daemon.log"
    log_text = daemon_log.read_text(errors="replace")[-2000:] if daemon_log.exists() else "(no daemon log)"
    assert result["status"] == "success", f"{result}\n{log_text}"
    assert "starting:" in log_text, "the plug-in did not start the daemon itself"
    assert len(result["layers_after"]) == len(result["layers_before"]) + 1
    assert_source_untouched(share, out)


def test_gimp_interactive_dialog(gimp_root, share, daemon):
    """An interactive run opens GimpUi.ProcedureDialog; pressing its OK runs the job."""
    for tool in ("usr/bin/Xvfb", "usr/bin/xdotool", "usr/bin/gimp-3.0"):
        if not (gimp_root / tool).exists():
            pytest.skip(f"the root has no /{tool} (build_root.sh installs xvfb and xdotool)")
    args = {**QUICK_ARGS, "endpoint": daemon.endpoint}
    result, out = run_case(gimp_root, share, "interactive", args, interactive=True)
    dialog = share / "out" / "interactive.dialog.txt"
    assert dialog.is_file(), f"no dialog window appeared:\n{gimp_log(share, 'interactive')}"
    assert "Neural Style" in dialog.read_text()
    assert result["status"] == "success", result
    assert len(result["layers_after"]) == len(result["layers_before"]) + 1
    assert_source_untouched(share, out)


def test_gimp_content_init_at_full_size(gimp_root, share, daemon):
    args = {**QUICK_ARGS, "endpoint": daemon.endpoint, "init": "content", "size": max(CONTENT_SIZE),
            "iterations": 2}
    result, out = run_case(gimp_root, share, "content-init", args)
    assert result["status"] == "success", result["error"]
    assert_source_untouched(share, out)
