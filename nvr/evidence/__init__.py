"""Evidence: signed export packages, their offline verification, and tamper-evident chains.

Everything in this package except ``nvr.evidence.archive`` runs without a server or a
database, so an auditor can verify a package with nothing but ``nvr verify``.
"""
