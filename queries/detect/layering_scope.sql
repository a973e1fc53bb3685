-- name: detect_layering_scope
-- kind: detect
-- description: What an incremental run of layering recomputes (fundtrace.detect.scopes.layering_scope): the key accounts whose scatter-gather (as source or sink) and gather-scatter (as hub) alerts new payments can change, and the payments an exact recomputation of exactly those alerts reads.
-- inputs: dt_tx (every payment of the family's context), ly_hub (layering's hub buckets, counted over all of them), dx_touched (the accounts new payments touched)
-- outputs: ly_hc(acct, b): hub buckets the new payments can have made; ly_keys(account_id): the key accounts; ly_tx: the payments layering needs for them (dt_tx's columns).
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket.
-- param: layer_max DOUBLE = 60  An account with more payments than this in a bucket is a hub there.
-- param: layer_tolerance DOUBLE = 0.2  Largest relative difference between what an intermediate receives and passes on.
-- step: ly_hc
-- Every payment the new ones add to the payments read (the new payments and a holder's transfers that now count)
-- has both ends touched, and payments are only ever added: hub counts only grow, and only touched accounts' do.
-- A touched account's hub bucket whose payments with both ends touched take it to layer_max or less may be new;
-- every other hub bucket was a hub bucket before.
SELECT h.acct, h.b FROM ly_hub h
LEFT JOIN (
  SELECT acct, b, count(*) AS n FROM (
    SELECT src_id AS acct, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx
    WHERE src_id IN (SELECT account_id FROM dx_touched) AND dst_id IN (SELECT account_id FROM dx_touched)
    UNION ALL
    SELECT dst_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT) FROM dt_tx
    WHERE src_id IN (SELECT account_id FROM dx_touched) AND dst_id IN (SELECT account_id FROM dx_touched)
  ) GROUP BY acct, b
) x ON x.acct = h.acct AND x.b = h.b
WHERE h.acct IN (SELECT account_id FROM dx_touched) AND h.n - coalesce(x.n, 0) <= $layer_max
-- step: ly_keys
-- The touched accounts: every changed payment and every changed hub bucket is theirs, so a scatter-gather alert
-- changed by a new path or by its source's or sink's hub bucket has a touched source or sink, and a
-- gather-scatter alert changed by its hub's payments or hub bucket has a touched hub. Besides them, every
-- counterparty, in that bucket, of an account that may have become a hub there: the paths through such an
-- intermediate go (hub buckets are only gained, so none come), and the first payment of each (if the bucket is
-- the first payment's) has their source as counterparty, the second (if the bucket is the second's) their sink;
-- a gather-scatter hub's window loses its payments with such a counterparty, which can make or break the alert.
SELECT account_id FROM dx_touched
UNION
SELECT x.dst_id FROM dt_tx x JOIN ly_hc h ON h.acct = x.src_id AND h.b = x.t // CAST($layer_window_hours * 3600e6 AS BIGINT)
UNION
SELECT x.src_id FROM dt_tx x JOIN ly_hc h ON h.acct = x.dst_id AND h.b = x.t // CAST($layer_window_hours * 3600e6 AS BIGINT)
-- step: ly_pk
-- Join keys of the key accounts' payments, as sg_paths packs bucket and amount band (see there): a payment out
-- of a key source (a path's first payment) with the keys it probes, a payment into a key sink (a path's second
-- payment) with every key of a first payment that probes its own. Payments with an end that is a hub in their
-- bucket are no path's. The key accounts' payments are the small side.
SELECT 'out' AS dir, x.t, x.src_id, x.dst_id, x.amt, (x.b + kb) * 128 + x.qlo + kq + 64 AS bq
FROM (
  SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
         CASE WHEN $layer_tolerance >= 0 AND $layer_tolerance < 0.9 THEN CAST(floor((ln(amt) + ln(1 - least(greatest($layer_tolerance, 0), 0.9))) / (1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9))))) - 1e-9) AS BIGINT)
              ELSE 0 END AS qlo,
         CASE WHEN $layer_tolerance >= 0 AND $layer_tolerance < 0.9 THEN CAST(floor((ln(amt) + ln(1 + greatest($layer_tolerance, 0))) / (1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9))))) + 1e-9) AS BIGINT)
              ELSE 0 END AS qhi
  FROM dt_tx WHERE src_id IN (SELECT account_id FROM ly_keys)
) x
LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
WHERE x.qlo + kq <= x.qhi AND s.acct IS NULL AND d.acct IS NULL
UNION ALL
SELECT 'in', x.t, x.src_id, x.dst_id, x.amt, (x.b - kb) * 128 + x.q - kq + 64
FROM (
  SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b, CASE WHEN $layer_tolerance >= 0 AND $layer_tolerance < 0.9 THEN CAST(floor(ln(amt) / (1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9)))))) AS BIGINT) ELSE 0 END AS q
  FROM dt_tx WHERE dst_id IN (SELECT account_id FROM ly_keys)
) x
LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
WHERE s.acct IS NULL AND d.acct IS NULL
-- step: ly_tx
-- The payments layering needs for the key accounts: their own (a gather-scatter hub's window reads every one of
-- its payments) and the other payment of every two-hop path from a key source or to a key sink: the payments
-- out of the intermediates a key source pays that match one of its payments in sg_paths' join, and the payments
-- into the intermediates that pay a key sink that match one of its payments in (a superset: hub buckets of the
-- other payment and the band's upper bound are not checked; layering's own steps check them, against hub
-- buckets counted over every payment). Payments alike in payer, payee, time and amount match alike, so sg_ev
-- finds the same evidence. Each payment once (UNION).
SELECT * FROM dt_tx WHERE src_id IN (SELECT account_id FROM ly_keys) OR dst_id IN (SELECT account_id FROM ly_keys)
UNION
SELECT c.txn_id, c.t, c.src_id, c.dst_id, c.amt, c.cash_out
FROM (SELECT *, t // CAST($layer_window_hours * 3600e6 AS BIGINT) * 128 + CASE WHEN $layer_tolerance >= 0 AND $layer_tolerance < 0.9 THEN CAST(floor(ln(amt) / (1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9)))))) AS BIGINT) ELSE 0 END + 64 AS bq FROM dt_tx) c
JOIN (SELECT * FROM ly_pk WHERE dir = 'out') a ON c.src_id = a.dst_id AND c.bq = a.bq
WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
  AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
UNION
SELECT a.txn_id, a.t, a.src_id, a.dst_id, a.amt, a.cash_out
FROM (SELECT *, t // CAST($layer_window_hours * 3600e6 AS BIGINT) * 128 + CASE WHEN $layer_tolerance >= 0 AND $layer_tolerance < 0.9 THEN CAST(floor((ln(amt) + ln(1 - least(greatest($layer_tolerance, 0), 0.9))) / (1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9))))) - 1e-9) AS BIGINT) ELSE 0 END + 64 AS bq FROM dt_tx) a
JOIN (SELECT * FROM ly_pk WHERE dir = 'in') c ON c.src_id = a.dst_id AND c.bq = a.bq
WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
  AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
