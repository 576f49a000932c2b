#!/usr/bin/env python3
"""Install Neural Style for GIMP: the Python package, the GIMP 3 plug-in, and the VGG19 weights.

    python3 install.py                      # everything, into every GIMP 3.x profile found (3.0, 3.2, ...)
    python3 install.py --gimp-dir DIR       # the plug-in into DIR/plug-ins (DIR = a GIMP 3 profile)
    python3 install.py --service            # also run the daemon as a user service (Flatpak/Snap GIMP)
    python3 install.py --dry-run            # print every step, change nothing
    python3 install.py --uninstall          # remove exactly what earlier runs installed

Steps, each skippable:
  1. a virtual environment (--venv, default .venv next to this file) with the package and
     its test dependencies (`pip install -e .[test]`; with --cluster also Ray, `.[test,cluster]`)
                                                                                [--no-venv]
  2. the plug-in, copied to <profile>/plug-ins/neural_style_gimp/ together with the pure-Python
     protocol package (neural_style/protocol/) and neural_style_gimp.json, which records the
     daemon command (<venv>/bin/neural-style serve --bind ENDPOINT) and the endpoint, and
     neural_style_params.json, the engine's parameter schema (ranges, defaults, choices)   [--no-plugin]
  3. GIMP's Python is checked for pyzmq and msgpack; when it lacks them, matching wheels are
     unpacked into the plug-in's vendor/ folder, with a note of the Python they were fetched
     for (the plug-in uses them only behind the system's own packages)          [--no-wheels]
  4. the torchvision VGG19 weights (vgg19-dcbb9e9d.pth, 548 MB) into torch's hub cache
                                                   [--no-weights, or --weights FILE to use yours]
  5. only with --service: a user service that keeps the daemon running (a systemd user unit on
     Linux, a launchd agent on macOS), enabled and started. Flatpak and Snap GIMP cannot start
     the daemon themselves; they reach it at the endpoint.
A manifest (in --state-dir, default ~/.local/share/neural-style) lists what was created, so
that --uninstall removes exactly that.  Running it twice is harmless.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import plistlib
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PLUGIN_NAME = "neural_style_gimp"
PLUGIN_SRC = ROOT / "plugin" / PLUGIN_NAME
PROTOCOL_SRC = ROOT / "protocol"
ENGINE_SRC = ROOT / "daemon" / "engine"


def _load(path: Path, name: str):
    """One stdlib-only module by its path: this Python may lack pyzmq, so the packages' __init__ must not run."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


connection = _load(PROTOCOL_SRC / "connection.py", "neural_style_install_connection")  # endpoint, config file
bootstrap = _load(PLUGIN_SRC / "nsgimp" / "bootstrap.py", "neural_style_install_bootstrap")  # the wheels' record
schema_file = _load(PLUGIN_SRC / "nsgimp" / "schema.py", "neural_style_install_schema")  # the parameters' file


def engine_parameter_schema() -> dict:
    """The engine's ``parameter_schema()``, from daemon/engine loaded by its path: its package and
    ``params`` import no torch and nothing outside the engine, so this Python needs neither the venv nor torch."""
    name = "neural_style_install_engine"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ENGINE_SRC / "__init__.py",
                                                      submodule_search_locations=[str(ENGINE_SRC)])
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.params").parameter_schema()

FOLDER_MANIFEST = ".neural-style-install.json"
MANIFEST_NAME = "install-manifest.json"
WEIGHTS_NAME = "vgg19-dcbb9e9d.pth"
WEIGHTS_URL = os.environ.get("NEURAL_STYLE_WEIGHTS_URL") or "https://download.pytorch.org/models/" + WEIGHTS_NAME
WEIGHTS_SHA256_PREFIX = "dcbb9e9d"
WHEEL_PACKAGES = ("pyzmq", "msgpack")
FLATPAK_ID = "org.gimp.GIMP"
SNAP_NAME = "gimp"


class InstallError(Exception):
    """A step failed in a way the user must act on; the message says how."""


# --------------------------------------------------------------------------- output
class Out:
    def __init__(self, dry_run: bool, quiet: bool = False) -> None:
        self.dry_run = dry_run
        self.quiet = quiet
        self.warnings: list[str] = []

    @staticmethod
    def _print(text: str) -> None:
        """Print, but never stop half-way through a step because the reader went away (| head)."""
        try:
            print(text, flush=True)
        except (BrokenPipeError, OSError):
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")

    def step(self, text: str) -> None:
        self._print(f"==> {text}")

    def info(self, text: str) -> None:
        if not self.quiet:
            self._print(f"    {text}")

    def do(self, text: str) -> None:
        self._print(f"    {'[dry-run] would ' if self.dry_run else ''}{text}")

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self._print(f"    WARNING: {text}")


# --------------------------------------------------------------------------- places
def default_state_dir() -> Path:
    env = os.environ.get("NEURAL_STYLE_STATE_DIR")
    if env:
        return Path(env)
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "neural-style"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "neural-style"


def gimp_config_dirs() -> list[tuple[str, Path]]:
    """(kind, the folder holding GIMP's per-version profiles: 3.0, 3.2, ...) of every GIMP build
    this install.py knows, existing or not."""
    home = Path.home()
    out: list[tuple[str, Path]] = []
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    out.append(("linux", xdg / "GIMP"))
    out.append(("flatpak", home / ".var" / "app" / FLATPAK_ID / "config" / "GIMP"))
    out.append(("snap", home / "snap" / SNAP_NAME / "current" / ".config" / "GIMP"))
    out.append(("macos", home / "Library" / "Application Support" / "GIMP"))
    if os.environ.get("APPDATA"):
        out.append(("windows", Path(os.environ["APPDATA"]) / "GIMP"))
    return out


def _version_key(name: str) -> tuple[int, ...] | None:
    """(3, 2) for a GIMP 3 profile folder named "3.2"; None for anything else ("2.10", "3.2.bak")."""
    parts = name.split(".")
    if len(parts) != 2 or parts[0] != "3" or not parts[1].isdigit():
        return None
    return (3, int(parts[1]))


def gimp_profiles() -> list[tuple[str, Path]]:
    """(kind, profile) of every GIMP 3.x profile that exists (3.0, 3.2 and later ones: each minor
    version has its own folder, which that GIMP creates on its first start), oldest first."""
    found: list[tuple[str, Path]] = []
    for kind, base in gimp_config_dirs():
        if not base.is_dir():
            continue
        versions = [(key, d) for d in base.iterdir() if (key := _version_key(d.name)) and d.is_dir()]
        found += [(kind, d) for _key, d in sorted(versions)]
    return found


GIMP3_COMMAND = re.compile(r"gimp(-console)?-3(\.\d+)?(\.exe)?")


def find_gimp3_binaries() -> list[str]:
    """GIMP 3 commands on PATH, newest first: gimp-3.2 / gimp-console-3.2 / gimp-3 / gimp-console-3
    (GIMP 3.2), gimp-3.0 / gimp-console-3.0 (3.0), or a plain gimp3 or gimp that says it is 3.x."""
    versioned: list[tuple[tuple[int, ...], str]] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        with contextlib.suppress(OSError):
            for entry in Path(folder or ".").iterdir():
                match = GIMP3_COMMAND.fullmatch(entry.name)
                if match and os.access(entry, os.X_OK):
                    minor = match.group(2)
                    versioned.append(((int(minor[1:]) if minor else 99,), str(entry)))
    found = [path for _key, path in sorted(versioned, key=lambda kv: kv[0], reverse=True)]
    for name in ("gimp3", "gimp"):
        path = shutil.which(name)
        if path and path not in found and gimp_version(path):
            found.append(path)
    return found


def gimp_version(path: str) -> str | None:
    """ "3.2" for a command whose --version says "... version 3.2.6"; None when it is not GIMP 3."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\b(3\.\d+)\.\d+", out)
    return match.group(1) if match else None


def plugin_targets(args: argparse.Namespace, out: Out) -> list[tuple[str, Path]]:
    """(kind, plug-ins folder) to install into."""
    if args.gimp_dir:
        targets = []
        for d in args.gimp_dir:
            d = Path(d).expanduser().resolve()
            plug_ins = d if d.name == "plug-ins" else d / "plug-ins"
            targets.append(("given", plug_ins))
        return targets
    found = [(kind, p / "plug-ins") for kind, p in gimp_profiles()]
    if found:
        return found
    if not sys.platform.startswith("linux"):
        return []
    for binary in find_gimp3_binaries():
        version = gimp_version(binary)
        if version:  # the profile that GIMP will create on its first start
            kind, base = gimp_config_dirs()[0]
            out.info(f"GIMP {version} found ({binary}) but no profile yet: using {base / version}")
            return [(kind, base / version / "plug-ins")]
    return []


def venv_bin(venv_dir: Path, name: str) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / (name + ".exe")
    return venv_dir / "bin" / name


def torch_checkpoints_dir() -> Path:
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "torch" / "hub" / "checkpoints"


# --------------------------------------------------------------------------- manifest
class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"format": 1, "venv": None, "plugins": {}, "weights": [], "service": None}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.data.update(loaded)
            except (OSError, ValueError):
                pass

    def save(self, out: Out) -> None:
        if out.dry_run:
            out.do(f"write the manifest {self.path}")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- step 1: venv
def step_venv(args: argparse.Namespace, out: Out, manifest: Manifest) -> None:
    out.step(f"Python package in the virtual environment {args.venv}")
    python = venv_bin(args.venv, "python")
    created = False
    if python.exists():
        out.info(f"{args.venv} exists: reusing it")
    else:
        out.do(f"create the virtual environment {args.venv}")
        if not args.dry_run:
            try:
                venv.EnvBuilder(with_pip=True).create(args.venv)
            except Exception as exc:
                raise InstallError(f"cannot create the virtual environment {args.venv}: {exc}. "
                                   "On Debian/Ubuntu: apt-get install python3-venv") from exc
        created = True
    extras = "test,cluster" if getattr(args, "cluster", False) else "test"  # cluster: Ray, for serve --ray
    command = [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extras}]"]
    out.do("run " + " ".join(shlex.quote(c) for c in command))
    if not args.dry_run:
        proc = subprocess.run(command)
        if proc.returncode != 0:
            raise InstallError("pip could not install the package (see pip's messages above); "
                               "check the network or pip's configuration and run install.py again")
    previous = manifest.data.get("venv") or {}
    if previous.get("path") == str(args.venv) and previous.get("created"):
        created = True  # an earlier run made it: still ours
    manifest.data["venv"] = {"path": str(args.venv), "created": created}


# --------------------------------------------------------------------------- step 2: plug-in
def plugin_files() -> list[tuple[Path, Path]]:
    """(source, path relative to the plug-in folder) of every file the plug-in needs."""
    files: list[tuple[Path, Path]] = []
    files.append((PLUGIN_SRC / f"{PLUGIN_NAME}.py", Path(f"{PLUGIN_NAME}.py")))
    for src in sorted((PLUGIN_SRC / "nsgimp").glob("*.py")):
        files.append((src, Path("nsgimp") / src.name))
    for src in sorted((PLUGIN_SRC / "help").rglob("*")):
        if src.is_file():
            files.append((src, src.relative_to(PLUGIN_SRC)))
    for src in sorted(PROTOCOL_SRC.glob("*.py")):
        files.append((src, Path("neural_style") / "protocol" / src.name))
    return files


NEURAL_STYLE_INIT = '"""Neural Style, as bundled with the GIMP plug-in: only the pure-Python protocol package."""\n'


def daemon_command(args: argparse.Namespace) -> list[str]:
    """The daemon command recorded for the plug-in: no --bind, since whoever starts it sets
    $NEURAL_STYLE_ENDPOINT to the address it will look at (a dialog may name another one)."""
    exe = venv_bin(args.venv, "neural-style")
    if not exe.exists() and args.no_venv and shutil.which("neural-style"):
        exe = Path(shutil.which("neural-style"))
    weights = args.weights
    if weights and weights != "random":  # "random": untrained weights, for tests only
        weights = str(Path(weights).expanduser().resolve())
    return connection.serve_command([str(exe), "serve"], weights=weights or None)


def _write(path: Path, data: bytes, executable: bool, out: Out) -> None:
    if path.is_file() and path.read_bytes() == data and (not executable or os.access(path, os.X_OK)):
        return
    if out.dry_run:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if executable:
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)


def step_plugin(args: argparse.Namespace, out: Out, manifest: Manifest, kind: str, plug_ins: Path) -> Path:
    dest = plug_ins / PLUGIN_NAME
    out.step(f"GIMP plug-in into {dest}")
    record = manifest.data["plugins"].get(str(dest)) or {"files": [], "dirs": [], "kind": kind}
    folder_manifest = dest / FOLDER_MANIFEST
    if folder_manifest.is_file():
        try:
            earlier = json.loads(folder_manifest.read_text(encoding="utf-8"))
            record["files"] = sorted(set(record["files"]) | set(earlier.get("files", [])))
            record["dirs"] = sorted(set(record["dirs"]) | set(earlier.get("dirs", [])))
        except (OSError, ValueError):
            pass
    # Folders we create (so that --uninstall removes them, and only them).
    missing_parents = []
    parent = plug_ins.parent
    while not parent.exists() and parent != parent.parent:
        missing_parents.append(parent)
        parent = parent.parent
    for folder in (*reversed(missing_parents), plug_ins, dest, dest / "nsgimp", dest / "help", dest / "help" / "en",
                   dest / "neural_style", dest / "neural_style" / "protocol"):
        if not folder.exists():
            out.do(f"create {folder}")
            if not args.dry_run:
                folder.mkdir(parents=True, exist_ok=True)
            record["dirs"] = sorted(set(record["dirs"]) | {str(folder)})
    wanted: dict[Path, tuple[bytes, bool]] = {}
    for src, rel in plugin_files():
        wanted[dest / rel] = (src.read_bytes(), rel == Path(f"{PLUGIN_NAME}.py"))
    wanted[dest / "neural_style" / "__init__.py"] = (NEURAL_STYLE_INIT.encode(), False)
    config = connection.ClientConfig(endpoint=args.endpoint, daemon_command=daemon_command(args), autostart=True,
                                     service=service_kind(args, manifest))
    config_path = connection.client_config_path(dest)
    schema_path = schema_file.schema_path(dest)
    out.do(f"copy the plug-in ({len(wanted)} files, protocol package included) and write {config_path.name} "
           f"and {schema_path.name} (the engine's parameter schema)")
    out.info("daemon command: " + shlex.join(config.daemon_command))
    wanted[schema_path] = (schema_file.dumps(engine_parameter_schema()).encode(), False)
    for path, (data, executable) in wanted.items():
        _write(path, data, executable, out)
    if not args.dry_run:  # the plug-in reads it with the same module
        connection.write_client_config(dest, config)
    wanted[config_path] = (b"", False)
    # Files an older version installed that this one no longer ships.
    stale = [f for f in record["files"] if Path(f) not in wanted and Path(f).parent != dest / "vendor"
             and not Path(f).is_relative_to(dest / "vendor")]
    for f in stale:
        if Path(f).is_file():
            out.do(f"remove the stale file {f}")
            if not args.dry_run:
                Path(f).unlink()
    record["files"] = sorted({str(p) for p in wanted} | {f for f in record["files"] if f not in stale})
    record["kind"] = kind
    manifest.data["plugins"][str(dest)] = record
    if not args.dry_run:
        folder_manifest.write_text(json.dumps({"files": record["files"], "dirs": record["dirs"]}, indent=2) + "\n",
                                   encoding="utf-8")
    record["files"] = sorted(set(record["files"]) | {str(folder_manifest)})
    return dest


# --------------------------------------------------------------------------- step 3: GIMP's Python
PROBE = (
    "import json, sys, sysconfig, platform\n"
    "missing = []\n"
    "for name in ('zmq', 'msgpack'):\n"
    "    try:\n"
    "        __import__(name)\n"
    "    except Exception:\n"
    "        missing.append(name)\n"
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'platform': sysconfig.get_platform(),"
    " 'machine': platform.machine(), 'missing': missing}))\n"
)


def gimp_python_command(args: argparse.Namespace, kind: str) -> list[str] | None:
    if args.gimp_python:
        return shlex.split(args.gimp_python)
    if kind == "flatpak" and shutil.which("flatpak"):
        return ["flatpak", "run", "--command=python3", FLATPAK_ID]
    if kind == "macos":
        for app in sorted(Path("/Applications").glob("GIMP*.app"), reverse=True):
            for cand in sorted((app / "Contents" / "MacOS").glob("python3*")):
                return [str(cand)]
    if kind == "windows" or os.name == "nt":
        for base in (os.environ.get("PROGRAMFILES"), os.environ.get("LOCALAPPDATA")):
            if not base:
                continue
            for cand in sorted(Path(base).glob("GIMP 3*/bin/python*.exe"), reverse=True):
                return [str(cand)]
    if kind == "snap":  # the snap's own Python (the snap mounts itself at /snap/gimp/current)
        for cand in sorted(Path("/snap", SNAP_NAME, "current", "usr", "bin").glob("python3*")):
            return [str(cand)]
    # Linux distro GIMP: an interpreters/*.interp line naming python, else python3 on PATH (the
    # plug-in's "#!/usr/bin/env python3"). GIMP 3.2 still keeps them in .../gimp/3.0/ (the plug-in
    # API's version); a later one may not.
    for interp in sorted(Path("/usr/lib").glob("*/gimp/3.*/interpreters/*.interp")) + sorted(
            Path("/usr/lib").glob("gimp/3.*/interpreters/*.interp")):
        try:
            for line in interp.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("python3=") or line.startswith("python="):
                    return [line.split("=", 1)[1].strip()]
        except OSError:
            pass
    python3 = shutil.which("python3")
    return [python3] if python3 else None


def wheel_platforms(platform_tag: str, machine: str) -> list[str]:
    """pip --platform values for a sysconfig platform such as linux-x86_64, macosx-11.0-arm64, win-amd64."""
    tag = platform_tag.replace("-", "_").replace(".", "_")
    if tag.startswith("linux"):
        arch = machine or tag.split("_", 1)[1]
        return [f"manylinux_2_{v}_{arch}" for v in (28, 27, 26, 24, 17)] + [f"manylinux2014_{arch}"]
    if tag.startswith("macosx"):
        parts = tag.split("_")
        arch = parts[-1]
        return [f"macosx_{major}_0_{a}" for major in (14, 13, 12, 11, 10) for a in (arch, "universal2")] + [
            f"macosx_10_9_{a}" for a in (arch, "universal2")]
    if tag.startswith("win"):
        return [tag]
    return [tag]


def step_wheels(args: argparse.Namespace, out: Out, manifest: Manifest, kind: str, dest: Path) -> None:
    out.step(f"GIMP's Python: pyzmq and msgpack for {dest}")
    command = gimp_python_command(args, kind)
    if not command:
        out.warn("cannot find the Python GIMP runs plug-ins with; name it with --gimp-python. "
                 "On Debian/Ubuntu: apt-get install python3-zmq python3-msgpack")
        return
    try:
        proc = subprocess.run([*command, "-c", PROBE], capture_output=True, text=True, timeout=120)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        out.warn(f"cannot run GIMP's Python ({' '.join(command)}); name it with --gimp-python. "
                 "On Debian/Ubuntu: apt-get install python3-zmq python3-msgpack")
        return
    out.info(f"{' '.join(command)}: Python {info['version']} on {info['platform']}")
    vendor = dest / "vendor"
    if not info["missing"]:
        out.info("it imports zmq and msgpack: no wheels needed")
        return
    out.info(f"it lacks {', '.join(info['missing'])}: placing wheels in {vendor}")
    if sys.platform.startswith("linux"):
        out.info("(with Debian/Ubuntu's GIMP, apt-get install python3-zmq python3-msgpack is the alternative)")
    pip_python = venv_bin(args.venv, "python")
    pip = [str(pip_python) if pip_python.exists() else sys.executable, "-m", "pip"]
    cmd = [*pip, "install", "-q", "--target", str(vendor), "--upgrade", "--only-binary=:all:",
           "--python-version", info["version"], "--implementation", "cp"]
    for plat in wheel_platforms(info["platform"], info.get("machine", "")):
        cmd += ["--platform", plat]
    cmd += list(WHEEL_PACKAGES)
    out.do("run " + " ".join(shlex.quote(c) for c in cmd))
    record = manifest.data["plugins"].setdefault(str(dest), {"files": [], "dirs": [], "kind": kind})
    if args.dry_run:
        return
    existed = vendor.exists()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        out.warn("pip could not fetch pyzmq/msgpack wheels for GIMP's Python; the plug-in will say so when run. "
                 "On Debian/Ubuntu: apt-get install python3-zmq python3-msgpack")
        return
    if not existed:
        record["dirs"] = sorted(set(record["dirs"]) | {str(vendor)})
    record["vendor"] = str(vendor)
    # Which Python these wheels are for: the plug-in skips them under another one (and says so).
    note = {"python": info["version"], "platform": info["platform"], "interpreter": command}
    (vendor / bootstrap.WHEELS_RECORD).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    out.info(f"wheels for Python {info['version']} ({info['platform']}) recorded in {bootstrap.WHEELS_RECORD}")


# --------------------------------------------------------------------------- step 4: weights
def step_weights(args: argparse.Namespace, out: Out, manifest: Manifest) -> None:
    out.step("VGG19 weights")
    if args.weights == "random":
        out.info("--weights random: the daemon will use untrained weights (for tests only)")
        return
    if args.weights:
        path = Path(args.weights).expanduser()
        if not path.is_file():
            raise InstallError(f"--weights {path}: no such file")
        out.info(f"using {path.resolve()} (recorded in the daemon command)")
        return
    if args.no_weights:
        out.info("skipped (--no-weights); the daemon needs them: run install.py again without --no-weights, "
                 "or give it --weights FILE")
        return
    target = torch_checkpoints_dir() / WEIGHTS_NAME
    if target.is_file():
        out.info(f"{target} is already there")
        return
    out.do(f"download {WEIGHTS_URL} (548 MB) to {target}")
    if args.dry_run:
        return
    created_dirs = []
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        created_dirs.append(str(parent))
        parent = parent.parent
    tmp_name = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=WEIGHTS_NAME + ".", suffix=".part", dir=target.parent)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(WEIGHTS_URL, timeout=args.download_timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                next_report = 0
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if total and done >= next_report:
                        out.info(f"{done >> 20} / {total >> 20} MB")
                        next_report += total // 10 or 1
            if not digest.hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
                raise InstallError(f"the download's SHA-256 does not start with {WEIGHTS_SHA256_PREFIX}: corrupted")
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    except (OSError, InstallError, ValueError) as exc:
        for d in created_dirs:  # deepest first: leave no empty folders behind
            with contextlib.suppress(OSError):
                os.rmdir(d)
        out.warn(f"could not download the VGG19 weights ({exc}). Everything else is installed; the daemon "
                 f"will answer 'no_weights' until you put {WEIGHTS_NAME} in {target.parent} "
                 "(or run install.py --weights FILE, or again when online).")
        return
    manifest.data["weights"] = sorted(set(manifest.data.get("weights", [])) | {str(target)})
    manifest.data["weights_dirs"] = sorted(set(manifest.data.get("weights_dirs", [])) | set(created_dirs))
    out.info(f"saved {target}")



# --------------------------------------------------------------------------- step 5: the user service
def service_kind(args: argparse.Namespace, manifest: Manifest) -> str | None:
    """The service this install has (or is about to have): recorded for the plug-in's messages."""
    if getattr(args, "service", False):
        return "launchd" if sys.platform == "darwin" else "systemd"
    return (manifest.data.get("service") or {}).get("kind")


def systemd_quote(arg: str) -> str:
    """One ExecStart= word (systemd.service(5): double quotes, backslash escapes; % and $ doubled)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c in arg for c in ' \t"\'\\;$'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(command: list[str]) -> str:
    return (
        "[Unit]\n"
        "Description=Neural Style daemon (style transfer for GIMP and the neural-style command)\n"
        f"Documentation=file://{ROOT / 'README.md'}\n"
        "\n"
        "[Service]\n"
        f"ExecStart={' '.join(systemd_quote(c) for c in command)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launchd_plist(command: list[str], log: Path) -> bytes:
    return plistlib.dumps({
        "Label": connection.LAUNCHD_LABEL, "ProgramArguments": command, "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False}, "StandardOutPath": str(log), "StandardErrorPath": str(log),
    })


def service_path() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "LaunchAgents" / f"{connection.LAUNCHD_LABEL}.plist"
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "systemd" / "user" / connection.SYSTEMD_UNIT


def _service_commands(kind: str, path: Path, start: bool) -> list[list[str]]:
    if kind == "launchd":
        domain = f"gui/{os.getuid()}"
        return [["launchctl", "bootstrap", domain, str(path)]] if start else \
            [["launchctl", "bootout", domain, str(path)]]
    if start:
        return [["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", "--now", connection.SYSTEMD_UNIT]]
    return [["systemctl", "--user", "disable", "--now", connection.SYSTEMD_UNIT]]


def _run_service_commands(commands: list[list[str]], out: Out) -> str | None:
    """Run each command; the first failure's reason (None when all worked)."""
    for command in commands:
        out.do("run " + shlex.join(command))
        if out.dry_run:
            continue
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{command[0]} could not run ({exc})"
        if proc.returncode != 0:
            return f"{shlex.join(command)} failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def step_service(args: argparse.Namespace, out: Out, manifest: Manifest) -> None:
    kind = service_kind(args, manifest)
    out.step(f"The daemon as a user service ({kind})")
    if sys.platform not in ("darwin",) and not sys.platform.startswith("linux"):
        out.warn("--service knows systemd (Linux) and launchd (macOS) only; start the daemon with "
                 "`neural-style serve` instead")
        return
    command = [*daemon_command(args), "--bind", args.endpoint]  # a service has no one to set its address
    path = service_path()
    log = Path.home() / "Library" / "Logs" / "neural-style-daemon.log"
    data = launchd_plist(command, log) if kind == "launchd" else systemd_unit(command).encode()
    created = [str(d) for d in reversed(path.parents) if not d.exists()]
    out.do(f"write {path}")
    out.info("daemon command: " + shlex.join(command))
    if not args.dry_run:
        _write(path, data, False, out)
        manifest.data["service"] = {"kind": kind, "path": str(path), "dirs": created}
    problem = _run_service_commands(_service_commands(kind, path, start=True), out)
    if problem:
        out.warn(f"the service is written but not started: {problem}. Start it yourself with: "
                 f"{connection.service_start_command(kind)}")
    elif not args.dry_run:
        out.info(f"started; it starts again at every login "
                 f"(stop it: {shlex.join(_service_commands(kind, path, False)[0])})")


def uninstall_service(args: argparse.Namespace, out: Out, manifest: Manifest) -> None:
    record = manifest.data.get("service") or {}
    if not record.get("path"):
        return
    path = Path(record["path"])
    out.info(f"user service {path}")
    problem = _run_service_commands(_service_commands(record.get("kind", "systemd"), path, start=False), out)
    if problem:
        out.info(f"(could not stop it: {problem})")
    if path.exists():
        out.do(f"remove {path}")
        if not args.dry_run:
            path.unlink()
    if record.get("kind") == "systemd":
        _run_service_commands([["systemctl", "--user", "daemon-reload"]], out)
    for d in sorted(record.get("dirs", []), key=lambda s: -len(s)):
        if not args.dry_run:
            with contextlib.suppress(OSError):
                Path(d).rmdir()
    if not args.dry_run:
        manifest.data["service"] = None


# --------------------------------------------------------------------------- uninstall
def uninstall(args: argparse.Namespace, out: Out, manifest: Manifest) -> None:
    out.step("Uninstall: removing what install.py created")
    plugins = dict(manifest.data.get("plugins") or {})
    for _kind, plug_ins in plugin_targets(args, out) if args.gimp_dir else []:
        dest = plug_ins / PLUGIN_NAME
        fm = dest / FOLDER_MANIFEST
        if fm.is_file():
            try:
                earlier = json.loads(fm.read_text(encoding="utf-8"))
                rec = plugins.setdefault(str(dest), {"files": [], "dirs": []})
                rec["files"] = sorted(set(rec["files"]) | set(earlier.get("files", [])) | {str(fm)})
                rec["dirs"] = sorted(set(rec["dirs"]) | set(earlier.get("dirs", [])))
            except (OSError, ValueError):
                pass
    if args.gimp_dir:  # only the named profiles
        wanted = {str(p / PLUGIN_NAME) for _k, p in plugin_targets(args, out)}
        plugins = {k: v for k, v in plugins.items() if k in wanted}
    if not plugins and not manifest.data.get("weights") and not (manifest.data.get("venv") or {}).get("created") \
            and not manifest.data.get("service"):
        out.info(f"nothing recorded in {manifest.path}: nothing to remove")
    for dest, rec in plugins.items():
        out.info(f"plug-in {dest}")
        vendor = rec.get("vendor")
        if vendor and Path(vendor).exists():
            out.do(f"remove {vendor} (wheels)")
            if not args.dry_run:
                shutil.rmtree(vendor, ignore_errors=True)
        for f in rec.get("files", []):
            p = Path(f)
            if p.is_file() or p.is_symlink():
                out.do(f"remove {p}")
                if not args.dry_run:
                    p.unlink()
            cache = p.parent / "__pycache__"
            if cache.is_dir() and not args.dry_run:
                shutil.rmtree(cache, ignore_errors=True)
        for d in sorted(rec.get("dirs", []), key=lambda s: -len(s)):
            p = Path(d)
            if p.is_dir():
                if not args.dry_run:
                    shutil.rmtree(p / "__pycache__", ignore_errors=True)
                    try:
                        p.rmdir()
                        out.do(f"remove the folder {p}")
                    except OSError:
                        out.info(f"kept {p}: it holds files install.py did not put there")
                else:
                    out.do(f"remove the folder {p} (if empty)")
        manifest.data["plugins"].pop(dest, None)
    if not args.gimp_dir:
        uninstall_service(args, out, manifest)
        for w in manifest.data.get("weights", []):
            if Path(w).is_file():
                out.do(f"remove the weights {w}")
                if not args.dry_run:
                    Path(w).unlink()
        manifest.data["weights"] = []
        for d in sorted(manifest.data.get("weights_dirs", []), key=lambda s: -len(s)):
            if Path(d).is_dir():
                out.do(f"remove the folder {d} (if empty)")
                if not args.dry_run:
                    try:
                        Path(d).rmdir()
                    except OSError:
                        out.info(f"kept {d}: it holds other files")
        manifest.data["weights_dirs"] = []
        v = manifest.data.get("venv") or {}
        if v.get("created") and Path(v["path"]).is_dir():
            if args.keep_venv:
                out.info(f"kept the virtual environment {v['path']} (--keep-venv)")
            else:
                out.do(f"remove the virtual environment {v['path']}")
                if not args.dry_run:
                    shutil.rmtree(v["path"], ignore_errors=True)
                manifest.data["venv"] = None
        elif v.get("path"):
            out.info(f"kept {v['path']}: it existed before install.py ran")
    if args.dry_run:
        return
    if not manifest.data.get("plugins") and not manifest.data.get("weights") and not manifest.data.get("weights_dirs") \
            and not (manifest.data.get("venv") or {}).get("created") and not manifest.data.get("service"):
        if manifest.path.is_file():
            manifest.path.unlink()
            out.info(f"removed the manifest {manifest.path}")
        try:
            manifest.path.parent.rmdir()  # only when empty
        except OSError:
            pass
    else:
        manifest.save(out)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--venv", type=Path, default=ROOT / ".venv", help="virtual environment (default: %(default)s)")
    p.add_argument("--no-venv", action="store_true", help="do not create or update the virtual environment")
    p.add_argument("--cluster", action="store_true",
                   help="also install Ray (the [cluster] extra) for `neural-style serve --ray`")
    p.add_argument("--gimp-dir", action="append", metavar="DIR",
                   help="GIMP 3 profile folder (or its plug-ins folder) to install into; repeatable. "
                        "Default: every GIMP 3 profile found")
    p.add_argument("--no-plugin", action="store_true", help="do not install the GIMP plug-in")
    p.add_argument("--gimp-python", metavar="CMD", help="the Python GIMP runs plug-ins with (a command line)")
    p.add_argument("--no-wheels", action="store_true", help="do not check GIMP's Python for pyzmq/msgpack")
    p.add_argument("--endpoint", default=connection.default_endpoint(),
                   help=f"daemon endpoint recorded for the plug-in and the service (default: %(default)s; "
                        f"${connection.ENDPOINT_ENV} sets it)")
    p.add_argument("--service", action="store_true",
                   help="also install and start a user service running the daemon (systemd user unit on Linux, "
                        "launchd agent on macOS): what Flatpak and Snap GIMP need")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--no-weights", action="store_true", help="do not download the VGG19 weights")
    w.add_argument("--weights", metavar="FILE", help="use this VGG19 weights file instead of downloading "
                   "('random': untrained weights, for tests)")
    p.add_argument("--download-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where the install manifest lives (default: ~/.local/share/neural-style)")
    p.add_argument("--dry-run", action="store_true", help="print every step without doing it")
    p.add_argument("--uninstall", action="store_true", help="remove what earlier runs installed")
    p.add_argument("--keep-venv", action="store_true", help="with --uninstall: keep the virtual environment")
    args = p.parse_args(argv)
    args.venv = args.venv.expanduser().absolute()
    args.state_dir = (args.state_dir or default_state_dir()).expanduser().absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Out(args.dry_run)
    manifest = Manifest(args.state_dir / MANIFEST_NAME)
    try:
        if args.uninstall:
            uninstall(args, out, manifest)
            out._print("Uninstalled." if not args.dry_run else "Dry run: nothing was changed.")
            return 0
        if not args.no_venv:
            step_venv(args, out, manifest)
        if not args.no_plugin:
            targets = plugin_targets(args, out)
            if not targets:
                out.step("GIMP plug-in")
                out.warn("no GIMP 3 profile found (run GIMP 3 once, or name one with --gimp-dir DIR)")
            for kind, plug_ins in targets:
                dest = step_plugin(args, out, manifest, kind, plug_ins)
                if not args.no_wheels:
                    step_wheels(args, out, manifest, kind, dest)
                manifest.save(out)
        step_weights(args, out, manifest)
        if args.service:
            step_service(args, out, manifest)
        manifest.save(out)
    except InstallError as exc:
        print(f"install.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("install.py: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no tracebacks for users: say what failed
        print(f"install.py: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        out._print("Dry run: nothing was changed.")
    elif out.warnings:
        out._print(f"Installed, with {len(out.warnings)} warning(s) above.")
    else:
        out._print("Installed. In GIMP 3: Filters → Artistic → Neural Style…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
