"""The fast ``engine.masking`` gives exactly what the plain one it replaced gave, for any input.

The reference is the module as it was before the speed work, read from git by its blob id (content
addressed, so later commits cannot move it) and executed into a namespace of its own. Results are
compared by type and value all the way down (a list stays a list, a tuple a tuple, a subclass its
subclass, dict keys in the same order); exceptions must match by type and message too.
"""

from __future__ import annotations

import copy
import math
import subprocess
from collections import OrderedDict, UserDict, defaultdict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import GeneratorType, MappingProxyType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine import masking
from engine.testing import person

# engine/masking.py before the speed work: `git rev-parse 3654b99:engine/masking.py`
REFERENCE_BLOB = "d215337d52fd18f41bdb47d2586057ae50139372"
ROOT = Path(__file__).resolve().parents[2]


@cache
def reference() -> dict[str, Any]:
    try:
        source = subprocess.run(
            ["git", "cat-file", "-p", REFERENCE_BLOB],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the reference masking module is not readable from git: {error}")
    namespace: dict[str, Any] = {"__name__": "masking_reference"}
    exec(compile(source, f"<masking {REFERENCE_BLOB[:7]}>", "exec"), namespace)  # noqa: S102
    return namespace


def outcome(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return ("value", function(*args))
    except Exception as error:  # the two versions must fail alike too
        return ("error", (type(error), str(error)))


def assert_same(new: Any, old: Any, path: str = "$", *, identical: bool = True) -> None:
    """Equal values of identical types, recursively; other objects must be the very same one
    (``identical``) or at least of the same type."""
    assert type(new) is type(old), f"{path}: {type(new)} != {type(old)}"
    if isinstance(old, GeneratorType):
        assert_same(list(new), list(old), path, identical=identical)
    elif isinstance(old, Mapping):
        assert list(new.keys()) == list(old.keys()), path
        for (key, a), b in zip(new.items(), old.values(), strict=True):
            assert_same(a, b, f"{path}[{key!r}]", identical=identical)
    elif isinstance(old, list | tuple):
        assert len(new) == len(old), path
        for index, (a, b) in enumerate(zip(new, old, strict=True)):
            assert_same(a, b, f"{path}[{index}]", identical=identical)
    elif isinstance(old, float) and math.isnan(old):
        assert math.isnan(new), path
    elif isinstance(old, str | int | float | type(None)):
        assert new == old, f"{path}: {new!r} != {old!r}"
    elif identical:
        assert new is old, f"{path}: {new!r} is not the object the reference returned"


NOT_COPIED = object()


def assert_mask_data_same(data: Any) -> None:
    try:
        before = copy.deepcopy(data)
    except TypeError:  # a mapping proxy
        before = NOT_COPIED
    new = outcome(masking.mask_data, data)
    old = outcome(reference()["mask_data"], data)
    assert_same(new, old)
    if before is not NOT_COPIED:  # neither version changes its input
        assert_same(data, before, identical=False)


# ------------------------------------------------------------------------------ strategies

PASSPORT_FIELDS = ["series", "number", "issue_date", "division_code", "issued_by"]
KNOWN_KEYS = sorted(masking.PERSONAL_KEYS) + PASSPORT_FIELDS + ["sex", "kind", "size"]


def recased(key: str) -> st.SearchStrategy[str]:
    flags = st.lists(st.booleans(), min_size=len(key), max_size=len(key))
    return flags.map(
        lambda up: "".join(c.upper() if u else c for c, u in zip(key, up, strict=True))
    )


keys: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.sampled_from(KNOWN_KEYS).flatmap(recased),
    st.text(max_size=12),
    st.integers(-3, 3),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, width=16),
)

DIGITS = "0123456789"
ALPHABET = (
    DIGITS
    + " -.@_+()№/,:;\t\n\xa0"
    + "abcXYZ"
    + "абвгдеёжАБВЁЖИванова"
    # non-ASCII letters and digits of other kinds: isalnum, \w, isdigit and [0-9] disagree on some
    + "²³½٣٤०Ⅻ\u0301ßİﬁ𝟙"
    # a lone surrogate: str methods take it, ``str.encode`` does not
    + "\ud800"
)


def joined(parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    return st.tuples(parts, st.sampled_from([" ", "-", "  ", "", ".", "\t"])).map(
        lambda pair: pair[1].join(pair[0])
    )


def snils_like(digits: str, style: int) -> str:
    if style == 0:
        return digits
    if style == 1:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"
    return f"{digits[:3]} {digits[3:6]} {digits[6:9]}-{digits[9:]}"


dates = st.dates().map(
    lambda day: f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
) | st.dates().map(lambda day: f"{day.day:02d}.{day.month:02d}.{day.year:04d}")
texts: st.SearchStrategy[str] = st.one_of(
    st.text(alphabet=ALPHABET, max_size=30),
    st.text(max_size=20),
    st.text(alphabet=DIGITS, max_size=20),
    joined(st.lists(st.text(alphabet=DIGITS, max_size=5), max_size=5)),
    st.builds(snils_like, st.text(alphabet=DIGITS, min_size=9, max_size=12), st.integers(0, 2)),
    dates,
    # a date with one character changed, added or dropped
    st.tuples(dates, st.integers(0, 10), st.sampled_from(["", "0", "a", "-", ".", "٣", "\n"])).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    ),
    st.tuples(dates, st.sampled_from(["", " ", "\n", "0"])).map(lambda t: t[0] + t[1]),
    st.emails(),
    st.sampled_from(["@", "a@", "@b", "a@b@c", "Ö@x.ru", " @ ", "m@"]),
    joined(st.lists(st.text(alphabet="абвгАБВ-ёЁ", min_size=1, max_size=6), max_size=4)),
    st.tuples(
        st.text(alphabet=ALPHABET, max_size=8), st.text(alphabet="pdfJPG.123", max_size=7)
    ).map(lambda t: f"{t[0]}.{t[1]}"),
)
scalars: st.SearchStrategy[Any] = st.one_of(
    texts, st.integers(), st.floats(), st.booleans(), st.none()
)
nested: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=30,
)
documents: st.SearchStrategy[Any] = st.dictionaries(
    keys,
    st.one_of(nested, st.dictionaries(st.sampled_from(PASSPORT_FIELDS), scalars, max_size=5)),
    max_size=10,
)


# ------------------------------------------------------------------------------ mask_data


@settings(deadline=None, max_examples=400)
@given(documents)
def test_mask_data_matches_reference(data: Any) -> None:
    assert_mask_data_same(data)


@settings(deadline=None, max_examples=200)
@given(nested)
def test_mask_data_matches_reference_on_any_top_level(data: Any) -> None:
    assert_mask_data_same(data)


@settings(deadline=None)
@given(st.sampled_from(KNOWN_KEYS).flatmap(recased), nested)
def test_mask_data_matches_reference_under_known_keys(key: str, value: Any) -> None:
    assert_mask_data_same({key: value, "applicant": {key: value}, "passport": {key: value}})


@pytest.mark.parametrize(
    ("type_", "n"),
    [
        ("restore", 1),
        ("child_link", 3),
        ("new_issue", 5),
        ("replacement", 7),
        ("paper_duplicate", 9),
    ],
)
def test_mask_data_matches_reference_on_examples(type_: str, n: int) -> None:
    data = person(type_, n)
    assert_mask_data_same(data)
    assert_mask_data_same({"case": {"data": data, "history": [data, (data,)]}})


class Text(str):
    __slots__ = ()


class Number(int):
    pass


class Items(list[Any]):
    pass


class Pair(tuple[Any, ...]):
    __slots__ = ()


class Frozen(Mapping[Any, Any]):
    def __init__(self, items: dict[Any, Any]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Named:
    """A key that is not a string but prints as one."""

    name: str

    def __str__(self) -> str:
        return self.name


One = namedtuple("One", ["only"])
Two = namedtuple("Two", ["first", "second"])


def odd_containers(inner: dict[str, Any]) -> list[Any]:
    return [  # each goes down the general path the plain dict and list skip
        OrderedDict(inner),
        MappingProxyType(inner),
        UserDict(inner),
        defaultdict(list, inner),
        Frozen(inner),
        Items([inner, "x"]),
        Pair((inner, 1)),
        One(inner),
        Two(inner, inner),
    ]


ODD_VALUES: list[Any] = [
    "112-233-445 95\ud800",
    "+7 912 345-67-8٩",
    "1987-0--25",
    "25..3.1987",
    "123",
    Text("112-233-445 95"),
    Text("Иванова Мария"),
    Number(11223344595),
    Decimal("12345.678"),
    b"11223344595",
    {"1", "2"},
    frozenset({3}),
    3 + 4j,
    object(),
    float("nan"),
    float("-inf"),
    -0.0,
    10**30,
    True,
    False,
    None,
]


@pytest.mark.parametrize("key", [*KNOWN_KEYS, "SNILS", "Passport", "PASSPORT", "other"])
def test_mask_data_matches_reference_on_odd_types(key: str) -> None:
    inner: dict[str, Any] = {"snils": "11223344595", "full_name": "Иванова Мария", "x": [1, (2,)]}
    for value in [*ODD_VALUES, *odd_containers(inner), *odd_containers({key: "4508 123456"})]:
        assert_mask_data_same({key: value})
        assert_mask_data_same({"passport": {key: value}})
        assert_mask_data_same([{key: value}])
    for container in odd_containers({key: "4508 123456", "passport": {key: "1"}}):
        assert_mask_data_same(container)
        assert_mask_data_same({"passport": container})
    assert_mask_data_same({Text(key): "11223344595", 1: "x", None: {key: "1"}, (1, 2): "y"})
    assert_mask_data_same({"passport": {1: "4508", None: "1", Text("number"): "123456"}})
    assert_mask_data_same(
        {"passport": {Named(name): "4508 123456" for name in [*PASSPORT_FIELDS, key]}}
    )


# ------------------------------------------------------------------------------ the maskers

MASKERS = ["mask_snils", "mask_name", "mask_date", "mask_email", "mask_file_name", "mask_text"]


@settings(deadline=None, max_examples=300)
@given(texts, st.integers(-2, 25))
@example("", 0)
@example("ab", 5)
@example("a-b", -1)
@example("²³½", 2)
def test_mask_tail_matches_reference(value: str, keep: int) -> None:
    assert_same(
        outcome(masking.mask_tail, value, keep), outcome(reference()["mask_tail"], value, keep)
    )


ASCII = "".join(map(chr, range(128)))


@pytest.mark.parametrize("keep", [0, 1, 2, 4])
def test_every_ascii_character(keep: int) -> None:
    old = reference()
    for value in [*ASCII, ASCII, ASCII[::-1], ASCII * 2]:
        assert masking.mask_tail(value, keep) == old["mask_tail"](value, keep)
        for name in MASKERS:
            assert getattr(masking, name)(value) == old[name](value)
        assert_mask_data_same(dict.fromkeys(KNOWN_KEYS, value))
        assert_mask_data_same({"passport": dict.fromkeys(PASSPORT_FIELDS, value)})


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(MASKERS), texts)
@example("mask_snils", "112-233-445 95\ud800")
@example("mask_snils", "١١٢٢٣٣٤٤٥٩٥")
@example("mask_date", "٢٠٢٠-01-01")
@example("mask_date", "1987-0--25")
@example("mask_date", "25..3.1987")
@example("mask_date", "1987-03-25\n")
def test_maskers_match_reference(name: str, value: str) -> None:
    new = outcome(getattr(masking, name), value)
    assert_same(new, outcome(reference()[name], value))


@settings(deadline=None, max_examples=200)
@given(st.dictionaries(st.text(max_size=8) | st.sampled_from(KNOWN_KEYS), nested, max_size=6))
def test_mask_event_matches_reference(event: dict[str, Any]) -> None:
    new = outcome(masking.mask_event, None, "info", copy.deepcopy(event))
    old = outcome(reference()["mask_event"], None, "info", copy.deepcopy(event))
    assert_same(new, old)


def test_public_names_unchanged() -> None:
    old = reference()
    assert masking.__all__ == old["__all__"]
    assert old["PERSONAL_KEYS"] == masking.PERSONAL_KEYS
    assert old["STARS"] == masking.STARS
