"""Sequences of frames: what stylizing frame t consistently with frame t−1 needs outside the network.

``flow`` (optical flow between content frames, warping by a flow, Ruder et al.'s certainty mask;
numpy and OpenCV, no torch) and ``frames`` (frame folders and video files read and written with
PyAV). The temporal term itself is tensor math: ``engine/temporal.py``.
"""
