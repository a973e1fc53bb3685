-- name: detect_layering
-- kind: detect
-- description: Scatter-gather (one source pays many intermediates that all pay one sink), gather-scatter (many pay one hub that then pays many), within a window of two layering buckets.
-- inputs: dt_tx (detect_prep)
-- outputs: ly_band(iw, lo, hi): the amount bands of sg_paths; ly_acct(acct, n): accounts with more than layer_max payments; ly_hub(acct, b, n): hub buckets; sg_paths: two-hop paths; gs_out: windows of payments out; gs_cand: candidate hub windows; sg_hits(src, sink, b, n_mid, ...) with sg_ev (their payments); gs_hits(hub, b, ...). Every step reads dt_tx itself, leaving out hub payments as it goes (no copy of the payments: at 10 M payments one cost ~370 MB beside dt_tx and pushed the joins to spill).
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket; a pattern is looked for in a bucket and the next one.
-- param: layer_min DOUBLE = 3  Fewest distinct intermediates (scatter-gather) or counterparties on each side (gather-scatter).
-- param: layer_max DOUBLE = 60  An intermediate or hub with more counterparties than this in a bucket is a business hub and is left out.
-- param: layer_tolerance DOUBLE = 0.2  Largest relative difference between what an intermediate receives and passes on (scatter-gather).
-- param: gather_min DOUBLE = 2  Fewest distinct payers of a gather-scatter hub (the scatter side needs layer_min payees).
-- param: gs_balance BOOLEAN = true  A gather-scatter hub must pass on what it gathered: out within [1 - keep_max, 1 + over_max] of in.
-- param: gs_gather_first BOOLEAN = false  Gather-scatter: count the payments in up to the hub's first payment out after a payment in, and the payments out from then on (an ordinary payment in after the scatter, or out before the gather, does not undo it); otherwise every payment in must come before every payment out.
-- param: keep_max DOUBLE = 0.15  The largest share of the money gathered that may stay behind.
-- param: over_max DOUBLE = 0.1  How much more may leave than was gathered.
-- step: ly_band
-- The amount bands of the two-hop paths, defined here once: sg_paths below and in layering_scope.sql read this
-- row. An amount's own band is floor(ln(amt) * iw); the amounts within layer_tolerance of it lie in the bands
-- floor(ln(amt) * iw + lo) to floor(ln(amt) * iw + hi). Bands are logarithmic and wider than the tolerance's
-- span (at least ln 4, and 1 % more than ln((1 + tol) / (1 - tol))), so an amount reaches one or two bands and
-- a band only prunes pairs the amount test rejects (1e-9 of slack against rounding); bands lie within -9..24
-- for any positive DECIMAL(18, 4) amount. A tolerance of 0.9 or more (no useful lower bound) or below 0 puts
-- every amount in band 0.
SELECT CASE WHEN ok THEN 1 / w ELSE 0 END AS iw,
       CASE WHEN ok THEN ln(1 - tol) / w - 1e-9 ELSE 0 END AS lo,
       CASE WHEN ok THEN ln(1 + tol) / w + 1e-9 ELSE 0 END AS hi
FROM (SELECT $layer_tolerance >= 0 AND $layer_tolerance < 0.9 AS ok, least(greatest($layer_tolerance, 0), 0.9) AS tol,
             1.01 * ln(greatest(4.0, (1 + $layer_tolerance) / (1 - least(greatest($layer_tolerance, 0), 0.9)))) AS w)
-- step: ly_acct
-- Accounts with more than layer_max payments in and out over everything read: only they can have a hub bucket.
-- One count per account over both ends; the few busy accounts are kept.
SELECT acct, count(*) AS n FROM (SELECT src_id AS acct FROM dt_tx UNION ALL SELECT dst_id FROM dt_tx)
GROUP BY acct
HAVING count(*) > $layer_max
-- step: ly_hub
-- Hub buckets: more than layer_max payments in and out in a bucket, counted per bucket for the busy accounts (n:
-- how many; an incremental run's scope tells from it which hub buckets the new payments can have made).
SELECT acct, b, count(*) AS n FROM (
  SELECT src_id AS acct, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx WHERE src_id IN (SELECT acct FROM ly_acct)
  UNION ALL
  SELECT dst_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT) FROM dt_tx WHERE dst_id IN (SELECT acct FROM ly_acct)
) GROUP BY acct, b
HAVING count(*) > $layer_max
-- step: sg_paths
-- Two-hop paths src -> mid -> sink between payments whose ends are not hubs in their bucket: a payment in
-- (src -> mid) and one out (mid -> sink) at most a layering window later, amounts within layer_tolerance.
-- A hash join keyed on mid and (bucket, amount band) packed in one integer: the payments out are its build
-- side, each once; each payment in probes its own bucket and the next (a window after it reaches no further)
-- and the one or two amount bands its tolerance reaches (ly_band); bands lie within -9..24, so bucket * 128 +
-- band + 64 is unique. Without bands the join matched ~16 M pairs at 10 M payments for 0.6 M
-- paths. Two halves by mid (ids are hashes: < 2^63 and the rest; a modulo filter misled the planner's estimates
-- into hashing the payments instead of the hubs), one after the other, so that each build side fits the memory
-- limit beside dt_tx. The payments in leave out hub payments after the join, which also keeps the planner's
-- estimates pointing at the payments out as the build side. No txn_id: the few hits look theirs up (sg_ev).
-- A source needs layer_min payments out and a sink layer_min in; a hit's distinct intermediates imply both.
SELECT p.* FROM (
  SELECT a.src_id AS src, a.dst_id AS mid, c.dst_id AS sink, a.b, a.t AS t1, c.t AS t2, a.amt AS a1, c.amt AS a2
  FROM (
    SELECT x.t, x.src_id, x.dst_id, x.amt, x.b, (x.b + kb) * 128 + x.qlo + kq + 64 AS bq
    FROM (
      SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
             CAST(floor(ln(amt) * d.iw + d.lo) AS BIGINT) AS qlo,
             CAST(floor(ln(amt) * d.iw + d.hi) AS BIGINT) AS qhi
      FROM dt_tx CROSS JOIN ly_band d WHERE dst_id < CAST(9223372036854775808 AS UBIGINT)
    ) x
    CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
    WHERE x.qlo + kq <= x.qhi
  ) a
  JOIN (
    SELECT x.t, x.src_id, x.dst_id, x.amt,
           x.b * 128 + CAST(floor(ln(x.amt) * d.iw) AS BIGINT) + 64 AS bq
    FROM (SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx WHERE src_id < CAST(9223372036854775808 AS UBIGINT)) x CROSS JOIN ly_band d
    LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
    LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
    WHERE s.acct IS NULL AND d.acct IS NULL
  ) c ON c.src_id = a.dst_id AND c.bq = a.bq
  WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
    AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
) p
LEFT JOIN ly_hub s ON s.acct = p.src AND s.b = p.b
LEFT JOIN ly_hub m ON m.acct = p.mid AND m.b = p.b
WHERE s.acct IS NULL AND m.acct IS NULL
UNION ALL
SELECT p.* FROM (
  SELECT a.src_id AS src, a.dst_id AS mid, c.dst_id AS sink, a.b, a.t AS t1, c.t AS t2, a.amt AS a1, c.amt AS a2
  FROM (
    SELECT x.t, x.src_id, x.dst_id, x.amt, x.b, (x.b + kb) * 128 + x.qlo + kq + 64 AS bq
    FROM (
      SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
             CAST(floor(ln(amt) * d.iw + d.lo) AS BIGINT) AS qlo,
             CAST(floor(ln(amt) * d.iw + d.hi) AS BIGINT) AS qhi
      FROM dt_tx CROSS JOIN ly_band d WHERE dst_id >= CAST(9223372036854775808 AS UBIGINT)
    ) x
    CROSS JOIN (VALUES (0, 0), (1, 0), (0, 1), (1, 1)) AS ks(kb, kq)
    WHERE x.qlo + kq <= x.qhi
  ) a
  JOIN (
    SELECT x.t, x.src_id, x.dst_id, x.amt,
           x.b * 128 + CAST(floor(ln(x.amt) * d.iw) AS BIGINT) + 64 AS bq
    FROM (SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx WHERE src_id >= CAST(9223372036854775808 AS UBIGINT)) x CROSS JOIN ly_band d
    LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
    LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
    WHERE s.acct IS NULL AND d.acct IS NULL
  ) c ON c.src_id = a.dst_id AND c.bq = a.bq
  WHERE c.t >= a.t AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
    AND c.dst_id <> a.src_id AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
) p
LEFT JOIN ly_hub s ON s.acct = p.src AND s.b = p.b
LEFT JOIN ly_hub m ON m.acct = p.mid AND m.b = p.b
WHERE s.acct IS NULL AND m.acct IS NULL
-- step: sg_hits
-- Windows anchored at the bucket of their first payment, so that a window depends only on later payments.
SELECT src, sink, wb AS b, count(DISTINCT mid) AS n_mid, min(t1) AS first_t, max(t2) AS last_t,
       list(DISTINCT mid) AS mids, sum(a1) AS amt
FROM (
  SELECT p.*, p.b - k AS wb FROM sg_paths p
  -- only pairs with layer_min paths in all can have layer_min distinct intermediates (most have one path)
  JOIN (SELECT src, sink FROM sg_paths GROUP BY src, sink HAVING count(*) >= $layer_min) q
    ON q.src = p.src AND q.sink = p.sink
  CROSS JOIN (VALUES (0), (1)) AS ks(k)
)
GROUP BY src, sink, wb
HAVING count(DISTINCT mid) >= $layer_min
   AND min(t1) // CAST($layer_window_hours * 3600e6 AS BIGINT) = wb
-- step: sg_ev
-- The payments of each hit's paths (paths in its bucket and the next): payments alike in payer, payee, time and
-- amount pass the same tests, so matching on those finds exactly the payments the paths were made of.
SELECT src, sink, b, list(DISTINCT txn_id ORDER BY txn_id) AS evidence FROM (
  SELECT h.src, h.sink, h.b, x.txn_id
  FROM sg_hits h JOIN sg_paths p ON p.src = h.src AND p.sink = h.sink AND p.b - h.b IN (0, 1)
  JOIN dt_tx x ON x.src_id = p.src AND x.dst_id = p.mid AND x.t = p.t1 AND x.amt = p.a1
  UNION ALL
  SELECT h.src, h.sink, h.b, x.txn_id
  FROM sg_hits h JOIN sg_paths p ON p.src = h.src AND p.sink = h.sink AND p.b - h.b IN (0, 1)
  JOIN dt_tx x ON x.src_id = p.mid AND x.dst_id = p.sink AND x.t = p.t2 AND x.amt = p.a2
) GROUP BY src, sink, b
-- step: gs_out
-- Payments out of each account per bucket between accounts that are not hubs in it (how many, how much, the
-- first), combined into windows (a bucket and the next) with layer_min of them. One narrow group-by of one side:
-- one group-by of both sides (~8 M groups of six aggregates at 10 M payments) spilled.
WITH o AS (
  SELECT x.src_id AS acct, x.b, count(*) AS n, sum(x.amt) AS a, min(x.t) AS first_t
  FROM (SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx) x
  LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
  LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
  WHERE s.acct IS NULL AND d.acct IS NULL
  GROUP BY x.src_id, x.b
)
SELECT coalesce(x.acct, y.acct) AS acct, coalesce(x.b, y.b - 1) AS wb,
       coalesce(x.a, 0) + coalesce(y.a, 0) AS a_out, least(x.first_t, y.first_t) AS first_out
FROM o x FULL JOIN o y ON y.acct = x.acct AND y.b = x.b + 1
WHERE coalesce(x.n, 0) + coalesce(y.n, 0) >= $layer_min
-- step: gs_cand
-- Hub windows (a bucket with payments and the next) that pass every test of gs_hits except the distinct
-- counts: enough payments in and out, every one in before every one out, and (gs_balance) out close to in.
-- Few windows are left for the distinct count (lesson 4). A hit's first payment is one in (every payment out
-- comes after one in), so a window needs payments in in its own bucket (k = 0). The payments in are joined to
-- the windows with enough payments out (gs_out, the rarer side, the build side) and summed per window: no
-- group-by of every account's payments in. Hub payments are dropped after the join, so that the planner's
-- estimates keep gs_out the build side.
SELECT i.acct, i.wb FROM (
  SELECT o.acct, o.wb, any_value(o.a_out) AS a_out, any_value(o.first_out) AS first_out, count(*) AS n_in,
         sum(x.amt) AS a_in, max(x.t) AS last_in, min(x.k) AS k0
  FROM gs_out o
  JOIN (SELECT t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b, t // CAST($layer_window_hours * 3600e6 AS BIGINT) - k AS wb, k
        FROM dt_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)) x ON x.dst_id = o.acct AND x.wb = o.wb
  LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
  LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
  WHERE s.acct IS NULL AND d.acct IS NULL
  GROUP BY o.acct, o.wb
) i WHERE k0 = 0 AND n_in >= $gather_min
    -- With gs_gather_first, gs_hits counts only part of the window's payments: the order and the balance of
    -- the whole window say nothing about that part, so only the counts (upper bounds) prune.
    AND ($gs_gather_first OR (last_in <= first_out
    -- a hair of slack: gs_hits tests the balance exactly on its own sums
    AND (NOT $gs_balance OR (a_out >= (1 - $keep_max) * a_in * (1 - 1e-9) AND a_out <= (1 + $over_max) * a_in * (1 + 1e-9)))))
-- step: gs_tx
-- The candidate hubs' payments between non-hubs, with their ids.
SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.b
FROM (SELECT txn_id, t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx
      WHERE src_id IN (SELECT acct FROM gs_cand) OR dst_id IN (SELECT acct FROM gs_cand)) x
LEFT JOIN ly_hub s ON s.acct = x.src_id AND s.b = x.b
LEFT JOIN ly_hub d ON d.acct = x.dst_id AND d.b = x.b
WHERE s.acct IS NULL AND d.acct IS NULL
-- step: gs_hits
-- A hub paid by many in a window that then pays many, every payment out after every payment in (gather, then scatter),
-- or, with gs_gather_first, after every payment in that is counted.
SELECT hub, wb AS b, count(DISTINCT CASE WHEN dir = 'in' THEN cp END) AS n_src,
       count(DISTINCT CASE WHEN dir = 'out' THEN cp END) AS n_dst,
       min(t) AS first_t, max(t) AS last_t,
       sum(CASE WHEN dir = 'in' THEN amt ELSE 0 END) AS amt_in,
       sum(CASE WHEN dir = 'out' THEN amt ELSE 0 END) AS amt_out,
       list(txn_id ORDER BY txn_id) AS txns,
       list(DISTINCT CASE WHEN dir = 'in' THEN cp END) AS srcs,
       list(DISTINCT CASE WHEN dir = 'out' THEN cp END) AS dsts
-- Each window's payments with its first payment out after a payment in (for gs_gather_first).
FROM (
  SELECT *, min(CASE WHEN dir = 'out' AND t >= first_in THEN t END) OVER (PARTITION BY hub, wb) AS first_out
  FROM (SELECT r.*, min(CASE WHEN r.dir = 'in' THEN r.t END) OVER (PARTITION BY r.hub, r.wb) AS first_in
  FROM (
    SELECT x.dst_id AS hub, x.src_id AS cp, 'in' AS dir, x.txn_id, x.t, x.amt, c.wb
    FROM gs_tx x JOIN (SELECT acct, wb, wb + k AS b FROM gs_cand CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
      ON c.acct = x.dst_id AND c.b = x.b
    UNION ALL
    SELECT x.src_id, x.dst_id, 'out', x.txn_id, x.t, x.amt, c.wb
    FROM gs_tx x JOIN (SELECT acct, wb, wb + k AS b FROM gs_cand CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
      ON c.acct = x.src_id AND c.b = x.b
  ) r)
)
WHERE NOT $gs_gather_first OR (dir = 'in' AND t <= first_out) OR (dir = 'out' AND t >= first_out)
GROUP BY hub, wb
HAVING count(DISTINCT CASE WHEN dir = 'in' THEN cp END) >= $gather_min
   AND count(DISTINCT CASE WHEN dir = 'out' THEN cp END) >= $layer_min
   AND min(t) // CAST($layer_window_hours * 3600e6 AS BIGINT) = wb
   AND max(CASE WHEN dir = 'in' THEN t END) <= min(CASE WHEN dir = 'out' THEN t END)
   AND (NOT $gs_balance OR (
        sum(CASE WHEN dir = 'out' THEN amt ELSE 0 END) >= (1 - $keep_max) * sum(CASE WHEN dir = 'in' THEN amt ELSE 0 END)
    AND sum(CASE WHEN dir = 'out' THEN amt ELSE 0 END) <= (1 + $over_max) * sum(CASE WHEN dir = 'in' THEN amt ELSE 0 END)))
-- step: ly_alerts
SELECT 'scatter_gather' AS typology, CAST(src AS VARCHAR) || ':' || CAST(sink AS VARCHAR) || ':' || CAST(b AS VARCHAR) AS akey,
       least(1.0, n_mid / ($layer_min * 2.0)) AS score,
       make_timestamp(first_t) AS start_ts, make_timestamp(last_t) AS end_ts, CAST(amt AS DECIMAL(18, 4)) AS amount,
       'Account paid ' || CAST(n_mid AS VARCHAR) || ' intermediates ' || CAST(round(amt, 2) AS VARCHAR)
         || ' in total and each passed about the same amount on to one account.' AS summary,
       list_concat(list_transform(mids, lambda m: {'account_id': m, 'role': 'mule', 'level': CAST(1 AS INTEGER)}),
                   [{'account_id': src, 'role': 'source', 'level': CAST(NULL AS INTEGER)},
                    {'account_id': sink, 'role': 'sink', 'level': CAST(NULL AS INTEGER)}]) AS members,
       e.evidence
FROM sg_hits JOIN sg_ev e USING (src, sink, b)
UNION ALL
SELECT 'gather_scatter', CAST(hub AS VARCHAR) || ':' || CAST(b AS VARCHAR),
       least(1.0, least(n_src, n_dst) / ($layer_min * 2.0)),
       make_timestamp(first_t), make_timestamp(last_t), CAST(least(amt_in, amt_out) AS DECIMAL(18, 4)),
       'Account was paid by ' || CAST(n_src AS VARCHAR) || ' accounts (' || CAST(round(amt_in, 2) AS VARCHAR)
         || ') and then paid ' || CAST(n_dst AS VARCHAR) || ' accounts (' || CAST(round(amt_out, 2) AS VARCHAR) || ').',
       list_concat(list_concat(
         list_transform(list_filter(srcs, lambda x: x IS NOT NULL), lambda m: {'account_id': m, 'role': 'source', 'level': CAST(NULL AS INTEGER)}),
         list_transform(list_filter(dsts, lambda x: x IS NOT NULL), lambda m: {'account_id': m, 'role': 'sink', 'level': CAST(NULL AS INTEGER)})),
         [{'account_id': hub, 'role': 'hub', 'level': CAST(NULL AS INTEGER)}]),
       txns
FROM gs_hits
