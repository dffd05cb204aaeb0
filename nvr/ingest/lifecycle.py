"""What both camera recorders (native and FFmpeg) share about a camera's lifecycle:
reconnect backoff, and state changes that are emitted and logged."""

import logging
import random
from collections.abc import Callable
from dataclasses import replace

from nvr.config import RecordingConfig
from nvr.ingest.events import CameraState, Event
from nvr.log import fields

log = logging.getLogger(__name__)


def backoff_s(recording: RecordingConfig, failures: int) -> float:
    """Capped exponential backoff with full jitter (uniform from 0 to the cap)."""
    initial = recording.backoff_initial_seconds
    cap = min(recording.backoff_max_seconds, initial * 2 ** min(failures, 30))
    return random.uniform(0, cap)


def changed_state(
    state: CameraState, emit: Callable[[Event], None], **changes: object
) -> CameraState:
    """``state`` with ``changes`` applied, emitted to the supervisor; a status change is
    one log line."""
    new = replace(state, **changes)  # type: ignore[arg-type]
    emit(new)
    if new.status != state.status:
        log.info(
            "camera state %s",
            fields(
                camera=new.camera_id,
                status=new.status.value,
                error=new.last_error or "-",
            ),
        )
    return new
