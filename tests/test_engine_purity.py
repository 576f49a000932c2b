"""The engine is pure: ``daemon/engine/`` imports nothing from ``protocol/`` or ``server/`` (nor the rest of
the daemon), so it imports with pyzmq and msgpack absent, and install.py loads its schema by path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_protocol_purity import imported_names

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIR = ROOT / "daemon" / "engine"


def test_engine_modules_import_only_the_engine_and_libraries() -> None:
    offenders = [f"{path.name}: {name or '.'} (level {level})" for path in sorted(ENGINE_DIR.glob("*.py"))
                 for name, level in imported_names(path)
                 if level > 1 or (level == 0 and name.split(".")[0] in {"neural_style", "zmq", "msgpack"}
                                  and not name.startswith("neural_style.daemon.engine"))]
    assert offenders == []


BLOCKED = "import sys\nsys.modules['zmq'] = sys.modules['msgpack'] = None  # importing them fails\n"


def _run(script: str) -> str:
    out = subprocess.run([sys.executable, "-c", BLOCKED + script], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_engine_imports_with_pyzmq_and_msgpack_blocked() -> None:
    script = (
        "from neural_style.daemon.engine import StyleParams, ParamError, plan_inputs\n"
        "from neural_style.daemon.engine.params import parameter_schema\n"
        "import neural_style.daemon.engine.transfer\n"  # the run itself, torch included
        "assert StyleParams(iterations=3).iterations == 3 and 'iterations' in parameter_schema()['params']\n"
        "try:\n"
        "    StyleParams.from_mapping({'iterations': 'x' * 500})\n"
        "except ParamError as exc:\n"
        "    assert exc.field == 'iterations' and len(str(exc)) < 200, exc\n"
        "assert not [m for m in sys.modules if m.startswith(('neural_style.protocol', 'neural_style.daemon.server'))]\n"
        "print('ok')\n"
    )
    assert _run(script) == "ok"


def test_install_loads_the_schema_by_path_without_faking_modules() -> None:
    """install.py runs in any Python 3.10+ before the venv exists: no neural_style, no pyzmq there."""
    script = (
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('install', 'install.py')\n"
        "install = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(install)\n"
        "before = set(sys.modules)\n"
        "schema = install.engine_parameter_schema()\n"
        "assert 'iterations' in schema['params'], schema\n"
        "new = [m.partition('.')[0] for m in set(sys.modules) - before]\n"
        "assert 'neural_style' not in new, 'a faked or imported neural_style package'\n"
        "print('ok')\n"
    )
    assert _run(script) == "ok"
