-- name: daily_volume
-- kind: analyst
-- description: Payments per UTC day: count, amount, distinct payers and payees, and money cashed out (ATM, crypto, cross-border).
-- inputs: transactions
-- outputs: day, n_txns, amount, payers, payees, cash_out_txns, cash_out_amount
-- param: since TIMESTAMP = NULL   From this UTC time (default: the first payment).
-- param: until TIMESTAMP = NULL   Before this UTC time (default: after the last payment).
-- param: bank VARCHAR = NULL      Only payments from or to this bank (default: every bank).
SELECT CAST(ts AS DATE) AS day, count(*) AS n_txns, sum(amount)::DECIMAL(18, 4) AS amount,
       count(DISTINCT src_id) AS payers, count(DISTINCT dst_id) AS payees,
       count(*) FILTER (WHERE channel IN ('atm', 'crypto', 'cross_border')) AS cash_out_txns,
       coalesce(sum(amount) FILTER (WHERE channel IN ('atm', 'crypto', 'cross_border')), 0)::DECIMAL(18, 4)
           AS cash_out_amount
FROM transactions
WHERE (CAST($since AS TIMESTAMP) IS NULL OR ts >= CAST($since AS TIMESTAMP))
  AND (CAST($until AS TIMESTAMP) IS NULL OR ts < CAST($until AS TIMESTAMP))
  AND (CAST($bank AS VARCHAR) IS NULL OR src_bank = CAST($bank AS VARCHAR) OR dst_bank = CAST($bank AS VARCHAR))
GROUP BY 1
ORDER BY 1
