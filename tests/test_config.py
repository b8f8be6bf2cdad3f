"""Tests of the settings tree: strict TOML decoding, environment overrides and secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_type_hints

import msgspec
import pytest

from pipeline import registry
from pipeline.config import (
    DatabaseUrl,
    FlowSettings,
    MetricsSettings,
    RetrySettings,
    Secret,
    ServeSettings,
    Settings,
    SourceSettings,
    StateSettings,
    TargetsSettings,
    Url,
    secret,
)
from pipeline.config_load import listen_address, load_settings, settings_from_mapping
from pipeline.errors import ConfigError
from pipeline.targets.emporix.settings import EmporixSettings
from pipeline.targets.norce.settings import NorceSettings
from pipeline.targets.syncbatch.settings import SyncBatchSettings

# The [source], [flow], [state], [serve], [metrics] and [targets.syncbatch] parts of DESIGN §4.
DESIGN_SAMPLE = """\
[source]
url = "http://127.0.0.1:8001/customer-users" # the paged endpoint itself; limit and offset are added
page_size = 100
max_in_flight = 4            # page requests in flight
token_env = "MAN_TOKEN"      # optional: bearer token taken from this environment variable

[flow]
queue_size = 8               # batches buffered between two stages

[state]
path = "pipeline-state.sqlite3"

[serve]
interval_seconds = 900       # a pass starts this long after the previous one started
grace_seconds = 30           # on SIGTERM, how long in-flight work may take to finish

[metrics]
listen = "127.0.0.1:9108"    # /metrics, /healthz, /readyz (use 0.0.0.0 in a container)

[targets.syncbatch]
url = "http://127.0.0.1:8002"  # base URL; the pipeline posts to /sync/customers/batch
token_env = "SYNCBATCH_TOKEN"                 # optional bearer token
batch_size = 100
rate_per_second = 50
max_in_flight = 4
profile_url = "https://shop.example.com/users/{customer_id}"
account_ids = "customer_id"
customer_id_prefix = "C"
organisation_id_range = [1000, 1999]
"""

EXPECTED_SAMPLE = Settings(
    source=SourceSettings(
        url="http://127.0.0.1:8001/customer-users",
        page_size=100,
        max_in_flight=4,
        token_env="MAN_TOKEN",
    ),
    flow=FlowSettings(queue_size=8),
    state=StateSettings(path="pipeline-state.sqlite3"),
    serve=ServeSettings(interval_seconds=900.0, grace_seconds=30.0),
    metrics=MetricsSettings(listen="127.0.0.1:9108"),
    targets=TargetsSettings(
        sections={
            "syncbatch": SyncBatchSettings(
                url="http://127.0.0.1:8002",
                token_env="SYNCBATCH_TOKEN",
                batch_size=100,
                rate_per_second=50.0,
                max_in_flight=4,
                profile_url="https://shop.example.com/users/{customer_id}",
                account_ids="customer_id",
                customer_id_prefix="C",
                organisation_id_range=(1000, 1999),
            )
        }
    ),
)

MINIMAL: dict[str, Any] = {"source": {"url": "http://man/customer-users"}}
IDS: dict[str, Any] = {"account_ids": "customer_id", "organisation_id_range": [1, 1000]}
"""The sync-batch id keys a configuration must have."""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(data: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, environ={} if environ is None else environ)
    return info.value


# Loading --------------------------------------------------------------------------------


def test_load_settings_design_sample_gives_its_values(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DESIGN_SAMPLE), environ={})
    assert settings == EXPECTED_SAMPLE


def test_load_settings_design_sample_keeps_unset_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DESIGN_SAMPLE), environ={})
    assert settings.source.data_path == "data"
    assert settings.source.timeout_seconds == 30.0
    assert settings.source.client_id_env is None
    assert settings.source.retry == RetrySettings(
        max_attempts=8, initial_seconds=0.1, max_seconds=30.0
    )
    syncbatch = settings.targets.get(SyncBatchSettings)
    assert syncbatch is not None
    assert syncbatch.permissions == ()
    assert syncbatch.customer_type == "External"


def test_load_settings_design_sample_float_fields_are_floats(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DESIGN_SAMPLE), environ={})
    syncbatch = settings.targets.get(SyncBatchSettings)
    assert syncbatch is not None
    assert type(settings.serve.interval_seconds) is float
    assert type(syncbatch.rate_per_second) is float


def test_load_settings_minimal_file_gives_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\nurl = "http://man/customer-users"\n')
    assert load_settings(path, environ={}) == Settings(
        source=SourceSettings(url="http://man/customer-users")
    )


def test_load_settings_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.path == str(path)
    assert "cannot read configuration file" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "[source\nurl = 'x'\n",
        "[source]\nurl = \n",
        "[source]\nurl = 'a'\nurl = 'b'\n",
        "source = {url = 'x'\n",
    ],
    ids=["unclosed-table", "missing-value", "duplicate-key", "unclosed-inline-table"],
)
def test_load_settings_invalid_toml_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.path == str(path)
    assert "not valid TOML" in str(info.value)


def test_load_settings_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_bytes(b'[source]\nurl = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.path == str(path)


def test_load_settings_design_sample_bad_value_names_the_key(tmp_path: Path) -> None:
    text = DESIGN_SAMPLE.replace("batch_size = 100", "batch_size = 0")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert info.value.path == "targets.syncbatch.batch_size"


# Strictness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "key"),
    [
        ({"source": {"url": "http://man/u", "bogus": 1}}, "source.bogus", "bogus"),
        ({"source": {"url": "http://man/u", "retry": {"bogus": 1}}}, "source.retry.bogus", "bogus"),
        (
            {"source": {"url": "http://man/u"}, "flow": {"queue_sise": 2}},
            "flow.queue_sise",
            "queue_sise",
        ),
        (
            {
                "source": {"url": "http://man/u"},
                "targets": {"syncbatch": {"url": "http://x", "bogus": 1}},
            },
            "targets.syncbatch.bogus",
            "bogus",
        ),
        (
            {"source": {"url": "http://man/u"}, "targets": {"shopify": {"url": "http://x"}}},
            "targets.shopify",
            "shopify",
        ),
        ({"source": {"url": "http://man/u"}, "bogus": {}}, "bogus", "bogus"),
    ],
    ids=["source", "source-retry", "flow-typo", "syncbatch", "unknown-target", "top-level"],
)
def test_settings_unknown_key_names_section_and_key(
    data: dict[str, Any], path: str | None, key: str
) -> None:
    error = config_error(data)
    assert error.path == path
    if path == "targets.shopify":  # a target no one registered: the known ones are named
        assert str(error).endswith("no such target (known: syncbatch, emporix, norce)")
    else:
        assert str(error).endswith(f"Object contains unknown field `{key}`")


@pytest.mark.parametrize(
    ("data", "path", "detail"),
    [
        (
            {"source": {"url": "http://man/u", "page_size": 0}},
            "source.page_size",
            "Expected `int` >= 1",
        ),
        (
            {"source": {"url": "http://man/u", "page_size": -5}},
            "source.page_size",
            "Expected `int` >= 1",
        ),
        (
            {"source": {"url": "http://man/u", "page_size": "10"}},
            "source.page_size",
            "Expected `int`, got `str`",
        ),
        (
            {"source": {"url": "http://man/u", "page_size": 1.5}},
            "source.page_size",
            "Expected `int`, got `float`",
        ),
        (
            {"source": {"url": "http://man/u", "max_in_flight": 0}},
            "source.max_in_flight",
            "Expected `int` >= 1",
        ),
        (
            {"source": {"url": "http://man/u", "max_in_flight": -1}},
            "source.max_in_flight",
            "Expected `int` >= 1",
        ),
        ({"source": {"url": 5}}, "source.url", "Expected `str`, got `int`"),
        ({"source": "u"}, "source", "Expected `object`, got `str`"),
        (
            {"source": {"url": "http://man/u", "retry": {"max_seconds": 0}}},
            "source.retry.max_seconds",
            "Expected `float` > 0.0",
        ),
        (
            {"source": {"url": "http://man/u", "retry": {"initial_seconds": -0.1}}},
            "source.retry.initial_seconds",
            "Expected `float` >= 0.0",
        ),
        ({"source": {"url": "http://man/u"}, "flow": {"queue_size": 0}}, "flow.queue_size", ">= 1"),
        (
            {
                "source": {"url": "http://man/u"},
                "targets": {"syncbatch": {"url": "http://x", "max_in_flight": 0}},
            },
            "targets.syncbatch.max_in_flight",
            "Expected `int` >= 1",
        ),
        (
            {
                "source": {"url": "http://man/u"},
                "targets": {"syncbatch": {"url": "http://x", "batch_size": 1001}},
            },
            "targets.syncbatch.batch_size",
            "Expected `int` <= 1000",
        ),
        (
            {
                "source": {"url": "http://man/u"},
                "targets": {"syncbatch": {"url": "http://x", "rate_per_second": 0}},
            },
            "targets.syncbatch.rate_per_second",
            "Expected `float` >= 0.01",
        ),
        (
            {
                "source": {"url": "http://man/u"},
                "targets": {"syncbatch": {"url": "http://x", "customer_type": "Partner"}},
            },
            "targets.syncbatch.customer_type",
            "Invalid enum value 'Partner'",
        ),
        (
            {"source": {"url": "http://man/u"}, "targets": {"syncbatch": {"batch_size": 10}}},
            "targets.syncbatch.url",
            "Object missing required field `url`",
        ),
        (
            {"source": {"url": "u", "max_response_mb": 0}},
            "source.max_response_mb",
            "Expected `int` >= 1",
        ),
        (
            {"source": {"url": "u"}, "targets": {"norce": {"url": "x", "max_response_mb": 0.5}}},
            "targets.norce.max_response_mb",
            "Expected `int`, got `float`",
        ),
    ],
    ids=[
        "page-size-zero",
        "page-size-negative",
        "page-size-string",
        "page-size-float",
        "max-in-flight-zero",
        "max-in-flight-negative",
        "url-int",
        "section-not-table",
        "retry-max-zero",
        "retry-initial-negative",
        "queue-size-zero",
        "syncbatch-max-in-flight-zero",
        "syncbatch-batch-size-too-big",
        "syncbatch-rate-zero",
        "syncbatch-customer-type",
        "syncbatch-url-missing",
        "source-max-response-zero",
        "norce-max-response-float",
    ],
)
def test_settings_bad_value_names_its_path(data: dict[str, Any], path: str, detail: str) -> None:
    error = config_error(data)
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    assert detail in str(error)


def test_settings_missing_source_section_is_an_error() -> None:
    error = config_error({})
    assert error.path == "source"
    assert str(error) == "source: Object missing required field `source`"


def test_settings_error_chains_the_msgspec_error() -> None:
    error = config_error({"source": {"url": "http://man/u", "page_size": 0}})
    assert isinstance(error.__cause__, msgspec.ValidationError)


@pytest.mark.parametrize(
    ("key", "value"),
    [("page_size", 1), ("max_in_flight", 1), ("page_size", 10_000)],
)
def test_settings_positive_bounds_accepted(key: str, value: int) -> None:
    settings = settings_from_mapping({"source": {"url": "http://man/u", key: value}}, environ={})
    assert getattr(settings.source, key) == value


def test_settings_batch_size_upper_bound_accepted() -> None:
    data = {
        "source": {"url": "http://man/u"},
        "targets": {
            "syncbatch": {
                "url": "http://x",
                "profile_url": "https://shop.example.com/u/{customer_id}",
                **IDS,
                "batch_size": 1000,
            }
        },
    }
    settings = settings_from_mapping(data, environ={})
    syncbatch = settings.targets.get(SyncBatchSettings)
    assert syncbatch is not None
    assert syncbatch.batch_size == 1000


# Environment overrides ------------------------------------------------------------------


def test_env_override_page_size_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_SAMPLE)
    settings = load_settings(path, environ={"PIPELINE__SOURCE__PAGE_SIZE": "500"})
    source = msgspec.structs.replace(EXPECTED_SAMPLE.source, page_size=500)
    assert settings == msgspec.structs.replace(EXPECTED_SAMPLE, source=source)


@pytest.mark.parametrize(
    ("environ", "section", "key", "expected"),
    [
        ({"PIPELINE__SOURCE__PAGE_SIZE": "500"}, "source", "page_size", 500),
        ({"PIPELINE__SOURCE__URL": "http://other/users"}, "source", "url", "http://other/users"),
        (
            {"PIPELINE__SOURCE__URL": '"http://quoted/users"'},
            "source",
            "url",
            "http://quoted/users",
        ),
        ({"PIPELINE__SOURCE__DATA_PATH": "items"}, "source", "data_path", "items"),
        ({"PIPELINE__STATE__PATH": "/var/lib/state.db"}, "state", "path", "/var/lib/state.db"),
        ({"PIPELINE__SERVE__GRACE_SECONDS": "2.5"}, "serve", "grace_seconds", 2.5),
        ({"PIPELINE__FLOW__QUEUE_SIZE": "3"}, "flow", "queue_size", 3),
        ({"pipeline__source__page_size": "7"}, "source", "page_size", 100),
        ({"OTHER__SOURCE__PAGE_SIZE": "7"}, "source", "page_size", 100),
        ({"PIPELINE__": "7"}, "source", "page_size", 100),
    ],
    ids=[
        "int",
        "unparsable-is-text",
        "toml-string",
        "bare-word-is-text",
        "path-is-text",
        "float",
        "flow",
        "lowercase-prefix-ignored",
        "other-prefix-ignored",
        "empty-name-ignored",
    ],
)
def test_env_override_sets_value(
    environ: dict[str, str], section: str, key: str, expected: object
) -> None:
    settings = settings_from_mapping(MINIMAL, environ=environ)
    value = getattr(getattr(settings, section), key)
    assert value == expected
    assert type(value) is type(expected)


def test_env_override_nested_section() -> None:
    environ = {"PIPELINE__SOURCE__RETRY__MAX_ATTEMPTS": "3"}
    settings = settings_from_mapping(MINIMAL, environ=environ)
    assert settings.source.retry == RetrySettings(max_attempts=3)


def test_env_override_toml_array() -> None:
    data = {
        "source": {"url": "http://man/u"},
        "targets": {
            "syncbatch": {
                "url": "http://x",
                "profile_url": "https://shop.example.com/u/{customer_id}",
                **IDS,
            }
        },
    }
    environ = {"PIPELINE__TARGETS__SYNCBATCH__PERMISSIONS": '["CanBuy", "CanView"]'}
    settings = settings_from_mapping(data, environ=environ)
    syncbatch = settings.targets.get(SyncBatchSettings)
    assert syncbatch is not None
    assert syncbatch.permissions == ("CanBuy", "CanView")


def test_env_override_can_enable_a_target() -> None:
    environ = {
        "PIPELINE__TARGETS__SYNCBATCH__URL": "http://sb",
        "PIPELINE__TARGETS__SYNCBATCH__PROFILE_URL": "https://shop.example.com/users/{customer_id}",
        "PIPELINE__TARGETS__SYNCBATCH__ACCOUNT_IDS": "customer_id",
        "PIPELINE__TARGETS__SYNCBATCH__ORGANISATION_ID_RANGE": "[1, 1000]",
    }
    settings = settings_from_mapping(MINIMAL, environ=environ)
    assert settings.targets.get(SyncBatchSettings) == SyncBatchSettings(
        url="http://sb",
        profile_url="https://shop.example.com/users/{customer_id}",
        account_ids="customer_id",
        organisation_id_range=(1, 1000),
    )


def test_env_override_does_not_mutate_the_input() -> None:
    data = {"source": {"url": "http://man/u", "page_size": 10}}
    settings_from_mapping(data, environ={"PIPELINE__SOURCE__PAGE_SIZE": "20"})
    assert data == {"source": {"url": "http://man/u", "page_size": 10}}


@pytest.mark.parametrize(
    ("environ", "path", "detail"),
    [
        ({"PIPELINE__SOURCE__PAGE_SIZE": "many"}, "source.page_size", "got `str`"),
        ({"PIPELINE__SOURCE__PAGE_SIZE": "0"}, "source.page_size", "Expected `int` >= 1"),
        ({"PIPELINE__SOURCE__PAGE_SIZES": "5"}, "source.page_sizes", "unknown field `page_sizes`"),
        ({"PIPELINE__STATE__PATH": "12"}, "state.path", "Expected `str`, got `int`"),
    ],
    ids=["not-a-number", "zero", "unknown-key", "toml-int-for-text"],
)
def test_env_override_bad_value_names_its_path(
    environ: dict[str, str], path: str, detail: str
) -> None:
    error = config_error(MINIMAL, environ)
    assert error.path == path
    assert detail in str(error)


def test_env_override_below_a_value_is_an_error() -> None:
    error = config_error(MINIMAL, {"PIPELINE__SOURCE__URL__HOST": "x"})
    assert str(error) == "PIPELINE__SOURCE__URL__HOST overrides a value that is not a section"


def test_env_override_default_reads_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE__SOURCE__PAGE_SIZE", "250")
    assert settings_from_mapping(MINIMAL).source.page_size == 250


# Secrets --------------------------------------------------------------------------------


def test_secret_returns_hidden_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PIPELINE_SECRET", "s3cr3t-value")
    value = secret("TEST_PIPELINE_SECRET", key="source.token_env")
    assert isinstance(value, Secret)
    assert value.reveal() == "s3cr3t-value"
    assert repr(value) == "Secret('***')"
    assert str(value) == "Secret('***')"
    assert f"{value}" == "Secret('***')"
    assert "s3cr3t" not in repr([value])


def test_secret_none_when_no_variable_named() -> None:
    assert secret(None, key="source.token_env") is None


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_secret_unset_variable_names_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("TEST_PIPELINE_SECRET", raising=False)
    else:
        monkeypatch.setenv("TEST_PIPELINE_SECRET", value)
    with pytest.raises(ConfigError) as info:
        secret("TEST_PIPELINE_SECRET", key="targets.syncbatch.token_env")
    assert info.value.path == "targets.syncbatch.token_env"
    assert str(info.value) == (
        "targets.syncbatch.token_env: environment variable TEST_PIPELINE_SECRET is not set"
    )


@pytest.mark.parametrize(
    ("value", "kept"),
    [("tok\n", "tok"), ("tok\r\n", "tok"), (" tok with spaces ", " tok with spaces ")],
    ids=["newline", "crlf", "spaces"],
)
def test_secret_from_a_file_loses_its_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, value: str, kept: str
) -> None:
    monkeypatch.setenv("TEST_PIPELINE_SECRET", value)
    found = secret("TEST_PIPELINE_SECRET", key="source.token_env")
    assert found is not None and found.reveal() == kept


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (" ", "is blank"),
        ("\n", "is blank"),
        (" \t\r\n", "is blank"),
        ("s3cret\n\n", "holds a control character"),
        ("s3cret\nline", "holds a control character"),
        ("s3\tcret", "holds a control character"),
        ("s3cret\x7f", "holds a control character"),
        ("s3c\u0085ret", "holds a control character"),  # NEL, a C1 control
        ("s3c\x9bret", "holds a control character"),  # CSI
        ("s3c\u2028ret", "holds a control character"),  # a line separator
    ],
)
def test_secret_that_cannot_be_sent_is_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("TEST_PIPELINE_SECRET", value)
    with pytest.raises(ConfigError) as info:
        secret("TEST_PIPELINE_SECRET", key="targets.norce.client_secret_env")
    assert info.value.path == "targets.norce.client_secret_env"
    assert f"environment variable TEST_PIPELINE_SECRET {problem}" in str(info.value)
    assert "s3cret" not in str(info.value)


# Targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (TargetsSettings(), []),
        (
            TargetsSettings(
                sections={
                    "syncbatch": SyncBatchSettings(
                        url="http://x",
                        profile_url="https://shop.example.com/users/{customer_id}",
                        account_ids="customer_id",
                        organisation_id_range=(1, 1000),
                    )
                }
            ),
            ["syncbatch"],
        ),
    ],
    ids=["default", "syncbatch"],
)
def test_targets_enabled_lists_present_sections(
    targets: TargetsSettings, expected: list[str]
) -> None:
    assert targets.enabled() == expected


def test_targets_enabled_from_design_sample(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, DESIGN_SAMPLE), environ={})
    assert settings.targets.enabled() == ["syncbatch"]


def test_targets_enabled_empty_without_targets_section() -> None:
    assert settings_from_mapping(MINIMAL, environ={}).targets.enabled() == []


def test_deactivation_without_overlap_is_refused_naming_the_key() -> None:
    data: dict[str, Any] = {
        "source": {"url": "http://127.0.0.1:1/c", "overlap": 0},
        "targets": {
            "syncbatch": {
                "url": "http://127.0.0.1:2",
                "profile_url": "https://shop.example.com/u/{customer_id}",
                **IDS,
                "deactivate_missing": True,
            },
        },
    }
    with pytest.raises(ConfigError, match=r"^source\.overlap: must be at least 1 while targets"):
        settings_from_mapping(data, environ={})
    data["source"]["overlap"] = 1
    assert settings_from_mapping(data, environ={}).source.overlap == 1


def test_a_sync_batch_target_without_a_profile_url_is_refused_naming_the_key() -> None:
    data = {
        "source": {"url": "http://127.0.0.1:1/c"},
        "targets": {"syncbatch": {"url": "http://x"}},
    }
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, environ={})
    assert info.value.path == "targets.syncbatch.profile_url"


@pytest.mark.parametrize("option", ["create_companies", "accounts"])
def test_norce_companies_or_accounts_without_application_key_are_refused(option: str) -> None:
    norce = {
        "url": "http://127.0.0.1:3",
        "application_id": 1,
        "account_id": 2,
        "scope": "stage",
        "client_id_env": "A",
        "client_secret_env": "B",
        option: True,
    }
    data: dict[str, Any] = {"source": {"url": "http://127.0.0.1:1/c"}, "targets": {"norce": norce}}
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, environ={})
    assert info.value.path == "targets.norce.application_key"
    norce["application_key"] = "   "  # blank is no key
    with pytest.raises(ConfigError) as blank:
        settings_from_mapping(data, environ={})
    assert blank.value.path == "targets.norce.application_key"
    norce["application_key"] = "app-key"
    assert settings_from_mapping(data, environ={}).targets.get(NorceSettings) is not None


def _emporix(**extra: Any) -> dict[str, Any]:
    emporix = {
        "url": "https://api.emporix.io",
        "tenant": "demo",
        "client_id_env": "A",
        "client_secret_env": "B",
        **extra,
    }
    return {"source": {"url": "http://127.0.0.1:1/c"}, "targets": {"emporix": emporix}}


def test_emporix_mixins_are_off_by_default_and_need_no_schema_url() -> None:
    emporix = settings_from_mapping(_emporix(), environ={}).targets.get(EmporixSettings)
    assert emporix is not None
    assert (emporix.mixins, emporix.mixin_schema_url, emporix.adopt_existing) == (
        False,
        None,
        False,
    )


@pytest.mark.parametrize(
    "url", [None, "", "http://schemas.man.example/c.json", "schemas.man.example/c.json", "https://"]
)
def test_emporix_mixins_need_an_https_schema_url(url: str | None) -> None:
    extra: dict[str, Any] = {"mixins": True}
    if url is not None:
        extra["mixin_schema_url"] = url
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(_emporix(**extra), environ={})
    assert info.value.path == "targets.emporix.mixin_schema_url"


def test_emporix_mixins_with_an_https_schema_url_load() -> None:
    data = _emporix(mixins=True, mixin_schema_url="https://schemas.man.example/c.json")
    emporix = settings_from_mapping(data, environ={}).targets.get(EmporixSettings)
    assert emporix is not None and emporix.mixins


@pytest.mark.parametrize(
    "profile_url",
    ["", "https://shop.example.com/users", "users/{customer_id}", "ftp://x/{customer_id}"],
)
def test_a_profile_url_that_cannot_place_the_customer_is_refused(profile_url: str) -> None:
    data = {
        "source": {"url": "http://127.0.0.1:1/c"},
        "targets": {"syncbatch": {"url": "http://x", "profile_url": profile_url, **IDS}},
    }
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, environ={})
    assert info.value.path == "targets.syncbatch.profile_url"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("source", "timeout_seconds", float("inf")),
        ("serve", "interval_seconds", 1e300),
        ("serve", "grace_seconds", float("inf")),
    ],
)
def test_an_endless_duration_is_refused_naming_the_key(
    section: str, key: str, value: float
) -> None:
    data: dict[str, Any] = {"source": {"url": "http://127.0.0.1:1/c"}}
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, environ={})
    assert info.value.path == f"{section}.{key}"


# Sync-batch ids (issue 11) ------------------------------------------------------------------

SB_BASE: dict[str, Any] = {
    "url": "http://x",
    "profile_url": "https://shop.example.com/u/{customer_id}",
}


@pytest.mark.parametrize(
    ("keys", "path", "message"),
    [
        ({}, "targets.syncbatch.account_ids", "missing required field"),
        ({"account_ids": "count"}, "targets.syncbatch.account_ids", "Invalid enum value 'count'"),
        (
            {"account_ids": "range", "organisation_id_range": [1, 9]},
            "targets.syncbatch.account_id_range",
            'is required with account_ids = "range"',
        ),
        (
            {"account_ids": "range", "account_id_range": [9, 1], "organisation_id_range": [1, 9]},
            "targets.syncbatch.account_id_range",
            "first <= last",
        ),
        (
            {"account_ids": "range", "account_id_range": [0, 9], "organisation_id_range": [1, 9]},
            "targets.syncbatch.account_id_range[0]",
            ">= 1",
        ),
        (
            {
                "account_ids": "range",
                "account_id_range": [1, 2147483648],
                "organisation_id_range": [1, 9],
            },
            "targets.syncbatch.account_id_range[1]",
            "<= 2147483647",
        ),
        (
            {
                "account_ids": "range",
                "account_id_range": [1, 9],
                "customer_id_prefix": "C",
                "organisation_id_range": [1, 9],
            },
            "targets.syncbatch.customer_id_prefix",
            'applies to account_ids = "customer_id" only',
        ),
        (
            {
                "account_ids": "customer_id",
                "account_id_range": [1, 9],
                "organisation_id_range": [1, 9],
            },
            "targets.syncbatch.account_id_range",
            'applies to account_ids = "range" only',
        ),
        (
            {"account_ids": "customer_id"},
            "targets.syncbatch.organisation_ids",
            "ids are never counted from 1",
        ),
        (
            {"account_ids": "customer_id", "organisation_ids": {"Retail": 3, "Online": 3}},
            "targets.syncbatch.organisation_ids",
            "'Retail' and 'Online' have the same id 3",
        ),
        (
            {
                "account_ids": "customer_id",
                "organisation_ids": {"Retail": 3},
                "organisation_id_range": [1, 9],
            },
            "targets.syncbatch.organisation_ids",
            "id 3 of 'Retail' lies in organisation_id_range",
        ),
        (
            {"account_ids": "customer_id", "organisation_ids": {"Retail": 0}},
            "targets.syncbatch.organisation_ids.Retail",
            "must be an id within 1..2147483647, got 0",
        ),
    ],
)
def test_sync_batch_ids_are_refused_naming_the_key(
    keys: dict[str, Any], path: str, message: str
) -> None:
    data = {"source": {"url": "http://man"}, "targets": {"syncbatch": {**SB_BASE, **keys}}}
    error = config_error(data)
    assert error.path == path
    assert message in str(error)


def test_sync_batch_ids_from_the_customer_id_or_a_range_load() -> None:
    rule = {"account_ids": "customer_id", "customer_id_prefix": "C-", "account_id_offset": 5}
    ranged = {"account_ids": "range", "account_id_range": [10, 19]}
    orgs = {"organisation_ids": {"Retail": 1}, "organisation_id_range": [2, 9]}
    for keys in (rule, ranged):
        data = {
            "source": {"url": "http://man"},
            "targets": {"syncbatch": {**SB_BASE, **keys, **orgs}},
        }
        syncbatch = settings_from_mapping(data, environ={}).targets.get(SyncBatchSettings)
        assert syncbatch is not None
        assert syncbatch.organisation_ids == {"Retail": 1}
        assert syncbatch.organisation_id_range == (2, 9)
    assert syncbatch is not None and syncbatch.account_id_range == (10, 19)


def test_a_blank_norce_company_code_is_refused_naming_the_key() -> None:
    norce = {
        "url": "http://n",
        "application_id": 1,
        "account_id": 1,
        "scope": "stage",
        "client_id_env": "A",
        "client_secret_env": "B",
        "company_codes": {"Retail": " "},
    }
    error = config_error({"source": {"url": "http://man"}, "targets": {"norce": norce}})
    assert error.path == "targets.norce.company_codes.Retail"
    assert "must not be blank" in str(error)


# URLs, the metrics address ----------------------------------------------------------------


def every_url() -> dict[str, Any]:
    """A configuration that sets every URL key there is, each to a good value."""
    secrets = {"client_id_env": "A", "client_secret_env": "B"}
    return {
        "source": {"url": "https://man.example/api/v1/customer-users?x=1"},
        "targets": {
            "syncbatch": {
                "url": "http://[::1]:8002/api",
                "profile_url": "https://shop.example.com/users/{customer_id}",
                **IDS,
            },
            "emporix": {
                "url": "https://api.emporix.io/",
                "tenant": "demo",
                "token_url": "https://auth.example/oauth/token",
                "mixins": True,
                "mixin_schema_url": "https://schemas.man.example/c.json",
                **secrets,
            },
            "norce": {
                "url": "https://demo.api-se.norce.tech",
                "token_url": "https://demo.api-se.norce.tech/identity/1.0/connect/token",
                "application_id": 1,
                "account_id": 2,
                "scope": "stage",
                **secrets,
            },
        },
    }


def with_key(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    *sections, name = key.split(".")
    node = data
    for section in sections:
        node = node[section]
    node[name] = value
    return data


URL_KEYS = [
    "source.url",
    "targets.syncbatch.url",
    "targets.syncbatch.profile_url",
    "targets.emporix.url",
    "targets.emporix.token_url",
    "targets.emporix.mixin_schema_url",
    "targets.norce.url",
    "targets.norce.token_url",
]


def test_every_url_key_is_set_by_the_sample_and_typed_url() -> None:
    def url_keys(cls: type, path: str) -> list[str]:
        keys = []
        for name, hint in get_type_hints(cls, include_extras=True).items():
            inner = [a for a in get_args(hint) if isinstance(a, type)] or [hint]
            if isinstance(inner[0], type) and issubclass(inner[0], msgspec.Struct):
                keys += url_keys(inner[0], f"{path}{name}.")
            elif name.endswith("url") and hint != DatabaseUrl | None:  # a rule of its own
                assert hint in (Url, Url | None), f"{path}{name} is not typed Url"
                keys.append(f"{path}{name}")
        return keys

    keys = url_keys(Settings, "")
    for spec in registry.targets():
        keys += url_keys(spec.settings, f"targets.{spec.name}.")
    assert sorted(keys) == sorted(URL_KEYS)
    assert settings_from_mapping(every_url(), environ={}).targets.get(NorceSettings) is not None


@pytest.mark.parametrize("key", URL_KEYS)
@pytest.mark.parametrize(
    "url",
    [
        "https://man-user:s3cret@host.example/x",
        "https://s3cret@host.example/x",
        "host.example/x",
        "host.example:8080/x",
        "//host.example/x",
        "ftp://host.example/x",
        "https://",
        "https://:8080/x",
        "https://host.example:65536/x",
        "https://host.example:0/x",
        "https://host.example:port/x",
        "https://[::1/x",
        "https://host.example/x y",
        "https://host.example/x\n",
        "",
    ],
)
def test_a_url_that_cannot_work_is_refused_naming_the_key(key: str, url: str) -> None:
    error = config_error(with_key(every_url(), key, url))
    assert error.path == key
    assert "s3cret" not in str(error)


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("targets.syncbatch.url", "http://sb.example/sync/customers/batch"),
        ("targets.syncbatch.url", "http://sb.example/api/sync/customers/"),
        ("targets.emporix.url", "https://api.emporix.io/customer/demo/customers"),
        ("targets.emporix.url", "https://api.emporix.io/customer/demo"),
        ("targets.emporix.url", "https://api.emporix.io/oauth/token"),
        ("targets.norce.url", "https://demo.api-se.norce.tech/commerce/connect/4.0"),
        ("targets.norce.url", "https://demo.api-se.norce.tech/commerce/connect/4.0/Customer"),
        ("targets.norce.url", "https://demo.api-se.norce.tech/identity/1.0/connect/token"),
    ],
)
def test_a_target_url_holding_its_endpoint_path_is_refused_naming_the_key(
    key: str, url: str
) -> None:
    error = config_error(with_key(every_url(), key, url))
    assert error.path == key
    assert "base URL" in str(error)


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("targets.syncbatch.url", "http://sb.example/sync"),
        ("targets.syncbatch.url", "http://sb.example/api/"),
        ("targets.emporix.url", "https://gateway.example/emporix"),
        ("targets.norce.url", "https://demo.api-se.norce.tech/"),
    ],
)
def test_a_target_base_url_with_a_prefix_of_its_own_loads(key: str, url: str) -> None:
    settings_from_mapping(with_key(every_url(), key, url), environ={})


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":9108", ("", 9108)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:9108", ("::1", 9108)),
    ],
)
def test_metrics_listen_is_host_and_port(listen: str, address: tuple[str, int]) -> None:
    assert listen_address(listen) == address
    data = {**MINIMAL, "metrics": {"listen": listen}}
    assert settings_from_mapping(data, environ={}).metrics.listen == listen


@pytest.mark.parametrize(
    "listen",
    [
        "9108",
        "localhost",
        "localhost:",
        "localhost:65536",
        "localhost:-1",
        "localhost:http",
        "localhost:\uff19\uff11\uff10\uff18",  # int() reads these digits
        "http://0.0.0.0:9108",
        "::1:9108",
        "[::1:9108",
        "local host:9108",
        "",
    ],
)
def test_metrics_listen_that_cannot_work_is_refused_naming_the_key(listen: str) -> None:
    error = config_error({**MINIMAL, "metrics": {"listen": listen}})
    assert error.path == "metrics.listen"


@pytest.mark.parametrize(
    ("target", "key", "value"),
    [
        ("norce", "rate_per_second", 1e-300),
        ("emporix", "rate_per_second", 0.001),
        ("norce", "scope", ""),
        ("norce", "scope", "st\nage"),
    ],
)
def test_a_rate_too_small_to_be_a_limit_and_a_blank_scope_are_refused(
    target: str, key: str, value: Any
) -> None:
    data = every_url()
    data["targets"][target][key] = value
    assert config_error(data).path == f"targets.{target}.{key}"


@pytest.mark.parametrize(
    ("state", "key", "said"),
    [
        ({"url": "postgresql://u:pw@h/db"}, "state.url", "must not hold a password"),
        (
            {"url": "postgresql://u@h/db?sslmode=require&Password=pw"},
            "state.url",
            "password option",
        ),
        ({"url": "mysql://u@h/db"}, "state.url", "must be postgresql://"),
        ({"url": "postgresql://u@h"}, "state.url", "must name a database"),
        ({"path": "postgresql://u@h/db"}, "state.path", "a database URL goes in state.url"),
    ],
)
def test_the_state_url_and_path_are_checked(state: dict[str, str], key: str, said: str) -> None:
    error = config_error({**MINIMAL, "state": state})
    assert error.path == key and said in str(error)
    assert "pw" not in str(error).replace("password", "")
