-- name: top_hubs
-- kind: analyst
-- description: Accounts with the most distinct counterparties (payers and payees) over a period.
-- inputs: transactions, account_scores
-- outputs: bank, account, counterparties, senders, receivers, n_txns, in_amount, out_amount, score, band
-- param: since TIMESTAMP = NULL   Count payments at or after this UTC time (default: from the first).
-- param: until TIMESTAMP = NULL   Count payments before this UTC time (default: up to the last).
-- param: limit INTEGER = 20       Show at most this many accounts.
WITH t AS (
    SELECT * FROM transactions
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR ts < CAST($until AS TIMESTAMP))
), legs AS (
    SELECT dst_id AS id, src_id AS other, 'in' AS dir, amount FROM t
    UNION ALL
    SELECT src_id, dst_id, 'out', amount FROM t
), acc AS (
    SELECT id, count(DISTINCT other) AS counterparties,
           count(DISTINCT other) FILTER (WHERE dir = 'in') AS senders,
           count(DISTINCT other) FILTER (WHERE dir = 'out') AS receivers,
           count(*) AS n_txns,
           coalesce(sum(amount) FILTER (WHERE dir = 'in'), 0)::DECIMAL(18, 4) AS in_amount,
           coalesce(sum(amount) FILTER (WHERE dir = 'out'), 0)::DECIMAL(18, 4) AS out_amount
    FROM legs GROUP BY id
    ORDER BY counterparties DESC, n_txns DESC, id LIMIT $limit
), names AS (
    SELECT DISTINCT src_id AS id, src_bank AS bank, src_account AS account FROM t WHERE src_id IN (SELECT id FROM acc)
    UNION
    SELECT DISTINCT dst_id, dst_bank, dst_account FROM t WHERE dst_id IN (SELECT id FROM acc)
)
SELECT n.bank, n.account, a.counterparties, a.senders, a.receivers, a.n_txns, a.in_amount, a.out_amount,
       s.score, s.band
FROM acc a JOIN names n USING (id)
LEFT JOIN account_scores s ON s.account_id = a.id
ORDER BY a.counterparties DESC, a.n_txns DESC, n.bank, n.account
