"""``python -m nvr.evidence PACKAGE [--key PEM]``: the offline verifier on its own.

Same as ``nvr verify``, without loading the rest of the ``nvr`` command line.
"""

from nvr.evidence.commands import verify_command

verify_command()
