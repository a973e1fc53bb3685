-- name: trace_all
-- kind: trace
-- description: Every ledger row a trace may read, in global (ts, txn_id) order, for the in-memory ledger index.
-- inputs: transactions, _trace_virtual(txn_id, ts, dst_id, amount, dst_bank), _trace_banks(bank), _trace_ids(account_id, k) (trace_ids numbered from 0)
-- outputs: txn_id, ts, src_k (account number; -1 for a deposit known only from a report), dst_k, amount, cash_out, dst_data
-- param: until TIMESTAMP = NULL  Only transactions up to this time are read (as of).
-- param: cash_out VARCHAR = atm,crypto,cross_border  Comma-separated channels on which money leaves the system.
SELECT r.txn_id, r.ts, coalesce(s.k, -1) AS src_k, d.k AS dst_k, r.amount, r.cash_out, r.dst_data
FROM (
    SELECT t.txn_id, t.ts, t.src_id, t.dst_id, CAST(t.amount AS DOUBLE) AS amount,
           list_contains(string_split($cash_out, ','), t.channel) AS cash_out,
           t.dst_bank IN (SELECT bank FROM _trace_banks) AS dst_data
    FROM transactions t
    WHERE $until IS NULL OR t.ts <= $until
    UNION ALL
    SELECT v.txn_id, v.ts, NULL::UBIGINT, v.dst_id, CAST(v.amount AS DOUBLE), false,
           v.dst_bank IN (SELECT bank FROM _trace_banks)
    FROM _trace_virtual v
    WHERE $until IS NULL OR v.ts <= $until
) r
LEFT JOIN _trace_ids s ON s.account_id = r.src_id
JOIN _trace_ids d ON d.account_id = r.dst_id
ORDER BY r.ts, r.txn_id
