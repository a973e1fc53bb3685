-- name: detect_prep
-- kind: detect
-- description: The transactions every detector reads: from ctx_from on, transfers between two accounts of one holder removed, times as integer microseconds, cash_out for the cash-out channels (atm, crypto, cross_border).
-- inputs: transactions, accounts
-- outputs: dt_tx(txn_id, t, src_id, dst_id, amt DOUBLE, cash_out BOOLEAN): lean, since every detector scans it and it must stay in memory (10 M rows ~ 0.6 GB).
-- param: ctx_from TIMESTAMP = 1970-01-01  Earliest transaction time to read (incremental runs read a window before the new batch).
-- param: skip_same_holder BOOLEAN = true  Drop transfers between two accounts with the same holder_id.
-- step: dt_holder
-- Only holders with two or more accounts can make a same-holder transfer: a small build side.
SELECT account_id, holder_id
FROM accounts
WHERE holder_id IN (SELECT holder_id FROM accounts WHERE holder_id IS NOT NULL GROUP BY holder_id HAVING count(*) > 1)
-- step: dt_tx
SELECT tx.txn_id, epoch_us(tx.ts) AS t, tx.src_id, tx.dst_id, CAST(tx.amount AS DOUBLE) AS amt,
       coalesce(tx.channel IN ('atm', 'crypto', 'cross_border'), false) AS cash_out
FROM transactions tx
LEFT JOIN dt_holder hs ON hs.account_id = tx.src_id
LEFT JOIN dt_holder hd ON hd.account_id = tx.dst_id
WHERE tx.ts >= $ctx_from
  AND tx.src_id <> tx.dst_id
  AND NOT ($skip_same_holder AND coalesce(hs.holder_id = hd.holder_id, false))
