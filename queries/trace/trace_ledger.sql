-- name: trace_ledger
-- kind: trace
-- description: Ledger slices of the accounts a trace reaches: opening balance, balance before the first tainted arrival, and every transaction from then on.
-- inputs: transactions, accounts, _trace_new(account_id, start_ts, start_txn), _trace_virtual(txn_id, ts, dst_id, amount, dst_bank), _trace_banks(bank)
-- outputs: account_id, kind ('open': one per account, with before; 'txn': one per account and transaction), txn_id, ts, src_id, dst_id, amount, cash_out, dst_data, before
-- param: until TIMESTAMP = NULL  Only transactions up to this time count for derived opening balances (as of).
-- param: end_ts TIMESTAMP = NULL  Last time any traced case follows money.
-- param: cash_out VARCHAR = atm,crypto,cross_border  Comma-separated channels on which money leaves the system.
-- param: min_amount DOUBLE = 1.0  Payees of outflows this large are returned as 'next' rows (the next frontier).
-- The opening balance is accounts.balance when balance_at is NULL; with a balance_at it is that balance minus
-- the ledger's net flow up to balance_at; without a balance it is the smallest opening balance that keeps
-- the ledger (ordered by ts, txn_id) non-negative.
-- step: trace_legs
SELECT t.src_id AS account_id, t.txn_id, t.ts, t.src_id, t.dst_id, CAST(t.amount AS DOUBLE) AS amount,
       -CAST(t.amount AS DOUBLE) AS delta, t.channel, t.dst_bank
FROM transactions t
WHERE t.src_id IN (SELECT account_id FROM _trace_new) AND ($until IS NULL OR t.ts <= $until)
UNION ALL
SELECT t.dst_id, t.txn_id, t.ts, t.src_id, t.dst_id, CAST(t.amount AS DOUBLE), CAST(t.amount AS DOUBLE),
       t.channel, t.dst_bank
FROM transactions t
WHERE t.dst_id IN (SELECT account_id FROM _trace_new) AND ($until IS NULL OR t.ts <= $until)
UNION ALL
SELECT v.dst_id, v.txn_id, v.ts, NULL, v.dst_id, v.amount, v.amount, 'transfer', v.dst_bank
FROM _trace_virtual v
WHERE v.dst_id IN (SELECT account_id FROM _trace_new) AND ($until IS NULL OR v.ts <= $until)
-- step: trace_open
WITH run AS (
    SELECT account_id, ts, txn_id, delta,
           sum(delta) OVER (PARTITION BY account_id ORDER BY ts, txn_id, delta DESC
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
    FROM trace_legs
)
SELECT
    n.account_id,
    CASE
        WHEN a.balance IS NOT NULL AND a.balance_at IS NULL THEN CAST(a.balance AS DOUBLE)
        WHEN a.balance IS NOT NULL
            THEN CAST(a.balance AS DOUBLE) - coalesce(sum(r.delta) FILTER (WHERE r.ts <= a.balance_at), 0)
        ELSE greatest(0, -least(0, coalesce(min(r.running), 0)))
    END AS opening,
    coalesce(sum(r.delta) FILTER (WHERE r.ts < n.start_ts OR (r.ts = n.start_ts AND r.txn_id < n.start_txn)), 0)
        AS net_before
FROM _trace_new n
LEFT JOIN run r ON r.account_id = n.account_id
LEFT JOIN accounts a ON a.account_id = n.account_id
GROUP BY n.account_id, a.balance, a.balance_at
-- step: trace_slice
SELECT o.account_id, 'open' AS kind, NULL::VARCHAR AS txn_id, NULL::TIMESTAMP AS ts, NULL::UBIGINT AS src_id,
       NULL::UBIGINT AS dst_id, NULL::DOUBLE AS amount, NULL::BOOLEAN AS cash_out, NULL::BOOLEAN AS dst_data,
       o.opening + o.net_before AS before
FROM trace_open o
UNION ALL
SELECT DISTINCT ON (l.account_id, l.txn_id) l.account_id, 'txn', l.txn_id, l.ts, l.src_id, l.dst_id, l.amount,
       list_contains(string_split($cash_out, ','), l.channel),
       l.dst_bank IN (SELECT bank FROM _trace_banks), NULL
FROM trace_legs l JOIN _trace_new n ON n.account_id = l.account_id
WHERE (l.ts > n.start_ts OR (l.ts = n.start_ts AND l.txn_id >= n.start_txn))
  AND ($end_ts IS NULL OR l.ts <= $end_ts)
UNION ALL
SELECT l.dst_id, 'next', arg_min(l.txn_id, (l.ts, l.txn_id)), min(l.ts), NULL, NULL, NULL, NULL, NULL, NULL
FROM trace_legs l JOIN _trace_new n ON n.account_id = l.account_id
WHERE l.src_id = l.account_id AND l.dst_id <> l.account_id
  AND (l.ts > n.start_ts OR (l.ts = n.start_ts AND l.txn_id >= n.start_txn))
  AND ($end_ts IS NULL OR l.ts <= $end_ts)
  AND l.amount >= $min_amount
  AND NOT list_contains(string_split($cash_out, ','), l.channel)
  AND l.dst_bank IN (SELECT bank FROM _trace_banks)
  AND l.dst_id NOT IN (SELECT account_id FROM _trace_new)
GROUP BY l.dst_id
