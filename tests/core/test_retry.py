from hypothesis import given
from hypothesis import strategies as st

from millstream.core.retry import retry_delay


def test_constant_delay_without_backoff():
    assert retry_delay(base=300, try_number=1) == 300
    assert retry_delay(base=300, try_number=5) == 300


def test_exponential_backoff_doubles_with_jitter_and_is_reproducible():
    delays = [retry_delay(base=10, try_number=n, backoff=2.0, key="k") for n in range(1, 6)]
    for n, d in enumerate(delays, start=1):
        raw = 10 * 2 ** (n - 1)
        assert raw * 0.5 <= d <= raw or d == 10
    assert delays == [retry_delay(base=10, try_number=n, backoff=2.0, key="k") for n in range(1, 6)]


def test_jitter_spreads_instances_of_a_mapped_task():
    delays = {retry_delay(base=60, try_number=3, backoff=2.0, key=f"t.{i}") for i in range(20)}
    assert len(delays) > 10


@given(
    base=st.floats(0.1, 3600),
    n=st.integers(1, 200),
    mult=st.floats(1.1, 10),
    cap=st.one_of(st.none(), st.floats(1, 10_000)),
)
def test_backoff_never_exceeds_the_cap(base, n, mult, cap):
    d = retry_delay(base=base, try_number=n, backoff=mult, max_delay=cap, key="x")
    limit = cap if cap is not None else 24 * 3600
    assert 0 < d <= limit + 1e-9
