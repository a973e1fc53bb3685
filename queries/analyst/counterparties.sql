-- name: counterparties
-- kind: analyst
-- description: Who an account paid and was paid by over a period, with counts and amounts each way, largest first.
-- inputs: transactions, account_scores
-- outputs: bank, account, n_in, in_amount, n_out, out_amount, total, first_ts, last_ts, score, band
-- param: account VARCHAR          The account, as BANK:ACCOUNT.
-- param: since TIMESTAMP = NULL   Count payments at or after this UTC time (default: from the first).
-- param: until TIMESTAMP = NULL   Count payments before this UTC time (default: up to the last).
-- param: limit INTEGER = 50       Show at most this many counterparties.
WITH me AS (
    SELECT split_part($account, ':', 1) AS bank, substr($account, strpos($account, ':') + 1) AS account
), k AS (
    SELECT bank, account, account_key(bank, account) AS id FROM me
), legs AS (
    SELECT t.src_bank AS bank, t.src_account AS account, t.ts, t.amount, 'in' AS dir
    FROM transactions t JOIN k ON t.dst_id = k.id AND t.dst_bank = k.bank AND t.dst_account = k.account
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR t.ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR t.ts < CAST($until AS TIMESTAMP))
    UNION ALL
    SELECT t.dst_bank, t.dst_account, t.ts, t.amount, 'out'
    FROM transactions t JOIN k ON t.src_id = k.id AND t.src_bank = k.bank AND t.src_account = k.account
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR t.ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR t.ts < CAST($until AS TIMESTAMP))
)
SELECT l.bank, l.account,
       count(*) FILTER (WHERE dir = 'in') AS n_in,
       coalesce(sum(amount) FILTER (WHERE dir = 'in'), 0)::DECIMAL(18, 4) AS in_amount,
       count(*) FILTER (WHERE dir = 'out') AS n_out,
       coalesce(sum(amount) FILTER (WHERE dir = 'out'), 0)::DECIMAL(18, 4) AS out_amount,
       sum(amount)::DECIMAL(18, 4) AS total,
       min(ts) AS first_ts, max(ts) AS last_ts,
       any_value(s.score) AS score, any_value(s.band) AS band
FROM legs l
LEFT JOIN account_scores s ON s.bank = l.bank AND s.account = l.account
GROUP BY l.bank, l.account
ORDER BY total DESC, l.bank, l.account
LIMIT $limit
