"""Logging: the masking processor (table-driven), configure(), and no SNILS from a real step."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from engine import logs
from engine.api import Engine
from engine.applications import example_application
from engine.logs import configure, mask_event, processors
from engine.testing import ManualClock

SNILS = "112-233-445 95"
SNILS_ANYHOW = re.compile(r"112\D?233\D?445\D?95")
CASE_ID = "4d6f7cf7-7e49-435c-8de6-0ba4cc6c48b7"
HASH = "64e679436341e4ff3b6ef18cb5a2dacf7afd046c93545cb4bc77d645b627f451"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    was_configured = structlog.is_configured()
    saved = structlog.get_config()
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


MASKING: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "snils under its key",
        {"event": "step", "snils": SNILS},
        {"event": "step", "snils": "***-***-*** 95"},
    ),
    (
        "snils inside the event text",
        {"event": f"СНИЛС {SNILS} не совпадает"},
        {"event": "СНИЛС ***-***-*** 95 не совпадает"},
    ),
    (
        "snils as plain digits in a value",
        {"event": "lookup", "query": "snils=11223344595"},
        {"event": "lookup", "query": "snils=***-***-*** 95"},
    ),
    (
        "nested applicant data",
        {
            "event": "opened",
            "applicant": {"full_name": "Иванова Мария Петровна", "phone": "+7 912 345-67-89"},
        },
        {
            "event": "opened",
            "applicant": {"full_name": "И*** М*** П***", "phone": "+* *** ***-**-89"},
        },
    ),
    (
        "passport in free text",
        {"event": "x", "comment": "паспорт 4508 123456 выдан"},
        {"event": "x", "comment": "паспорт **** ****56 выдан"},
    ),
    (
        "e-mail in free text",
        {"event": "write to maria.ivanova@mail.ru"},
        {"event": "write to m***@mail.ru"},
    ),
    (
        "a list of values",
        {"event": "x", "items": [SNILS, "plain"]},
        {"event": "x", "items": ["***-***-*** 95", "plain"]},
    ),
    (
        "ids, hashes, numbers and states stay",
        {"event": "step", "case_id": CASE_ID, "hash": HASH, "version": 3, "to_state": "pending"},
        {"event": "step", "case_id": CASE_ID, "hash": HASH, "version": 3, "to_state": "pending"},
    ),
    ("nothing personal", {"event": "worker_start", "poll_seconds": 5.0}, None),
]


@pytest.mark.parametrize(
    ("given", "expected"), [(g, e) for _n, g, e in MASKING], ids=[n for n, _g, _e in MASKING]
)
def test_mask_event(given: dict[str, Any], expected: dict[str, Any] | None) -> None:
    event = dict(given)
    out = mask_event(None, "info", event)
    assert out is event  # a processor hands the same dict on
    assert dict(out) == (expected if expected is not None else given)


def test_mask_event_is_the_engines_processor() -> None:
    from engine import masking

    assert logs.mask_event is masking.mask_event


def test_the_chain_masks_right_before_rendering() -> None:
    for as_json, renderer in (
        (True, structlog.processors.JSONRenderer),
        (False, structlog.dev.ConsoleRenderer),
    ):
        chain = processors(json=as_json)
        assert isinstance(chain[-1], renderer)
        assert chain[-2] is mask_event


def test_configure_json_writes_masked_json_lines_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(json=True, level="INFO")
    structlog.get_logger().info("checked", snils=SNILS, case_id=CASE_ID)
    out, err = capsys.readouterr()
    assert out == ""
    line = json.loads(err)
    assert line["event"] == "checked"
    assert line["snils"] == "***-***-*** 95"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_configure_console_and_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure(json=False, level="warning")
    log = structlog.get_logger()
    log.info("hidden")
    log.warning("shown", snils=SNILS)
    out, err = capsys.readouterr()
    assert out == ""
    assert "hidden" not in err
    assert "shown" in err
    assert "***-***-*** 95" in err
    assert SNILS not in err


def test_configure_picks_json_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure()
    structlog.get_logger().info("auto")
    assert json.loads(capsys.readouterr().err)["event"] == "auto"


def test_configure_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="loud"):
        configure(level="loud")


def test_no_snils_from_a_real_engine_step_reaches_an_event(
    sqlite_url: str, clock: ManualClock
) -> None:
    data = example_application("restore")
    with Engine(sqlite_url, clock=clock) as engine, capture_logs(processors=[mask_event]) as got:
        case = engine.open_case("restore", data, "portal:gosuslugi", comment=f"СНИЛС {SNILS}")
        engine.fire(case.id, "take", "operator:ivanova")
        engine.fire(case.id, "request_info", "operator:ivanova", comment=f"проверьте {SNILS}")
        engine.fire(
            case.id, "reply", "portal:gosuslugi", data={"applicant": {"snils": "15674530283"}}
        )
        # a host that binds personal data to its own events is masked just the same
        structlog.get_logger().bind(applicant=data["applicant"]).info("received")
    steps = [e for e in got if e["event"] == "step"]
    assert [e["trigger"] for e in steps] == ["open", "take", "request_info", "reply"]
    assert all(e["case_id"] == case.id for e in steps)
    received = next(e for e in got if e["event"] == "received")
    assert received["applicant"]["snils"] == "***-***-*** 95"
    text = json.dumps(got, ensure_ascii=False, default=str)
    assert not SNILS_ANYHOW.search(text)
    assert "15674530283" not in text
    assert "Иванова" not in text


def test_without_the_processor_the_snils_would_leak() -> None:
    with capture_logs() as got:
        structlog.get_logger().info("received", snils=SNILS)
    assert got[0]["snils"] == SNILS
