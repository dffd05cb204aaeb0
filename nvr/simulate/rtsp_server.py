"""One simulated camera: serves one clip, looped forever, on one RTSP mount.

Runs under the system python (``/usr/bin/python3``) because gst-rtsp-server is reachable
only through its GObject bindings there; so this file imports nothing from nvr.

How a media is built: when a client asks for the mount and no media is prepared, an
``ffmpeg -re -stream_loop -1 -c copy`` process is started; it paces the clip in real
time, keeps timestamps increasing across each loop, and writes Matroska into a pipe (TS
cannot carry G.711). The pipeline reads that pipe (``fdsrc ! matroskademux``) and only
re-packetises: ``h264parse ! rtph264pay``, ``h265parse ! rtph265pay``,
``aacparse ! rtpmp4gpay``, ``rtppcmapay``. Each client gets its own media (not shared),
so every connection starts on a keyframe, and a client leaving ends only its own ffmpeg.

With ``--no-inband-params`` the video's parameter sets travel only in the SDP
(sprop-parameter-sets), never inside the RTP stream, as some cameras send them.

Prints ``ready port=N mount=/path`` on stdout once listening; exits 0 on SIGTERM or
SIGINT.
"""

import argparse
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"

# codec name (as ffprobe reports it) -> parser and payloader, no re-encoding
_VIDEO_BRANCH = {
    "h264": "h264parse ! rtph264pay config-interval=-1 pt=96",
    "hevc": "h265parse ! rtph265pay config-interval=-1 pt=96",
}
# The same without parameter sets in band: they reach the client only through the SDP's
# sprop-parameter-sets (sprop-vps/sps/pps for H.265), as some cameras send them. The
# clips keep SPS/PPS in Matroska's codec private, not in their packets; the caps filter
# keeps the parser from converting to byte-stream, which would push the codec data in
# band before the first keyframe.
_VIDEO_BRANCH_NO_INBAND = {
    "h264": "h264parse config-interval=0 ! video/x-h264,stream-format=avc"
    " ! rtph264pay config-interval=0 pt=96",
    "hevc": "h265parse config-interval=0 ! video/x-h265,stream-format=hvc1"
    " ! rtph265pay config-interval=0 pt=96",
}
_AUDIO_BRANCH = {
    "aac": "aacparse ! rtpmp4gpay pt=97",
    "pcm_alaw": "rtppcmapay pt=8",
}
_ROLE = "camera-user"


@dataclass(frozen=True)
class ClipTracks:
    """Codec names of the clip's first video and first audio track (audio may be absent)."""

    video: str
    audio: str | None


def probe_clip(clip: Path) -> ClipTracks:
    """Reads the clip's codecs with ffprobe; exits with a message if one is unsupported."""
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "json",
            str(clip),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    streams = json.loads(out).get("streams", [])
    video = next((s["codec_name"] for s in streams if s["codec_type"] == "video"), None)
    audio = next((s["codec_name"] for s in streams if s["codec_type"] == "audio"), None)
    if video not in _VIDEO_BRANCH:
        sys.exit(f"rtsp_server: unsupported video codec {video!r} in {clip}")
    if audio is not None and audio not in _AUDIO_BRANCH:
        sys.exit(f"rtsp_server: unsupported audio codec {audio!r} in {clip}")
    return ClipTracks(video=video, audio=audio)


def video_branch(codec: str, inband_params: bool) -> str:
    """The parser and payloader of the video track (see _VIDEO_BRANCH_NO_INBAND)."""
    return (_VIDEO_BRANCH if inband_params else _VIDEO_BRANCH_NO_INBAND)[codec]


def pipeline_description(
    fd: int, tracks: ClipTracks, inband_params: bool = True
) -> str:
    """The gst-launch text of one media: pipe in, demux, parse, payload as pay0/pay1."""
    parts = [
        f"fdsrc fd={fd} ! matroskademux name=demux",
        f"demux.video_0 ! queue ! {video_branch(tracks.video, inband_params)} name=pay0",
    ]
    if tracks.audio is not None:
        parts.append(f"demux.audio_0 ! queue ! {_AUDIO_BRANCH[tracks.audio]} name=pay1")
    return "( " + " ".join(parts) + " )"


def start_looper(clip: Path) -> "subprocess.Popen[bytes]":
    """Starts ffmpeg copying the clip, looped and paced in real time, as Matroska on stdout."""
    return subprocess.Popen(
        [
            FFMPEG,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(clip),
            "-map",
            "0",
            "-c",
            "copy",
            # Note: small clusters, so the muxer hands out data frame by frame, not in bursts
            "-cluster_time_limit",
            "100",
            "-cluster_size_limit",
            "32768",
            "-flush_packets",
            "1",
            "-f",
            "matroska",
            "-live",
            "1",
            "pipe:1",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )


def stop_looper(proc: "subprocess.Popen[bytes]") -> None:
    """Ends one ffmpeg looper and closes our end of its pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class LoopingFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """Builds each media around its own ffmpeg looper and ends it with the media."""

    def __init__(self, clip: Path, tracks: ClipTracks, inband_params: bool) -> None:
        super().__init__()
        self._clip = clip
        self._tracks = tracks
        self._inband_params = inband_params
        self._loopers: dict[Any, subprocess.Popen[bytes]] = {}
        # Note: not shared. A shared media stays in the factory's cache while it unprepares,
        # so a client reconnecting within that moment was answered 503.
        self.set_shared(False)
        self.connect("media-configure", self._on_media_configure)

    def do_create_element(self, url: Any) -> Any:
        proc = start_looper(self._clip)
        assert proc.stdout is not None
        element = Gst.parse_launch(
            pipeline_description(
                proc.stdout.fileno(), self._tracks, self._inband_params
            )
        )
        self._loopers[element] = proc
        return element

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        element = media.get_element()
        media.connect("unprepared", lambda _media: self._end_looper(element))

    def _end_looper(self, element: Any) -> None:
        proc = self._loopers.pop(element, None)
        if proc is not None:
            stop_looper(proc)

    def end_all(self) -> None:
        """Ends every looper still running (on shutdown)."""
        for element in list(self._loopers):
            self._end_looper(element)


def require_credentials(server: Any, factory: Any, user: str, password: str) -> None:
    """Makes the mount answer 401 unless the client sends these credentials (basic auth)."""
    # Limitation: basic only; gst's auth methods are flags the Python bindings cannot OR
    # together, so offering digest too needs a --auth-method switch choosing one of them.
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, _ROLE)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    server.set_auth(auth)

    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_permission_for_role(
        _ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True
    )
    permissions.add_permission_for_role(
        _ROLE, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True
    )
    factory.set_permissions(permissions)


def preload_plugins(tracks: ClipTracks, inband_params: bool) -> None:
    """Loads every element a media needs now, so the first DESCRIBE does not pay for it."""
    names = ["fdsrc", "matroskademux", "queue"]
    for branch in (
        video_branch(tracks.video, inband_params),
        _AUDIO_BRANCH.get(tracks.audio or "", ""),
    ):
        words = [part.split()[0] for part in branch.split("!") if part.strip()]
        names += [word for word in words if "/" not in word]  # "/": a caps filter
    for name in names:
        if Gst.ElementFactory.make(name, None) is None:
            sys.exit(f"rtsp_server: GStreamer element {name!r} is missing")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/stream")
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument(
        "--no-inband-params",
        action="store_true",
        help="send SPS/PPS (VPS) only in the SDP, never inside the RTP stream",
    )
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    if not args.clip.is_file():
        parser.error(f"no clip at {args.clip}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    Gst.init(None)
    tracks = probe_clip(args.clip)
    inband_params = not args.no_inband_params
    preload_plugins(tracks, inband_params)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = LoopingFactory(args.clip, tracks, inband_params)
    if args.user is not None:
        require_credentials(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.mount, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1

    def quit_loop() -> bool:
        loop.quit()
        return False  # remove the signal source

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, quit_loop)

    # sessions of clients that vanished without TEARDOWN expire here, which frees the media
    pool = server.get_session_pool()
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)

    print(f"ready port={args.port} mount={args.mount}", flush=True)
    try:
        loop.run()
    finally:
        factory.end_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
