"""The parameter schema (daemon/engine/params.py): one declaration per parameter, and what derives from it.

Torch-free tests: construction validates, every float is finite and within float32's reach, messages
quote client values in bounded form, and the README and PROTOCOL.md tables follow the schema.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from neural_style.daemon.engine.engine_errors import ParamError
from neural_style.daemon.engine.params import (
    MAX_WEIGHT,
    PARAM_SPECS,
    STYLE_BLEND,
    StyleParams,
    parameter_schema,
    plan_inputs,
)
from neural_style.protocol.errors import quote

ROOT = Path(__file__).resolve().parents[1]
FLOAT32_MAX = 3.4028234663852886e38
FLOAT_FIELDS = sorted(name for name, spec in PARAM_SPECS.items() if spec.kind is float and not spec.is_list)


def test_every_field_declares_its_rules_once():
    defaults = StyleParams()
    for name, spec in PARAM_SPECS.items():
        assert spec.help, name
        assert getattr(defaults, name) == spec.default, name
        if spec.kind in (int, float):
            assert spec.minimum is not None and spec.maximum is not None, f"{name} needs a range"
        if spec.kind is str:
            assert spec.choices, f"{name} needs its choices"
        if spec.nullable:
            assert spec.unset, f"{name} must say what null means"
    assert list(PARAM_SPECS) == list(StyleParams.__dataclass_fields__)


def test_the_json_export_is_plain_data_and_needs_no_torch():
    code = ("import json, sys\n"
            "from neural_style.daemon.engine.params import parameter_schema\n"
            "print(json.dumps(parameter_schema()))\n"
            "assert 'torch' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    assert exported == json.loads(json.dumps(parameter_schema()))
    params = exported["params"]
    assert set(params) == set(PARAM_SPECS)
    assert params["iterations"]["default"] == StyleParams().iterations
    assert params["iterations"]["minimum"] == 1 and params["iterations"]["type"] == "int"
    assert params["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert params["style_layers"]["type"] == "list[str]" and "pool5" in params["style_layers"]["choices"]
    assert params["learning_rate"]["exclusive_minimum"] is True
    assert params["width"]["nullable"] and params["width"]["texture_only"]
    assert exported["style_blend"]["type"] == "list[float]" and exported["style_blend"]["maximum"] == MAX_WEIGHT
    assert all(entry["help"] for entry in params.values())


def test_construction_validates_so_no_invalid_params_exist():
    with pytest.raises(ParamError, match="iterations"):
        StyleParams(iterations=0)
    with pytest.raises(ParamError, match="iterations"):
        StyleParams().replace(iterations=-3)
    with pytest.raises(ParamError, match="scales cannot exceed"):
        StyleParams(iterations=2, scales=3)
    with pytest.raises(ParamError, match="at least one"):
        StyleParams(content_layers=(), style_layers=())
    coerced = StyleParams(style_layers=["relu1_1", "relu2_1"], style_layer_weights=[1, 2], content_weight=2)
    assert coerced.style_layers == ("relu1_1", "relu2_1") and coerced.style_layer_weights == (1.0, 2.0)
    assert isinstance(coerced.content_weight, float)
    assert StyleParams.from_mapping({"style_layers": "relu1_1, relu3_1"}).style_layers == ("relu1_1", "relu3_1")


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -1e300])
def test_every_float_is_finite_and_within_its_range(name, value):
    with pytest.raises(ParamError, match=name):
        StyleParams.from_mapping({name: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, MAX_WEIGHT * 2])
def test_number_lists_refuse_non_finite_and_out_of_range_entries(value):
    with pytest.raises(ParamError, match=r"style_layer_weights\[1\]"):
        StyleParams(style_layers=("relu1_1", "relu2_1"), style_layer_weights=(1.0, value))
    with pytest.raises(ParamError, match=r"style_blend\[1\]"):
        plan_inputs(StyleParams(), has_content=True, style_count=2, style_blend=(1.0, value))


@pytest.mark.parametrize(
    "values",
    [
        {"content_weight": 1e40},  # issue 10: accepted, then a non-finite loss
        {"style_scale": 1e308},  # issue 10: an OverflowError while formatting too_large
        {"optimizer": "adam", "learning_rate": 1e300},  # issue 10: accepted, then NaN
        {"style_weight": 1e12, "style_layers": ["relu1_1"], "style_layer_weights": [10.0]},  # β·w_l
        {"iterations": 10**100},
        {"content_weight": 10**400},  # beyond float64 itself
    ],
)
def test_values_whose_products_overflow_are_refused(values):
    with pytest.raises(ParamError):
        StyleParams.from_mapping(values)


def test_the_maxima_leave_float32_headroom_but_allow_large_ratios():
    for spec in (*PARAM_SPECS.values(), STYLE_BLEND):
        if spec.kind is float:
            assert spec.maximum is not None and spec.maximum * MAX_WEIGHT < FLOAT32_MAX, spec.name
    assert StyleParams(content_weight=1e-3, style_weight=1e9).style_weight == 1e9  # β/α = 10¹² is allowed


def test_style_blend_is_checked_against_the_styles():
    plan = plan_inputs(StyleParams(), has_content=True, style_count=2, style_blend=[3, 1])
    assert plan.blend == (0.75, 0.25)
    assert plan_inputs(StyleParams(), has_content=True, style_count=2).blend == (0.5, 0.5)
    for blend, message in [([1.0], "2 style images"), ([0, 0], "all be zero"), ([True, 1], "number")]:
        with pytest.raises(ParamError, match=message):
            plan_inputs(StyleParams(), has_content=True, style_count=2, style_blend=blend)


def test_inputs_without_anything_to_optimise_are_refused_before_any_work():
    with pytest.raises(ParamError, match="nothing to optimise"):
        plan_inputs(StyleParams(style_weight=0.0), has_content=False, style_count=1)
    with pytest.raises(ParamError, match="style image"):
        plan_inputs(StyleParams(), has_content=True, style_count=0)
    texture = plan_inputs(StyleParams(), has_content=False, style_count=1)
    assert texture.content_layers == () and texture.style_layers == StyleParams().style_layers


@pytest.mark.parametrize(
    "values",
    [
        {"x" * 100_000: 1},
        {"content_layers": ["relu" + "9" * 100_000]},
        {"optimizer": "s" * 100_000},
        {"iterations": [[[[[]]]]]},
        {"seed": 2**200},
    ],
)
def test_messages_quote_client_values_in_bounded_form(values):
    with pytest.raises(ParamError) as refused:
        StyleParams.from_mapping(values)
    assert len(str(refused.value)) < 1000  # the list of known names or layers, plus at most 60 characters quoted


def test_quote_never_expands_containers_or_long_values():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert quote(deep) == "<list>"
    assert quote("a" * 1000) == "'" + "a" * 58 + "…"
    assert len(quote(10**5000)) <= 60
    assert quote(1.5) == "1.5" and quote(None) == "None"


# ---------------------------------------------------------------------- the documents follow the schema
def _table_rows(text: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table after ``heading``, split on unescaped pipes."""
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


def test_readme_lists_every_option_with_the_schemas_default():
    rows = _table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "Options of `stylize`")
    documented: dict[str, str] = {}
    for option, default, _meaning in rows:
        names = [n.replace("-", "_") for n in re.findall(r"`--([a-z-]+)", option)]
        for name in names:
            documented[name] = default
    options = {name: spec for name, spec in PARAM_SPECS.items() if spec.cli} | {"style_blend": STYLE_BLEND}
    for name, spec in options.items():
        assert name in documented, f"README's stylize table lacks --{name.replace('_', '-')}"
        assert documented[name].strip("`") == spec.default_text(), name


def test_protocol_lists_every_param_with_the_schemas_default_and_type():
    rows = _table_rows((ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8"), "| param | type |")
    documented = {row[0].strip("`"): row for row in rows}
    assert set(documented) == set(PARAM_SPECS)
    words = {"int": "int", "float": "float", "bool": "bool", "str": "str",
             "list[str]": "list of str", "list[float]": "list of float"}
    for name, spec in PARAM_SPECS.items():
        _, kind, default, _meaning = documented[name]
        literal = default.strip("`")
        assert (None if literal == "nil" else json.loads(literal)) == spec.describe()["default"], name
        assert kind.startswith(words[spec.type_name]), name
    blend_row = next(row for row in _table_rows((ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8"),
                                                "### `stylize`") if row[0] == "`style_blend`")
    assert blend_row[1] == "list of floats"


def test_preserve_color_is_a_choice_that_still_reads_the_old_boolean():
    assert StyleParams().preserve_color == "off"
    assert StyleParams(preserve_color=True).preserve_color == "luminance"
    assert StyleParams.from_mapping({"preserve_color": False}).preserve_color == "off"
    assert StyleParams.from_mapping({"preserve_color": "histogram"}).preserve_color == "histogram"
    assert StyleParams(preserve_color=True).to_mapping()["preserve_color"] == "luminance"
    with pytest.raises(ParamError, match="one of off, luminance, histogram") as refused:
        StyleParams.from_mapping({"preserve_color": "sepia"})
    assert refused.value.field == "preserve_color"
    with pytest.raises(ParamError, match="true or false"):
        StyleParams.from_mapping({"preserve_color": 1})  # 1 == True in Python, but not a boolean on the wire
    described = parameter_schema()["params"]["preserve_color"]
    assert described["choices"] == ["off", "luminance", "histogram"]
    assert described["booleans"] == {"false": "off", "true": "luminance"}
