"""Errors a user can cause on the local side (files, weights, device), importable without torch.

The command line maps each to one message and an exit code before any heavy import happens.
"""
from __future__ import annotations


class ImageError(ValueError):
    """A file or byte string is not a usable image; the message says which and why."""


class ImageTooLarge(ImageError):
    """An image has more pixels than allowed (or is a decompression bomb)."""


class WeightsNotFound(Exception):
    """No usable weights: the message names the ways to get them."""


class DeviceUnavailable(ValueError):
    """The device asked for does not exist here (no silent fallback: the user asked for it)."""
