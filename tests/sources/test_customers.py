"""The MAN client and source stage against the MAN emulator on loopback."""

from __future__ import annotations

from typing import Literal

import anyio
import msgspec
import pytest

from pipeline.emulators import Dataset, FaultPlan, ManEmulatorConfig, create_man_app, serve_app
from pipeline.emulators.man import MAN_LOG
from pipeline.errors import ConfigError, DecodeError
from pipeline.records import Page
from pipeline.sources.customers import CustomerSource
from tests.conftest import MAN_TOKEN
from tests.kit.feeds import source_settings

Envelope = Literal["object", "array"]


async def read_all(source: CustomerSource) -> list[Page]:
    send, receive = anyio.create_memory_object_stream[Page](2)
    pages: list[Page] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.stream, send)
            async with receive:
                async for page in receive:
                    pages.append(page)
    return pages


def ids(pages: list[Page]) -> list[str]:
    return [msgspec.json.decode(r)["customer_id"] for p in pages for r in p.records]


@pytest.mark.parametrize("envelope", ["object", "array"])
async def test_stream_reads_every_record_in_order_with_either_envelope(
    envelope: Envelope,
) -> None:
    dataset = Dataset(1_234, seed=1)
    config = ManEmulatorConfig(
        token=MAN_TOKEN, envelope=envelope, faults=FaultPlan(latency_jitter=0.005)
    )
    async with serve_app(create_man_app(dataset, config)) as url:
        source = CustomerSource(source_settings(url))
        pages = await read_all(source)
    assert ids(pages) == [dataset.customer_id(i) for i in range(1_234)]
    assert [p.offset for p in pages] == list(range(0, 1_234, 100))
    assert source.progress.records == 1_234


async def test_overlap_rereads_the_end_of_each_page() -> None:
    dataset = Dataset(250, seed=1)
    async with serve_app(create_man_app(dataset, ManEmulatorConfig(token=MAN_TOKEN))) as url:
        pages = await read_all(CustomerSource(source_settings(url, overlap=10)))
    # The re-read records are the ones the page before ended with: the source skips them.
    assert [p.offset for p in pages] == [0, 100, 190]
    assert ids(pages) == [dataset.customer_id(i) for i in range(250)]


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ("object", [0, 100, 200, 300]),  # total 300 reached, then one look past it
        ("array", [0, 100, 200, 300, 300, 301, 400]),  # an empty page, asked again, then past it
    ],
)
async def test_stream_ends_at_the_total_or_at_an_empty_page(
    envelope: Envelope, expected: list[int]
) -> None:
    dataset = Dataset(300, seed=1)
    app = create_man_app(dataset, ManEmulatorConfig(token=MAN_TOKEN, envelope=envelope))
    async with serve_app(app) as url:
        source = CustomerSource(source_settings(url, max_in_flight=1))
        pages = await read_all(source)
        offsets = [r.offset for r in app[MAN_LOG]]
    assert len(ids(pages)) == 300
    assert offsets == expected
    assert source.complete is True


async def test_stream_retries_faults_and_delivers_everything() -> None:
    dataset = Dataset(2_000, seed=2)
    faults = FaultPlan(seed=3, error_rate=0.2, throttle_rate=0.1, retry_after=0.01)
    config = ManEmulatorConfig(token=MAN_TOKEN, faults=faults)
    async with serve_app(create_man_app(dataset, config)) as url:
        source = CustomerSource(
            source_settings(url, retry={"initial_seconds": 0.001, "max_attempts": 20})
        )
        pages = await read_all(source)
    assert ids(pages) == [dataset.customer_id(i) for i in range(2_000)]
    assert source.http.stats.retries > 0
    assert source.http.stats.throttled > 0
    assert source.progress.error is None


async def test_stream_gives_up_naming_the_url_and_status() -> None:
    config = ManEmulatorConfig(token=MAN_TOKEN, faults=FaultPlan(fail_requests=tuple(range(1, 50))))
    async with serve_app(create_man_app(Dataset(500), config)) as url:
        source = CustomerSource(
            source_settings(url, retry={"max_attempts": 3, "initial_seconds": 0.001})
        )
        pages = await read_all(source)
    assert pages == []
    assert source.progress.error is not None
    assert f"{url}/customer-users" in source.progress.error
    assert "500" in source.progress.error


async def test_wrong_token_is_reported_as_401_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAN_TOKEN", "wrong-secret-value")
    async with serve_app(create_man_app(Dataset(10), ManEmulatorConfig(token=MAN_TOKEN))) as url:
        source = CustomerSource(source_settings(url))
        await read_all(source)
    assert source.progress.error is not None
    assert "401" in source.progress.error
    assert "wrong-secret-value" not in source.progress.error


async def test_client_id_header_pair_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAN_CLIENT_ID", "cid")
    monkeypatch.setenv("MAN_CLIENT_SECRET", "csecret")
    config = ManEmulatorConfig(token=None, client_id="cid", client_secret="csecret")
    async with serve_app(create_man_app(Dataset(150), config)) as url:
        settings = source_settings(
            url,
            token_env=None,
            client_id_env="MAN_CLIENT_ID",
            client_secret_env="MAN_CLIENT_SECRET",
        )
        pages = await read_all(CustomerSource(settings))
    assert len(ids(pages)) == 150


def test_missing_token_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAN_TOKEN")
    with pytest.raises(ConfigError, match=r"source\.token_env"):
        CustomerSource(source_settings("http://127.0.0.1:1"))


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"data": 5}', b"<html>", b'{"data": [1, 2', b"\xff"],
)
def test_page_that_cannot_be_read_is_a_decode_error(body: bytes) -> None:
    source = CustomerSource(source_settings("http://127.0.0.1:1"))
    with pytest.raises(DecodeError, match="customer-users"):
        source._records(body)
