-- name: detect_prep
-- kind: detect
-- description: The transactions every detector reads: from ctx_from on (before ctx_to), a holder's transfers between their own accounts removed unless the money only transits the holder, times as integer microseconds, cash_out for the cash-out channels (atm, crypto, cross_border).
-- inputs: transactions, accounts, detect_fx (currency, rate: amounts are compared in one currency, see fundtrace.detect.fit; a currency without a rate counts as paid)
-- outputs: dt_tx(txn_id, t, src_id, dst_id, amt DOUBLE, cash_out BOOLEAN): lean, since every detector scans it and it must stay in memory (10 M rows ~ 0.6 GB).
-- param: ctx_from TIMESTAMP = 1970-01-01  Earliest transaction time to read (incremental runs read a window before the new batch).
-- param: ctx_to TIMESTAMP = NULL  Transactions before this time only, NULL for no end (an incremental run adds an earlier slice to what it prepared).
-- param: skip_same_holder BOOLEAN = true  Drop transfers between two accounts with the same holder_id (a person moving their own money).
-- param: same_holder_onward BOOLEAN = true  Keep such a transfer when the money only transits the holder: it came from other holders and the receiving account passed it on to other holders (cash-out, or not an innocent kind), all within dwell_hours (a card farm's accounts under one bought identity).
-- param: dwell_hours DOUBLE = 48  How long money may stay in an account and still count as passed through.
-- param: keep_max DOUBLE = 0.15  The largest share of the money in that may stay behind (a mule's commission).
-- param: innocent_kinds VARCHAR = business,merchant,utility,government,payroll,atm  Account kinds whose payments are income or spending, not money passed on (a cash-out channel still is).
-- step: dt_holder
-- Only holders with two or more accounts can make a same-holder transfer: a small build side.
SELECT account_id, holder_id
FROM accounts
WHERE holder_id IN (SELECT holder_id FROM accounts WHERE holder_id IS NOT NULL GROUP BY holder_id HAVING count(*) > 1)
-- step: dt_innocent
-- Accounts of the innocent kinds (merchants, businesses, ...): paying them is spending, not passing money on.
SELECT account_id FROM accounts WHERE lower(kind) IN (SELECT unnest(string_split($innocent_kinds, ',')))
-- step: dt_onward
-- Same-holder transfers that are evidence after all: the money only transits the holder, as it would transit
-- one pass-through account. Before the transfer its sending account received at least (1 - keep_max) of the
-- amount from other holders, after it the receiving account sent at least that much on to other holders
-- (through a cash-out channel or to an account not of an innocent kind), all within one dwell window. Someone moving savings to their own current
-- account and paying bills or shopping from it stays out; an account under a bought identity that collects
-- from its siblings and cashes out or forwards the money does not.
WITH own AS (
  SELECT tx.txn_id, tx.src_id, tx.dst_id, epoch_us(tx.ts) AS t, CAST(tx.amount AS DOUBLE) * coalesce(fx.rate, 1.0) AS amt,
         coalesce(tx.channel IN ('atm', 'crypto', 'cross_border'), false) AS cash_out, hs.holder_id
  FROM transactions tx
  LEFT JOIN detect_fx fx ON fx.currency = tx.currency
  JOIN dt_holder hs ON hs.account_id = tx.src_id
  JOIN dt_holder hd ON hd.account_id = tx.dst_id
  WHERE $skip_same_holder AND $same_holder_onward
    AND tx.ts >= $ctx_from AND ($ctx_to IS NULL OR tx.ts < $ctx_to) AND tx.src_id <> tx.dst_id AND hs.holder_id = hd.holder_id
),
came AS (  -- when enough money from other holders (not of an innocent kind) had come in: the latest t_in with
           -- at least (1 - keep_max) of the amount arriving in [t_in, t], looking back at most dwell_hours
  SELECT txn_id, max(x_t) AS t_in FROM (
    SELECT o.txn_id, o.amt, epoch_us(x.ts) AS x_t,
           sum(CAST(x.amount AS DOUBLE) * coalesce(fx.rate, 1.0)) OVER (PARTITION BY o.txn_id ORDER BY x.ts DESC, x.txn_id
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM own o
    JOIN transactions x ON x.dst_id = o.src_id
    LEFT JOIN detect_fx fx ON fx.currency = x.currency
    LEFT JOIN dt_holder hx ON hx.account_id = x.src_id
    WHERE epoch_us(x.ts) <= o.t AND epoch_us(x.ts) >= o.t - CAST($dwell_hours * 3600e6 AS BIGINT)
      -- the same bounds on the whole range (constants: the scan skips the payments outside it)
      AND x.ts >= make_timestamp(epoch_us(CAST($ctx_from AS TIMESTAMP)) - CAST($dwell_hours * 3600e6 AS BIGINT))
      AND ($ctx_to IS NULL OR x.ts < $ctx_to)
      AND x.src_id <> x.dst_id AND hx.holder_id IS DISTINCT FROM o.holder_id
      AND x.src_id NOT IN (SELECT account_id FROM dt_innocent)
  ) WHERE cum >= (1 - $keep_max) * amt GROUP BY txn_id
),
went AS (  -- when enough had left to other holders (cash-out, or not an innocent kind): the earliest t_out with
           -- at least (1 - keep_max) of the amount sent in [t, t_out], looking ahead at most dwell_hours
  SELECT txn_id, min(x_t) AS t_out FROM (
    SELECT o.txn_id, o.amt, epoch_us(x.ts) AS x_t,
           sum(CAST(x.amount AS DOUBLE) * coalesce(fx.rate, 1.0)) OVER (PARTITION BY o.txn_id ORDER BY x.ts, x.txn_id
                                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum
    FROM own o
    JOIN transactions x ON x.src_id = o.dst_id
    LEFT JOIN detect_fx fx ON fx.currency = x.currency
    LEFT JOIN dt_holder hx ON hx.account_id = x.dst_id
    WHERE epoch_us(x.ts) >= o.t AND epoch_us(x.ts) <= o.t + CAST($dwell_hours * 3600e6 AS BIGINT)
      AND x.ts >= $ctx_from
      AND ($ctx_to IS NULL OR x.ts < make_timestamp(epoch_us(CAST($ctx_to AS TIMESTAMP)) + CAST($dwell_hours * 3600e6 AS BIGINT)))
      AND x.src_id <> x.dst_id AND hx.holder_id IS DISTINCT FROM o.holder_id
      AND (coalesce(x.channel IN ('atm', 'crypto', 'cross_border'), false)
           OR x.dst_id NOT IN (SELECT account_id FROM dt_innocent))
  ) WHERE cum >= (1 - $keep_max) * amt GROUP BY txn_id
)
-- The holder as one account: the money came in and left again within one dwell window.
SELECT o.txn_id, o.t, o.src_id, o.dst_id, o.amt, o.cash_out
FROM own o JOIN came c ON c.txn_id = o.txn_id JOIN went w ON w.txn_id = o.txn_id
WHERE w.t_out - c.t_in <= CAST($dwell_hours * 3600e6 AS BIGINT)
-- step: dt_tx
-- (dt_onward carries its rows itself: no second look at every payment for the few it keeps)
SELECT tx.txn_id, epoch_us(tx.ts) AS t, tx.src_id, tx.dst_id, CAST(tx.amount AS DOUBLE) * coalesce(fx.rate, 1.0) AS amt,
       coalesce(tx.channel IN ('atm', 'crypto', 'cross_border'), false) AS cash_out
FROM transactions tx
LEFT JOIN detect_fx fx ON fx.currency = tx.currency
LEFT JOIN dt_holder hs ON hs.account_id = tx.src_id
LEFT JOIN dt_holder hd ON hd.account_id = tx.dst_id
WHERE tx.ts >= $ctx_from AND ($ctx_to IS NULL OR tx.ts < $ctx_to)
  AND tx.src_id <> tx.dst_id
  AND NOT ($skip_same_holder AND coalesce(hs.holder_id = hd.holder_id, false))
UNION ALL
SELECT * FROM dt_onward
