"""What made a result layer (nsgimp/remembered.py's made_with, kept in a parasite): no GIMP needed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin" / "neural_style_gimp"
sys.path.insert(0, str(PLUGIN_DIR))

from nsgimp import remembered  # noqa: E402

DEFAULTS = {"style": None, "style2": None, "strength": 50.0, "iterations": 200, "full-resolution": False,
            "working-size": 512, "init": "noise", "endpoint": "", "autostart": True, "timeout": 30}


def test_a_result_keeps_its_settings_and_source_but_not_the_connection():
    values = {"style": "/x/starry.jpg", "style2": None, "strength": 70, "iterations": 9, "full-resolution": False,
              "working-size": 48, "init": "content", "endpoint": "tcp://10.0.0.2:5555", "autostart": False,
              "timeout": 20}
    data = remembered.made_with(values, 7)
    back, tattoo = remembered.read_made_with(data, DEFAULTS)
    assert tattoo == 7
    assert back == {"style": "/x/starry.jpg", "style2": None, "strength": 70.0, "iterations": 9,
                    "full-resolution": False, "working-size": 48, "init": "content"}
    assert "endpoint" not in json.loads(data)["values"]  # an XCF given to someone else carries no address


def test_a_parasite_from_elsewhere_offers_nothing():
    assert remembered.read_made_with(b"1", DEFAULTS) == ({}, None)  # the plain result marker
    assert remembered.read_made_with(b"\xff\xfe", DEFAULTS) == ({}, None)
    assert remembered.read_made_with(json.dumps({"format": 99, "values": {"iterations": 3}}).encode(),
                                     DEFAULTS) == ({}, None)
    wrong = json.dumps({"format": remembered.FORMAT, "values": {"iterations": "many", "endpoint": "tcp://x:1",
                                                                  "unknown": 1}, "source": True}).encode()
    assert remembered.read_made_with(wrong, DEFAULTS) == ({}, None)  # wrong types, no tattoo (a bool is not one)
