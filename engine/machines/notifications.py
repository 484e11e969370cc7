"""The notifications a step may record, with the applicant-facing text in Russian.

The engine sends nothing itself: a rendered notification becomes an outbox row in the step's
transaction, and the embedding service delivers it (DOMAIN.md, "Notifications").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Template:
    audience: str
    text: str


TEMPLATES: dict[str, Template] = {
    "receipt": Template(
        "applicant", "Заявление «{title}» № {case_id} получено и ожидает обработки."
    ),
    "taken": Template("applicant", "Заявление № {case_id} принято в работу."),
    "info_requested": Template(
        "applicant",
        "По заявлению № {case_id} требуется уточнение: {comment}. "
        "Ответьте до {due} (местное время), иначе заявление будет отклонено.",
    ),
    "reminder": Template(
        "applicant",
        "Напоминание: по заявлению № {case_id} ждём уточнённые сведения до {due} "
        "(местное время). Без ответа заявление будет отклонено.",
    ),
    "verification_status": Template(
        "applicant", "Заявление № {case_id}: статус проверки — «{label}»."
    ),
    "approved": Template(
        "applicant",
        "Заявление № {case_id} одобрено. Электронный полис ОМС доступен для скачивания "
        "в личном кабинете.",
    ),
    "temporary_policy": Template(
        "applicant",
        "По заявлению № {case_id} оформлено временное свидетельство (временный полис); "
        "оно действует до выдачи полиса.",
    ),
    "in_production": Template(
        "applicant", "Полис по заявлению № {case_id} передан на изготовление (до 30 дней)."
    ),
    "ready_for_pickup": Template(
        "applicant",
        "Полис по заявлению № {case_id} готов к получению в выбранном пункте выдачи. "
        "Возьмите с собой паспорт.",
    ),
    "dispatched": Template("applicant", "Полис по заявлению № {case_id} отправлен почтой."),
    "issued": Template("applicant", "Полис по заявлению № {case_id} выдан."),
    "delivered": Template("applicant", "Полис по заявлению № {case_id} доставлен."),
    "payment_requested": Template(
        "applicant",
        "Для изготовления бумажного дубликата по заявлению № {case_id} оплатите пошлину.",
    ),
    "rejected": Template(
        "applicant",
        "Заявление № {case_id} отклонено. Причина: {reason}. {advice} "
        "Вы можете исправить данные и подать заявление повторно.",
    ),
    "withdrawn": Template("applicant", "Заявление № {case_id} отозвано по вашей просьбе."),
    "resubmitted": Template(
        "applicant", "Повторное заявление № {case_id} получено и ожидает обработки."
    ),
    "linked": Template(
        "applicant", "Полис ребёнка привязан к вашей учётной записи (заявление № {case_id})."
    ),
    "overdue": Template(
        "supervisors",
        "Заявление № {case_id} ({title}) просрочено: нарушен срок «{deadline}». "
        "Текущий статус — «{label}».",
    ),
    "check_escalated": Template(
        "operators",
        "Заявление № {case_id} ({title}): автоматическая проверка по реестрам не удалась "
        "после нескольких попыток — требуется ручная проверка оператором.",
    ),
    "escalated": Template(
        "support",
        "Заявление № {case_id} ({title}) слишком долго в автоматической проверке "
        "(«{deadline}»): требуется разбор специалистом поддержки.",
    ),
}


@dataclass(frozen=True)
class Notification:
    """A rendered notification: ``kind`` and ``audience`` for routing, ``text`` for people."""

    kind: str
    audience: str
    text: str
    payload: Mapping[str, Any]


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def render(kind: str, context: Mapping[str, Any]) -> Notification:
    """Fill a template; a value the step does not know renders as a dash, never as an error."""
    template = TEMPLATES[kind]
    values = _Blank({k: v for k, v in context.items() if v is not None})
    return Notification(kind, template.audience, template.text.format_map(values), dict(context))
