"""What both camera recorders (native and FFmpeg) share about a camera's lifecycle: its
live state, emitted on every change, and the reconnect policy (capped exponential
backoff with full jitter, longest for a stream nvr cannot store)."""

import logging
import random
from collections.abc import Callable
from dataclasses import replace

from nvr.config import RecordingConfig
from nvr.errors import CameraError, StreamUnsupported
from nvr.ingest.events import CameraState, CameraStatus, Event
from nvr.log import fields

log = logging.getLogger(__name__)

# retrying an unsupported stream soon cannot help: its backoff is the longest
_UNSUPPORTED_FAILURES = 64


class CameraLifecycle:
    """One camera's state and reconnect policy, as its recorder keeps them."""

    def __init__(
        self,
        camera_id: str,
        recording: RecordingConfig,
        emit: Callable[[Event], None],
    ) -> None:
        self.state = CameraState(camera_id, CameraStatus.CONNECTING)
        self.failures = 0  # attempts in a row that recorded nothing
        self._recording = recording
        self._emit = emit

    def set(self, **changes: object) -> None:
        """Applies changes to the state and emits it; a status change is one log line."""
        new = replace(self.state, **changes)  # type: ignore[arg-type]
        old, self.state = self.state, new
        self._emit(new)
        if new.status != old.status:
            log.info(
                "camera state %s",
                fields(
                    camera=new.camera_id,
                    status=new.status.value,
                    error=new.last_error or "-",
                ),
            )

    def connect_failed(self, error: CameraError) -> None:
        """Records a failed connect: an unsupported stream fails the camera (logged at
        ERROR, longest backoff); anything else is a WARNING and an ordinary retry."""
        if isinstance(error, StreamUnsupported):
            self.failures = _UNSUPPORTED_FAILURES
            self.set(status=CameraStatus.FAILED, last_error=str(error))
            log.error(
                "stream unsupported %s",
                fields(camera=self.state.camera_id, error=error),
            )
            return
        self.set(last_error=str(error))
        log.warning(
            "connect failed %s", fields(camera=self.state.camera_id, error=error)
        )

    def reconnecting(self, healthy: bool) -> float:
        """An attempt ended: counts it, shows the camera reconnecting, and returns the
        seconds to wait before the next one."""
        self.failures = 0 if healthy else self.failures + 1
        self.set(status=CameraStatus.RECONNECTING, reconnects=self.state.reconnects + 1)
        initial = self._recording.backoff_initial_seconds
        cap = min(
            self._recording.backoff_max_seconds, initial * 2 ** min(self.failures, 30)
        )
        return random.uniform(0, cap)
