"""The rates an invoice adds, as SQL: two small maps read once per statement (uncorrelated subqueries).

The bulk preview and the billing forecast look each subscription's tax and
shipping up in them instead of running a subquery per row.
"""

from __future__ import annotations

#: Every active tax rate by place ("US" for a country, "US US-CA" for a region; one active rate per place),
#: with the percentage an invoice adds (JSON null for an inclusive rate, which adds nothing).
TAX_RATES = (
    "(SELECT jsonb_object_agg(r.country || coalesce(' ' || r.region, ''),"
    " CASE WHEN r.inclusive THEN NULL ELSE r.percentage END) FROM tax_rates r WHERE r.active)"
)
#: The first rate in each currency of every shipping profile ("7 USD"): what a renewal bills for shipping.
SHIPPING_RATES = (
    "(SELECT jsonb_object_agg(k, amount) FROM (SELECT DISTINCT ON (sp.id, e.value ->> 'currency')"
    " sp.id || ' ' || (e.value ->> 'currency') AS k, (e.value ->> 'amountMinor')::bigint AS amount"
    " FROM shipping_profiles sp, jsonb_array_elements(sp.rates) WITH ORDINALITY AS e(value, n)"
    " ORDER BY sp.id, e.value ->> 'currency', e.n) AS first_rates)"
)
