-- name: trace_ids
-- kind: trace
-- description: Every account id in the ledger a trace may read, in id order; its position is the account's number in trace_all.
-- inputs: transactions, _trace_virtual(txn_id, ts, dst_id, amount, dst_bank)
-- outputs: account_id
-- param: until TIMESTAMP = NULL  Only transactions up to this time are read (as of).
SELECT account_id FROM (
    SELECT src_id AS account_id FROM transactions WHERE $until IS NULL OR ts <= $until
    UNION
    SELECT dst_id FROM transactions WHERE $until IS NULL OR ts <= $until
    UNION
    SELECT dst_id FROM _trace_virtual WHERE $until IS NULL OR ts <= $until
)
ORDER BY account_id
