"""nvr: records RTSP cameras into indexed segments and plays back any time range."""

__version__ = "0.1.0"
