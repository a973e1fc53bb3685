-- name: money_paths
-- kind: analyst
-- description: Chains of payments carrying money from one account to another, each payment no earlier than the one before, all within a time window.
-- inputs: transactions
-- outputs: hops, path, txn_ids, amounts, min_amount, first_ts, last_ts
-- param: from_account VARCHAR        Where the money starts, as BANK:ACCOUNT.
-- param: to_account VARCHAR          Where it must arrive, as BANK:ACCOUNT.
-- param: max_hops INTEGER = 4        Longest path, in payments (1 to 8).
-- param: window_hours DOUBLE = 72    All payments of a path happen within this many hours of its first.
-- param: since TIMESTAMP = NULL      Paths starting at or after this UTC time (default: from the first payment).
-- param: until TIMESTAMP = NULL      Paths ending before this UTC time (default: up to the last payment).
-- param: limit INTEGER = 50          Show at most this many paths (shortest and earliest first).
WITH RECURSIVE ends AS (
    SELECT account_key(split_part($from_account, ':', 1), substr($from_account, strpos($from_account, ':') + 1)) AS src,
           split_part($from_account, ':', 1) AS src_bank, substr($from_account, strpos($from_account, ':') + 1) AS src_account,
           account_key(split_part($to_account, ':', 1), substr($to_account, strpos($to_account, ':') + 1)) AS dst
), edges AS (
    SELECT txn_id, ts, src_id, dst_id, src_bank, src_account, dst_bank || ':' || dst_account AS dst_label, amount
    FROM transactions
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR ts < CAST($until AS TIMESTAMP))
), walk AS (
    SELECT [e.src_id, e.dst_id] AS ids, [e.src_bank || ':' || e.src_account, e.dst_label] AS labels,
           [e.txn_id] AS txns, [e.amount] AS amounts, e.ts AS first_ts, e.ts AS last_ts, e.dst_id AS cur, 1 AS hops
    FROM edges e JOIN ends ON e.src_id = ends.src AND e.src_bank = ends.src_bank AND e.src_account = ends.src_account
    WHERE e.src_id <> e.dst_id
    UNION ALL
    SELECT list_append(w.ids, e.dst_id), list_append(w.labels, e.dst_label), list_append(w.txns, e.txn_id),
           list_append(w.amounts, e.amount), w.first_ts, e.ts, e.dst_id, w.hops + 1
    FROM walk w
    JOIN edges e ON e.src_id = w.cur AND e.ts >= w.last_ts
                AND e.ts <= w.first_ts + to_microseconds(CAST($window_hours * 3600000000 AS BIGINT))
    CROSS JOIN ends
    WHERE w.hops < least($max_hops, 8) AND w.cur <> ends.dst AND NOT list_contains(w.ids, e.dst_id)
)
SELECT w.hops, array_to_string(w.labels, ' > ') AS path, array_to_string(w.txns, ';') AS txn_ids,
       array_to_string(list_transform(w.amounts, lambda x: CAST(x AS VARCHAR)), ';') AS amounts,
       list_min(w.amounts)::DECIMAL(18, 4) AS min_amount, w.first_ts, w.last_ts
FROM walk w CROSS JOIN ends
WHERE w.cur = ends.dst
ORDER BY w.hops, w.first_ts, txn_ids
LIMIT $limit
