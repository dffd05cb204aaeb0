"""What a retention sweep at a given instant would delete, and what holds would spare.

The sweeper deletes exactly the ``delete`` items of this plan (same selection), so
``nvr retention plan --at T`` shows what the sweep at T will do. Blocking (index reads).
"""

from collections.abc import Iterator
from dataclasses import dataclass

from nvr.index.repo import Index
from nvr.retention import catalogue
from nvr.retention.catalogue import US_PER_DAY, Candidate
from nvr.timeutil import format_rfc3339

PAGE = 500


@dataclass(frozen=True)
class PlanItem:
    """One segment a sweep would delete (``delete``) or keep for a hold (``spare``)."""

    action: str
    why: str
    segment: Candidate
    holds: tuple[tuple[int, str], ...] = ()

    def as_json(self) -> dict[str, object]:
        seg = self.segment
        return {
            "action": self.action,
            "camera": seg.camera_id,
            "segment": seg.segment_id,
            "start": format_rfc3339(seg.start_us),
            "end": format_rfc3339(seg.end_us),
            "group": seg.group,
            "tier": seg.tier,
            "bytes": seg.bytes,
            "why": self.why,
            "holds": [{"id": hold_id, "case_id": case} for hold_id, case in self.holds],
        }


def cutoff_us(at_us: int, retention_days: int) -> int:
    """Segments ending before this instant are past ``retention_days`` at ``at_us``."""
    return at_us - retention_days * US_PER_DAY


def plan_sweep(index: Index, at_us: int) -> Iterator[PlanItem]:
    """Every segment past its group's retention at ``at_us``, group by group, oldest
    end first; held ones come out as ``spare`` with the holds that keep them."""
    for group, days in sorted(index.group_retention_days().items()):
        limit_us = cutoff_us(at_us, days)
        after: tuple[int, int] | None = None
        while True:
            page = catalogue.due_for_retention(
                index, group, limit_us, PAGE, include_held=True, after=after
            )
            for segment in page:
                yield _item(index, segment, days, at_us)
            if len(page) < PAGE:
                break
            after = (page[-1].end_us, page[-1].segment_id)


def _item(index: Index, segment: Candidate, days: int, at_us: int) -> PlanItem:
    age_days = (at_us - segment.end_us) / US_PER_DAY
    why = (
        f"ended {format_rfc3339(segment.end_us)}, {age_days:.2f} days before "
        f"{format_rfc3339(at_us)}; group {segment.group} keeps {days} days"
    )
    if not segment.held:
        return PlanItem("delete", why, segment)
    holds = catalogue.holds_covering(
        index, segment.camera_id, segment.start_us, segment.end_us
    )
    cases = ", ".join(f"hold {hold_id} (case {case})" for hold_id, case in holds)
    return PlanItem("spare", f"{why}; kept by {cases}", segment, tuple(holds))
