-- name: trace_all
-- kind: trace
-- description: Every ledger row a trace may read, in global (ts, txn_id) order, for the in-memory ledger index.
-- inputs: transactions, _trace_virtual(txn_id, ts, dst_id, amount, dst_bank), _trace_banks(bank)
-- outputs: txn_id, ts, src_id (NULL for a deposit known only from a report), dst_id, amount, cash_out, dst_data
-- param: until TIMESTAMP = NULL  Only transactions up to this time are read (as of).
-- param: cash_out VARCHAR = atm,crypto,cross_border  Comma-separated channels on which money leaves the system.
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
ORDER BY ts, txn_id
