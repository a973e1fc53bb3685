-- name: freeze_list
-- kind: score
-- description: The accounts to freeze (or stop payments on), how much, why and on what evidence, in priority order.
-- inputs: sc_holdings (temp, from account_scores), account_scores, accounts, transactions, reports
-- outputs: the rows of freeze_list (see migrations/0004_score.sql)
-- param: as_of TIMESTAMP                 The data time of the decision.
-- param: rule VARCHAR = lifo             The tracing rule the amounts follow.
-- param: min_score DOUBLE = 0.5          Only accounts scoring at least this are listed (the hold band).
-- param: fresh_hours DOUBLE = 48         A first-level account whose victims' money arrived this recently gets a stop-payment first.
-- param: currency VARCHAR = CNY          The currency when the evidence payments do not name one.

-- step: fl_groups
-- Each holding time (as_of) caps what can be frozen at the balance then: never more than the account held.
SELECT account_id, as_of, sum(held) AS held, max(balance) AS balance FROM sc_holdings GROUP BY ALL

-- step: fl_accounts
WITH g AS (
    SELECT account_id, sum(held) AS traced, sum(least(held, balance)) AS amount, arg_max(balance, as_of) AS balance
    FROM fl_groups GROUP BY 1
), h AS (
    SELECT account_id, any_value(bank) AS bank, any_value(account) AS account,
           string_agg(DISTINCT case_id, ';' ORDER BY case_id) AS case_ids, min(hop) AS hop_level,
           min(first_tainted_at) AS first_tainted_at, max(last_tainted_at) AS last_tainted_at,
           list_sort(list_distinct(flatten(list(txns)))) AS txns
    FROM sc_holdings GROUP BY 1
)
SELECT h.*, g.traced, g.amount, g.balance, s.score, s.band, s.reasons
FROM h JOIN g USING (account_id) JOIN account_scores s USING (account_id)
WHERE s.score >= $min_score AND g.amount >= 0.01

-- step: fl_final
WITH cur AS (
    SELECT e.account_id, min(t.currency) AS currency
    FROM (SELECT account_id, unnest(txns) AS txn_id FROM fl_accounts) e
    JOIN transactions t ON t.txn_id = e.txn_id GROUP BY 1
), r AS (
    SELECT f.*, coalesce(c.currency, $currency) AS currency, a.holder_name,
           f.hop_level = 1 AND f.last_tainted_at >= $as_of - to_seconds(CAST($fresh_hours * 3600 AS BIGINT)) AS stop_pay
    FROM fl_accounts f LEFT JOIN cur c USING (account_id) LEFT JOIN accounts a USING (account_id)
)
SELECT bank, account, account_id, case_ids, holder_name, CAST(hop_level AS INTEGER) AS hop_level,
       CAST(round(traced, 4) AS DECIMAL(18, 4)) AS traced_amount,
       CAST(floor(least(amount, traced) * 100) / 100 AS DECIMAL(18, 4)) AS amount_to_freeze,
       CAST(balance AS DECIMAL(18, 4)) AS balance, currency, $rule AS rule, score, band, reasons AS reason_codes,
       array_to_string(txns, ';') AS evidence_txn_ids,
       sha256(concat_ws('|', bank, account, case_ids, $rule, array_to_string(txns, ';'),
                        CAST(CAST(round(traced, 4) AS DECIMAL(18, 4)) AS VARCHAR))) AS evidence_sha256,
       first_tainted_at, last_tainted_at, stop_pay,
       CAST(row_number() OVER (ORDER BY stop_pay DESC, amount DESC, score DESC, bank, account) AS INTEGER) AS priority,
       $as_of AS as_of
FROM r
