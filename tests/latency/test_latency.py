import pytest

from directnas.errors import UserError
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.measure import Protocol, profile_space
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

FAST = Protocol(threads=1, warmup=1, repeats=3)


def test_profile_covers_space_and_round_trips(tmp_path, tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = profile_space(space, proto=FAST)
    table.check_covers(space)
    assert table.meta["batch_size"] == 1 and table.meta["threads"] == 1
    assert all(v["ms"] > 0 for v in table.entries.values())
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert back.entries == table.entries and back.digest() == table.digest()
    # cache: nothing re-measured when the table already covers the space
    again = profile_space(space, proto=FAST, existing=back)
    assert again.entries == back.entries


def test_predictor_is_fixed_plus_sum_of_entries(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = profile_space(space, proto=FAST)
    ops = [l.candidates[0] for l in space.layers]
    arch = Arch(space, ops)
    fixed = sum(table.ms(k) for k in space.fixed_keys())
    layers = sum(table.ms(space.layer_keys(l)[0]) for l in space.layers)
    assert predict_arch_ms(arch, table, corrected=False) == pytest.approx(fixed + layers)
    ops_zero = [("zero" if "zero" in l.candidates else l.candidates[0]) for l in space.layers]
    assert predict_arch_ms(Arch(space, ops_zero), table) < predict_arch_ms(arch, table)


def test_table_missing_ops_names_them_and_the_fix(tiny_space_dict, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = profile_space(space, proto=FAST)
    key = next(iter(k for k in table.entries if k.startswith("mbconv:k5")))
    del table.entries[key]
    with pytest.raises(UserError, match="lacks 1 op.*directnas profile"):
        table.check_covers(space)
    (tmp_path / "bad.json").write_text('{"schema_version": 1, "entries": {"a": {"ms": -1}}}')
    with pytest.raises(UserError, match="non-negative"):
        LatencyTable.load(tmp_path / "bad.json")


def test_cached_table_is_keyed_by_the_whole_protocol(tmp_path, tiny_space_dict, monkeypatch):
    """A table measured with another statistic or clock is not reused; the same protocol is."""
    from directnas.latency.cache import get_table

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = SearchSpace.from_dict(tiny_space_dict)
    first = get_table(space, table=None, backend="torch-cpu", proto=FAST)
    again = get_table(space, table=None, backend="torch-cpu", proto=FAST)
    assert again.entries == first.entries  # reused, not re-measured
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    p10 = Protocol(threads=1, warmup=1, repeats=3, stat="median")
    get_table(space, table=None, backend="torch-cpu", proto=p10)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
