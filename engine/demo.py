"""The demo: five weeks of a back office around the New Year, on a fresh database, in seconds.

``run_demo(url)`` opens realistic cases of all five application types and steps them as the
portal, operators and the registries would, on a :class:`~engine.testing.ManualClock` that
starts on Thursday 24 December 2026, 10:00 in Moscow and moves across weekends and the New Year
holidays (31 December 2026 – 10 January 2027 are non-working days in Russia), firing the timers
that fall due. Every decision is the engine's; this module only plays the people. It returns a
:class:`DemoReport` (timeline, cases, audit result) that the CLI renders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine import applications
from engine.api import CaseView, Engine
from engine.machines.log import ChainBreak
from engine.testing import InMemoryRegistries, ManualClock

MOSCOW = ZoneInfo("Europe/Moscow")
DEMO_START = datetime(2026, 12, 24, 10, 0, tzinfo=MOSCOW)
"""Thursday 24 December 2026, 10:00 in Moscow: two working days before the New Year break."""

GOSUSLUGI = "portal:gosuslugi"
MOS_RU = "portal:mos.ru"
MFC = "portal:mfc"
IVANOVA = "operator:ivanova"
PETROV = "operator:petrov"
FOMS = "system:foms"
PRODUCTION = "system:goznak"
POST = "system:pochta"


def snils(body: str) -> str:
    """A valid SNILS ``NNN-NNN-NNN CC`` for a nine-digit body (the check number computed)."""
    from engine.applications.fields import snils_check_number  # noqa: PLC0415 (see testing)

    return f"{body[:3]}-{body[3:6]}-{body[6:]} {snils_check_number(body):02d}"


@dataclass(frozen=True)
class TimelineRow:
    """One line of the demo's timeline: a logged step, or a note where the clock jumps."""

    at: datetime
    case_id: str | None = None
    case_type: str | None = None
    trigger: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    actor: str | None = None
    reason: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "case_id": self.case_id,
            "type": self.case_type,
            "trigger": self.trigger,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "actor": self.actor,
            "reason": self.reason,
            "note": self.note,
        }


@dataclass(frozen=True)
class DemoReport:
    """What the demo did: its database, timeline, cases (masked) and the audit's result."""

    url: str
    started_at: datetime
    finished_at: datetime
    timeline: tuple[TimelineRow, ...]
    cases: tuple[CaseView, ...]
    stories: Mapping[str, str]
    timers_fired: int
    broken: Mapping[str, ChainBreak] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "timers_fired": self.timers_fired,
            "audit_ok": not self.broken,
            "broken": {cid: str(brk) for cid, brk in self.broken.items()},
            "cases": [{**case.to_json(), "story": self.stories[case.id]} for case in self.cases],
            "timeline": [row.to_json() for row in self.timeline],
        }


def _person(
    type_: str,
    full_name: str,
    sex: str,
    birth_date: str,
    snils_body: str,
    email: str,
    **fields: Any,
) -> dict[str, Any]:
    data = applications.example_application(type_)
    applicant = data["applicant"]
    applicant.update(
        full_name=full_name,
        sex=sex,
        birth_date=birth_date,
        snils=snils(snils_body),
        email=email,
    )
    # A Russian passport is issued at 20 and replaced at 45: keep the example's consistent.
    day_month, year = birth_date[:6], int(birth_date[6:])
    issued = year + 45 if year + 45 <= DEMO_START.year else year + 20
    applicant["passport"] = {**applicant["passport"], "issue_date": f"{day_month}{issued}"}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def _scan(kind: str, file_name: str, size: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "file_name": file_name,
        "media_type": "application/pdf",
        "size": size,
        "sha256": hashlib.sha256(f"demo {kind} {file_name}".encode()).hexdigest(),
    }


class _Office:
    """The people of the demo: they open and step cases at given local times."""

    def __init__(self, engine: Engine, clock: ManualClock, registries: InMemoryRegistries) -> None:
        self.engine = engine
        self.clock = clock
        self.registries = registries
        self.notes: list[TimelineRow] = []
        self.stories: dict[str, str] = {}
        self.timers_fired = 0

    def at(self, day: int, month: int, hour: int, minute: int = 0) -> None:
        year = 2026 if month == 12 else 2027
        self.clock.set(datetime(year, month, day, hour, minute, tzinfo=MOSCOW))

    def jump(self, day: int, month: int, hour: int, why: str) -> None:
        """Move the clock a long way and let every timer due meanwhile fire."""
        before = self.clock.now()
        self.at(day, month, hour)
        self.notes.append(
            TimelineRow(at=before, note=f"{why}: clock moves to {local_time(self.clock.now())}")
        )
        self.timers_fired += self.engine.fire_due_timers().fired

    def run_timers(self) -> None:
        """Let the worker run now: due timers and registry checks fire."""
        self.timers_fired += self.engine.fire_due_timers().fired

    def open(self, story: str, type_: str, data: Mapping[str, Any], actor: str) -> str:
        case_id = self.engine.open_case(type_, data, actor).id
        self.stories[case_id] = story
        return case_id

    def fire(self, case_id: str, trigger: str, actor: str, **kwargs: Any) -> None:
        self.engine.fire(case_id, trigger, actor, **kwargs)


def local_time(at: datetime) -> str:
    """An instant as the demo prints it: weekday, date and time in Moscow."""
    return at.astimezone(MOSCOW).strftime("%a %d.%m.%Y %H:%M")


def _play(office: _Office) -> None:
    o = office
    # Thursday 24 December: applications arrive, operators take them, registries answer.
    o.at(24, 12, 10)
    a = o.open(
        "lost policy; clarification answered in time; issued",
        "restore",
        _person(
            "restore",
            "Смирнов Алексей Викторович",
            "male",
            "11.02.1979",
            "123456701",
            "a.smirnov@yandex.ru",
        ),
        GOSUSLUGI,
    )
    o.at(24, 12, 10, 5)
    child = applications.example_application("child_link")["child"]
    child.update(full_name="Кузнецов Михаил Денисович", snils=snils("156745302"))
    link = _person(
        "child_link",
        "Кузнецова Ольга Игоревна",
        "female",
        "02.09.1990",
        "139874503",
        "olga.kuz@mail.ru",
        child=child,
        parent_snils=snils("139874503"),
    )
    # the fake FOMS registry and Social Fund know the child and the active policy
    o.registries.add_application_person(link)
    c = o.open(
        "child's policy linked by the automatic check in minutes", "child_link", link, GOSUSLUGI
    )
    o.at(24, 12, 10, 6)
    o.fire(c, "take", FOMS)
    o.at(24, 12, 10, 14)
    o.run_timers()
    o.at(24, 12, 10, 20)
    b = o.open(
        "first plastic card: temporary policy at once, card made in 30 days, handed over",
        "new_issue",
        _person(
            "new_issue",
            "Волкова Анна Сергеевна",
            "female",
            "17.07.1995",
            "148203604",
            "anna.volkova@gmail.com",
        ),
        MOS_RU,
    )
    o.at(24, 12, 10, 30)
    d = o.open(
        "damaged policy; the applicant never answers: reminder, then rejected no_reply",
        "replacement",
        _person(
            "replacement",
            "Попов Дмитрий Андреевич",
            "male",
            "30.11.1984",
            "165432705",
            "d.popov@rambler.ru",
            reason="damage",
            new_insurer=None,
            attachments=[_scan("damaged_policy", "policy.pdf", 230_000)],
        ),
        GOSUSLUGI,
    )
    o.at(24, 12, 10, 40)
    e = o.open(
        "paper duplicate by post; production misses its 30 days (overdue), then delivered",
        "paper_duplicate",
        _person(
            "paper_duplicate",
            "Соколова Елена Павловна",
            "female",
            "05.05.1962",
            "171204306",
            "e.sokolova@mail.ru",
        ),
        GOSUSLUGI,
    )
    o.at(24, 12, 10, 50)
    f = o.open(
        "rejected for a typo in the name, resubmitted corrected, issued",
        "restore",
        _person(
            "restore",
            "Морозов Игорь Никалаевич",
            "male",
            "19.01.1971",
            "182345607",
            "morozov.i@yandex.ru",
        ),
        MFC,
    )
    o.at(24, 12, 11)
    o.fire(a, "take", IVANOVA)
    o.at(24, 12, 11, 10)
    o.fire(a, "request_info", IVANOVA, comment="Приложите скан утерянного полиса или справку")
    o.at(24, 12, 11, 30)
    o.fire(d, "take", PETROV)
    o.at(24, 12, 11, 40)
    o.fire(d, "request_info", PETROV, comment="Приложите скан повреждённого полиса")
    o.at(24, 12, 12)
    o.fire(b, "take", IVANOVA)
    o.at(24, 12, 12, 30)
    o.fire(b, "approve", IVANOVA, comment="временный полис выдан, карта заказана")
    o.at(24, 12, 13)
    o.fire(e, "take", PETROV)
    o.at(24, 12, 13, 10)
    o.fire(e, "approve", PETROV, comment="госпошлина оплачена")
    o.at(24, 12, 14)
    o.fire(f, "take", IVANOVA)
    o.at(24, 12, 14, 10)
    o.fire(
        f,
        "reject",
        IVANOVA,
        reason="data_mismatch",
        comment="отчество не совпадает с регистром ФОМС",
    )

    # Friday 25 December: one reply in time, one resubmission, decisions.
    o.at(25, 12, 9, 30)
    restore = applications.example_application("restore")
    scans = [*restore["attachments"], _scan("old_policy", "p.pdf", 412_000)]
    o.fire(a, "reply", GOSUSLUGI, data={"attachments": scans}, comment="скан приложен")
    o.at(25, 12, 10)
    o.fire(
        f,
        "resubmit",
        MFC,
        data={"applicant": {"full_name": "Морозов Игорь Николаевич"}},
        comment="отчество исправлено",
    )
    o.at(25, 12, 11)
    o.fire(a, "approve", IVANOVA)
    o.at(25, 12, 11, 5)
    o.fire(a, "issue_policy", FOMS)
    o.at(25, 12, 12)
    o.fire(f, "take", PETROV)
    o.at(25, 12, 12, 20)
    o.fire(f, "approve", PETROV)
    o.at(25, 12, 12, 25)
    o.fire(f, "issue_policy", FOMS)

    # Monday 28 December: an application nobody takes before the holidays.
    o.jump(28, 12, 10, "the weekend")
    o.open(
        "nobody takes it: decision target missed, then overdue across the holidays",
        "restore",
        _person(
            "restore",
            "Новиков Сергей Петрович",
            "male",
            "23.04.1988",
            "193456708",
            "s.novikov@list.ru",
        ),
        MFC,
    )
    o.jump(29, 12, 9, "overnight")
    o.jump(12, 1, 9, "New Year holidays (31.12–10.01 are non-working days)")
    o.jump(14, 1, 9, "two working days")
    o.jump(18, 1, 10, "the weekend")
    o.fire(b, "produced", PRODUCTION)
    o.at(20, 1, 15)
    o.fire(b, "hand_over", IVANOVA)
    o.jump(26, 1, 9, "30 calendar days of production (ending on a Saturday, so on Monday)")
    o.at(26, 1, 10)
    o.fire(e, "dispatch", POST)
    o.jump(29, 1, 12, "three days by post")
    o.fire(e, "deliver", POST)


def run_demo(url: str) -> DemoReport:
    """Play the demo on the (fresh) database at ``url`` and report what happened."""
    clock = ManualClock(DEMO_START)
    registries = InMemoryRegistries()
    with Engine(url, clock=clock, registries=registries.ports()) as engine:
        office = _Office(engine, clock, registries)
        _play(office)
        cases = tuple(engine.get_case(cid) for cid in office.stories)
        types = {case.id: case.type for case in cases}
        entries = [
            (
                (entry.at, 0, n),
                TimelineRow(
                    at=entry.at,
                    case_id=entry.case_id,
                    case_type=types.get(entry.case_id),
                    trigger=entry.trigger,
                    from_state=entry.from_state,
                    to_state=entry.to_state,
                    actor=entry.actor,
                    reason=entry.reason,
                ),
            )
            for n, entry in enumerate(engine.audit_log())
        ]
        # a note sorts after the steps of its own instant: it opens the jump that follows them
        notes = [((row.at, 1, n), row) for n, row in enumerate(office.notes)]
        timeline = tuple(row for _key, row in sorted(entries + notes, key=lambda kv: kv[0]))
        return DemoReport(
            url=url,
            started_at=DEMO_START,
            finished_at=clock.now(),
            timeline=timeline,
            cases=cases,
            stories=dict(office.stories),
            timers_fired=office.timers_fired,
            broken=engine.verify(),
        )


__all__ = ["DEMO_START", "DemoReport", "TimelineRow", "local_time", "run_demo", "snils"]
