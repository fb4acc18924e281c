"""The HTTP underneath the client: one requests session per registry, its pool, headers and URLs.

The session's adapter has a pool of ``pool_size`` connections (the concurrent HEADs of
:meth:`~workers.registry.client.RegistryClient.digests`), no retries of its own, and reads the
environment (proxies, CA bundle) once rather than at every call.
"""

from __future__ import annotations

import os
import urllib.parse

import requests
import requests.auth
import urllib3
from requests.adapters import HTTPAdapter

from workers.registry.errors import TimedOut


def new_session(base_url: str, pool_size: int, user_agent: str) -> requests.Session:
    """A session for the registry at ``base_url``: a pool of ``pool_size`` kept-alive connections, no retries."""
    session = requests.Session()
    adapter = RegistryAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    _environment_once(session, base_url)
    return session


def _environment_once(session: requests.Session, base_url: str) -> None:
    """Read the proxy and CA-bundle variables requests honours once, for this registry, instead of at
    every call (``trust_env`` costs a third of the client's CPU time on a thousand HEADs)."""
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


class RegistryAdapter(HTTPAdapter):
    """requests' adapter, plus a bare HEAD on its own pool (TLS set up by requests, as for every call)."""

    def head(
        self, url: str, headers: dict[str, str], timeout: float | tuple[float, float],
        verify: bool | str, cert: str | tuple[str, str] | None,
    ) -> tuple[int | None, str | None]:
        """(status, Docker-Content-Digest); (None, None) where the full path must say what went wrong."""
        request = requests.PreparedRequest()
        request.prepare_url(url, None)
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        try:
            pool = self.get_connection_with_tls_context(request, verify, None, cert)
            answer = pool.urlopen("HEAD", request.path_url, headers=headers, retries=False, redirect=False,
                                  timeout=urllib3.Timeout(connect=connect, read=read), preload_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise TimedOut() from None
        except (urllib3.exceptions.HTTPError, OSError):
            return None, None  # the full path fails the same way, and says why in the words of requests
        return answer.status, answer.headers.get("Docker-Content-Digest")


class HeaderAuth(requests.auth.AuthBase):
    """Sets the Authorization header (or none); as the request's ``auth`` it also keeps requests from
    reading ``~/.netrc`` for every call and putting credentials of its own in."""

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._value:
            request.headers["Authorization"] = self._value
        return request


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to the query it already has (an upload Location keeps its state there)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
