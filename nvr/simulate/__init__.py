"""Simulated cameras: generated clips served looped by gst-rtsp-server."""
