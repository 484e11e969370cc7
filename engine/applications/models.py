"""One pydantic model per OMS application type, with the conditional rules of DOMAIN.md.

Field-level checks live in the field types (``fields.py``). The rules that relate several
fields (a plastic card needs a photo, an online application is filed by an adult without a
representative, ...) are class methods ``rules(facts, today)`` over :class:`Facts`: the
top-level values that validated. A model runs them after its fields validated; the public
``validate_application`` also runs them over the fields that did validate when others failed,
so one answer lists every failure. A rule whose inputs are unknown is skipped rather than
guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from typing import Any, ClassVar, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails

from engine.applications.fields import (
    DEFAULT_ZONE,
    Address,
    Attachment,
    BirthDate,
    DateValue,
    Email,
    Enp,
    FullName,
    InsurerCode,
    IssueDate,
    Money,
    Passport,
    PersonInn,
    Phone,
    PolicyFormat,
    PolicyNumber,
    RegionZone,
    Sex,
    ShortText,
    Snils,
    age_on,
    context_today,
    detect_policy_format,
    init_error,
    raise_errors,
)
from engine.reasons import ReasonCode

MAX_ATTACHMENTS: Final = 20
ADULT_AGE: Final = 18
#: the age a Russian passport is issued from; younger applicants prove identity otherwise
PASSPORT_AGE: Final = 14
#: "newborn" for the online ban: under one year old on the day of validation
NEWBORN_AGE: Final = 1


class Applicant(BaseModel):
    """The person who files the application (for a child's case: the parent)."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName
    birth_date: BirthDate
    sex: Sex
    snils: Snils | None = None
    passport: Passport | None = None
    phone: Phone | None = None
    email: Email | None = None
    registration_address: Address | None = None
    actual_address: Address | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        errors: list[InitErrorDetails] = []
        if self.phone is None and self.email is None:
            # the portal notifies by SMS or e-mail; without either the applicant is unreachable
            errors.append(
                init_error(
                    ("phone",),
                    "contact_required",
                    "give a phone number or an e-mail address",
                    None,
                    "phone or email",
                )
            )
        if (
            self.passport is not None
            and age_on(self.birth_date, self.passport.issue_date) < PASSPORT_AGE
        ):
            errors.append(
                init_error(
                    ("passport", "issue_date"),
                    "passport_issue_age",
                    "the passport's issue date is before the holder's 14th birthday",
                    self.passport.issue_date.isoformat(),
                    "a date on or after the 14th birthday",
                )
            )
        raise_errors("Applicant", errors)
        return self


class Child(BaseModel):
    """The child a parent's application is about."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName
    birth_date: BirthDate
    sex: Sex | None = None
    snils: Snils | None = None


class Payment(BaseModel):
    """A fee for a paper duplicate, where the region charges one."""

    model_config = ConfigDict(extra="forbid")

    amount: Money
    paid: StrictBool


class Facts:
    """The top-level values of an application that validated; absent means unknown."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def known(self, *names: str) -> bool:
        return all(name in self._values for name in names)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]


def _kinds(attachments: Iterable[Attachment]) -> set[str]:
    return {attachment.kind for attachment in attachments}


def _missing_attachment(kind: str, why: str) -> InitErrorDetails:
    return init_error(
        ("attachments",),
        "attachment_required",
        f"{why} needs an attachment of kind {kind}",
        None,
        f"an attachment with kind {kind!r}",
        reason=ReasonCode.MISSING_DOCUMENTS,
    )


class ApplicationBase(BaseModel):
    """What every application carries: the applicant, the region's zone and attachments."""

    model_config = ConfigDict(extra="forbid")

    TYPE: ClassVar[str] = ""
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset()

    applicant: Applicant
    region_zone: RegionZone = DEFAULT_ZONE
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        """Cross-field rules over ``facts``; subclasses extend the list."""
        errors: list[InitErrorDetails] = []
        if facts.known("attachments"):
            allowed = ", ".join(sorted(cls.ALLOWED_KINDS))
            for index, attachment in enumerate(facts["attachments"]):
                if attachment.kind not in cls.ALLOWED_KINDS:
                    errors.append(
                        init_error(
                            ("attachments", index, "kind"),
                            "attachment_kind_not_allowed",
                            f"a {cls.TYPE} application does not take a {attachment.kind}",
                            attachment.kind,
                            allowed,
                        )
                    )
        return errors

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        today = context_today(info)
        values = {name: getattr(self, name) for name in type(self).model_fields}
        raise_errors(type(self).__name__, type(self).rules(Facts(values), today))
        return self

    @classmethod
    def known_facts(cls, data: Mapping[str, Any], context: Mapping[str, Any]) -> Facts:
        """Validate each top-level field of raw ``data`` on its own and keep those that pass
        (defaults fill absent optional fields), so rules can run beside field errors."""
        values: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            if name in data:
                try:
                    values[name] = _field_adapter(cls, name).validate_python(
                        data[name], context=dict(context)
                    )
                except ValidationError:
                    continue
            elif not info.is_required():
                values[name] = info.get_default(call_default_factory=True)
        return Facts(values)


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    # the field's full annotation (constraints and validators included) validates it alone
    return TypeAdapter(model.model_fields[name].rebuild_annotation())


class RestoreApplication(ApplicationBase):
    """Restoring a lost policy; the registry already has the person (adult or child)."""

    TYPE: ClassVar[str] = "restore"
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset(
        {
            "passport_scan",
            "birth_certificate",
            "parent_passport",
            "old_policy",
            "supporting_document",
        }
    )

    for_child: StrictBool = False
    child: Child | None = None
    old_policy_number: PolicyNumber | None = None

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        errors = super().rules(facts, today)
        if not facts.known("for_child"):
            return errors
        for_child: bool = facts["for_child"]
        if facts.known("child"):
            child: Child | None = facts["child"]
            if for_child and child is None:
                errors.append(
                    init_error(
                        ("child",),
                        "conditional_required",
                        "a child's restore needs the child's data",
                        None,
                        "the child's full_name and birth_date (snils if assigned)",
                    )
                )
            elif not for_child and child is not None:
                errors.append(
                    init_error(
                        ("child",),
                        "conditional_forbidden",
                        "child data is given but for_child is false",
                        None,
                        "no child, or for_child: true",
                    )
                )
            elif child is not None and age_on(child.birth_date, today) >= ADULT_AGE:
                errors.append(
                    init_error(
                        ("child", "birth_date"),
                        "child_age",
                        "the child is 18 or older and restores the policy in their own name",
                        child.birth_date.isoformat(),
                        "a birth date less than 18 years ago",
                    )
                )
        if for_child and facts.known("attachments"):
            kinds = _kinds(facts["attachments"])
            for kind in ("birth_certificate", "parent_passport"):
                if kind not in kinds:
                    errors.append(_missing_attachment(kind, "a child's restore"))
        return errors


class NewIssueApplication(ApplicationBase):
    """A first policy, or a new one after a change of insurer, residence or personal data.

    The applicant is the insured person. "Newborn" means under one year old on the day of
    validation (computed from ``applicant.birth_date``, not a separate flag, so the two can
    never disagree).
    """

    TYPE: ClassVar[str] = "new_issue"
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset(
        {
            "passport_scan",
            "birth_certificate",
            "photo",
            "signature",
            "old_policy",
            "supporting_document",
        }
    )

    reason: Literal["first_policy", "insurer_change", "residence_change", "data_change"]
    policy_form: Literal["paper", "plastic"]
    channel: Literal["online", "mfc"]
    representative: StrictBool = False
    pickup_point: ShortText

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        errors = super().rules(facts, today)
        applicant: Applicant | None = facts["applicant"] if facts.known("applicant") else None
        age = age_on(applicant.birth_date, today) if applicant is not None else None

        if facts.known("channel") and facts["channel"] == "online":
            if facts.known("representative") and facts["representative"]:
                errors.append(
                    init_error(
                        ("representative",),
                        "representative_not_allowed",
                        "an online application is filed by the applicant, not a representative",
                        True,
                        "representative: false, or channel: mfc",
                        reason=ReasonCode.REPRESENTATIVE_NOT_ALLOWED,
                    )
                )
            if age is not None and age < NEWBORN_AGE:
                errors.append(
                    init_error(
                        ("applicant", "birth_date"),
                        "newborn_requires_mfc",
                        "a newborn's policy is issued through an MFC with the birth certificate",
                        applicant.birth_date.isoformat() if applicant else None,
                        "channel: mfc",
                        reason=ReasonCode.NEWBORN_REQUIRES_MFC,
                    )
                )
            elif age is not None and age < ADULT_AGE:
                errors.append(
                    init_error(
                        ("applicant", "birth_date"),
                        "adult_only",
                        f"only an adult applies online; the applicant is {age}",
                        applicant.birth_date.isoformat() if applicant else None,
                        "an applicant aged 18 or more, or channel: mfc",
                    )
                )
        elif (
            facts.known("channel", "representative")
            and age is not None
            and age < PASSPORT_AGE
            and not facts["representative"]
        ):
            errors.append(
                init_error(
                    ("representative",),
                    "representative_required",
                    f"an applicant aged {age} is represented by a parent or guardian",
                    False,
                    "representative: true",
                )
            )

        if applicant is not None and age is not None:
            for name in ("registration_address", "actual_address"):
                if getattr(applicant, name) is None:
                    errors.append(
                        init_error(
                            ("applicant", name),
                            "required",
                            f"a new policy needs the {name.replace('_', ' ')}",
                            None,
                            "the address as free text",
                        )
                    )
            if age >= PASSPORT_AGE and applicant.passport is None:
                errors.append(
                    init_error(
                        ("applicant", "passport"),
                        "conditional_required",
                        "an applicant aged 14 or more gives the passport data",
                        None,
                        "series, number, issue_date and division_code",
                    )
                )
            if facts.known("attachments"):
                kinds = _kinds(facts["attachments"])
                identity = "passport_scan" if age >= PASSPORT_AGE else "birth_certificate"
                if identity not in kinds:
                    who = "an applicant aged 14 or more" if age >= PASSPORT_AGE else "a child"
                    errors.append(_missing_attachment(identity, f"a new policy for {who}"))

        if facts.known("policy_form", "attachments"):
            attachments: list[Attachment] = facts["attachments"]
            if facts["policy_form"] == "plastic":
                kinds = _kinds(attachments)
                for kind in ("photo", "signature"):
                    if kind not in kinds:
                        errors.append(_missing_attachment(kind, "a plastic card"))
            else:
                for index, attachment in enumerate(attachments):
                    if attachment.kind in ("photo", "signature"):
                        errors.append(
                            init_error(
                                ("attachments", index, "kind"),
                                "plastic_card_only",
                                f"a {attachment.kind} is attached only for a plastic card",
                                attachment.kind,
                                "no photo or signature for a paper policy",
                            )
                        )
        return errors


class ChildLinkApplication(ApplicationBase):
    """A parent adds an existing, valid child's policy to the parent's portal account."""

    TYPE: ClassVar[str] = "child_link"
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset(
        {"birth_certificate", "old_policy", "supporting_document"}
    )

    child: Child
    policy_number: PolicyNumber
    policy_issue_date: IssueDate
    policy_expiry_date: DateValue | None = None
    parent_snils: Snils | None = None
    parent_inn: PersonInn | None = None
    confirmation: Literal["sms", "app", "qualified_signature"]
    parent_account_verified: StrictBool

    @property
    def policy_format(self) -> PolicyFormat:
        return detect_policy_format(self.policy_number)

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        errors = super().rules(facts, today)
        if (
            facts.known("parent_snils", "parent_inn")
            and facts["parent_snils"] is None
            and facts["parent_inn"] is None
        ):
            errors.append(
                init_error(
                    ("parent_snils",),
                    "parent_id_required",
                    "give the parent's SNILS or INN",
                    None,
                    "parent_snils or parent_inn",
                )
            )
        if facts.known("applicant", "parent_snils"):
            own = facts["applicant"].snils
            if own is not None and facts["parent_snils"] not in (None, own):
                errors.append(
                    init_error(
                        ("parent_snils",),
                        "parent_snils_mismatch",
                        "the parent's SNILS differs from the applicant's own SNILS",
                        facts["parent_snils"],
                        "the applicant's SNILS",
                    )
                )
        if facts.known("parent_account_verified") and not facts["parent_account_verified"]:
            errors.append(
                init_error(
                    ("parent_account_verified",),
                    "account_not_verified",
                    "only a verified portal account can link a child's policy",
                    False,
                    "true (verify the account first)",
                )
            )
        if facts.known("child"):
            child: Child = facts["child"]
            if age_on(child.birth_date, today) >= ADULT_AGE:
                errors.append(
                    init_error(
                        ("child", "birth_date"),
                        "child_age",
                        "the person is 18 or older and manages the policy in their own account",
                        child.birth_date.isoformat(),
                        "a birth date less than 18 years ago",
                    )
                )
            if facts.known("policy_issue_date") and facts["policy_issue_date"] < child.birth_date:
                errors.append(
                    init_error(
                        ("policy_issue_date",),
                        "issue_before_birth",
                        "the policy's issue date is before the child's birth",
                        facts["policy_issue_date"].isoformat(),
                        f"{child.birth_date.isoformat()} or later",
                    )
                )
        expiry: date | None = (
            facts["policy_expiry_date"] if facts.known("policy_expiry_date") else None
        )
        if expiry is not None:
            if expiry <= today:
                errors.append(
                    init_error(
                        ("policy_expiry_date",),
                        "expiry_after_today",
                        f"the policy expired on {expiry.isoformat()}",
                        expiry.isoformat(),
                        f"a date after {today.isoformat()}, or none for an open-ended policy",
                    )
                )
            if facts.known("policy_issue_date") and expiry <= facts["policy_issue_date"]:
                errors.append(
                    init_error(
                        ("policy_expiry_date",),
                        "expiry_after_issue",
                        "the expiry date is not after the issue date",
                        expiry.isoformat(),
                        f"a date after {facts['policy_issue_date'].isoformat()}",
                    )
                )
        return errors


class ReplacementApplication(ApplicationBase):
    """Replacing a policy: damaged, personal data changed, change of insurer or residence."""

    TYPE: ClassVar[str] = "replacement"
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset(
        {"damaged_policy", "supporting_document", "passport_scan", "old_policy"}
    )

    reason: Literal["damage", "data_change", "insurer_change", "residence_change"]
    current_policy_number: PolicyNumber
    new_insurer: InsurerCode | None = None
    residence_changed: StrictBool = False

    @property
    def policy_format(self) -> PolicyFormat:
        return detect_policy_format(self.current_policy_number)

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        errors = super().rules(facts, today)
        if not facts.known("reason"):
            return errors
        reason = facts["reason"]
        if facts.known("new_insurer"):
            if reason == "insurer_change" and facts["new_insurer"] is None:
                errors.append(
                    init_error(
                        ("new_insurer",),
                        "conditional_required",
                        "a change of insurer names the new insurer",
                        None,
                        "the new insurer's 5-digit registry code",
                    )
                )
            elif reason != "insurer_change" and facts["new_insurer"] is not None:
                errors.append(
                    init_error(
                        ("new_insurer",),
                        "conditional_forbidden",
                        f"a new insurer is named but the reason is {reason}",
                        facts["new_insurer"],
                        "no new_insurer, or reason: insurer_change",
                    )
                )
        if (
            reason == "residence_change"
            and facts.known("residence_changed")
            and not facts["residence_changed"]
        ):
            errors.append(
                init_error(
                    ("residence_changed",),
                    "residence_changed_consistent",
                    "the reason is a change of residence but residence_changed is false",
                    False,
                    "residence_changed: true",
                )
            )
        return errors


class PaperDuplicateApplication(ApplicationBase):
    """A paper copy of an electronic policy, sent by post or prepared for pickup."""

    TYPE: ClassVar[str] = "paper_duplicate"
    ALLOWED_KINDS: ClassVar[frozenset[str]] = frozenset({"passport_scan", "supporting_document"})

    electronic_policy_number: Enp
    delivery: Literal["post", "pickup"]
    postal_address: Address | None = None
    office: ShortText | None = None
    payment: Payment | None = None

    @classmethod
    def rules(cls, facts: Facts, today: date) -> list[InitErrorDetails]:
        errors = super().rules(facts, today)
        if not facts.known("delivery", "postal_address", "office"):
            return errors
        wanted, unwanted = (
            ("postal_address", "office")
            if facts["delivery"] == "post"
            else ("office", "postal_address")
        )
        how = "by post" if facts["delivery"] == "post" else "for pickup"
        if facts[wanted] is None:
            errors.append(
                init_error(
                    (wanted,),
                    "conditional_required",
                    f"a duplicate {how} needs the {wanted.replace('_', ' ')}",
                    None,
                    "the postal address with its index"
                    if wanted == "postal_address"
                    else "the territorial office",
                )
            )
        if facts[unwanted] is not None:
            errors.append(
                init_error(
                    (unwanted,),
                    "conditional_forbidden",
                    f"a duplicate {how} takes no {unwanted.replace('_', ' ')}",
                    facts[unwanted],
                    f"no {unwanted}",
                )
            )
        return errors


MODELS: Final[dict[str, type[ApplicationBase]]] = {
    model.TYPE: model
    for model in (
        RestoreApplication,
        NewIssueApplication,
        ChildLinkApplication,
        ReplacementApplication,
        PaperDuplicateApplication,
    )
}

__all__ = [
    "MODELS",
    "Applicant",
    "ApplicationBase",
    "Child",
    "ChildLinkApplication",
    "Facts",
    "NewIssueApplication",
    "PaperDuplicateApplication",
    "Payment",
    "ReplacementApplication",
    "RestoreApplication",
]
