"""OAuth2 client credentials: one token per target, cached, shared by every worker, renewed
before it expires, and fetched by one worker at a time however many ask."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import anyio
import msgspec

from pipeline.config import Secret
from pipeline.errors import AuthError, HTTPStatusError, SinkError, TokenError, TransientHTTPError
from pipeline.http import HttpClient

__all__ = ["ClientCredentials", "TokenResponse"]

RENEW_SHARE = 0.1
"""Renew when less than this share of the token's lifetime is left..."""
RENEW_MARGIN = 60.0
"""...or less than this many seconds, whichever is smaller."""


class TokenResponse(msgspec.Struct):
    access_token: str
    expires_in: float = 3600.0
    token_type: str = "Bearer"


_decoder = msgspec.json.Decoder(TokenResponse)


class ClientCredentials:
    """Gets and caches a bearer token with the client-credentials grant.

    ``fetches`` counts calls to the token endpoint, so a test can prove a pass of any size
    asks once.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        target: str,
        token_url: str,
        client_id: Secret,
        client_secret: Secret,
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._http = http
        self._target = target
        self._url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id.reveal(),
            "client_secret": client_secret.reveal(),
            **({"scope": scope} if scope else {}),
            **(extra or {}),
        }
        self._lock = anyio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._failed: TokenError | None = None
        self.fetches = 0

    async def token(self) -> str:
        """A valid token, fetched when there is none or it is about to expire.

        Raises:
            AuthError: the token endpoint refused the credentials.
            TokenError: it gave no token after the retries (then every later call raises it
                at once: the target is stopped, and no worker waits through the retries again).
            SinkError: its answer is not a token.
            RedirectError, ThrottledError, ResponseTooLargeError: from the HTTP client; a
                redirect of the form is never followed.
        """
        if self._token is not None and anyio.current_time() < self._renew_at:
            return self._token
        async with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._token is None or anyio.current_time() >= self._renew_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the API said it expired) unless another worker already renewed it."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        body = urlencode(self._form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        started = anyio.current_time()
        try:
            response = await self._http.request("POST", self._url, body=body, headers=headers)
        except HTTPStatusError as exc:
            # 400 invalid_client / invalid_scope as much as 401: the credentials are wrong.
            raise AuthError("POST", exc.url, exc.status, "token request refused") from exc
        except TransientHTTPError as exc:
            self._failed = TokenError(self._target, self._url, str(exc))
            raise self._failed from exc
        self.fetches += 1
        try:
            answer = _decoder.decode(response.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise SinkError(self._target, f"token endpoint answered no token: {exc}") from exc
        lifetime = max(float(answer.expires_in), 0.0)
        self._token = answer.access_token
        self._renew_at = started + lifetime - min(RENEW_MARGIN, lifetime * RENEW_SHARE)
