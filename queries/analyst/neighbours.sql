-- name: neighbours
-- kind: analyst
-- description: Accounts within k payments of an account, in either direction, over a period, nearest first.
-- inputs: transactions, account_scores
-- outputs: bank, account, distance, score, band
-- param: account VARCHAR          The account, as BANK:ACCOUNT.
-- param: hops INTEGER = 2         How many payments away to look (1 to 4).
-- param: since TIMESTAMP = NULL   Count payments at or after this UTC time (default: from the first).
-- param: until TIMESTAMP = NULL   Count payments before this UTC time (default: up to the last).
-- param: limit INTEGER = 1000     Show at most this many accounts.
WITH RECURSIVE start AS (
    SELECT account_key(split_part($account, ':', 1), substr($account, strpos($account, ':') + 1)) AS id,
           split_part($account, ':', 1) AS bank, substr($account, strpos($account, ':') + 1) AS account
), t AS (
    SELECT src_id, dst_id, src_bank, src_account, dst_bank, dst_account FROM transactions
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR ts < CAST($until AS TIMESTAMP))
), pairs AS (
    SELECT DISTINCT src_id AS a, dst_id AS b FROM t
    UNION
    SELECT DISTINCT dst_id, src_id FROM t
), reach(id, depth) AS (
    SELECT s.id, 0 FROM start s
    WHERE EXISTS (SELECT 1 FROM t WHERE (t.src_id = s.id AND t.src_bank = s.bank AND t.src_account = s.account)
                                     OR (t.dst_id = s.id AND t.dst_bank = s.bank AND t.dst_account = s.account))
    UNION
    SELECT p.b, r.depth + 1 FROM reach r JOIN pairs p ON p.a = r.id WHERE r.depth < least($hops, 4)
), near AS (
    SELECT id, min(depth) AS distance FROM reach GROUP BY id HAVING min(depth) > 0
), names AS (
    SELECT DISTINCT src_id AS id, src_bank AS bank, src_account AS account FROM t WHERE src_id IN (SELECT id FROM near)
    UNION
    SELECT DISTINCT dst_id, dst_bank, dst_account FROM t WHERE dst_id IN (SELECT id FROM near)
)
SELECT n.bank, n.account, near.distance, s.score, s.band
FROM near JOIN names n USING (id)
LEFT JOIN account_scores s ON s.account_id = near.id
ORDER BY near.distance, n.bank, n.account
LIMIT $limit
