from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tektree._errors import CodecError
from tektree._messages import (
    _SPECS,
    is_message,
    message,
    message_spec,
    message_type,
    registered_tags,
    tag_of,
)


@message("test.messages.add")
class Add:
    amount: int
    note: str | None = None


@message("test.messages.shapes")
class Shapes:
    name: str
    pair: tuple[int, str]
    many: tuple[int, ...] = ()
    nested: list[tuple[int, int]] = attrs.Factory(list)
    flags: frozenset[str] = frozenset()
    by_name: dict[str, tuple[int, ...]] = attrs.field(factory=dict)
    maybe: tuple[str, ...] | None = None
    plain: list[int] = attrs.Factory(list)
    later: int  # a required field after optional ones: allowed because fields are kw-only


@pytest.fixture
def registry() -> Iterator[None]:
    """Restore the tag registry after a test that registers throwaway classes."""
    saved = dict(_SPECS)
    try:
        yield
    finally:
        _SPECS.clear()
        _SPECS.update(saved)


def test_message_is_frozen_kw_only_and_slotted() -> None:
    add = Add(amount=1)
    assert add.note is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        add.amount = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Add(1)  # type: ignore[misc]
    assert not hasattr(add, "__dict__")
    assert Add(amount=1) == add
    assert hash(Add(amount=1)) == hash(add)


def test_tag_lookups() -> None:
    add = Add(amount=3)
    assert tag_of(Add) == "test.messages.add"
    assert tag_of(add) == "test.messages.add"
    assert message_type("test.messages.add") is Add
    assert is_message(add)
    assert not is_message(Add)  # the class is not a message instance
    assert not is_message(("test.messages.add", 3))
    assert "test.messages.add" in registered_tags()
    assert list(registered_tags()) == sorted(registered_tags())


def test_tag_of_rejects_unregistered_class() -> None:
    class Plain:
        pass

    with pytest.raises(TypeError, match=r"Plain is not a registered message.*@message"):
        tag_of(Plain())


def test_unregistered_subclass_is_not_a_message() -> None:
    @attrs.frozen(kw_only=True)
    class Sub(Add):
        extra: int = 0

    assert not is_message(Sub(amount=1))
    with pytest.raises(TypeError, match="not a registered message"):
        tag_of(Sub)


def test_unknown_tag_names_the_tag() -> None:
    with pytest.raises(CodecError, match=r"'no\.such\.tag'") as info:
        message_type("no.such.tag")
    assert info.value.what == "tag"
    with pytest.raises(CodecError) as near:
        message_type("test.messages.ad")
    assert "did you mean 'test.messages.add'" in str(near.value)  # suggests the close ones


@pytest.mark.parametrize("tag", ["", "Upper.case", "has space", "semi;colon", "tab\t", "é"])
def test_invalid_tags_are_rejected(tag: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and"):
        message(tag)


def test_duplicate_tag_names_both_classes(registry: None) -> None:
    with pytest.raises(ValueError, match=r"test\.messages\.add") as info:

        @message("test.messages.add")
        class Other:
            x: int

    text = str(info.value)
    assert f"{__name__}.Add" in text
    assert "Other" in text
    assert message_type("test.messages.add") is Add  # the registry is unchanged


def test_reregistering_the_same_qualified_name_replaces_it(registry: None) -> None:
    def define(with_extra: bool) -> type:
        if with_extra:

            @message("test.messages.reload")
            class Thing:
                a: int
                b: int = 0

        else:

            @message("test.messages.reload")
            class Thing:  # type: ignore[no-redef]
                a: int

        return Thing

    first = define(False)
    second = define(True)
    assert first is not second
    assert message_type("test.messages.reload") is second
    assert message_spec("test.messages.reload").names == ("a", "b")


def test_already_attrs_class_is_rejected() -> None:
    with pytest.raises(TypeError, match="remove the attrs decorator"):

        @message("test.messages.double")
        @attrs.frozen(kw_only=True)
        class Double:
            x: int


def test_spec_is_precomputed() -> None:
    spec = message_spec("test.messages.shapes")
    assert spec.names == (
        "name",
        "pair",
        "many",
        "nested",
        "flags",
        "by_name",
        "maybe",
        "plain",
        "later",
    )
    assert spec.required == ("name", "pair", "later")
    assert spec.min_arity == 9  # "later" is required and last
    assert spec.arity == 10
    assert spec.defaults["many"] == ()
    assert spec.defaults["nested"] == attrs.Factory(list)
    assert spec.defaults["by_name"] == attrs.Factory(dict)
    converted = {name for name, _ in spec.converters or ()}
    # "plain" (list[int]) and "name" need no conversion: msgpack gives them back as they were.
    assert converted == {"pair", "many", "nested", "flags", "by_name", "maybe"}


def test_converters_restore_annotated_shapes() -> None:
    spec = message_spec("test.messages.shapes")
    convert = dict(spec.converters or ())
    assert convert["pair"]([1, "a"]) == (1, "a")
    assert convert["many"]([1, 2]) == (1, 2)
    assert convert["nested"]([[1, 2], [3, 4]]) == [(1, 2), (3, 4)]
    assert convert["flags"](["a", "b"]) == frozenset({"a", "b"})
    assert convert["by_name"]({"x": [1, 2]}) == {"x": (1, 2)}
    assert convert["maybe"](None) is None
    assert convert["maybe"](["a"]) == ("a",)
    # Values not of the wire shape are left alone for the class's validators to judge.
    assert convert["many"]("not a list") == "not a list"


def test_forward_reference_resolves_on_first_use(registry: None) -> None:
    @message("test.messages.forward")
    class Holder:
        items: tuple[Later, ...] = ()

    @message("test.messages.later")
    class Later:
        x: int

    spec = message_spec("test.messages.forward")
    converters = spec.resolve_converters()
    assert [name for name, _ in converters] == ["items"]
    assert spec.build_exact is not None
    assert spec.build_exact(["test.messages.forward", [Later(x=1)]]) == Holder(items=(Later(x=1),))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mypy", path=str(Path(sys.executable).parent)) is None, reason="")
def test_mypy_understands_the_decorator(tmp_path: Path) -> None:
    source = tmp_path / "uses_message.py"
    source.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            from tektree._messages import message

            @message("demo.add")
            class Add:
                amount: int
                note: str | None = None

            ok = Add(amount=1, note="x")
            positional = Add(1)
            wrong = Add(amount="x")
            ok.amount = 2
            """
        )
    )
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), "--strict", "--no-incremental", "--explicit-package-bases", str(source)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    out = result.stdout
    assert "uses_message.py:11: error: Too many positional arguments" in out, out
    assert 'uses_message.py:12: error: Argument "amount" to "Add" has incompatible type' in out
    assert "uses_message.py:13: error" in out  # frozen: the attribute is read-only
    assert "uses_message.py:10" not in out  # the keyword call type-checks
