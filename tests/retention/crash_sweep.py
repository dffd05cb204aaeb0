"""Runs one retention sweep and SIGKILLs itself right after a named step (crash tests).

Usage: python -m tests.retention.crash_sweep '{"db": URL, "root": DIR, "now_us": N,
"kill_at": STEP, "endpoint": URL|null, "bucket": NAME|null, "batch": N,
"objects_per_request": N}'; S3 credentials come from the AWS environment variables.
The steps are the deleter's (``nvr.retention.deleter.StepHook``); the kill comes at the
first time the named step completes.
"""

import json
import os
import signal
import sys
from pathlib import Path

from nvr.config import S3Config
from nvr.index import open_index
from nvr.retention.sweeper import sweep
from nvr.storage.s3 import S3Store


def main() -> None:
    args = json.loads(sys.argv[1])
    index = open_index(args["db"], clock=lambda: int(args["now_us"]))
    store = None
    if args.get("bucket"):
        store = S3Store(S3Config(endpoint_url=args["endpoint"], bucket=args["bucket"]))

    def hook(step: str) -> None:
        if step == args["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)

    sweep(
        index,
        Path(args["root"]),
        now_us=lambda: int(args["now_us"]),
        batch=int(args["batch"]),
        store=store,
        step_hook=hook,
        objects_per_request=int(args["objects_per_request"]),
    )
    sys.exit(3)  # the step never came: the test fails on the exit status


if __name__ == "__main__":
    main()
