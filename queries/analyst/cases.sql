-- name: cases
-- kind: analyst
-- description: The reported cases: victim, loss, what tracing found and what is still held and listed to freeze, most held first.
-- inputs: reports, trace_flows, trace_holdings, freeze_list
-- outputs: case_id, victim, reported_at, amount_lost, payments, flows, accounts_reached, held, to_freeze
-- param: rule VARCHAR = lifo      The tracing rule of the held amounts: one of poison|haircut|fifo|lifo|libr.
-- param: limit INTEGER = 50       Show at most this many cases.
WITH r AS (
    SELECT case_id, any_value(victim_bank || ':' || victim_account) AS victim, max(reported_at) AS reported_at,
           sum(amount_lost) AS amount_lost, count(*) AS payments
    FROM reports GROUP BY case_id
), f AS (
    SELECT case_id, count(*) AS flows FROM trace_flows GROUP BY case_id
), h AS (
    SELECT case_id, count(*) AS accounts_reached,
           sum(CASE $rule WHEN 'poison' THEN held_poison WHEN 'haircut' THEN held_haircut WHEN 'fifo' THEN held_fifo
                          WHEN 'lifo' THEN held_lifo WHEN 'libr' THEN held_libr END) AS held
    FROM trace_holdings GROUP BY case_id
), listed AS (
    -- An account listed for several cases is split among them by what it holds of each (under the list's rule),
    -- so no case is credited with another victim's money.
    SELECT c.case_id, fz.bank, fz.account, fz.amount_to_freeze,
           coalesce(CASE fz.rule WHEN 'poison' THEN th.held_poison WHEN 'haircut' THEN th.held_haircut
                                 WHEN 'fifo' THEN th.held_fifo WHEN 'lifo' THEN th.held_lifo
                                 WHEN 'libr' THEN th.held_libr END, 0) AS held
    FROM freeze_list fz, unnest(string_split(fz.case_ids, ';')) AS c(case_id)
    LEFT JOIN trace_holdings th ON th.case_id = c.case_id AND th.bank = fz.bank AND th.account = fz.account
), fl AS (
    SELECT case_id,
           sum(CAST(amount_to_freeze AS DOUBLE) * CASE WHEN total > 0 THEN CAST(held AS DOUBLE) / CAST(total AS DOUBLE)
                                                       ELSE 1.0 / n END) AS to_freeze
    FROM (SELECT *, sum(held) OVER (PARTITION BY bank, account) AS total,
                 count(*) OVER (PARTITION BY bank, account) AS n FROM listed)
    GROUP BY case_id
)
SELECT r.case_id, r.victim, r.reported_at, r.amount_lost::DECIMAL(18, 4) AS amount_lost, r.payments,
       coalesce(f.flows, 0) AS flows, coalesce(h.accounts_reached, 0) AS accounts_reached,
       coalesce(h.held, 0)::DECIMAL(18, 4) AS held, coalesce(fl.to_freeze, 0)::DECIMAL(18, 4) AS to_freeze
FROM r LEFT JOIN f USING (case_id) LEFT JOIN h USING (case_id) LEFT JOIN fl USING (case_id)
ORDER BY held DESC, r.amount_lost DESC, r.case_id
LIMIT $limit
