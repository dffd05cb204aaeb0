"""SDP media descriptions (RFC 8866) as cameras send them in DESCRIBE answers."""

import base64

import pytest

from nvr.errors import CameraProtocolError
from nvr.ingest.native_tracks import audio_setup
from nvr.rtsp.sdp import parse_sdp

BASE = "rtsp://192.0.2.10:554/Streaming/Channels/101/"
SPS_B64 = "Z2QAKKwbGoB4AiflQA=="
PPS_B64 = "aO48sA=="

# shaped like the answer of a common camera: session-level control "*", relative
# track controls, H.264 video and AAC audio
H264_AAC_SDP = "\n".join(
    [
        "v=0",
        "o=- 1109162014219182 0 IN IP4 0.0.0.0",
        "s=Media Presentation",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        "m=video 0 RTP/AVP 96",
        "b=AS:4096",
        "a=control:trackID=1",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:96 profile-level-id=420029; packetization-mode=1; "
        f"sprop-parameter-sets={SPS_B64},{PPS_B64}",
        "m=audio 0 RTP/AVP 104",
        "a=control:trackID=2",
        "a=rtpmap:104 mpeg4-generic/16000/1",
        "a=fmtp:104 profile-level-id=15; streamtype=5; mode=AAC-hbr; config=1408;"
        "SizeLength=13; IndexLength=3; IndexDeltaLength=3",
        "",
    ]
)

# CR LF line ends, H.265 parameter sets, an absolute track control
H265_SDP = "\r\n".join(
    [
        "v=0",
        "o=- 0 0 IN IP4 127.0.0.1",
        "s=Session",
        "t=0 0",
        "m=video 0 RTP/AVP 98",
        "a=rtpmap:98 H265/90000",
        "a=fmtp:98 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/lZgJ; "
        "sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHllmVqSTK8BaAgAAADACAAAAMDIQ==; "
        "sprop-pps=RAHBcrRiQA==",
        "a=control:rtsp://192.0.2.10:554/h265/track0",
        "",
    ]
)


def test_parse_sdp_h264_and_aac_tracks_described() -> None:
    description = parse_sdp(H264_AAC_SDP, BASE)

    video, audio = description.media
    assert description.control == BASE  # "*": the aggregate is the base itself
    assert (video.kind, video.payload_type, video.encoding) == ("video", 96, "H264")
    assert (video.clock_rate, video.channels) == (90000, 1)
    assert video.control == BASE + "trackID=1"
    assert (audio.kind, audio.payload_type, audio.encoding) == (
        "audio",
        104,
        "MPEG4-GENERIC",
    )
    assert (audio.clock_rate, audio.channels) == (16000, 1)
    assert audio.control == BASE + "trackID=2"


def test_parse_sdp_h264_fmtp_keeps_base64_padding() -> None:
    video = parse_sdp(H264_AAC_SDP, BASE).media[0]

    sprop = video.fmtp["sprop-parameter-sets"]
    assert sprop == f"{SPS_B64},{PPS_B64}"
    sps, pps = (base64.b64decode(part) for part in sprop.split(","))
    assert (sps[0] & 0x1F, pps[0] & 0x1F) == (7, 8)  # an SPS, then a PPS
    assert video.fmtp["packetization-mode"] == "1"
    assert video.fmtp["profile-level-id"] == "420029"


def test_parse_sdp_aac_fmtp_keys_lower_case_values_as_sent() -> None:
    audio = parse_sdp(H264_AAC_SDP, BASE).media[1]

    assert audio.fmtp == {
        "profile-level-id": "15",
        "streamtype": "5",
        "mode": "AAC-hbr",
        "config": "1408",
        "sizelength": "13",
        "indexlength": "3",
        "indexdeltalength": "3",
    }


def test_parse_sdp_h265_crlf_parameter_sets_and_absolute_control() -> None:
    description = parse_sdp(H265_SDP, "rtsp://192.0.2.10:554/h265")

    (video,) = description.media
    assert (video.encoding, video.clock_rate, video.payload_type) == ("H265", 90000, 98)
    assert video.control == "rtsp://192.0.2.10:554/h265/track0"
    kinds = {
        key: (base64.b64decode(video.fmtp[key])[0] >> 1) & 0x3F
        for key in ("sprop-vps", "sprop-sps", "sprop-pps")
    }
    assert kinds == {"sprop-vps": 32, "sprop-sps": 33, "sprop-pps": 34}


def test_parse_sdp_static_payload_without_rtpmap_uses_rfc_3551_table() -> None:
    sdp = "v=0\nm=audio 0 RTP/AVP 0\na=control:trackID=3\n"

    (audio,) = parse_sdp(sdp, BASE).media

    assert (audio.encoding, audio.clock_rate, audio.channels) == ("PCMU", 8000, 1)


def test_parse_sdp_dynamic_payload_without_rtpmap_has_no_encoding() -> None:
    (media,) = parse_sdp("v=0\nm=video 0 RTP/AVP 96\n", BASE).media

    assert (media.encoding, media.clock_rate) == ("", 0)


def test_parse_sdp_several_payload_types_first_one_described() -> None:
    sdp = (
        "v=0\n"
        "m=video 0 RTP/AVP 97 96\n"
        "a=rtpmap:96 H264/90000\n"
        "a=fmtp:96 packetization-mode=0\n"
        "a=rtpmap:97 H265/90000\n"
        "a=fmtp:97 sprop-vps=QAE=\n"
    )

    (video,) = parse_sdp(sdp, BASE).media

    assert (video.payload_type, video.encoding) == (97, "H265")
    assert video.fmtp == {"sprop-vps": "QAE="}


def test_parse_sdp_rtpmap_channels_read_when_given() -> None:
    sdp = "v=0\nm=audio 0 RTP/AVP 97\na=rtpmap:97 MPEG4-GENERIC/48000/2\n"

    (audio,) = parse_sdp(sdp, BASE).media

    assert (audio.clock_rate, audio.channels) == (48000, 2)


def test_parse_sdp_missing_control_means_base() -> None:
    sdp = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"

    description = parse_sdp(sdp, "rtsp://cam/stream")

    assert description.control == "rtsp://cam/stream"
    assert description.media[0].control == "rtsp://cam/stream"


@pytest.mark.parametrize(
    ("base", "control", "expected"),
    [
        # RFC 2326 §C.1.1: relative to the base, as if the base ended with "/"
        ("rtsp://cam/stream", "trackID=1", "rtsp://cam/stream/trackID=1"),
        ("rtsp://cam/stream/", "trackID=1", "rtsp://cam/stream/trackID=1"),
        ("rtsp://cam:8554/a/b", "track2", "rtsp://cam:8554/a/b/track2"),
        ("rtsp://cam/stream", "*", "rtsp://cam/stream"),
        ("rtsp://cam/stream", "rtsp://other/x", "rtsp://other/x"),
        # a base with a query (Dahua, Amcrest): the control follows the query, as
        # ffmpeg joins them; RFC 3986 joining would drop the path's end and the query
        (
            "rtsp://cam:554/cam/realmonitor?channel=1&subtype=0/",
            "trackID=0",
            "rtsp://cam:554/cam/realmonitor?channel=1&subtype=0/trackID=0",
        ),
        (
            "rtsp://cam/cam/realmonitor?channel=1&subtype=0",
            "trackID=1",
            "rtsp://cam/cam/realmonitor?channel=1&subtype=0/trackID=1",
        ),
    ],
)
def test_parse_sdp_media_control_resolved_against_base(
    base: str, control: str, expected: str
) -> None:
    sdp = f"v=0\nm=video 0 RTP/AVP 96\na=control:{control}\n"

    assert parse_sdp(sdp, base).media[0].control == expected


def test_parse_sdp_session_control_absolute_is_aggregate_url() -> None:
    sdp = "v=0\na=control:rtsp://cam/live/\nm=video 0 RTP/AVP 96\na=control:trackID=0\n"

    description = parse_sdp(sdp, "rtsp://cam/other")

    assert description.control == "rtsp://cam/live/"
    assert description.media[0].control == "rtsp://cam/live/trackID=0"


def test_parse_sdp_attributes_for_other_payload_ignored() -> None:
    sdp = (
        "v=0\n"
        "m=video 0 RTP/AVP 96\n"
        "a=rtpmap:100 H265/90000\n"
        "a=fmtp:100 sprop-vps=QAE=\n"
        "a=rtpmap:96 H264/90000\n"
    )

    (video,) = parse_sdp(sdp, BASE).media

    assert video.encoding == "H264"
    assert video.fmtp == {}


def test_parse_sdp_attributes_belong_to_their_own_section() -> None:
    sdp = (
        "v=0\n"
        "m=video 0 RTP/AVP 96\n"
        "a=rtpmap:96 H264/90000\n"
        "a=control:trackID=1\n"
        "m=application 0 RTP/AVP 107\n"
        "a=rtpmap:107 vnd.onvif.metadata/90000\n"
    )

    video, metadata = parse_sdp(sdp, BASE).media

    assert video.control == BASE + "trackID=1"
    assert (metadata.kind, metadata.encoding) == ("application", "VND.ONVIF.METADATA")
    assert metadata.control == BASE


def test_parse_sdp_blank_and_junk_lines_skipped() -> None:
    sdp = "\n  \nv=0\ngarbage\nx\n  m=video 0 RTP/AVP 96  \n\na=rtpmap:96 H264/90000\n"

    (video,) = parse_sdp(sdp, BASE).media

    assert video.encoding == "H264"


@pytest.mark.parametrize(
    ("sdp", "match"),
    [
        ("", "describes no media"),
        ("v=0\ns=-\nt=0 0\n", "describes no media"),
        ("v=0\nm=video 0 RTP/AVP\n", "malformed SDP media line"),
        ("v=0\nm=video 0 RTP/AVP H264\n", "malformed SDP payload type"),
        ("v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264\n", "malformed SDP rtpmap"),
        ("v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/fast\n", "malformed SDP rtpmap"),
        ("v=0\nm=audio 0 RTP/AVP 97\na=rtpmap:97 L16/8000/x\n", "malformed SDP rtpmap"),
        ("v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/-90000\n", "clock rate out"),
        ("v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/0\n", "clock rate out"),
        (
            "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/4294967296000\n",
            "clock rate out",
        ),
        ("v=0\nm=audio 0 RTP/AVP 97\na=rtpmap:97 L16/8000/-2\n", "channel count"),
    ],
)
def test_parse_sdp_malformed_raises_protocol_error(sdp: str, match: str) -> None:
    with pytest.raises(CameraProtocolError, match=match):
        parse_sdp(sdp, BASE)


@pytest.mark.parametrize(("size", "index"), [("-1", "3"), ("13", "-3"), ("64", "3")])
def test_audio_setup_aac_header_lengths_out_of_range_refused(
    size: str, index: str
) -> None:
    sdp = (
        "v=0\nm=audio 0 RTP/AVP 97\na=rtpmap:97 MPEG4-GENERIC/16000/1\n"
        "a=fmtp:97 streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;"
        f"sizelength={size};indexlength={index};indexdeltalength=3\n"
    )
    (audio,) = parse_sdp(sdp, BASE).media

    with pytest.raises(CameraProtocolError, match="out of range"):
        audio_setup(audio)
