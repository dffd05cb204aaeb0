"""The sliding window of authentication failures."""

from nvr.auth.limiter import FailureLimiter


def _limiter(now_s: list[float], **kwargs: int) -> FailureLimiter:
    return FailureLimiter(max_failures=3, window_s=60, clock=lambda: now_s[0], **kwargs)


def test_limiter_under_limit_allows() -> None:
    now_s = [0.0]
    limiter = _limiter(now_s)
    limiter.record_failure("10.0.0.1")
    limiter.record_failure("10.0.0.1")

    assert limiter.retry_after_s("10.0.0.1") is None


def test_limiter_at_limit_refuses_until_oldest_failure_ages_out() -> None:
    now_s = [0.0]
    limiter = _limiter(now_s)
    for step_s in (0.0, 10.0, 20.0):
        now_s[0] = step_s
        limiter.record_failure("10.0.0.1")

    now_s[0] = 30.0
    assert limiter.retry_after_s("10.0.0.1") == 30.0
    assert limiter.retry_after_s("10.0.0.2") is None
    now_s[0] = 60.0
    assert limiter.retry_after_s("10.0.0.1") is None


def test_limiter_reaching_limit_reported_once() -> None:
    limiter = _limiter([0.0])

    reached = [limiter.record_failure("a") for _ in range(5)]

    assert reached == [False, False, True, False, False]


def test_limiter_many_addresses_forgets_oldest() -> None:
    limiter = _limiter([0.0], max_addresses=2)
    for address in ("a", "b", "c"):
        for _ in range(3):
            limiter.record_failure(address)

    assert limiter.retry_after_s("a") is None
    assert limiter.retry_after_s("c") is not None
