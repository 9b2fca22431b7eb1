"""The handler registry: explicit mappings, entry points, names and suggestions."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from engine import ConfigurationError, HandlerNotFoundError, Registry, TaskContext
from engine.registry import ENTRY_POINT_GROUP


def fn(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Do the thing.

    More words that are not the summary.
    """
    return {}


def test_register_and_get() -> None:
    registry = Registry()
    registry.register("payments.refund", fn, source="here")
    assert registry.get("payments.refund") is fn
    assert "payments.refund" in registry
    assert [info.operator for info in registry] == ["payments.refund"]
    assert next(iter(registry)).summary == "Do the thing."


def test_unknown_operator_suggests_the_closest() -> None:
    registry = Registry()
    registry.register_mapping({"payments.refund": fn, "notify.customer": fn}, source="here")
    with pytest.raises(HandlerNotFoundError) as caught:
        registry.get("payments.refnd")
    assert caught.value.suggestion == "payments.refund"
    assert "Did you mean 'payments.refund'?" in (caught.value.hint or "")
    with pytest.raises(HandlerNotFoundError) as nothing_close:
        registry.get("zzz.qqq")
    assert nothing_close.value.suggestion is None


@pytest.mark.parametrize("name", ["refund", "Payments.Refund", "payments.", ".refund", "a b.c"])
def test_operator_names_are_area_dot_verb(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"area\.verb"):
        Registry().register(name, fn)


def test_the_same_operator_twice_is_refused() -> None:
    registry = Registry()
    registry.register("a.b", fn, source="one")
    registry.register("a.b", fn, source="one")  # the same function again is harmless

    def other(params: Mapping[str, Any], ctx: TaskContext) -> dict[str, Any]:
        return {}

    with pytest.raises(ConfigurationError, match="registered twice"):
        registry.register("a.b", other, source="two")


@pytest.fixture
def third_party_package(tmp_path: Path) -> Iterator[Path]:
    """A handler package installed the way pip would: a module and its dist-info."""
    (tmp_path / "acme_handlers.py").write_text(
        textwrap.dedent(
            '''
            def stamp(params, ctx):
                """Stamp a document."""
                return {"stamped": params["doc"]}

            HANDLERS = {"acme.stamp": stamp}
            NOT_A_MAPPING = ["acme.stamp"]
            '''
        )
    )
    info = tmp_path / "acme_handlers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-handlers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_handlers:HANDLERS\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield info
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_handlers", None)
        importlib.invalidate_caches()


def test_a_third_party_package_adds_handlers_through_entry_points(
    third_party_package: Path,
) -> None:
    registry = Registry.from_entry_points()
    assert "acme.stamp" in registry
    assert registry.get("acme.stamp")({"doc": "x"}, None) == {"stamped": "x"}  # type: ignore[arg-type]
    assert "intake.check_completeness" in registry  # ours are published the same way
    sources = {info.operator: info.source for info in registry}
    assert sources["acme.stamp"] == "acme_handlers:HANDLERS"


def test_an_entry_point_that_is_not_a_mapping_is_refused(third_party_package: Path) -> None:
    (third_party_package / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_handlers:NOT_A_MAPPING\n"
    )
    importlib.invalidate_caches()
    with pytest.raises(ConfigurationError, match="not a mapping"):
        Registry.from_entry_points()


def test_an_entry_point_that_fails_to_import_names_its_package(third_party_package: Path) -> None:
    (third_party_package / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_missing_module:HANDLERS\n"
    )
    importlib.invalidate_caches()
    with pytest.raises(ConfigurationError, match=r"'acme'.*failed to load"):
        Registry.from_entry_points()
