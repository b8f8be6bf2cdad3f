"""URLs as they are shown: never a password, a query string or a fragment."""

from __future__ import annotations

import pytest

from pipeline.errors import AuthError, DecodeError, HTTPStatusError, TLSError, TransientHTTPError
from pipeline.urls import safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://host/x", "http://host/x"),
        ("http://user:s3cret@host:8080/x", "http://***@host:8080/x"),
        ("https://user@host", "https://***@host"),
        ("http://a:b@c@host/x", "http://***@host/x"),
        ("http://host/x?token=s3cret&a=1", "http://host/x"),
        ("http://host/x#s3cret", "http://host/x"),
        ("http://user:s3cret@host?k=s3cret", "http://***@host"),
        ("http://host/users/a@b.example", "http://host/users/a@b.example"),
        ("http://[::1]:80/x", "http://[::1]:80/x"),
        ("not a url?s3cret", "not a url"),
        ("", ""),
    ],
)
def test_safe_url_masks_credentials_and_drops_query_and_fragment(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert safe_url(shown) == shown


URL = "https://user:s3cret@host/customers?token=s3cret"


@pytest.mark.parametrize(
    "error",
    [
        DecodeError(URL, "not JSON"),
        TLSError(URL, "SSLCertVerificationError"),
        HTTPStatusError("GET", URL, 404),
        AuthError("GET", URL, 401, "token refused"),
        TransientHTTPError("GET", URL, status=503),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_never_show_the_credentials_or_query_of_their_url(error: Exception) -> None:
    assert "s3cret" not in str(error)
    assert "https://***@host/customers" in str(error)
    assert "s3cret" not in getattr(error, "url", "")
