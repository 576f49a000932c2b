#!/usr/bin/env python3
"""Neural Style for GIMP 3: Filters → Artistic → Neural Style…

GIMP glue only.  The pixels go to the warm Neural Style daemon over ZeroMQ through
``neural_style.protocol`` (copied next to this file by install.py); the settings
mapping, the recorded daemon command and the user-facing messages live in the pure
``nsgimp`` package beside this file.

What a run does:
  1. reads the active layer (or the selection's bounding box inside it) as 8-bit sRGB
     ("R'G'B'A u8", or "R'G'B' u8" without alpha), whatever the image's precision;
  2. inserts a new layer named after the style directly above it, at the same offsets,
     first holding a copy of the source pixels, with the selection as its layer mask;
  3. streams the job to the daemon (starting the recorded daemon command if nothing
     answers and autostart is on), painting every preview into the new layer;
  4. scales the final result to the source's size.
All of it is one undo group; the source layer is never written.  On an error the new
layer is removed again and GIMP shows one message saying what to do.
"""
import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)

from nsgimp.bootstrap import extend_sys_path, missing_modules  # noqa: E402

extend_sys_path(PLUGIN_DIR)

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gimp, Gegl, GLib, GObject, Gio  # noqa: E402

from nsgimp import advice, settings as S  # noqa: E402
from nsgimp.config import load_config  # noqa: E402


class UserError(Exception):
    """A failure with a message meant for the user (already worded)."""


def _debug(msg):
    if os.environ.get("NEURAL_STYLE_DEBUG"):
        print(f"neural-style-gimp: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- arguments
def _add_arguments(procedure):
    rw = GObject.ParamFlags.READWRITE
    procedure.add_file_argument("style", "Style _image", "The painting whose style to copy (PNG, JPEG, or any file GIMP opens)",
                                Gimp.FileChooserAction.OPEN, True, None, rw)
    procedure.add_file_argument("style2", "Second st_yle image", "Optional second style, mixed in by 'Style blend'",
                                Gimp.FileChooserAction.OPEN, True, None, rw)
    procedure.add_double_argument("blend", "Style _blend", "Weight of the second style (0 = only the first, 1 = only the second)",
                                  0.0, 1.0, S.BLEND_DEFAULT, rw)
    procedure.add_double_argument("strength", "Style s_trength",
                                  "0 = barely styled … 100 = style dominates (style weight β = 10^(1 + 4·s/100), content weight α = 1)",
                                  S.STRENGTH_MIN, S.STRENGTH_MAX, S.STRENGTH_DEFAULT, rw)
    procedure.add_int_argument("iterations", "It_erations", "Optimisation steps (more = more refined, slower)",
                               S.ITERATIONS_MIN, S.ITERATIONS_MAX, S.ITERATIONS_DEFAULT, rw)
    procedure.add_int_argument("size", "Processing si_ze", "Longest side, in pixels, the daemon works at; the result is scaled to the layer",
                               S.SIZE_MIN, S.SIZE_MAX, S.SIZE_DEFAULT, rw)
    procedure.add_boolean_argument("preserve-colors", "_Preserve colours", "Keep the photo's colours, take only the style's texture",
                                   False, rw)
    init_choice = Gimp.Choice.new()
    init_choice.add("noise", 0, "Noise (as in the paper)", "")
    init_choice.add("content", 1, "Content (the photo)", "")
    init_choice.add("style", 2, "Style image", "")
    procedure.add_choice_argument("init", "I_nitial image", "What the optimisation starts from",
                                  init_choice, S.INIT_DEFAULT, rw)
    procedure.add_int_argument("seed", "See_d", "Random seed (same seed and settings = same result)", 0, 2**31 - 1, 0, rw)
    procedure.add_string_argument("endpoint", "Daemon endpoint (_URL)",
                                  "ZeroMQ address of the daemon; empty = the one install.py recorded", "", rw)
    procedure.add_boolean_argument("autostart", "_Autostart the daemon",
                                   "Start the daemon command install.py recorded when nothing answers", True, rw)
    procedure.add_int_argument("timeout", "Ti_meout", "Seconds without any word from the daemon before giving up",
                               5, 3600, 60, rw)


def _file_path(gfile):
    if gfile is None:
        return None
    path = gfile.get_path()
    return path or None


def _read_settings(config, plugin_config):
    endpoint = (config.get_property("endpoint") or "").strip()
    return S.Settings(
        style=_file_path(config.get_property("style")) or "",
        style2=_file_path(config.get_property("style2")),
        blend=float(config.get_property("blend")),
        strength=float(config.get_property("strength")),
        iterations=int(config.get_property("iterations")),
        size=int(config.get_property("size")),
        preserve_color=bool(config.get_property("preserve-colors")),
        init=str(config.get_property("init")),
        seed=int(config.get_property("seed")),
        endpoint=endpoint or plugin_config.endpoint,
        autostart=bool(config.get_property("autostart")),
    ), int(config.get_property("timeout"))


# --------------------------------------------------------------------------- pixels
def _rect(x, y, w, h):
    return Gegl.Rectangle.new(int(x), int(y), int(w), int(h))


def _style_image(path, protocol):
    """A style file as protocol ImageData: PNG/JPEG bytes as they are, anything else loaded by GIMP."""
    ImageData = protocol["ImageData"]
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UserError(f"Neural Style: cannot read the style image {path}: {exc.strerror or exc}.")
    encoded = ImageData.from_file_bytes(data)
    if encoded is not None:
        return encoded
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    except Exception:
        image = None
    if image is None:
        raise UserError(f"Neural Style: GIMP cannot open the style image {path}. Choose a PNG or JPEG file.")
    try:
        layer = image.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        w, h = layer.get_width(), layer.get_height()
        raw = layer.get_buffer().get(_rect(0, 0, w, h), 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP)
        return ImageData.raw(raw, w, h, 3)
    finally:
        image.delete()


def _paint(layer, image_data, width, height, sampler):
    """Write a raw protocol image into ``layer`` (width × height), scaling it when its size differs."""
    fmt, _ = S.choose_format(image_data.channels == 4)
    pixels = bytes(image_data.data)
    dst = layer.get_buffer()
    if (image_data.width, image_data.height) == (width, height):
        dst.set(_rect(0, 0, width, height), fmt, pixels)
    else:
        src = Gegl.Buffer.new(fmt, 0, 0, image_data.width, image_data.height)
        src.set(_rect(0, 0, image_data.width, image_data.height), fmt, pixels)
        graph = Gegl.Node()
        source = graph.create_child("gegl:buffer-source")
        source.set_property("buffer", src)
        scale = graph.create_child("gegl:scale-size")
        scale.set_property("x", float(width))
        scale.set_property("y", float(height))
        scale.set_property("sampler", sampler)
        try:  # edges: repeat the border pixels instead of fading into the transparent abyss
            scale.set_property("abyss-policy", Gegl.AbyssPolicy.CLAMP)
        except Exception:
            pass
        crop = graph.create_child("gegl:crop")
        crop.set_property("x", 0.0)
        crop.set_property("y", 0.0)
        crop.set_property("width", float(width))
        crop.set_property("height", float(height))
        sink = graph.create_child("gegl:write-buffer")
        sink.set_property("buffer", dst)
        source.link(scale)
        scale.link(crop)
        crop.link(sink)
        sink.process()
    dst.flush()
    layer.update(0, 0, width, height)
    Gimp.displays_flush()


# --------------------------------------------------------------------------- the run
def _protocol():
    """Import the protocol lazily, so a missing dependency becomes one clear message."""
    missing = missing_modules()
    if missing:
        raise UserError(advice.missing_dependency_text(missing))
    try:
        from neural_style.protocol.client import Client
        from neural_style.protocol.errors import DaemonError, DaemonUnavailable
        from neural_style.protocol.images import ImageData
        from neural_style.protocol.messages import Accepted, Heartbeat, Progress, Result
    except ImportError as exc:
        raise UserError(f"Neural Style: the protocol package next to the plug-in is missing or broken ({exc}). "
                        "Run install.py again.")
    try:
        from neural_style.protocol.autostart import ensure_daemon
    except ImportError:
        ensure_daemon = None
    return dict(Client=Client, DaemonError=DaemonError, DaemonUnavailable=DaemonUnavailable,
                ImageData=ImageData, Accepted=Accepted, Heartbeat=Heartbeat, Progress=Progress, Result=Result,
                ensure_daemon=ensure_daemon)


def _connect(protocol, settings, plugin_config, timeout):
    """A client whose daemon answered ``ping``; start the recorded daemon first when allowed."""
    Client, Unavailable = protocol["Client"], protocol["DaemonUnavailable"]
    endpoint = settings.endpoint
    Gimp.progress_set_text(f"Neural Style: contacting the daemon at {endpoint}…")
    try:
        client = Client(endpoint, timeout=min(float(timeout), S.CONNECT_TIMEOUT_DEFAULT))
    except ValueError as exc:
        raise UserError(f"Neural Style: the daemon endpoint {endpoint!r} is not usable ({exc}). "
                        "Give an address such as tcp://127.0.0.1:5570, or leave it empty.")
    try:
        client.ping()
        _debug(f"daemon at {endpoint} answered")
        client.close()
        return Client(endpoint, timeout=float(timeout))
    except Unavailable as exc:
        first_reason = str(exc)
        client.close()
    command = plugin_config.daemon_command
    if not (settings.autostart and command and protocol["ensure_daemon"]):
        raise UserError(advice.unavailable_text(endpoint, autostart=False, command=command or None,
                                                reason=first_reason))
    Gimp.progress_set_text("Neural Style: starting the daemon (loading VGG19, this takes a moment)…")
    Gimp.progress_pulse()
    try:
        protocol["ensure_daemon"](endpoint, command, timeout=S.AUTOSTART_TIMEOUT_DEFAULT)
    except Exception as exc:  # DaemonStartFailed (with its log's tail), OSError from a missing command, …
        reason = str(exc)
        if len(reason) > 1500:
            reason = "…" + reason[-1500:]
        raise UserError(advice.unavailable_text(endpoint, autostart=True, command=command, reason=reason))
    return Client(endpoint, timeout=float(timeout))


def neural_style(procedure, run_mode, image, drawables, config, data):
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE:
            gi.require_version("GimpUi", "3.0")
            from gi.repository import GimpUi

            GimpUi.init(S.PROCEDURE_NAME)
            dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
            dialog.fill(None)
            ok = dialog.run()
            dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        _run(image, drawables, config)
    except UserError as exc:
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(exc)))
    except Exception as exc:  # never a traceback in the user's face
        if os.environ.get("NEURAL_STYLE_DEBUG"):
            import traceback

            traceback.print_exc()
        return procedure.new_return_values(
            Gimp.PDBStatusType.EXECUTION_ERROR,
            GLib.Error(f"Neural Style failed unexpectedly: {type(exc).__name__}: {exc}. "
                       "Run GIMP with NEURAL_STYLE_DEBUG=1 in the environment to see the details on its console."))
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def _run(image, drawables, config):
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise UserError("Neural Style works on one layer: select exactly one layer (not a channel or a mask).")
    source = drawables[0]
    if source.is_group():
        raise UserError("Neural Style cannot paint into a layer group: select a pixel layer inside it.")

    plugin_config = load_config(PLUGIN_DIR)
    if plugin_config.problem:
        _debug(plugin_config.problem)
    settings, timeout = _read_settings(config, plugin_config)
    try:
        settings.validate()
    except S.SettingsError as exc:
        raise UserError(f"Neural Style: {exc}")

    protocol = _protocol()
    Gimp.progress_init("Neural Style")

    # The region: the whole layer, or the selection's bounding box inside it.
    has_selection = not Gimp.Selection.is_empty(image)
    ok, rx, ry, rw, rh = source.mask_intersect()
    if not ok or rw <= 0 or rh <= 0:
        raise UserError("Neural Style: the selection does not touch the active layer. Select part of it, or nothing.")
    fmt, channels = S.choose_format(source.has_alpha())
    src_buffer = source.get_buffer()
    full = src_buffer.get(_rect(rx, ry, rw, rh), 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
    # Send at most the processing size: the daemon works there anyway.
    if max(rw, rh) > settings.size:
        cw, ch = S.fit_within(rw, rh, settings.size)
        scale = cw / rw
        content_bytes = src_buffer.get(_rect(rx * scale, ry * scale, cw, ch), scale, fmt, Gegl.AbyssPolicy.CLAMP)
    else:
        cw, ch, content_bytes = rw, rh, full
    content = protocol["ImageData"].raw(content_bytes, cw, ch, channels)
    styles = [_style_image(p, protocol) for p in settings.style_paths]

    client = _connect(protocol, settings, plugin_config, timeout)

    _, ox, oy = source.get_offsets()
    name = S.layer_name(settings.style, settings.style2)
    image.undo_group_start()
    layer = None
    finished = False
    try:
        layer = Gimp.Layer.new(image, name, rw, rh, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, source.get_parent(), image.get_item_position(source))
        layer.set_offsets(ox + rx, oy + ry)
        initial = layer.get_buffer()
        initial.set(_rect(0, 0, rw, rh), fmt, full)
        initial.flush()
        del initial
        if has_selection:
            layer.add_mask(layer.create_mask(Gimp.AddMaskType.SELECTION))
        layer.update(0, 0, rw, rh)
        Gimp.displays_flush()

        Gimp.progress_set_text("Neural Style: waiting for the daemon…")
        result = None
        try:
            events = client.stylize(content, styles, settings.params(), style_blend=settings.style_blend,
                                    heartbeats=True)
            for event in events:
                if isinstance(event, (protocol["Accepted"], protocol["Heartbeat"])):
                    position = getattr(event, "position", 0)
                    if position > 0 and getattr(event, "state", "queued") == "queued":
                        Gimp.progress_set_text(S.queue_text(position))
                        Gimp.progress_pulse()
                elif isinstance(event, protocol["Progress"]):
                    Gimp.progress_set_text(S.progress_text(event.iteration, event.iterations, event.loss.total))
                    Gimp.progress_update(S.progress_fraction(event.iteration, event.iterations))
                    if event.image is not None:
                        _paint(layer, event.image, rw, rh, Gegl.SamplerType.LINEAR)
                elif isinstance(event, protocol["Result"]):
                    result = event
        except protocol["DaemonError"] as exc:
            raise UserError(advice.daemon_error_text(exc.code, exc.message))
        except protocol["DaemonUnavailable"] as exc:
            raise UserError(advice.unavailable_text(settings.endpoint, autostart=False,
                                                    command=plugin_config.daemon_command or None,
                                                    reason=str(exc), mid_run=True))
        finally:
            client.close()
        if result is None or result.image is None:
            raise UserError("Neural Style: the daemon ended the job without a result. Try again.")
        Gimp.progress_set_text("Neural Style: scaling the result to the layer")
        _paint(layer, result.image, rw, rh, Gegl.SamplerType.CUBIC)
        Gimp.progress_update(1.0)
        finished = True
    finally:
        if not finished and layer is not None:
            image.remove_layer(layer)  # leave the image as it was
        image.undo_group_end()
        Gimp.displays_flush()
        Gimp.progress_end()


# --------------------------------------------------------------------------- registration
class NeuralStyle(Gimp.PlugIn):
    def do_set_i18n(self, procname):
        return False

    def do_query_procedures(self):
        return [S.PROCEDURE_NAME]

    def do_create_procedure(self, name):
        Gegl.init(None)
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, neural_style, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(S.MENU_LABEL)
        procedure.add_menu_path(S.MENU_PATH)
        procedure.set_documentation(
            "Paint the layer in the style of another image (Gatys et al.)",
            "Sends the active layer and one or two style images to the Neural Style daemon and paints "
            "the result, refining as it goes, into a new layer above the source. A selection limits "
            "the effect (it becomes the new layer's mask). One undo removes it all.",
            name)
        procedure.set_attribution("Neural Style for GIMP contributors", "MIT", "2026")
        _add_arguments(procedure)
        return procedure


if __name__ == "__main__":
    Gimp.main(NeuralStyle.__gtype__, sys.argv)
