"""The embedded default: emulator plans and the demo configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config_load import settings_from_mapping
from pipeline.demo import EmulatorPlan, EmulatorUrls, demo_config, load_plan
from pipeline.emulators import FaultPlan
from pipeline.errors import ConfigError
from pipeline.targets.syncbatch.settings import SyncBatchSettings

URLS = EmulatorUrls(
    source="http://127.0.0.1:1/customer-users",
    syncbatch="http://127.0.0.1:2",
    emporix="http://127.0.0.1:3",
    norce="http://127.0.0.1:4",
)


def test_plan_file_sets_faults_per_emulator(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        '[man]\nenvelope = "array"\n[man.faults]\nerror_rate = 0.2\nseed = 4\n'
        "[syncbatch]\nitem_error_rate = 0.1\n"
    )
    plan = load_plan(str(path))
    assert plan.man.envelope == "array"
    assert plan.man.faults == FaultPlan(error_rate=0.2, seed=4)
    assert plan.syncbatch.item_error_rate == 0.1


@pytest.mark.parametrize(
    "text", ["[man]\nbogus = 1\n", "[man.faults]\nerror_rate = 2.0\n", "not toml ["]
)
def test_bad_plan_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="emulator plan"):
        load_plan(str(path))


def test_demo_config_fits_the_emulators_limits() -> None:
    plan = load_plan(None)
    settings = settings_from_mapping(demo_config(URLS, plan=plan, rate_per_second=None), {})
    assert settings.source.page_size <= plan.man.max_limit
    assert settings.targets.get(SyncBatchSettings) is not None
    assert settings.targets.get(SyncBatchSettings).rate_per_second is None
    small = EmulatorPlan(man=plan.man.__class__(max_limit=50))
    assert settings_from_mapping(demo_config(URLS, plan=small), {}).source.page_size == 50
