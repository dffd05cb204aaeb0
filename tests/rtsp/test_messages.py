"""RTSP/1.0 requests, responses and headers as RFC 2326 writes them."""

import pytest

from nvr.errors import CameraProtocolError
from nvr.rtsp.messages import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    Response,
    RtpInfo,
    SessionHeader,
    build_request,
    content_length,
    header_end,
    parse_head,
    parse_interleaved,
    parse_rtp_info,
    parse_session,
    parse_status_line,
)


def test_build_request_writes_request_line_cseq_and_headers_in_order() -> None:
    raw = build_request(
        "SETUP",
        "rtsp://cam/stream/trackID=1",
        3,
        {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", "Session": "ab12"},
    )

    assert raw == (
        b"SETUP rtsp://cam/stream/trackID=1 RTSP/1.0\r\n"
        b"CSeq: 3\r\n"
        b"User-Agent: nvr\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
        b"Session: ab12\r\n"
        b"\r\n"
    )


def test_build_request_without_headers_ends_with_blank_line() -> None:
    raw = build_request("OPTIONS", "rtsp://cam/", 1)

    assert raw.endswith(b"User-Agent: nvr\r\n\r\n")
    assert raw.count(b"\r\n\r\n") == 1


def test_header_end_crlf_returns_offset_past_blank_line() -> None:
    head = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"

    assert header_end(head + b"body", 0) == len(head)


def test_header_end_bare_lf_returns_offset_past_blank_line() -> None:
    head = b"RTSP/1.0 200 OK\nCSeq: 1\n\n"

    assert header_end(head + b"body", 0) == len(head)


def test_header_end_starts_at_offset() -> None:
    first = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"
    second = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n"

    assert header_end(first + second, len(first)) == len(first) + len(second)


def test_header_end_incomplete_head_returns_minus_one() -> None:
    assert header_end(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n", 0) == -1
    assert header_end(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r", 0) == -1


def test_header_end_bare_lf_head_before_crlf_in_later_bytes_ends_at_first() -> None:
    # a camera with bare LF line ends, then an interleaved frame whose payload happens
    # to hold CR LF CR LF: the head ends at the first blank line, not in the frame
    head = b"RTSP/1.0 200 OK\nCSeq: 1\n\n"
    frame = b"$\x00\x00\x06\x80\x60\r\n\r\n"

    assert header_end(head + frame, 0) == len(head)


def test_header_end_blank_line_past_limit_returns_minus_one() -> None:
    head = b"RTSP/1.0 200 OK\r\nX-Pad: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"

    assert header_end(head, 0) == -1


def test_parse_head_names_lower_case_repeated_values_in_order() -> None:
    first, headers = parse_head(
        b"RTSP/1.0 401 Unauthorized\r\n"
        b"CSeq: 2\r\n"
        b'WWW-Authenticate: Digest realm="cam", nonce="abc"\r\n'
        b'www-authenticate: Basic realm="cam"\r\n'
    )

    assert first == "RTSP/1.0 401 Unauthorized"
    assert headers["cseq"] == ["2"]
    assert headers["www-authenticate"] == [
        'Digest realm="cam", nonce="abc"',
        'Basic realm="cam"',
    ]


def test_parse_head_folded_line_joins_previous_value() -> None:
    _, headers = parse_head(
        b"RTSP/1.0 200 OK\r\nRTP-Info: url=rtsp://cam/a;seq=1,\r\n  url=rtsp://cam/b;seq=2"
    )

    assert headers["rtp-info"] == ["url=rtsp://cam/a;seq=1, url=rtsp://cam/b;seq=2"]


def test_parse_head_value_keeps_colons_after_the_first() -> None:
    _, headers = parse_head(b"RTSP/1.0 200 OK\r\nContent-Base: rtsp://cam:554/s/")

    assert headers["content-base"] == ["rtsp://cam:554/s/"]


def test_parse_head_latin_1_bytes_decoded_not_raised() -> None:
    _, headers = parse_head(b"RTSP/1.0 200 OK\r\nServer: Cam\xe9ra\r\n")

    assert headers["server"] == ["Caméra"]


def test_parse_head_line_without_colon_raises_protocol_error() -> None:
    with pytest.raises(CameraProtocolError, match="malformed RTSP header"):
        parse_head(b"RTSP/1.0 200 OK\r\nthis is not a header\r\n")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("RTSP/1.0 200 OK", (200, "OK")),
        ("RTSP/1.0 454 Session Not Found", (454, "Session Not Found")),
        ("RTSP/1.0 200", (200, "")),
    ],
)
def test_parse_status_line_valid_returns_status_and_reason(
    line: str, expected: tuple[int, str]
) -> None:
    assert parse_status_line(line) == expected


@pytest.mark.parametrize(
    "line", ["HTTP/1.1 200 OK", "RTSP/1.0 20 OK", "RTSP/1.0", "RTSP/1.0 OK 200", ""]
)
def test_parse_status_line_invalid_raises_protocol_error(line: str) -> None:
    with pytest.raises(CameraProtocolError, match="not an RTSP status line"):
        parse_status_line(line)


def test_response_header_any_case_returns_first_value() -> None:
    response = Response(200, "OK", {"cseq": ["4"], "public": ["OPTIONS", "PLAY"]})

    assert response.header("Public") == "OPTIONS"
    assert response.header("CSEQ") == "4"
    assert response.header("session") is None
    assert response.cseq == 4


@pytest.mark.parametrize("headers", [{}, {"cseq": ["four"]}, {"cseq": []}])
def test_response_cseq_missing_or_invalid_returns_none(
    headers: dict[str, list[str]],
) -> None:
    assert Response(200, "OK", headers).cseq is None


def test_content_length_missing_returns_zero() -> None:
    assert content_length({}) == 0


def test_content_length_valid_returns_value() -> None:
    assert content_length({"content-length": ["123"]}) == 123
    assert content_length({"content-length": [str(MAX_BODY_BYTES)]}) == MAX_BODY_BYTES


@pytest.mark.parametrize("value", ["-1", str(MAX_BODY_BYTES + 1)])
def test_content_length_out_of_bounds_raises_protocol_error(value: str) -> None:
    with pytest.raises(CameraProtocolError, match="out of bounds"):
        content_length({"content-length": [value]})


@pytest.mark.parametrize("value", ["", "ten", "1.5", "0x10"])
def test_content_length_not_a_number_raises_protocol_error(value: str) -> None:
    with pytest.raises(CameraProtocolError, match="bad Content-Length"):
        content_length({"content-length": [value]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12345678;timeout=30", SessionHeader("12345678", 30.0)),
        ("12345678", SessionHeader("12345678", 60.0)),  # RFC 2326 §12.37 default
        ("ABCDEF ; Timeout = 45", SessionHeader("ABCDEF", 45.0)),
        ("abc;timeout=0", SessionHeader("abc", 1.0)),  # never a zero keepalive period
        ("abc;timeout=soon", SessionHeader("abc", 60.0)),
        ("abc;foo=bar;timeout=20", SessionHeader("abc", 20.0)),
    ],
)
def test_parse_session_returns_id_and_timeout(
    value: str, expected: SessionHeader
) -> None:
    assert parse_session(value) == expected


@pytest.mark.parametrize("value", ["", ";timeout=60", "  "])
def test_parse_session_empty_id_raises_protocol_error(value: str) -> None:
    with pytest.raises(CameraProtocolError, match="empty Session"):
        parse_session(value)


@pytest.mark.parametrize(
    ("transport", "expected"),
    [
        ("RTP/AVP/TCP;unicast;interleaved=0-1", (0, 1)),
        ("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1A2B3C4D;mode=play", (2, 3)),
        ("RTP/AVP/TCP;interleaved=6", (6, 7)),  # RTCP on the next channel
        ("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971", None),
        ("", None),
    ],
)
def test_parse_interleaved_returns_granted_channels(
    transport: str, expected: tuple[int, int] | None
) -> None:
    assert parse_interleaved(transport) == expected


def test_parse_rtp_info_two_tracks_returns_each_entry() -> None:
    value = (
        "url=rtsp://cam/stream/trackID=1;seq=9810;rtptime=3450012, "
        "url=rtsp://cam/stream/trackID=2;seq=1;rtptime=4294967295"
    )

    assert parse_rtp_info(value) == [
        RtpInfo("rtsp://cam/stream/trackID=1", 9810, 3450012),
        RtpInfo("rtsp://cam/stream/trackID=2", 1, 2**32 - 1),
    ]


def test_parse_rtp_info_url_with_query_kept_whole() -> None:
    value = "url=rtsp://cam/live?channel=1&stream=0/trackID=0;seq=5;rtptime=7"

    assert parse_rtp_info(value) == [
        RtpInfo("rtsp://cam/live?channel=1&stream=0/trackID=0", 5, 7)
    ]


def test_parse_rtp_info_missing_or_bad_numbers_become_none() -> None:
    value = "url=rtsp://cam/a;seq=x;rtptime=, url=rtsp://cam/b"

    assert parse_rtp_info(value) == [
        RtpInfo("rtsp://cam/a", None, None),
        RtpInfo("rtsp://cam/b", None, None),
    ]
