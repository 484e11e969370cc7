"""Rejection reason codes of DOMAIN.md with the advice the portal shows the applicant."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why an application was refused; every code carries a recommendation (``advice``)."""

    DATA_MISMATCH = "data_mismatch"
    MISSING_DOCUMENTS = "missing_documents"
    INVALID_SCAN = "invalid_scan"
    POLICY_INACTIVE = "policy_inactive"
    SNILS_LINKED_ELSEWHERE = "snils_linked_elsewhere"
    INSURER_CHANGE_LIMIT = "insurer_change_limit"
    REPRESENTATIVE_NOT_ALLOWED = "representative_not_allowed"
    NEWBORN_REQUIRES_MFC = "newborn_requires_mfc"
    NO_REPLY = "no_reply"

    @property
    def advice(self) -> str:
        return ADVICE[self]


ADVICE: dict[ReasonCode, str] = {
    ReasonCode.DATA_MISMATCH: (
        "ФИО, дата рождения или СНИЛС не совпадают с данными реестра. Проверьте данные "
        "по паспорту и СНИЛС, исправьте их и подайте заявление повторно."
    ),
    ReasonCode.MISSING_DOCUMENTS: (
        "Не хватает документов. Приложите недостающие документы и подайте заявление повторно."
    ),
    ReasonCode.INVALID_SCAN: (
        "Скан нечитаемый, в неверном формате или не соответствует данным. Загрузите чёткий "
        "файл PDF, JPG или PNG размером не более 5 МБ."
    ),
    ReasonCode.POLICY_INACTIVE: (
        "Полис приостановлен или аннулирован. Обратитесь в свою страховую медицинскую "
        "организацию для восстановления или переоформления полиса."
    ),
    ReasonCode.SNILS_LINKED_ELSEWHERE: (
        "СНИЛС ребёнка уже привязан к другой учётной записи. Обратитесь в Социальный фонд "
        "России (СФР) для уточнения сведений."
    ),
    ReasonCode.INSURER_CHANGE_LIMIT: (
        "Страховую компанию можно менять не чаще одного раза в календарный год, если не "
        "менялось место жительства. Подайте заявление в следующем году или приложите "
        "документ о смене места жительства."
    ),
    ReasonCode.REPRESENTATIVE_NOT_ALLOWED: (
        "Онлайн заявление подаёт только сам взрослый заявитель. Представителю нужно "
        "обратиться в МФЦ или офис страховой компании."
    ),
    ReasonCode.NEWBORN_REQUIRES_MFC: (
        "Полис для новорождённого оформляется в МФЦ или офисе страховой компании по "
        "свидетельству о рождении."
    ),
    ReasonCode.NO_REPLY: (
        "Запрошенные сведения не поступили в срок. Подайте заявление повторно с полным "
        "комплектом данных."
    ),
}
