#!/usr/bin/env python3
"""Neural Style for GIMP 3: Filters → Artistic → Neural Style…

GIMP glue only.  The pixels go to the warm Neural Style daemon over ZeroMQ through
``neural_style.protocol`` (copied next to this file by install.py); settings, messages,
progress wording and the job's event loop live in the pure ``nsgimp`` package beside it.

Two procedures, because of how GIMP cancels (app/plug-in/gimpplugin-progress.c, 3.0.4):
pressing Cancel on a progress bar makes GIMP send the quit message to the plug-in process
that started that progress, wait 10 ms and kill it.  A killed process cannot put the image
back, so the process that owns the image's state must never own the progress:

* ``plug-in-neural-style`` (the menu entry) shows the dialog, checks the choices, and with
  the image's undo frozen (GIMP's in-situ preview mechanism: nothing enters the undo
  history) inserts a preview layer above the source.  It then calls
* ``plug-in-neural-style-job`` (internal), which owns GIMP's progress: it connects to (or
  starts) the daemon, streams the job and paints every preview into that layer.  Cancel
  kills only this process; GIMP reports the call as cancelled, the daemon notices the
  vanished client and stops the job (and when the quit message arrives while this process
  is inside a GIMP call, ``do_quit`` tells the daemon at once).
* Back in the first procedure, the preview layer is removed and undo thawed in every case;
  the image's dirty flag is put back.  Only on success is the finished layer inserted
  again, as one undo step, with the selection as its mask (not in mask-edit mode) and the
  source layer selected again, so Filters → Repeat applies to the photo.
"""
import os
import sys
import time

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)

from nsgimp.bootstrap import extend_sys_path, import_dependencies  # noqa: E402

extend_sys_path(PLUGIN_DIR)

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402
from nsgimp import advice, frames, placement, regions, remembered, speed, stylefile  # noqa: E402
from nsgimp import settings as S  # noqa: E402
from nsgimp.progress import ProgressText  # noqa: E402
from nsgimp.sandbox import detect_sandbox  # noqa: E402

HELP_DOMAIN = "neural-style-gimp"
DIALOG_ORDER = ("problem", "style", "style-region", "style-mask", "style2", "blend", "style2-region", "style2-mask",
                "strength", "iterations", "size-note", "full-resolution", "working-size", "preserve-colors", "init",
                "seed", "advanced")
ADVANCED = ("preview-size", "endpoint", "autostart", "timeout")
SETTING_NAMES = tuple(S.ARGUMENTS)
DIALOG_ONLY = ("full-resolution", "working-size")  # aux arguments of the menu procedure: the dialog's 'size'
REMEMBERED_NAMES = tuple(name for name in SETTING_NAMES if name not in S.MASK_ARGUMENTS)  # a channel is the image's
CHOICES = ("init", "preserve-colors", *S.REGION_ARGUMENTS)  # shown as combo boxes (see _build_dialog)


class UserError(Exception):
    """A failure with a message meant for the user (already worded); ``argument`` names the setting at fault."""

    def __init__(self, message, argument=None):
        super().__init__(message)
        self.argument = argument


def _debug(msg):
    if os.environ.get("NEURAL_STYLE_DEBUG"):
        print(f"neural-style-gimp: {msg}", file=sys.stderr, flush=True)


def _without_prefix(message):
    """A message without the plug-in's name in front: GIMP ("Execution error for 'Neural Style':") or the
    dialog's title names it already."""
    return message[len(advice.PREFIX):] if message.startswith(advice.PREFIX) else message


def _error_values(procedure, exc):
    if isinstance(exc, UserError):  # GIMP puts "Execution error for 'Neural Style':" before it
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                           GLib.Error(_without_prefix(str(exc))))
    if os.environ.get("NEURAL_STYLE_DEBUG"):
        import traceback

        traceback.print_exc()
    return procedure.new_return_values(
        Gimp.PDBStatusType.EXECUTION_ERROR,
        GLib.Error(f"Neural Style failed unexpectedly: {type(exc).__name__}: {exc}. "
                   "Run GIMP with NEURAL_STYLE_DEBUG=1 in the environment to see the details on its console."))


# --------------------------------------------------------------------------- arguments
def _upgrade_last_values(name):
    """GIMP's own last values of an older plug-in, in today's types, before GIMP loads them for the run."""
    path = S.gimp_last_values_path(Gimp.directory(), name)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        upgraded = S.upgrade_gimp_last_values(text)
        if upgraded != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(upgraded)
    except OSError:
        pass  # none yet, or not ours to write: GIMP then starts from the defaults


def _add_arguments(procedure, dialog):
    rw = GObject.ParamFlags.READWRITE
    _upgrade_last_values(procedure.get_name())
    a = S.ARGUMENTS
    procedure.add_file_argument("style", *a["style"], Gimp.FileChooserAction.OPEN, True, None, rw)
    procedure.add_file_argument("style2", *a["style2"], Gimp.FileChooserAction.OPEN, True, None, rw)
    procedure.add_double_argument("blend", *a["blend"], 0.0, 1.0, S.BLEND_DEFAULT, rw)
    procedure.add_double_argument("strength", *a["strength"], S.STRENGTH_MIN, S.STRENGTH_MAX, S.STRENGTH_DEFAULT, rw)
    procedure.add_int_argument("iterations", *a["iterations"], S.ITERATIONS_MIN, S.ITERATIONS_MAX,
                               S.ITERATIONS_DEFAULT, rw)
    procedure.add_int_argument("size", *a["size"], S.FULL_RESOLUTION, S.SIZE_MAX, S.SIZE_DEFAULT, rw)
    if dialog:  # the dialog's view of 'size' (the job procedure gets 'size' itself)
        procedure.add_boolean_aux_argument("full-resolution", *a["full-resolution"], S.FULL_RESOLUTION_DEFAULT, rw)
        procedure.add_int_aux_argument("working-size", *a["working-size"], S.SIZE_MIN, S.SIZE_MAX,
                                       S.WORKING_SIZE_DEFAULT, rw)
    # A boolean before issue 17: remembered values of then come back in their meaning (S.upgrade_remembered).
    procedure.add_choice_argument("preserve-colors", *a["preserve-colors"],
                                  _choice(S.PRESERVE_COLORS, S.PRESERVE_COLOR_LABELS), S.PRESERVE_COLOR_DEFAULT, rw)
    procedure.add_choice_argument("init", *a["init"], _choice(S.INITS, S.INIT_LABELS), S.INIT_DEFAULT, rw)
    for region, mask in zip(S.REGION_ARGUMENTS, S.MASK_ARGUMENTS):  # where each style goes (nsgimp/regions.py)
        procedure.add_choice_argument(region, *a[region], _choice(regions.REGIONS, regions.REGION_LABELS),
                                      regions.REGION_DEFAULT, rw)
        # A saved selection, or from a script a layer mask (the dialog's chooser lists channels only: 3.0.4, 3.2.6)
        procedure.add_channel_argument(mask, *a[mask], True, rw)
    procedure.add_int_argument("seed", *a["seed"], 0, S.SEED_MAX, 0, rw)
    procedure.add_string_argument("endpoint", *a["endpoint"], "", rw)
    procedure.add_boolean_argument("autostart", *a["autostart"], True, rw)
    procedure.add_int_argument("preview-size", *a["preview-size"], 0, S.PREVIEW_SIZE_MAX, S.PREVIEW_SIZE_DEFAULT,
                               rw)
    procedure.add_int_argument("timeout", *a["timeout"], S.TIMEOUT_MIN, S.TIMEOUT_MAX, S.TIMEOUT_DEFAULT, rw)


def _choice(names, labels):
    """A Gimp.Choice of the engine's (or the plug-in's) names, in the dialog's words."""
    choice = Gimp.Choice.new()
    for i, name in enumerate(names):
        choice.add(name, i, labels.get(name, name), "")
    return choice


def _file_path(gfile):
    return (gfile.get_path() or None) if gfile is not None else None


def _read_settings(config):
    return S.Settings(
        style=_file_path(config.get_property("style")) or "",
        style2=_file_path(config.get_property("style2")),
        blend=float(config.get_property("blend")),
        strength=float(config.get_property("strength")),
        iterations=int(config.get_property("iterations")),
        size=int(config.get_property("size")),
        preview_size=int(config.get_property("preview-size")),
        preserve_color=str(config.get_property("preserve-colors")),
        style_region=str(config.get_property("style-region")),
        style2_region=str(config.get_property("style2-region")),
        init=str(config.get_property("init")),
        seed=int(config.get_property("seed")),
        endpoint=(config.get_property("endpoint") or "").strip(),
        autostart=bool(config.get_property("autostart")),
        timeout=int(config.get_property("timeout")),
    )


def _checked_settings(config, image):
    """The settings, with every check that needs no daemon done (the style files and the regions included)."""
    settings = _read_settings(config)
    try:
        settings.validate()
        for path, argument in ((settings.style, "style"), (settings.style2, "style2")):
            if path:
                stylefile.check_style_file(path, argument)
        _check_regions(settings, config, image)
    except S.SettingsError as exc:
        raise UserError(f"{advice.PREFIX}{exc}", exc.argument) from None
    return settings


def _check_regions(settings, config, image):
    """A region needs its selection or channel (of this image); a blank mask is found when it is read."""
    for region, argument, mask in zip(settings.regions, S.REGION_ARGUMENTS, S.MASK_ARGUMENTS):
        if region == "selection" and Gimp.Selection.is_empty(image):
            raise S.SettingsError(f"'{S.label(argument)}' is the current selection, but nothing is selected. "
                                  "Select where the painting goes, or choose another region.", argument)
        if region == "channel":
            channel = config.get_property(mask)
            if channel is None or not channel.is_valid():
                raise S.SettingsError(f"'{S.label(argument)}' is a channel: choose it in "
                                      f"'{S.label(mask)}' (Select → Save to Channel makes one of a selection).",
                                      mask)
            if channel.get_image().get_id() != image.get_id():
                raise S.SettingsError(f"'{S.label(mask)}' belongs to another image: choose one of this image's "
                                      "channels.", mask)


def _config_values(config):
    values = {}
    for name in REMEMBERED_NAMES:
        value = config.get_property(name)
        values[name] = _file_path(value) if name in ("style", "style2") else value
    return values


def _remember(config):
    remembered.save_attempt(remembered.attempt_path(Gimp.directory()), _config_values(config))


def _setting_defaults(config):
    return {name: (None if name in ("style", "style2") else config.get_property(name)) for name in REMEMBERED_NAMES}


def _recall(config):
    _set_values(config, remembered.load_attempt(remembered.attempt_path(Gimp.directory()), _setting_defaults(config),
                                                S.upgrade_remembered))


def _set_values(config, values):
    for name, value in values.items():
        if name in ("style", "style2"):
            path = remembered.restore_file(value)
            value = Gio.File.new_for_path(path) if path else None
        config.set_property(name, value)


# --------------------------------------------------------------------------- the dialog
def _file_button(chooser_widget):
    """The Gtk.FileChooserButton inside a GimpFileChooser (a box around it), or None."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    for child in chooser_widget.get_children():
        if isinstance(child, Gtk.FileChooserButton):
            return child
    return None


def _image_filters(button, title):
    """An "Images" filter, a thumbnail preview and a title of its own on a style file button."""
    gi.require_version("Gtk", "3.0")
    gi.require_version("GdkPixbuf", "2.0")
    from gi.repository import GdkPixbuf, Gtk

    button.set_title(title)  # GTK's own is "Select a File"
    images = Gtk.FileFilter()
    images.set_name("Image files")
    images.add_mime_type("image/*")
    images.add_pixbuf_formats()
    everything = Gtk.FileFilter()
    everything.set_name("All files")
    everything.add_pattern("*")
    button.add_filter(images)
    button.add_filter(everything)
    button.set_filter(images)
    thumbnail = Gtk.Image()
    button.set_preview_widget(thumbnail)

    def update_preview(chooser, image=thumbnail):
        path = chooser.get_preview_filename()
        try:
            image.set_from_pixbuf(GdkPixbuf.Pixbuf.new_from_file_at_size(path, 160, 160))
            chooser.set_preview_widget_active(True)
        except Exception:
            chooser.set_preview_widget_active(False)

    button.connect("update-preview", update_preview)


def _follow_cleared_file(config, name, buttons):
    """Show "(None)" when the config's file becomes None ("Reset to Factory Defaults", the Remove button).

    GimpFileChooser (GIMP 3.0.4) passes None on to GTK, which refuses it (a Gtk-CRITICAL on the console)
    and keeps showing the old file; so the GTK button is cleared here, connected before the chooser exists
    so that it runs first."""
    def cleared(*_args):
        button = buttons.get(name)
        if button is not None and config.get_property(name) is None and button.get_filename() is not None:
            button.unselect_all()

    config.connect(f"notify::{name}", cleared)


def _add_remove_button(chooser_widget, config, name, buttons):
    """A button beside the second style's chooser that takes it away (GTK's chooser has no "None")."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    remove = Gtk.Button.new_with_mnemonic(S.REMOVE_STYLE2_LABEL)
    remove.set_tooltip_text(S.REMOVE_STYLE2_TOOLTIP)

    def clicked(_button):
        if buttons.get(name) is not None:
            buttons[name].unselect_all()
        config.set_property(name, None)

    remove.connect("clicked", clicked)
    chooser_widget.pack_end(remove, False, False, 0)
    remove.show()

    def sync(*_args):
        remove.set_sensitive(config.get_property(name) is not None)

    config.connect(f"notify::{name}", sync)
    sync()


def _endpoint_hint(dialog):
    """The address an empty 'Daemon address' means, as the entry's placeholder."""
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    try:
        missing, _note = import_dependencies(PLUGIN_DIR)
        if missing:
            return
        from neural_style.protocol import read_client_config, resolve_endpoint

        hint = S.endpoint_placeholder(resolve_endpoint(read_client_config(PLUGIN_DIR).endpoint))
    except Exception as exc:  # a hint only: never in the way of the dialog
        _debug(f"no address hint: {exc}")
        return
    pending = [dialog.get_widget("endpoint", GObject.TYPE_NONE)]
    while pending:
        widget = pending.pop()
        if isinstance(widget, Gtk.Entry):
            widget.set_placeholder_text(hint)
            return
        if isinstance(widget, Gtk.Container):
            pending.extend(widget.get_children())


def _size_note_text(config, source, selection, rate, animation=None):
    """What will be computed, and (from the last run's speed) how long it will take: shown before OK. A selection
    chosen as a style's region limits nothing: the whole layer is computed. With ``animation`` (the frames
    dialog): every frame at the animation's canvas size, the estimate for all of them."""
    size = S.size_from_dialog(config.get_property("full-resolution"), config.get_property("working-size"))
    if animation is not None:
        count, canvas = len(animation.get_layers()), (animation.get_width(), animation.get_height())
        width, height = S.sent_size(*canvas, size)
        return (f"{frames.size_note(count, *canvas)}\n"
                f"{speed.estimate_text(config.get_property('iterations'), count * width * height, rate)}")
    limited = selection and not regions.selection_is_a_region([config.get_property(name)
                                                               for name in S.REGION_ARGUMENTS])
    _, *region = _region(source, limited)
    width, height = S.sent_size(*region, size)
    return (f"{S.size_note(*region, limited)}\n"
            f"{speed.estimate_text(config.get_property('iterations'), width * height, rate)}")


def _build_dialog(procedure, config, source, selection, animation=None):
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import GimpUi, Gtk

    GimpUi.init(S.PROCEDURE_NAME)
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config)
    problem = dialog.get_label("problem", "", True, False)
    problem.set_line_wrap(True)
    problem.set_max_width_chars(60)
    problem.set_xalign(0.0)
    rate = speed.load(speed.speed_path(Gimp.directory()))
    note = dialog.get_label("size-note", "", False, False)
    note.set_xalign(0.0)

    def show_note(*_args):
        text = _size_note_text(config, source, selection, rate, animation)
        _debug(f"size note: {text!r}")  # NEURAL_STYLE_DEBUG: the GUI tests read it off the console
        note.set_text(text)

    show_note()
    for name in ("iterations", "full-resolution", "working-size", *S.REGION_ARGUMENTS):  # it follows the settings
        config.connect(f"notify::{name}", show_note)
    for name in ("strength", "blend"):  # sliders, like GIMP's own filters
        dialog.get_spin_scale(name, 1.0)
    buttons = {}
    for name in ("style", "style2"):  # connected before the choosers exist: it runs before theirs
        _follow_cleared_file(config, name, buttons)
    for name in ("style", "style2"):
        chooser = dialog.get_widget(name, GObject.TYPE_NONE)
        buttons[name] = _file_button(chooser)
        if buttons[name] is not None:
            _image_filters(buttons[name], S.CHOOSER_TITLES[name])
        if name == "style2":
            _add_remove_button(chooser, config, name, buttons)
    # GIMP 3.2 shows a choice of three or fewer as radio buttons, whose title takes no mnemonic ("no
    # mnemonic for property init"); the combo box GIMP 3.0 shows keeps it, on both.
    for name in CHOICES:
        dialog.get_widget(name, Gtk.ComboBox.__gtype__)
    dialog.get_label("advanced-title", S.ADVANCED_TITLE, False, False)
    dialog.fill_box("advanced-box", list(ADVANCED))
    dialog.fill_expander("advanced", "advanced-title", False, "advanced-box")
    dialog.fill(list(DIALOG_ORDER))
    _endpoint_hint(dialog)

    blend = dialog.get_widget("blend", GObject.TYPE_NONE)
    seed = dialog.get_widget("seed", GObject.TYPE_NONE)
    size = dialog.get_widget("working-size", GObject.TYPE_NONE)

    second = [dialog.get_widget(name, GObject.TYPE_NONE) for name in ("style2-region", "style2-mask")]
    channels = [dialog.get_widget(name, GObject.TYPE_NONE) for name in S.MASK_ARGUMENTS]

    def sync_sensitivity(*_args):
        has_style2 = config.get_property("style2") is not None
        blend.set_sensitive(has_style2)
        for widget in second:
            widget.set_sensitive(has_style2)
        for widget, region in zip(channels, S.REGION_ARGUMENTS):  # the chooser matters for a channel region only
            widget.set_sensitive(config.get_property(region) == "channel")
        seed.set_sensitive(config.get_property("init") == "noise")
        size.set_sensitive(not config.get_property("full-resolution"))

    for name in ("style2", "init", "full-resolution", *S.REGION_ARGUMENTS):
        config.connect(f"notify::{name}", sync_sensitivity)
    sync_sensitivity()
    for name in SETTING_NAMES:  # a problem shown stays only until the user changes something
        config.connect(f"notify::{name}", lambda *_args: _show_problem(problem, ""))
    return dialog, problem, buttons


def _shown_files(buttons):
    """What the file buttons display (NEURAL_STYLE_DEBUG: the GUI tests read it off the console)."""
    return {name: (button.get_filename() if button is not None else "?") for name, button in buttons.items()}


def _let_gtk_draw():
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk

    while Gtk.events_pending():
        Gtk.main_iteration()


def _show_problem(label, text):
    text = _without_prefix(text)  # the dialog's title says "Neural Style" already
    label.set_markup(f"<b>{GLib.markup_escape_text(text)}</b>" if text else "")


# --------------------------------------------------------------------------- the menu entry
def neural_style(procedure, run_mode, image, drawables, config, data):
    try:
        source = _source_layer(drawables)
        if run_mode != Gimp.RunMode.INTERACTIVE:
            status, error = _stylize(image, source, config, _checked_settings(config, image))
            return _values(procedure, status, error)
        _recall(config)
        source = _made_with(image, source, config)
        _region(source)  # a selection beside the layer is refused before the dialog
        dialog, problem, buttons = _build_dialog(procedure, config, source, not Gimp.Selection.is_empty(image))
        try:
            while True:
                if not dialog.run():
                    return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
                _debug(f"OK with the file buttons showing {_shown_files(buttons)}")
                config.set_property("size", S.size_from_dialog(config.get_property("full-resolution"),
                                                                config.get_property("working-size")))
                _remember(config)  # kept whatever becomes of this run
                try:
                    settings = _checked_settings(config, image)
                except UserError as exc:  # a choice to fix: say so in the open dialog
                    _show_problem(problem, str(exc))
                    continue
                dialog.hide()
                _let_gtk_draw()  # the job blocks this thread: unmap the dialog now, not after it
                status, error = _stylize(image, source, config, settings)
                if error is not None and error.argument:  # a setting to change: the dialog again, values kept
                    _show_problem(problem, str(error))
                    dialog.show()
                    continue
                return _values(procedure, status, error)
        finally:
            dialog.destroy()
    except Exception as exc:  # UserError, or never a traceback in the user's face
        return _error_values(procedure, exc)


def _made_with(image, layer, config):
    """On an earlier result: the settings that made it into the dialog, and the layer it was made from as the
    source (so OK re-runs it, above the earlier tries); on any other layer, or when that one is gone: ``layer``."""
    parasite = layer.get_parasite(placement.MADE_WITH_PARASITE)
    if parasite is None:
        return layer
    values, tattoo = remembered.read_made_with(bytes(parasite.get_data()), _setting_defaults(config))
    _set_values(config, values)
    source = image.get_layer_by_tattoo(tattoo) if tattoo else None
    if source is None or source.is_group() or source.get_id() == layer.get_id():
        source = layer
    _debug(f"offering the settings of '{layer.get_name()}', on '{source.get_name()}'")
    return source


def _made_with_values(config, settings):
    """The settings of this run as the dialog shows them (a run from a script leaves the dialog's size view at its
    defaults: set it from 'size')."""
    values = _config_values(config)
    values["full-resolution"] = settings.size == S.FULL_RESOLUTION
    if settings.size != S.FULL_RESOLUTION:
        values["working-size"] = settings.size
    return values


def _values(procedure, status, error):
    if error is not None:
        return _error_values(procedure, error)
    return procedure.new_return_values(status, GLib.Error())


def _source_layer(drawables):
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise UserError("Neural Style works on one layer: select exactly one layer (not a channel or a mask).")
    if drawables[0].is_group():
        raise UserError("Neural Style cannot paint into a layer group: select a pixel layer inside it.")
    return drawables[0]


def _region(source, limit_to_selection=True):
    """((x, y), width, height) of what is stylized: the layer, or the selection's bounds on it (unless the
    selection is a style's region: then it says where that style goes, not what is stylized)."""
    if not limit_to_selection:
        return (0, 0), source.get_width(), source.get_height()
    ok, rx, ry, rw, rh = source.mask_intersect()
    if not ok or rw <= 0 or rh <= 0:
        raise UserError("Neural Style: the selection does not touch the active layer. Select part of it, or nothing.")
    return (rx, ry), rw, rh


def _stylize(image, source, config, settings):
    """Preview layer under frozen undo, the job in the worker, then the finished layer as one undo step.

    Returns (status, UserError or None); the image is as before unless the status is SUCCESS.  While the
    job runs, every layer's pixels and position are locked (GIMP refuses a stroke with its own message):
    with undo frozen, an edit would escape the history.  Closing the image (or deleting the preview layer)
    mid-run cancels the job quietly.
    """
    has_selection = not Gimp.Selection.is_empty(image) and not regions.selection_is_a_region(settings.regions)
    (rx, ry), rw, rh = _region(source, has_selection)
    _, ox, oy = source.get_offsets()
    was_dirty = image.is_dirty()
    selected = image.get_selected_layers()
    name = S.layer_name(settings.style, settings.style2)
    finished = None
    image.undo_freeze()
    preview = None
    locks = []
    try:
        locks = _lock_layers(image)
        preview = Gimp.Layer.new(image, name, rw, rh, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(preview, source.get_parent(), _result_position(image, source))
        preview.set_offsets(ox + rx, oy + ry)
        fmt, _ = S.choose_format(source.has_alpha())
        pixels = source.get_buffer().get(_rect(rx, ry, rw, rh), 1.0, fmt, Gegl.AbyssPolicy.CLAMP)
        target = preview.get_buffer()
        target.set(_rect(0, 0, rw, rh), fmt, pixels)
        target.flush()
        del target
        if has_selection:
            preview.add_mask(preview.create_mask(Gimp.AddMaskType.SELECTION))
            preview.set_edit_mask(False)
        preview.set_lock_content(True)
        preview.set_lock_position(True)
        preview.update(0, 0, rw, rh)
        Gimp.displays_flush()
        status, error = _run_worker(source, preview, config)
        if status == Gimp.PDBStatusType.SUCCESS and preview.is_valid():
            finished = Gimp.Layer.new_from_drawable(preview, image)
    finally:
        if image.is_valid():  # closed mid-run: nothing is left to put back
            if preview is not None and preview.is_valid():
                image.remove_layer(preview)
            _unlock_layers(locks)
            image.undo_thaw()  # the image is exactly as when it was frozen
            if not was_dirty:
                image.clean_all()  # frozen steps still count as changes: put the flag back
            Gimp.displays_flush()
    if not image.is_valid() or not source.is_valid():
        _debug("the image or its layer went away during the run: the job was cancelled")
        return Gimp.PDBStatusType.CANCEL, None
    if finished is not None:
        image.undo_group_start()
        try:
            image.insert_layer(finished, source.get_parent(), _result_position(image, source))
            finished.set_lock_content(False)  # the copy has the preview's locks
            finished.set_lock_position(False)
            finished.set_name(name)
            finished.set_offsets(ox + rx, oy + ry)
            finished.attach_parasite(Gimp.Parasite.new(placement.RESULT_PARASITE, _PARASITE_FLAGS, b"1"))
            made_with = remembered.made_with(_made_with_values(config, settings), source.get_tattoo())
            finished.attach_parasite(Gimp.Parasite.new(placement.MADE_WITH_PARASITE, _PARASITE_FLAGS, made_with))
            if has_selection and finished.get_mask() is None:
                finished.add_mask(finished.create_mask(Gimp.AddMaskType.SELECTION))
            if finished.get_mask() is not None:
                finished.set_edit_mask(False)
        finally:
            image.undo_group_end()
        selected = [source]  # Filters → Repeat applies to the photo again
    image.set_selected_layers([layer for layer in selected if layer.is_valid()] or [source])
    Gimp.displays_flush()
    return status, error


_PARASITE_FLAGS = 1 | 2  # GIMP_PARASITE_PERSISTENT (saved in the XCF) | GIMP_PARASITE_UNDOABLE


def _result_position(image, source):
    """Above the source and the earlier results stacked on it (nsgimp/placement.py says why)."""
    parent = source.get_parent()
    siblings = parent.get_children() if parent is not None else image.get_layers()
    flags = [placement.is_result(layer.get_name(), layer.get_parasite(placement.RESULT_PARASITE) is not None)
             for layer in siblings]
    return placement.insert_position(image.get_item_position(source), flags)


def _pixel_layers(layers):
    for layer in layers:
        if layer.is_group():  # a group's own lock would refuse the preview layer inside it
            yield from _pixel_layers(layer.get_children())
        else:
            yield layer


def _lock_layers(image):
    """Lock every pixel layer's pixels and position for the run; [(layer, content, position)] as they were."""
    locks = []
    for layer in _pixel_layers(image.get_layers()):
        locks.append((layer, layer.get_lock_content(), layer.get_lock_position()))
        layer.set_lock_content(True)
        layer.set_lock_position(True)
    return locks


def _unlock_layers(locks):
    for layer, content, position in locks:
        if layer.is_valid():
            layer.set_lock_content(content)
            layer.set_lock_position(position)


def _run_worker(source, preview, config, worker_name=S.WORKER_NAME):
    """Call the job procedure; (status, UserError or None). Its error shows once: as ours, not as GIMP's too."""
    worker = Gimp.get_pdb().lookup_procedure(worker_name)
    job_config = worker.create_config()
    # IDs, not the image and its layers: a call's image argument keeps the image alive in GIMP until the call returns,
    # and closing its window must free it, so the job sees its layers' IDs go invalid and cancels
    job_config.set_property("preview", preview.get_id())
    job_config.set_property("source", source.get_id())
    for name in SETTING_NAMES:
        if name not in DIALOG_ONLY:
            job_config.set_property(name, config.get_property(name))
    plug_in = Gimp.get_plug_in()
    handler = plug_in.get_pdb_error_handler()
    plug_in.set_pdb_error_handler(Gimp.PDBErrorHandler.PLUGIN)
    try:
        values = worker.run(job_config)
    finally:
        plug_in.set_pdb_error_handler(handler)
    status = values.index(0)
    if status in (Gimp.PDBStatusType.SUCCESS, Gimp.PDBStatusType.CANCEL):
        return status, None
    message = values.index(1) if values.length() > 1 else ""
    message, argument = S.split_argument(message or "Neural Style: the job failed without a message.")
    return status, UserError(message, argument)


# --------------------------------------------------------------------------- the job (owns the progress)
class _LayerGone(Exception):
    """The image was closed, or the preview layer deleted, during the run: the job is cancelled quietly."""


class _GimpView:
    """nsgimp.job.View on GIMP's progress bar and the preview layer.

    Every call first checks that the layer still exists: when it does not (the image was closed: GIMP
    frees it, since this job got its layers by ID, see _run_worker), ``_LayerGone`` leaves the job's
    stream, which closes it (the daemon is told to cancel) instead of failing GIMP calls on an
    invalid ID, one error message per preview."""

    def __init__(self, layer, check=None):
        self.layer = layer
        self.check = check  # also called before each report: an animation's frames still there (the frames job)

    def _check(self):
        if not self.layer.is_valid():
            _debug(f"layer {self.layer.get_id()} gone during the run (the image closed?): cancelling the job")
            raise _LayerGone()
        if self.check is not None:
            self.check()

    def show(self, text, fraction):
        self._check()
        Gimp.progress_set_text(text)
        if fraction is None:
            Gimp.progress_pulse()
        else:
            Gimp.progress_update(fraction)

    def paint(self, image_data, final):
        self._check()
        _paint(self.layer, image_data, Gegl.SamplerType.CUBIC if final else Gegl.SamplerType.LINEAR,
               "result" if final else "preview")


def neural_style_job(procedure, config, data):
    layer = Gimp.Layer.get_by_id(config.get_property("preview"))
    source = Gimp.Layer.get_by_id(config.get_property("source"))
    if layer is None or source is None:  # closed before the job began
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    image = layer.get_image()  # the regions' channels must be this image's (a proxy by ID: it keeps nothing alive)
    try:
        missing, note = import_dependencies(PLUGIN_DIR)
        if missing:
            raise UserError(advice.missing_dependency_text(missing, note))
        try:
            from nsgimp import job

            from neural_style.protocol import read_client_config
        except ImportError as exc:
            raise UserError(f"Neural Style: the protocol package next to the plug-in is missing or broken ({exc}). "
                            "Run install.py again.") from None
        # A failing GIMP call raises here instead of GIMP showing a message: the image may be closed mid-run.
        Gimp.get_plug_in().set_pdb_error_handler(Gimp.PDBErrorHandler.PLUGIN)
        settings = _read_settings(config)
        client_config = read_client_config(PLUGIN_DIR)
        if client_config.problem:
            _debug(client_config.problem)
        Gimp.progress_init("Neural Style")
        view = _GimpView(layer)
        try:
            content = _content_image(source, layer, settings.size)
            masks = _style_masks(image, layer, config, settings, (content.width, content.height))
            styles = [_style_image(path, argument) for path, argument in
                      ((settings.style, "style"), (settings.style2, "style2")) if path]
            connection = job.connect(settings, client_config, view, sandbox=detect_sandbox(),
                                     region=(layer.get_width(), layer.get_height()))
            started = time.monotonic()
            try:
                result = job.run_job(connection, settings, content, styles, view, masks)
            finally:
                connection.client.close()
            speed.record(speed.speed_path(Gimp.directory()), time.monotonic() - started, settings.iterations,
                         content.width * content.height)  # the dialog's estimate next time
            view.show(*ProgressText.finishing())
            view.paint(result.image, True)
        except job.JobFailed as exc:
            raise UserError(str(exc), exc.argument) from None
        finally:
            Gimp.progress_end()
    except _LayerGone:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    except UserError as exc:
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                           GLib.Error(S.tag_argument(str(exc), exc.argument)))
    except Exception as exc:
        if not layer.is_valid():  # gone between the check and the call
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        return _error_values(procedure, exc)
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


# --------------------------------------------------------------------------- an animation (Filters → Animation)
def neural_style_frames(procedure, run_mode, image, drawables, config, data):
    """Every layer of the image a frame (nsgimp/frames.py): the main dialog's settings, then a new image of the
    stylized frames, made by the frames job; the source image is only read, so Cancel leaves it as it was."""
    try:
        if not image.get_layers():
            raise UserError("Neural Style (frames) needs an image with layers: each layer is a frame.")
        settings = None if run_mode == Gimp.RunMode.INTERACTIVE else _checked_frame_settings(config, image)
        dialog = problem = None
        if settings is None:
            _recall(config)
            for name in S.REGION_ARGUMENTS:  # a region remembered from the main dialog means nothing here
                config.set_property(name, regions.REGION_DEFAULT)
            dialog, problem, _buttons = _build_dialog(procedure, config, image.get_layers()[-1], False, image)
        try:
            while dialog is None or dialog.run():
                if dialog is not None:
                    config.set_property("size", S.size_from_dialog(config.get_property("full-resolution"),
                                                                    config.get_property("working-size")))
                    _remember(config)
                    try:
                        settings = _checked_frame_settings(config, image)
                    except UserError as exc:
                        _show_problem(problem, str(exc))
                        continue
                    dialog.hide()
                    _let_gtk_draw()
                status, error, frames_image = _stylize_frames(image, config, settings, dialog is not None)
                if dialog is not None and error is not None and error.argument:
                    _show_problem(problem, str(error))  # a setting to change: the dialog again, values kept
                    dialog.show()
                    continue
                if error is not None:
                    return _error_values(procedure, error)
                values = procedure.new_return_values(status, GLib.Error())
                if frames_image is not None:  # (status, new-image): a script gets the new image
                    values.remove(1)
                    values.insert(1, GObject.Value(Gimp.Image, frames_image))
                return values
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        finally:
            if dialog is not None:
                dialog.destroy()
    except Exception as exc:  # UserError, or never a traceback in the user's face
        return _error_values(procedure, exc)


def _checked_frame_settings(config, image):
    """The main dialog's checks, and whole frames only: the frames job sends no regions (issue 17's masks are
    per layer, an animation's frames are composed from several)."""
    settings = _checked_settings(config, image)
    for name in S.REGION_ARGUMENTS:
        if config.get_property(name) != regions.REGION_DEFAULT:
            raise UserError(f"{advice.PREFIX}Neural Style (frames) stylizes whole frames: set "
                            f"'{S.label(name)}' to the whole layer.", name)
    return settings


def _stylize_frames(image, config, settings, show):
    """(status, UserError or None, the new image or None): a new image with one layer per source layer, in the
    same stack (the bottom one still the first frame), named for GIF/WebP export (``frames.result_name``);
    the frames job paints each.  Unless the status is SUCCESS the new image is deleted."""
    width, height = image.get_width(), image.get_height()
    result = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    result.undo_disable()  # the frames are the new image's first state, not steps to undo
    for position, layer in enumerate(image.get_layers()):
        frame = Gimp.Layer.new(result, frames.result_name(layer.get_name()), width, height,
                               Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        result.insert_layer(frame, None, position)
    result.set_selected_layers([result.get_layers()[-1]])  # the first frame
    origin = image.get_file() or image.get_imported_file()
    if origin is not None and origin.get_basename():  # Save and Export As offer walk-neural-style.…
        result.set_file(origin.get_parent().get_child(frames.result_file_name(origin.get_basename())))
    display = Gimp.Display.new(result) if show else None  # the user sees each frame as it is stylized
    Gimp.displays_flush()
    status, error = _run_worker(image.get_layers()[-1], result.get_layers()[-1], config, frames.WORKER_NAME)
    if status == Gimp.PDBStatusType.SUCCESS and result.is_valid():
        result.undo_enable()
        Gimp.displays_flush()
        return status, None, result
    if display is not None and display.is_valid():
        display.delete()  # its last display: the image goes with it
    elif result.is_valid():
        result.delete()
    return status, error, None


def neural_style_frames_job(procedure, config, data):
    """The frames under GIMP's progress (Cancel kills this process only): ``preview`` is a layer of the new image,
    ``source`` a layer of the animation (IDs, see ``_worker_procedure``).  One connection, frame after frame,
    each carrying the frame before it; closing the new image's window cancels."""
    preview = Gimp.Layer.get_by_id(config.get_property("preview"))
    source = Gimp.Layer.get_by_id(config.get_property("source"))
    if preview is None or source is None:  # closed before the job began
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    image = preview.get_image()
    try:
        missing, _note = import_dependencies(PLUGIN_DIR)
        from nsgimp import job

        from neural_style.protocol import read_client_config
    except ImportError:
        missing = True
    if missing:  # the single layer's job says what is missing, in its words
        return neural_style_job(procedure, config, data)
    animation = source.get_image()
    Gimp.get_plug_in().set_pdb_error_handler(Gimp.PDBErrorHandler.PLUGIN)
    settings = _read_settings(config)
    targets = image.get_layers()
    order = frames.frame_order(len(targets))
    layers = animation.get_layers()
    sources = [layers[i] for i in order]  # the frames as the run began: read by layer, not by position
    names = [layer.get_name() for layer in sources]
    frame_ids = [layer.get_id() for layer in sources]

    def check_frames(first):
        """The frames still to be read are the animation's still (it is not locked): else one clear message."""
        gone = frames.missing_frame(frame_ids, [layer.get_id() for layer in animation.get_layers()], first)
        if gone is not None:
            _debug(f"frame {gone + 1} ({names[gone]!r}) left the animation during the run: stopping")
            raise UserError(frames.frame_gone_text(gone, len(order), names[gone]))

    unread = [0]  # the first frame not read yet: what a failing GIMP call may have met deleted
    clock = frames.SequenceClock(len(order))
    chain = frames.FrameChain()
    Gimp.progress_init("Neural Style")
    composer = _FrameComposer(animation)  # this process's buffers: nothing of it outlives a Cancel
    try:
        styles = [_style_image(path, argument) for path, argument in
                  ((settings.style, "style"), (settings.style2, "style2")) if path]
        connection = job.connect(settings, read_client_config(PLUGIN_DIR), _GimpView(targets[order[0]]),
                                 sandbox=detect_sandbox(), region=(image.get_width(), image.get_height()))
        try:
            for index, position in enumerate(order):
                clock.start_frame()
                check_frames(index)
                view = _GimpView(targets[position], check=lambda later=index + 1: check_frames(later))
                view.paint(composer.frame(sources[index], frames.draws_alone(names, index), 0),
                           False)  # the frame as it will be stylized, until the first preview
                unread[0] = index + 1
                content = composer.frame(None, True, settings.size)
                previous = chain.previous()
                _debug(f"frame {index + 1} of {len(order)} ({names[index]!r}): {content.width}x{content.height}, "
                       f"{'with' if previous is not None else 'without'} the previous frame")
                result = job.run_job(connection, settings, content, styles, view, previous=previous,
                                     text=frames.FrameProgressText(settings.iterations, clock=clock))
                view.paint(result.image, True)
                chain.advance(content, result.image)
                clock.finish_frame()
        finally:
            connection.client.close()
    except _LayerGone:  # the new image was closed (nothing to finish), or one of its layers deleted
        if image.is_valid():
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(frames.RESULT_LAYER_GONE))
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    except (job.JobFailed, UserError) as exc:
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                           GLib.Error(S.tag_argument(str(exc), exc.argument)))
    except Exception as exc:
        try:  # a frame deleted between the check and a GIMP call on it: that, not the call's error
            check_frames(unread[0])
        except UserError as gone:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(gone)))
        except Exception:  # the animation itself unreadable: the original error says more
            pass
        return _error_values(procedure, exc)
    finally:
        Gimp.progress_end()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class _FrameComposer:
    """The frame a viewer sees, as GIMP's Playback shows it: a layer alone, or drawn over the frame before it
    (``(combine)``), on the animation's canvas; layers of any mode (indexed, grey) come out RGB.  GEGL buffers of
    this process only: Cancel kills it, and nothing of it is left in GIMP.  A layer's pixels at its offsets and
    opacity (its mode and mask are not applied: GIF and WebP frames have neither)."""

    FORMAT = "R'G'B'A u8"

    def __init__(self, animation):
        self.width, self.height = animation.get_width(), animation.get_height()
        self.shown = None  # the current frame, a canvas-sized Gegl.Buffer

    def frame(self, layer, alone, size):
        """Draw ``layer`` (None: none more) over the current frame or alone, then read it at ``size`` (0: full)."""
        if layer is not None:
            self.shown = self._drawn(layer, None if alone else self.shown)
        from neural_style.protocol import ImageData

        cw, ch = S.sent_size(self.width, self.height, size)
        data = self.shown.get(_rect(0, 0, cw, ch), cw / self.width, self.FORMAT, Gegl.AbyssPolicy.CLAMP)
        return ImageData.raw(data, cw, ch, 4)

    def _drawn(self, layer, below):
        canvas = Gegl.Buffer.new(self.FORMAT, 0, 0, self.width, self.height)
        graph = Gegl.Node()
        top = graph.create_child("gegl:buffer-source")
        top.set_property("buffer", layer.get_buffer())
        _, x, y = layer.get_offsets()
        move = graph.create_child("gegl:translate")
        move.set_property("x", float(x))
        move.set_property("y", float(y))
        fade = graph.create_child("gegl:opacity")
        fade.set_property("value", layer.get_opacity() / 100.0)
        over = graph.create_child("gegl:over")  # aux over input
        bottom = graph.create_child("gegl:buffer-source")
        bottom.set_property("buffer", below if below is not None else Gegl.Buffer.new(self.FORMAT, 0, 0, self.width,
                                                                                     self.height))
        sink = graph.create_child("gegl:write-buffer")
        sink.set_property("buffer", canvas)
        top.link(move)
        move.link(fade)
        fade.connect_to("output", over, "aux")
        bottom.link(over)
        over.link(sink)
        sink.process()
        canvas.flush()
        return canvas


def _worker_procedure(plug_in, name, run, blurb, help_text, source_help):
    """An internal procedure that owns GIMP's progress (Cancel kills its process only). A plain procedure given
    layer IDs, not an image procedure: a call's image argument keeps the image alive in GIMP until the call
    returns, and closing its window must free it, so the job sees its layers' IDs go invalid and cancels."""
    procedure = Gimp.Procedure.new(plug_in, name, Gimp.PDBProcType.PLUGIN, run, None)
    procedure.set_documentation(blurb, help_text, name)
    procedure.add_int_argument("preview", "Preview layer ID", "The layer painted into", 0, GLib.MAXINT32,
                               0, GObject.ParamFlags.READWRITE)
    procedure.add_int_argument("source", "Source layer ID", source_help, 0, GLib.MAXINT32, 0,
                               GObject.ParamFlags.READWRITE)
    return procedure


def _menu_procedure(plug_in, name, run, image_types, sensitivity, label, path, blurb, help_text):
    """A procedure the user finds in a menu (its dialog's arguments are added by the caller)."""
    procedure = Gimp.ImageProcedure.new(plug_in, name, Gimp.PDBProcType.PLUGIN, run, None)
    procedure.set_image_types(image_types)
    procedure.set_sensitivity_mask(sensitivity)
    procedure.set_menu_label(label)
    procedure.add_menu_path(path)
    procedure.set_documentation(blurb, help_text, name)
    return procedure


def _frames_procedure(plug_in, name):
    """Filters → Animation → Neural Style (frames)…, or its job (internal, owning the progress)."""
    if name == frames.WORKER_NAME:
        return _worker_procedure(
            plug_in, name, neural_style_frames_job,
            "Internal: the frames of plug-in-neural-style-frames under GIMP's progress",
            "Stylizes every layer of the image of 'source' as a frame, bottom first, each request carrying the "
            "frame before it, and paints each into the layer at the same place in the given image.",
            "A layer of the animation")
    mask = Gimp.ProcedureSensitivityMask  # any image with layers, whichever is selected
    procedure = _menu_procedure(
        plug_in, name, neural_style_frames, "*",  # a GIF opens as an indexed image: frames are read as RGB
        mask.DRAWABLE | mask.DRAWABLES | mask.NO_DRAWABLES, frames.MENU_LABEL, frames.MENU_PATH,
        "Paint every frame of an animation in the style of another image, consistently from frame to frame",
        "Each layer is a frame (the bottom one first, as GIMP's Playback and GIF export read them). Each frame "
        "after the first is stylized from the one before it, moved by optical flow (Ruder et al.), so the "
        "result does not flicker. The result is a new image with the frames' names and delays, ready for "
        "File > Export As GIF or WebP; the animation itself is not changed.")
    procedure.add_image_return_value("new-image", "New image", "The stylized frames", False,
                                     GObject.ParamFlags.READWRITE)
    return procedure


# --------------------------------------------------------------------------- pixels
def _rect(x, y, w, h):
    return Gegl.Rectangle.new(int(x), int(y), int(w), int(h))


def _content_image(source, layer, size):
    """The region under ``layer`` read from ``source``: at its own resolution for ``size`` 0 (full resolution),
    else at most ``size`` on its longest side (GEGL mipmaps)."""
    from neural_style.protocol import ImageData

    _, sx, sy = source.get_offsets()
    _, lx, ly = layer.get_offsets()
    rx, ry, rw, rh = lx - sx, ly - sy, layer.get_width(), layer.get_height()
    fmt, channels = S.choose_format(source.has_alpha())
    cw, ch = S.sent_size(rw, rh, size)
    scale = cw / rw
    data = source.get_buffer().get(_rect(rx * scale, ry * scale, cw, ch), scale, fmt, Gegl.AbyssPolicy.CLAMP)
    return ImageData.raw(data, cw, ch, channels)


def _style_masks(image, layer, config, settings, sent):
    """Each style's region as a grey frame exactly on the content (read from the same rectangle of the image at
    the same scale; nsgimp/regions.py), or None when every region is the whole layer."""
    from neural_style.protocol import ImageData

    _, lx, ly = layer.get_offsets()
    area = (lx, ly, layer.get_width(), layer.get_height())  # the preview layer lies exactly on the region sent

    def read(i):
        region, mask = settings.regions[i], S.MASK_ARGUMENTS[i]
        channel = image.get_selection() if region == "selection" else config.get_property(mask)
        _, cx, cy = channel.get_offsets()
        crop = regions.mask_crop(area, (cx, cy), sent)
        data = bytes(channel.get_buffer().get(_rect(crop.x, crop.y, crop.width, crop.height), crop.scale,
                                              regions.MASK_FORMAT, Gegl.AbyssPolicy.NONE))
        if regions.is_blank(data):
            argument = S.REGION_ARGUMENTS[i] if region == "selection" else mask
            raise UserError(f"{advice.PREFIX}'{S.label(argument)}' is black over the part of the layer being "
                            f"stylized: {advice.MASK_ADVICE}", argument)
        return data

    masks = regions.resolve(settings.regions, read)
    if masks is None:
        return None
    for i, data in enumerate(masks):  # NEURAL_STYLE_DEBUG: the real-GIMP tests read what was sent
        if data is not None:
            _debug(f"style {i + 1}'s region: {regions.describe(data, sent[0])}")
    return [None if data is None else ImageData.raw(data, sent[0], sent[1], regions.MASK_CHANNELS) for data in masks]


def _style_image(path, argument):
    """A style file as protocol ImageData: PNG/JPEG bytes as they are, other image formats loaded by GIMP."""
    from neural_style.protocol import ImageData

    try:
        fmt = stylefile.check_style_file(path, argument)
        if fmt in ("PNG", "JPEG"):
            with open(path, "rb") as fh:
                return ImageData.from_file_bytes(fh.read())
    except S.SettingsError as exc:
        raise UserError(f"{advice.PREFIX}{exc}", argument) from None
    except OSError as exc:
        raise UserError(f"{advice.PREFIX}'{S.label(argument)}' {path} cannot be read ({exc.strerror or exc}).",
                        argument) from None
    try:
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    except Exception as exc:  # the PDB error handler is the plug-in's here: GIMP shows nothing itself
        image, why = None, str(exc)
    else:
        why = "" if image is not None else "GIMP could not load it"
    if image is None:
        raise UserError(f"{advice.PREFIX}'{S.label(argument)}' {path} could not be opened ({why}). "
                        "Choose a PNG or JPEG file.", argument)
    try:
        merged = image.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        w, h = merged.get_width(), merged.get_height()
        raw = merged.get_buffer().get(_rect(0, 0, w, h), 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP)
        return ImageData.raw(raw, w, h, 3)
    finally:
        image.delete()


def _paint(layer, image_data, sampler, what):
    """Write a raw protocol image into ``layer``, scaling it to the layer's size when it differs."""
    width, height = layer.get_width(), layer.get_height()
    _debug(f"painting the {what}, {image_data.width}x{image_data.height}, into the layer's {width}x{height}")
    locked = layer.get_lock_content()  # locked against the user's strokes; GIMP kills a plug-in writing to it
    if locked:
        layer.set_lock_content(False)
    try:
        _write(layer, image_data, sampler, width, height)
    finally:
        if locked and layer.is_valid():
            layer.set_lock_content(True)
    layer.update(0, 0, width, height)
    Gimp.displays_flush()


def _write(layer, image_data, sampler, width, height):
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
        for key, value in (("x", 0.0), ("y", 0.0), ("width", float(width)), ("height", float(height))):
            crop.set_property(key, value)
        sink = graph.create_child("gegl:write-buffer")
        sink.set_property("buffer", dst)
        source.link(scale)
        scale.link(crop)
        crop.link(sink)
        sink.process()
    dst.flush()


# --------------------------------------------------------------------------- registration
class NeuralStyle(Gimp.PlugIn):
    def do_set_i18n(self, procname):
        return False

    def do_query_procedures(self):
        help_dir = Gio.File.new_for_path(os.path.join(PLUGIN_DIR, "help"))
        self.set_help_domain(HELP_DOMAIN, help_dir)
        return [S.PROCEDURE_NAME, S.WORKER_NAME, frames.PROCEDURE_NAME, frames.WORKER_NAME]

    def do_quit(self):
        """GIMP's quit message, 10 ms before it kills a cancelled job: tell the daemon to stop now."""
        job = sys.modules.get("nsgimp.job")
        if job is not None:
            job.abandon_current_job()
            time.sleep(0.005)  # let ZeroMQ's I/O thread put the cancel on the wire

    def do_create_procedure(self, name):
        Gegl.init(None)
        if name in (frames.PROCEDURE_NAME, frames.WORKER_NAME):
            procedure = _frames_procedure(self, name)
        elif name == S.WORKER_NAME:
            procedure = _worker_procedure(
                self, name, neural_style_job,
                "Internal: one Neural Style job under GIMP's progress (called by plug-in-neural-style)",
                "Streams the job to the daemon and paints every preview, then the result, into the layer "
                "'preview', reading the pixels from the layer 'source' (both by ID). Runs in its own process so "
                "that Cancel on the progress bar, which kills this process, leaves the caller free to restore the "
                "image.",
                "The layer whose pixels are stylized")
        else:
            procedure = _menu_procedure(
                self, name, neural_style, "RGB*", Gimp.ProcedureSensitivityMask.DRAWABLE, S.MENU_LABEL, S.MENU_PATH,
                "Paint the layer in the style of another image (Gatys et al.)",
                "Sends the active layer and one or two style images to the Neural Style daemon and paints "
                "the result, refining as it goes, into a new layer above the source. A selection limits "
                "the effect (it becomes the new layer's mask). One undo removes it all; Cancel on the "
                "progress bar leaves the image as it was.")
        procedure.set_attribution("Neural Style for GIMP contributors", "MIT", "2026")
        _add_arguments(procedure, dialog=name in (S.PROCEDURE_NAME, frames.PROCEDURE_NAME))
        return procedure


if __name__ == "__main__":
    Gimp.main(NeuralStyle.__gtype__, sys.argv)
