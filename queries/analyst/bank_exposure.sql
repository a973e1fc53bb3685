-- name: bank_exposure
-- kind: analyst
-- description: Per bank: victims' money its accounts still hold, how much is frozen by active requests, how much is listed to freeze, and how much is at risk (held, not frozen).
-- inputs: trace_holdings, freeze_list, freeze_requests
-- outputs: bank, accounts_holding, cases, held, to_freeze, frozen, at_risk
-- param: rule VARCHAR = lifo         The tracing rule of the held amounts: one of poison|haircut|fifo|lifo|libr.
-- param: case_id VARCHAR = NULL      Only this reported case (default: every case).
WITH held AS (
    SELECT bank, account,
           sum(CASE $rule WHEN 'poison' THEN held_poison WHEN 'haircut' THEN held_haircut WHEN 'fifo' THEN held_fifo
                          WHEN 'lifo' THEN held_lifo WHEN 'libr' THEN held_libr END) AS held
    FROM trace_holdings
    WHERE CAST($case_id AS VARCHAR) IS NULL OR case_id = CAST($case_id AS VARCHAR)
    GROUP BY bank, account
), listed AS (
    SELECT bank, account, sum(amount_to_freeze) AS to_freeze FROM freeze_list
    WHERE CAST($case_id AS VARCHAR) IS NULL OR list_contains(string_split(case_ids, ';'), CAST($case_id AS VARCHAR))
    GROUP BY bank, account
), frozen AS (
    SELECT bank, account, max(amount_to_freeze) AS frozen FROM freeze_requests
    WHERE status = 'active' AND request_type <> 'UNFREEZE'
      AND (CAST($case_id AS VARCHAR) IS NULL OR list_contains(string_split(case_ids, ';'), CAST($case_id AS VARCHAR)))
    GROUP BY bank, account
), acc AS (
    SELECT coalesce(h.bank, l.bank, f.bank) AS bank, coalesce(h.held, 0) AS held,
           coalesce(l.to_freeze, 0) AS to_freeze, coalesce(f.frozen, 0) AS frozen
    FROM held h
    FULL JOIN listed l ON l.bank = h.bank AND l.account = h.account
    FULL JOIN frozen f ON f.bank = coalesce(h.bank, l.bank) AND f.account = coalesce(h.account, l.account)
)
SELECT bank, count(*) FILTER (WHERE held > 0) AS accounts_holding,
       (SELECT count(DISTINCT th.case_id) FROM trace_holdings th
        WHERE th.bank = acc.bank AND (CAST($case_id AS VARCHAR) IS NULL OR th.case_id = CAST($case_id AS VARCHAR))) AS cases,
       sum(held)::DECIMAL(18, 4) AS held, sum(to_freeze)::DECIMAL(18, 4) AS to_freeze,
       sum(frozen)::DECIMAL(18, 4) AS frozen, sum(greatest(held - frozen, 0))::DECIMAL(18, 4) AS at_risk
FROM acc
GROUP BY bank
ORDER BY at_risk DESC, held DESC, bank
