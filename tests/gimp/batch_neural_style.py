# Runs inside real GIMP 3 (gimp-console-3.0 --batch-interpreter=python-fu-eval), started by
# tests/test_gimp_plugin.py through tests/gimp/in_root.sh:
#     -b "exec(open('/share/batch_neural_style.py').read())"
# Reads /share/case.json, opens the content image, optionally selects a rectangle, calls the
# Neural Style procedure non-interactively, and leaves everything the host checks under the
# case's out_dir: result.json, image.xcf, source_before.png, source_after.png, new_layer.png.
# Expected failures of the procedure are recorded, not raised: the batch itself fails (GIMP
# exits non-zero) only when this harness breaks.
import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

Gegl.init(None)

with open("/share/case.json", encoding="utf-8") as _fh:
    CASE = json.load(_fh)
OUT = CASE["out_dir"]
os.makedirs(OUT, exist_ok=True)


def _log(msg):
    with open(os.path.join(OUT, "batch.log"), "a", encoding="utf-8") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {msg}\n")


def _save_layer_png(layer, path):
    """A PNG of one layer's own pixels (no mask, no offsets)."""
    w, h = layer.get_width(), layer.get_height()
    tmp = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
    copy = Gimp.Layer.new_from_drawable(layer, tmp)
    tmp.insert_layer(copy, None, 0)
    copy.set_offsets(0, 0)
    if copy.get_mask() is not None:
        copy.remove_mask(Gimp.MaskApplyMode.DISCARD)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, tmp, Gio.File.new_for_path(path), None)
    tmp.delete()


def _describe(layer):
    _, x, y = layer.get_offsets()
    return {"name": layer.get_name(), "width": layer.get_width(), "height": layer.get_height(),
            "offsets": [x, y], "has_mask": layer.get_mask() is not None, "has_alpha": layer.has_alpha()}


def _run():
    result = {"case": CASE.get("name")}
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(CASE["image"]))
    source = image.get_layers()[0]
    if CASE.get("source_offsets"):
        source.set_offsets(*CASE["source_offsets"])
    result["layers_before"] = [_describe(l) for l in image.get_layers()]
    _save_layer_png(source, os.path.join(OUT, "source_before.png"))
    if CASE.get("select"):
        x, y, w, h = CASE["select"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)

    procedure = Gimp.get_pdb().lookup_procedure(CASE.get("procedure", "plug-in-neural-style"))
    result["procedure_found"] = procedure is not None
    if procedure is None:
        return result
    result["menu_label"] = procedure.get_menu_label()
    result["menu_paths"] = list(procedure.get_menu_paths())
    result["arguments"] = [spec.name for spec in procedure.get_arguments()]
    config = procedure.create_config()
    interactive = bool(CASE.get("interactive"))
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE if interactive else Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    for name, value in CASE.get("args", {}).items():
        if name in ("style", "style2"):
            value = Gio.File.new_for_path(value) if value else None
        config.set_property(name, value)
    _log("running the procedure")
    started = time.monotonic()
    with open(os.path.join(OUT, "started"), "w") as fh:
        fh.write("1\n")
    values = procedure.run(config)
    result["elapsed"] = time.monotonic() - started
    status = values.index(0)
    result["status"] = status.value_nick if hasattr(status, "value_nick") else str(status)
    try:
        result["error"] = values.index(1) if values.length() > 1 else None
    except Exception as exc:  # GIMP versions differ in how the message travels
        result["error"] = f"<unreadable: {exc}>"
    _log(f"procedure returned {result['status']}: {result['error']}")

    layers = image.get_layers()
    result["layers_after"] = [_describe(l) for l in layers]
    result["source_index_after"] = image.get_item_position(source)
    _save_layer_png(source, os.path.join(OUT, "source_after.png"))
    new_layers = [l for l in layers if l.get_id() != source.get_id()]
    if new_layers:
        _save_layer_png(new_layers[0], os.path.join(OUT, "new_layer.png"))
        if new_layers[0].get_mask() is not None:
            mask = new_layers[0].get_mask()
            w, h = mask.get_width(), mask.get_height()
            data = mask.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.CLAMP)
            result["mask_mean"] = sum(data) / max(1, len(data)) / 255.0
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(os.path.join(OUT, "image.xcf")), None)
    image.delete()
    return result


try:
    _result = _run()
except Exception as _exc:
    import traceback

    _log(traceback.format_exc())
    _result = {"harness_error": f"{type(_exc).__name__}: {_exc}"}
with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as _fh:
    json.dump(_result, _fh, indent=2)
_log("done")
