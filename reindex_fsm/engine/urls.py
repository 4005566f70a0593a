"""Engine URLs and credentials: parse them, and keep the secrets out of every text.

An engine URL is ``[scheme://][user:password@]host[:port][/prefix]``. The credentials
come from the URL or from explicit values (the ``--username``/``--password``/``--api-key``
flags or their environment variables, resolved by the caller), the explicit ones
winning. What is shown to people and stored with a run is the URL without them
(:attr:`ClientConfig.url`, :func:`redact_url`); any text that may carry a secret (an
engine's or a client's message) goes through :meth:`ClientConfig.redact` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import UsageError

__all__ = ["ClientConfig", "parse_engine_url", "redact_url"]

# A secret shorter than this is not scrubbed from messages: it would mangle every one.
_SHORTEST_SCRUBBED = 4


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part (kept as given otherwise).

    Works on anything, even an unparsable URL, so it is safe to use in error messages:
    everything up to the last ``@`` after the scheme is dropped.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.rfind("@")
    if at == -1:
        return url
    return f"{scheme}{sep}{rest[at + 1 :]}"


@dataclass(frozen=True)
class ClientConfig:
    """Everything an adapter needs to build its client. Secrets are kept out of repr."""

    url: str  # without credentials, as shown to people: scheme://host[:port][/prefix]
    node_url: str  # the same with an explicit port, for the client
    scheme: str
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30
    max_retries: int = 3

    @property
    def tls_options(self) -> dict[str, Any]:
        """TLS keyword arguments (same names in both clients); none for plain http."""
        if self.scheme != "https":
            return {}
        options: dict[str, Any] = {"verify_certs": self.verify_certs}
        if self.ca_certs:
            options["ca_certs"] = self.ca_certs
        if not self.verify_certs:
            options["ssl_show_warn"] = False  # the operator asked for it
        return options

    def secrets(self) -> list[str]:
        """The password and API key, as given and percent-encoded, longest first."""
        given = [self.api_key, *(self.basic_auth or ())[1:]]
        found = {
            form
            for value in given
            if value
            for form in (value, quote(value, safe=""))
            if len(form) >= _SHORTEST_SCRUBBED
        }
        return sorted(found, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret of this configuration replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def parse_engine_url(
    url: str,
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout: float = 30,
    max_retries: int = 3,
) -> ClientConfig:
    """Split ``[scheme://][user:password@]host[:port][/prefix]`` into a :class:`ClientConfig`.

    No scheme means ``http``; no port means the scheme's default (80/443). Credentials in
    the URL are percent-decoded and used for basic auth unless ``username``/``password``
    are given explicitly. Raises :class:`UsageError` (never echoing the URL's secrets).
    """
    raw = url.strip()
    if "://" not in raw:
        raw = f"http://{raw}"
    bad = UsageError(
        f"invalid engine URL {redact_url(raw)!r}",
        hint="give scheme://[user:password@]host:port, with special characters of the "
        "password percent-encoded",
    )
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    host_port = parts.netloc.rpartition("@")[2]
    prefix = parts.path.rstrip("/")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    node_url = f"{parts.scheme}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"

    user = username if username is not None else _unquote_or_none(parts.username)
    secret = password if password is not None else _unquote_or_none(parts.password)
    basic_auth = (user, secret or "") if user else None
    if api_key and basic_auth:
        raise UsageError(
            "both an API key and a username/password were given for the engine",
            hint="use one of them",
        )
    return ClientConfig(
        url=f"{parts.scheme}://{host_port}{prefix}",
        node_url=node_url + prefix,
        scheme=parts.scheme,
        basic_auth=basic_auth,
        api_key=api_key or None,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        request_timeout=request_timeout,
        max_retries=max_retries,
    )


def _unquote_or_none(value: str | None) -> str | None:
    return unquote(value) if value is not None else None
