-- name: detect_layering_scope
-- kind: detect
-- description: What an incremental run of layering recomputes (fundtrace.detect.scopes.layering_scope): the key accounts whose scatter-gather (as source or sink) and gather-scatter (as hub) alerts new payments can change, the two-hop paths of exactly those scatter-gather alerts, and the payments the rest of layering reads for them.
-- inputs: dt_tx (every payment of the family's context), dx_ly_tt (the payments with a touched end among them, or more: a view of dt_tx or of the runner's dt_touched, see layering_scope), ly_band (layering's amount bands), ly_hub (layering's hub buckets, counted over all of them) or dx_ly_stored (the stored ones, see dx_ly_hn), dx_touched (the accounts new payments touched)
-- outputs: ly_tt: the touched accounts' payments; dx_ly_fb(fb), dx_ly_hn(acct, b, n), ly_hub(acct, b, n): the first bucket wholly in the context, the touched accounts' hub buckets counted again from it, and every account's (only with stored hub buckets); ly_hc(acct, b): hub buckets the new payments can have made; ly_keys(account_id): the key accounts; ly_kn: the key accounts' payments that are not a hub's (dt_tx's columns, b, k_src, k_dst); sg_paths: every two-hop path from a key source or to a key sink (layering's sg_paths columns and the txn_id of its two payments, x1 and x2; detect_layering then leaves out its own sg_paths step); ly_px: the paths' other payments (dt_tx's columns). The rest of layering reads ly_kn and ly_px.
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket.
-- param: layer_max DOUBLE = 60  An account with more payments than this in a bucket is a hub there.
-- param: layer_tolerance DOUBLE = 0.2  Largest relative difference between what an intermediate receives and passes on.
-- param: ctx_from TIMESTAMP = 1970-01-01  The start of the family's context (dt_tx holds every payment from then on).
-- step: ly_tt
-- The touched accounts' payments, bucketed (ks, kd: which ends are touched): what the steps up to ly_keys read.
SELECT * FROM (
  SELECT t, src_id, dst_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b, src_id IN (SELECT account_id FROM dx_touched) AS ks,
         dst_id IN (SELECT account_id FROM dx_touched) AS kd
  FROM dx_ly_tt
) WHERE ks OR kd
-- step: dx_ly_fb
-- Only with stored hub buckets (dx_ly_stored: detect_ly_hub current up to the new payments; layering_scope runs
-- this step and the next two only then): the first bucket wholly inside the context.
SELECT (epoch_us($ctx_from) + CAST($layer_window_hours * 3600e6 AS BIGINT) - 1) // CAST($layer_window_hours * 3600e6 AS BIGINT) AS fb
-- step: dx_ly_hn
-- The touched accounts' hub buckets from fb on, counted over their payments (ly_tt). Every payment the new ones add
-- has both ends touched and lies in the context: no other account's count changes, nor a touched account's before fb.
SELECT acct, b, count(*) AS n FROM (
  SELECT src_id AS acct, b FROM ly_tt WHERE ks
  UNION ALL
  SELECT dst_id, b FROM ly_tt WHERE kd
) WHERE b >= (SELECT fb FROM dx_ly_fb)
GROUP BY acct, b
HAVING count(*) > $layer_max
-- step: ly_hub
-- Layering's hub buckets over every payment (in place of its ly_acct and ly_hub steps): the stored ones from the
-- context's first bucket on, but the touched accounts' from fb on, which are counted again (dx_ly_hn).
SELECT acct, b, n FROM dx_ly_stored
WHERE b >= epoch_us($ctx_from) // CAST($layer_window_hours * 3600e6 AS BIGINT)
  AND NOT (acct IN (SELECT account_id FROM dx_touched)
           AND b >= (SELECT fb FROM dx_ly_fb))
UNION ALL
SELECT acct, b, n FROM dx_ly_hn
-- step: ly_hc
-- Every payment the new ones add to the payments read (the new payments and a holder's transfers that now count)
-- has both ends touched, and payments are only ever added: hub counts only grow, and only touched accounts' do.
-- A touched account's hub bucket whose payments with both ends touched take it to layer_max or less may be new;
-- every other hub bucket was a hub bucket before.
SELECT h.acct, h.b FROM ly_hub h
LEFT JOIN (
  SELECT acct, b, count(*) AS n FROM (
    SELECT src_id AS acct, b FROM ly_tt WHERE ks AND kd
    UNION ALL
    SELECT dst_id, b FROM ly_tt WHERE ks AND kd
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
-- (Those accounts are touched: their payments are in ly_tt.)
SELECT account_id FROM dx_touched
UNION
SELECT x.dst_id FROM ly_tt x JOIN ly_hc h ON h.acct = x.src_id AND h.b = x.b
UNION
SELECT x.src_id FROM ly_tt x JOIN ly_hc h ON h.acct = x.dst_id AND h.b = x.b
-- step: ly_kn
-- The key accounts' payments with neither end a hub in the payment's bucket (k_src, k_dst: which ends are keys):
-- the build sides of sg_paths, and with the paths' other payments (ly_px) the payments the rest of layering reads
-- (a gather-scatter hub's window reads every one of its payments that is not a hub's).
SELECT x.* FROM (
  SELECT *, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b, src_id IN (SELECT account_id FROM ly_keys) AS k_src,
         dst_id IN (SELECT account_id FROM ly_keys) AS k_dst
  FROM dt_tx
) x
LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
WHERE (x.k_src OR x.k_dst) AND s.acct IS NULL AND d.acct IS NULL
-- step: sg_paths
-- Layering's sg_paths restricted to the paths a key alert is made of: those from a key source or to a key sink
-- (a scatter-gather alert is one (source, sink) pair's paths). The key accounts' payments (ly_kn) are the build
-- side and each payment of the context probes once (a semi-join on the intermediates the key payments reach,
-- before the bands are computed, cost more than it saved). Paths from a
-- key source: its payments out expanded to the buckets and bands they reach, as in sg_paths, against every
-- payment's (bucket, band); the bands are layering's own (ly_band). Paths to a key sink from a source that is
-- not a key: its payments in expanded backwards, b - kb and q - kq, against every payment's (bucket, lower
-- band); the test q <= the upper band of the first payment then accepts exactly the pairs sg_paths' expansion
-- does (kb, kq in 0..1, qlo + kq <= qhi).
-- Hub buckets of every end are tested against ly_hub, counted over every payment of the context.
SELECT p.* FROM (
  SELECT a.src_id AS src, a.dst_id AS mid, c.dst_id AS sink, a.b, a.t AS t1, c.t AS t2, a.amt AS a1, c.amt AS a2,
         a.txn_id AS x1, c.txn_id AS x2
  FROM (
    SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.b, (x.b + kb) * 128 + x.qlo + kq + 64 AS bq
    FROM (
      SELECT txn_id, t, src_id, dst_id, amt, b,
             CAST(floor(ln(amt) * d.iw + d.lo) AS BIGINT) AS qlo,
             CAST(floor(ln(amt) * d.iw + d.hi) AS BIGINT) AS qhi
      FROM ly_kn CROSS JOIN ly_band d WHERE k_src
    ) x
    CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
    WHERE x.qlo + kq <= x.qhi
  ) a
  JOIN (
    SELECT txn_id, t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
           t // CAST($layer_window_hours * 3600e6 AS BIGINT) * 128 + CAST(floor(ln(amt) * d.iw) AS BIGINT) + 64 AS bq
    FROM dt_tx CROSS JOIN ly_band d
  ) c ON c.src_id = a.dst_id AND c.bq = a.bq
  LEFT JOIN ly_hub s ON s.acct = c.src_id AND s.b = c.b
  LEFT JOIN ly_hub d ON d.acct = c.dst_id AND d.b = c.b
  WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
    AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
    AND s.acct IS NULL AND d.acct IS NULL
) p
UNION ALL
SELECT p.src, p.mid, p.sink, p.b, p.t1, p.t2, p.a1, p.a2, p.x1, p.x2 FROM (
  SELECT a.src_id AS src, a.dst_id AS mid, c.dst_id AS sink, a.b, a.t AS t1, c.t AS t2, a.amt AS a1, c.amt AS a2,
         a.txn_id AS x1, c.txn_id AS x2, c.q
  FROM (
    SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.q, (x.b - kb) * 128 + x.q - kq + 64 AS bq
    FROM (
      SELECT txn_id, t, src_id, dst_id, amt, b,
             CAST(floor(ln(amt) * d.iw) AS BIGINT) AS q
      FROM ly_kn CROSS JOIN ly_band d WHERE k_dst
    ) x
    CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
  ) c
  JOIN (
    SELECT txn_id, t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
           t // CAST($layer_window_hours * 3600e6 AS BIGINT) * 128 + CAST(floor(ln(amt) * d.iw + d.lo) AS BIGINT) + 64 AS bq
    FROM dt_tx CROSS JOIN ly_band d
  ) a ON c.src_id = a.dst_id AND c.bq = a.bq
  LEFT JOIN ly_hub s ON s.acct = a.src_id AND s.b = a.b
  LEFT JOIN ly_hub m ON m.acct = a.dst_id AND m.b = a.b
  WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
    AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
    AND s.acct IS NULL AND m.acct IS NULL
    AND a.src_id NOT IN (SELECT account_id FROM ly_keys)
) p CROSS JOIN ly_band d
WHERE p.q <= CAST(floor(ln(p.a1) * d.iw + d.hi) AS BIGINT)
-- step: ly_px
-- The other payments of the paths (sg_ev looks a hit's payments up by payer, payee, time and amount: a payment alike
-- in those to a path's makes a path alike, so it is here too), those with neither end a key (the others are in
-- ly_kn), from the paths' own txn_id (x1, x2): no second look at the context. The rest of layering reads ly_kn and
-- ly_px (layering_scope makes dt_tx a view of the two).
SELECT DISTINCT txn_id, t, src_id, dst_id, amt FROM (
  SELECT x1 AS txn_id, t1 AS t, src AS src_id, mid AS dst_id, a1 AS amt FROM sg_paths
  UNION ALL
  SELECT x2, t2, mid, sink, a2 FROM sg_paths
) WHERE src_id NOT IN (SELECT account_id FROM ly_keys) AND dst_id NOT IN (SELECT account_id FROM ly_keys)
