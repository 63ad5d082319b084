"""Splitting batch input over jobs: by request count, file bytes and estimated tokens."""

from __future__ import annotations

import json

import pytest

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import ShardLimits
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.core.shards import shard_of_keys, write_shards
from gemini_batch_provider.core.tokens import estimate_tokens

SPEC = RequestSpec(prompt_template="{t}", key_field="k")


def _requests(n, text="Some text of the row."):
    return list(build_requests([{"k": f"k{i}", "t": f"{text} {i}"} for i in range(n)], SPEC))


def _read(shard):
    return [json.loads(line) for line in shard.path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("limits", [ShardLimits(max_requests=4), ShardLimits(max_bytes=4 * 120),
                                    ShardLimits(max_tokens=4 * 14)])
def test_each_limit_splits_and_every_row_lands_in_one_shard_in_order(tmp_path, limits):
    requests = _requests(10)
    written = write_shards(requests, tmp_path, limits)
    lines = [line for shard in written.shards for line in _read(shard)]
    assert [line["key"] for line in lines] == [f"k{i}" for i in range(10)]
    assert len(written.shards) >= 3 and written.requests == 10
    for shard in written.shards:
        assert shard.requests <= (limits.max_requests or 10)
        assert shard.size_bytes == shard.path.stat().st_size <= limits.max_bytes
        assert shard.tokens <= (limits.max_tokens or 10**9)
    # shard_of_keys tells each key's shard without writing anything
    expected = {line["key"]: shard.index for shard in written.shards for line in _read(shard)}
    assert dict(shard_of_keys(requests, limits)) == expected


def test_token_limit_counts_the_estimate():
    [(_, request)] = _requests(1)
    assert estimate_tokens(request) == 12  # 24 characters -> 6 prompt tokens, and as many output tokens


def test_the_fingerprint_changes_with_the_input_and_the_salt(tmp_path):
    def fp(requests, salt=""):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        return write_shards(requests, folder, ShardLimits(), salt).fingerprint

    assert fp(_requests(3)) == fp(_requests(3))
    assert fp(_requests(3)) != fp(_requests(3, "Other text."))
    assert fp(_requests(3)) != fp(_requests(3), salt="gemini-2.5-pro")


def test_a_row_over_a_limit_is_refused_by_key_and_no_file_is_left(tmp_path):
    requests = [*_requests(3), *build_requests([{"k": "huge", "t": "x" * 5000}], SPEC)]
    with pytest.raises(InputError, match=r"row with key 'huge'.*max_bytes"):
        write_shards(requests, tmp_path, ShardLimits(max_bytes=1000))
    with pytest.raises(InputError, match=r"row with key 'huge'.*max_tokens"):
        write_shards(requests, tmp_path, ShardLimits(max_tokens=1000))
    assert list(tmp_path.iterdir()) == []


def test_bad_rows_remove_the_files_written_so_far(tmp_path):
    requests = build_requests([{"k": "a", "t": "fine"}, {"k": "b"}], SPEC)
    with pytest.raises(InputError):
        write_shards(requests, tmp_path, ShardLimits(max_requests=1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [{"max_requests": 0}, {"max_bytes": -1}, {"max_tokens": 1.5}])
def test_limits_must_be_positive_whole_numbers(bad):
    with pytest.raises(ValueError, match="positive whole number"):
        ShardLimits(**bad)
