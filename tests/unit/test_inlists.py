"""IN lists padded to a few fixed lengths, so statement caches keep a few texts per statement."""

from __future__ import annotations

import pytest

from worker.store import inlists
from worker.store.inlists import IN_MAX, IN_SIZES, chunks, padded


def test_a_list_is_padded_to_the_next_size_with_its_last_value() -> None:
    assert padded([7]) == [7]
    assert padded([1, 2]) == [1, 2, 2, 2]
    assert padded(list(range(5))) == [0, 1, 2, 3, 4] + [4] * 11
    assert padded(list(range(IN_MAX))) == list(range(IN_MAX))


def test_every_length_lands_on_one_of_the_sizes() -> None:
    lengths = {len(padded(list(range(n)))) for n in range(1, IN_MAX + 1)}
    assert lengths == set(IN_SIZES)


@pytest.mark.parametrize("values", [[], list(range(IN_MAX + 1))])
def test_padded_refuses_an_empty_or_overlong_list(values: list[int]) -> None:
    with pytest.raises(ValueError):
        padded(values)


def test_chunks_keep_every_value_once_in_order_and_pad_only_the_last() -> None:
    values = list(range(2 * IN_MAX + 3))
    parts = list(chunks(values))
    assert [len(p) for p in parts] == [IN_MAX, IN_MAX, 4]
    assert parts[0] + parts[1] + parts[2][:3] == values
    assert parts[2][3:] == [values[-1]]
    assert list(chunks([])) == []


def test_the_warm_up_runs_each_registered_statement_at_every_size_with_values_matching_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inlists, "REGISTERED", [])
    first = inlists.built_once("select by ids", "ids", "")
    second = inlists.built_once("delete by ids", "ids", -1)
    assert (first, second) == ("select by ids", "delete by ids")  # returned as given
    assert list(inlists.warm_ups()) == [
        ("select by ids", {"ids": [""]}),
        ("select by ids", {"ids": [""] * 4}),
        ("select by ids", {"ids": [""] * 16}),
        ("select by ids", {"ids": [""] * 64}),
        ("select by ids", {"ids": [""] * 256}),
        ("delete by ids", {"ids": [-1]}),
        ("delete by ids", {"ids": [-1] * 4}),
        ("delete by ids", {"ids": [-1] * 16}),
        ("delete by ids", {"ids": [-1] * 64}),
        ("delete by ids", {"ids": [-1] * 256}),
    ]


def test_the_store_registers_each_statement_that_takes_an_in_list() -> None:
    import worker.store.repository  # noqa: F401  (imports every module that builds one)

    parameters = sorted(entry.parameter for entry in inlists.REGISTERED)
    assert parameters == ["ids", "ids", "ids", "ids", "names", "names"]
