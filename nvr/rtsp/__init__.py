"""RTSP client for recording: the dialogue (RFC 2326), SDP, authentication, RTP."""
