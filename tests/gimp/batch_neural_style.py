# Runs inside real GIMP 3 (gimp-console-3.0 or gimp-3.0 with --batch-interpreter=python-fu-eval),
# started by tests/test_gimp_plugin.py through tests/gimp/in_root.sh:
#     -b "exec(open('/share/batch_neural_style.py').read())"
# Reads /share/case.json: a list of steps run one after the other in this one GIMP session (a
# GIMP start costs seconds: the tests share it).  Each step opens its image, optionally moves the
# layer and selects a rectangle, calls the Neural Style procedure and leaves what the host checks
# under its out_dir: result.json, image.xcf, source_before.png, source_after.png, new_layer.png.
# Expected failures of the procedure are recorded, not raised: the batch itself fails (GIMP exits
# non-zero) only when this harness breaks.
import json
import os
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

Gegl.init(None)

with open("/share/case.json", encoding="utf-8") as _fh:
    SESSION = json.load(_fh)


def _log(out, msg):
    with open(os.path.join(out, "batch.log"), "a", encoding="utf-8") as fh:
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
    mask = layer.get_mask()
    return {"name": layer.get_name(), "width": layer.get_width(), "height": layer.get_height(),
            "offsets": [x, y], "has_mask": mask is not None, "has_alpha": layer.has_alpha(),
            "edit_mask": bool(mask is not None and layer.get_edit_mask())}


def _new_image(image, out, result, shown):
    """A returned image: its layers (top first), a PNG of each (new_image_N.png, N its position) and an XCF; deleted
    unless ``shown`` (an interactive run shows it, and only GIMP's quit closes its display)."""
    result["error"] = None
    result["new_image"] = {"size": [image.get_width(), image.get_height()], "dirty": image.is_dirty(),
                           "undo_enabled": image.undo_is_enabled(),
                           "file": image.get_file().get_basename() if image.get_file() is not None else None,
                           "layers": [_describe(layer) for layer in image.get_layers()]}
    for position, layer in enumerate(image.get_layers()):
        _save_layer_png(layer, os.path.join(out, f"new_image_{position}.png"))
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(os.path.join(out, "new_image.xcf")),
                   None)
    if not shown:
        image.delete()


def _wait_for(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _undo_check(step, image, source, result):
    """GUI sessions: show the image, let the driver press Ctrl+Z in its window, see what it undid.

    Before the run the layer was renamed (an undo step of its own): when the run left no undo
    step, Ctrl+Z undoes that rename and the layer has its old name again.
    """
    Gimp.Display.new(image)
    Gimp.displays_flush()
    time.sleep(1.0)
    with open(step["undo_check"] + "-now", "w") as fh:
        fh.write("1\n")
    result["undo_pressed"] = _wait_for(step["undo_check"] + "-done", 60)
    time.sleep(1.0)
    result["source_name_after_undo"] = source.get_name()
    result["layers_after_undo"] = len(image.get_layers())


def _opened_by_user(step):
    """The image the GUI driver opens through File → Open once this step asks for it (the path is the step's
    "image"): owned by its display, so closing it deletes it, unlike an image this script loaded."""
    known = {image.get_id() for image in Gimp.get_images()}
    with open(step["opened_by_user"], "w") as fh:
        fh.write(step["image"] + "\n")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [image for image in Gimp.get_images() if image.get_id() not in known]
        if new:
            time.sleep(1.0)  # let the display settle
            return new[0]
        time.sleep(0.2)
    raise RuntimeError("the GUI driver did not open the image")


def _shown_beside(step):
    """Another image in a window of its own ("other_image"), so that closing the step's image deletes its window
    (GIMP keeps its last image window, emptied, instead)."""
    other = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(step["other_image"]))
    display = Gimp.Display.new(other)
    Gimp.displays_flush()
    time.sleep(1.0)
    return display


def _run_from_the_menu(step, image, result):
    """"via_menu": the driver runs the procedure as a user does (its menu entry, from the image's window, so that
    GIMP hands it that display); this script cannot join that call, so it waits for the image to go away
    (closed by the driver: GIMP deletes it once the procedure returns)."""
    with open(step["via_menu"], "w") as fh:
        fh.write("1\n")
    started = time.monotonic()
    deadline = started + step.get("via_menu_s", 240)
    while image.is_valid() and time.monotonic() < deadline:
        time.sleep(0.2)
    result["elapsed"] = time.monotonic() - started
    result["status"] = "via-menu"
    result["image_closed"] = not image.is_valid()
    _log(step["out_dir"], f"the menu's run ended: image closed {result['image_closed']}")
    return result


def _ink_the_clipboard():
    """A black 16×16 square in the clipboard: GIMP started with -d has no brushes but "Clipboard Image", which
    paints nothing while the clipboard is empty (a stroke could then never change the photo)."""
    tmp = Gimp.Image.new(16, 16, Gimp.ImageBaseType.RGB)
    ink = Gimp.Layer.new(tmp, "ink", 16, 16, Gimp.ImageType.RGB_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    tmp.insert_layer(ink, None, 0)
    ink.fill(Gimp.FillType.FOREGROUND)  # black unless a step changed it
    Gimp.edit_copy([ink])
    tmp.delete()


def _control_stroke(step, source, result):
    """After the run (the layers unlocked again): the driver paints the same stroke, which must now change the
    photo, so that an unchanged photo after the stroke made during the run means refused, not missed."""
    with open(step["control_stroke"] + "-now", "w") as fh:
        fh.write("1\n")
    result["control_stroked"] = _wait_for(step["control_stroke"] + "-done", 60)
    time.sleep(1.0)
    _save_layer_png(source, os.path.join(step["out_dir"], "source_control.png"))


def _remembered():
    """The plug-in's own module for the values it remembers (from its installed folder)."""
    import sys

    folder = os.path.join(Gimp.directory(), "plug-ins", "neural_style_gimp")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from nsgimp import remembered

    return remembered, remembered.attempt_path(Gimp.directory())


def _run_step(step):
    out = step["out_dir"]
    os.makedirs(out, exist_ok=True)
    result = {"case": step.get("name")}
    if "remember" in step:  # what the user confirmed last time, as the dialog will recall it
        remembered, path = _remembered()
        remembered.save_attempt(path, step["remember"])
    if step.get("wait_before"):  # the host changes something between two steps (puts a file in place)
        result["waited"] = _wait_for(step["wait_before"], 120)
    beside = _shown_beside(step) if step.get("other_image") else None
    if step.get("control_stroke"):
        _ink_the_clipboard()
    if step.get("opened_by_user"):  # the driver opens it with Ctrl+O: the image is the user's, as in real use
        image = _opened_by_user(step)
    else:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(step["image"]))
    source = image.get_layers()[step.get("source", 0)]  # "source": another layer of an XCF (0 = the top one)
    if step.get("source_offsets"):
        source.set_offsets(*step["source_offsets"])
    if step.get("undo_check"):
        result["source_name_before_rename"] = source.get_name()
        source.set_name("renamed before the run")  # the step Ctrl+Z must find on top of the undo stack
    result["layers_before"] = [_describe(layer) for layer in image.get_layers()]
    _save_layer_png(source, os.path.join(out, "source_before.png"))
    for saved in step.get("channels", []):  # Select → Save to Channel, as a user makes a region, then Select → None
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *saved["select"])
        Gimp.Selection.save(image).set_name(saved["name"])
        Gimp.Selection.none(image)
    if step.get("layer_mask"):  # Layer → Mask → Add Layer Mask from a rectangle selected (image coordinates)
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *step["layer_mask"])
        source.add_mask(source.create_mask(Gimp.AddMaskType.SELECTION))
        source.set_edit_mask(False)
        Gimp.Selection.none(image)
    if step.get("select"):
        x, y, w, h = step["select"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
    image.clean_all()  # as if just saved: the test's own setup is not the plug-in's change
    result["dirty_before"] = image.is_dirty()
    display = None
    if step.get("display"):  # shown during the run, for the GUI driver to act on (paint, close it)
        display = Gimp.Display.new(image)
        Gimp.displays_flush()

    procedure = Gimp.get_pdb().lookup_procedure(step.get("procedure", "plug-in-neural-style"))
    result["procedure_found"] = procedure is not None
    if procedure is None:
        return result
    result["menu_label"] = procedure.get_menu_label()
    result["menu_paths"] = list(procedure.get_menu_paths())
    result["arguments"] = [spec.name for spec in procedure.get_arguments()]
    if step.get("via_menu"):
        with open(os.path.join(out, "started"), "w") as fh:
            fh.write("1\n")
        _run_from_the_menu(step, image, result)
        if beside is not None:
            beside.delete()
        return result
    config = procedure.create_config()
    interactive = bool(step.get("interactive"))
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE if interactive else Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    for name, value in step.get("args", {}).items():
        if name in ("style", "style2"):
            value = Gio.File.new_for_path(value) if value else None
        elif isinstance(value, dict) and "channel" in value:  # a channel of the image, by the name it was saved as
            value = image.get_channel_by_name(value["channel"])
        elif isinstance(value, dict) and "layer_mask" in value:  # the source layer's mask
            value = source.get_mask()
        config.set_property(name, value)
    _log(out, "running the procedure")
    with open(os.path.join(out, "started"), "w") as fh:
        fh.write("1\n")
    if step.get("baseline_done"):  # the GUI driver captures the window as it is before the run
        _wait_for(step["baseline_done"], 60)
    started = time.monotonic()
    result["images_before"] = len(Gimp.get_images())
    values = procedure.run(config)
    result["images_after"] = len(Gimp.get_images())  # with a new image returned: one more
    result["elapsed"] = time.monotonic() - started
    status = values.index(0)
    result["status"] = status.value_nick if hasattr(status, "value_nick") else str(status)
    try:
        result["error"] = values.index(1) if values.length() > 1 else None
    except Exception as exc:  # GIMP versions differ in how the message travels
        result["error"] = f"<unreadable: {exc}>"
    if isinstance(result["error"], Gimp.Image):  # a procedure that returns a new image (the frames)
        _new_image(result.pop("error"), out, result, interactive)
    _log(out, f"procedure returned {result['status']}: {result['error']}")
    result["image_closed"] = not image.is_valid()  # the driver closed it during the run
    if result["image_closed"]:
        return result

    layers = image.get_layers()
    result["layers_after"] = [_describe(layer) for layer in layers]
    result["source_index_after"] = image.get_item_position(source)
    result["dirty_after"] = image.is_dirty()
    result["undo_enabled_after"] = image.undo_is_enabled()
    result["selected_after"] = [layer.get_name() for layer in image.get_selected_layers()]
    result["source_selected_after"] = [layer.get_id() for layer in image.get_selected_layers()] == [source.get_id()]
    _save_layer_png(source, os.path.join(out, "source_after.png"))
    if step.get("control_stroke"):
        _control_stroke(step, source, result)
    new_layers = [layer for layer in layers if layer.get_id() != source.get_id()]
    if new_layers:
        _save_layer_png(new_layers[0], os.path.join(out, "new_layer.png"))
        if new_layers[0].get_mask() is not None:
            mask = new_layers[0].get_mask()
            w, h = mask.get_width(), mask.get_height()
            data = mask.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.CLAMP)
            result["mask_mean"] = sum(data) / max(1, len(data)) / 255.0
    if "remember" in step:
        remembered, path = _remembered()
        with open(path, encoding="utf-8") as fh:
            result["remembered_after"] = json.load(fh)["values"]
    if step.get("undo_check"):
        _undo_check(step, image, source, result)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(os.path.join(out, "image.xcf")), None)
    if display is not None:  # the next step's image is the only one the driver sees (this deletes the image)
        display.delete()
    else:
        image.delete()
    if beside is not None:
        beside.delete()
    return result


for _step in SESSION["steps"]:
    os.makedirs(_step["out_dir"], exist_ok=True)
    try:
        _result = _run_step(_step)
    except Exception as _exc:
        import traceback

        _log(_step["out_dir"], traceback.format_exc())
        _result = {"harness_error": f"{type(_exc).__name__}: {_exc}"}
    with open(os.path.join(_step["out_dir"], "result.json"), "w", encoding="utf-8") as _fh:
        json.dump(_result, _fh, indent=2)
    _log(_step["out_dir"], "done")

if SESSION.get("hold_until"):  # by hand: keep GIMP open for a look until this file appears
    _wait_for(SESSION["hold_until"], 900)
