"""Pure-Python helpers of the Neural Style GIMP plug-in (no GIMP, no GObject, no zmq).

Kept apart from ``neural_style_gimp.py`` (the GIMP glue) so they can be unit-tested
with plain pytest on any machine.
"""
