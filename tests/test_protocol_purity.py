"""The protocol package must run inside GIMP's Python: only stdlib, pyzmq and msgpack.

It is copied next to the plug-in as ``neural_style/protocol/`` without the daemon, so it
must import without torch, numpy, PIL or ``neural_style.daemon``, using relative imports.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "protocol"
ALLOWED_TOP_LEVEL = {"zmq", "msgpack", "__future__"} | set(sys.stdlib_module_names)


def imported_names(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import in ``path``: level 0 for an absolute import, 1 for ``from .x``…"""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


def test_only_stdlib_zmq_msgpack_and_relative_imports() -> None:
    offenders = [f"{path.name}: {name}" for path in sorted(PROTOCOL_DIR.glob("*.py"))
                 for name, level in imported_names(path) if level == 0 and name.split(".")[0] not in ALLOWED_TOP_LEVEL]
    assert offenders == []


def test_a_copy_imports_and_works_without_the_daemon(tmp_path: Path) -> None:
    target = tmp_path / "plugin" / "neural_style" / "protocol"
    shutil.copytree(PROTOCOL_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])  # what the plug-in's bootstrap does\n"
        "sys.modules['torch'] = sys.modules['numpy'] = sys.modules['PIL'] = None  # importing them fails\n"
        "from neural_style.protocol import Client, ImageData, Stylize, decode_request\n"
        "import neural_style.protocol as p\n"
        "assert p.__file__.startswith(sys.argv[1]), p.__file__\n"
        "m = Stylize('a', ImageData.raw(bytes(12), 2, 2, 3), [ImageData.raw(bytes(12), 2, 2, 3)])\n"
        "assert decode_request(m.to_frames()) == m\n"
        "assert 'neural_style.daemon' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script, str(tmp_path / "plugin")],
                         cwd=tmp_path / "plugin", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
