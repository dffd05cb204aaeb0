"""The API's TLS server context, built from ``[http] tls_cert`` and ``tls_key``."""

import ssl

from nvr.config import HttpConfig
from nvr.errors import ConfigError


def server_ssl_context(http: HttpConfig) -> ssl.SSLContext | None:
    """An SSL context for the API listener, or None when no certificate is configured.

    TLS 1.2 is the minimum (``ssl.create_default_context`` defaults). Raises ConfigError
    when the certificate or key cannot be loaded (wrong format, key does not match).
    """
    if http.tls_cert is None or http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"http.tls_cert/tls_key: cannot load {http.tls_cert}: {exc}"
        ) from exc
    return context
