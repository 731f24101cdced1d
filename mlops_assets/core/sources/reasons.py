"""Why a record was quarantined: one code per rule, what it means and what to do about it.

The codes are the quarantine files' `reason` column, the ledger's `by_reason` keys and what the
operator's views count, so they are stable names; the texts are for people.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    "invalid_record": "a field cannot be read (fix: the source's record or the export's column mapping)",
    "unreadable_timestamp": "the timestamp cannot be read, so the row belongs to no day (fix: ISO 8601 or YYYYMMDD)",
    "future_timestamp": "dated after today in the tenant's timezone (fix: the export's dates or its timezone)",
    "before_history_start": "dated before the tenant's history start (fix: widen the history start, or ignore)",
    "outside_day": "updated outside the partition's day, or created after its update (fix: the tenant's timezone)",
    "conflicting_duplicate": "the same id twice with different content and no later version (fix: the source)",
    "negative_amount": "a negative amount that is not a refund (fix: check the order in the shop)",
    "unmatched_refund": "a refund row (negative amount) matching no earlier order of the customer (fix: the export)",
    "over_refunded": "refunded more than its total (fix: check the order's refunds in the shop)",
    "foreign_currency": "not in the tenant's currency (fix: the shop's currency or `mlops tenants` currency)",
    "extreme_outlier": "far above the tenant's usual order values (fix: if real, `mlops quarantine release`)",
}

# Only a fact about the world can be confirmed by a person; the other reasons need a fix at the source.
RELEASABLE = frozenset({"extreme_outlier"})
