-- name: detect_layering
-- kind: detect
-- description: Scatter-gather (one source pays many intermediates that all pay one sink), gather-scatter (many pay one hub that then pays many), within a window of two layering buckets.
-- inputs: dt_tx (detect_prep)
-- outputs: sg_hits(src, sink, b, n_mid, ...); gs_hits(hub, b, ...).
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket; a pattern is looked for in a bucket and the next one.
-- param: layer_min DOUBLE = 3  Fewest distinct intermediates (scatter-gather) or counterparties on each side (gather-scatter).
-- param: layer_max DOUBLE = 60  An intermediate or hub with more counterparties than this in a bucket is a business hub and is left out.
-- param: layer_tolerance DOUBLE = 0.2  Largest relative difference between what an intermediate receives and passes on (scatter-gather).
-- param: gather_min DOUBLE = 2  Fewest distinct payers of a gather-scatter hub (the scatter side needs layer_min payees).
-- param: gs_balance BOOLEAN = true  A gather-scatter hub must pass on what it gathered: out within [1 - keep_max, 1 + over_max] of in.
-- param: gs_gather_first BOOLEAN = false  Gather-scatter: count the payments in up to the hub's first payment out after a payment in, and the payments out from then on (an ordinary payment in after the scatter, or out before the gather, does not undo it); otherwise every payment in must come before every payment out.
-- param: keep_max DOUBLE = 0.2  The largest share of the money gathered that may stay behind.
-- param: over_max DOUBLE = 0.1  How much more may leave than was gathered.
-- step: ly_deg
-- Payments and counterparties per account and bucket, in and out, for the hub filter.
SELECT acct, b, sum(n_in) AS n_in, sum(n_out) AS n_out FROM (
  SELECT dst_id AS acct, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b, count(*) AS n_in, 0 AS n_out FROM dt_tx GROUP BY 1, 2
  UNION ALL
  SELECT src_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT), 0, count(*) FROM dt_tx GROUP BY 1, 2
) GROUP BY acct, b
-- step: ly_tx
-- Payments between accounts that are not hubs in that bucket, with their bucket.
SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b
FROM dt_tx x
JOIN ly_deg s ON s.acct = x.src_id AND s.b = x.t // CAST($layer_window_hours * 3600e6 AS BIGINT)
JOIN ly_deg d ON d.acct = x.dst_id AND d.b = x.t // CAST($layer_window_hours * 3600e6 AS BIGINT)
WHERE s.n_in + s.n_out <= $layer_max AND d.n_in + d.n_out <= $layer_max
-- step: sg_paths
-- Two-hop paths src -> mid -> sink, joined on (mid, bucket) against the same and the next bucket.
SELECT a.src_id AS src, a.dst_id AS mid, c.dst_id AS sink, a.b, a.txn_id AS in_txn, c.txn_id AS out_txn, a.t AS t1, c.t AS t2, a.amt AS a1, c.amt AS a2
FROM ly_tx a
JOIN (SELECT *, b - k AS jb FROM ly_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
  ON c.src_id = a.dst_id AND c.jb = a.b
WHERE c.t >= a.t AND c.dst_id <> a.src_id
  AND c.t <= a.t + CAST($layer_window_hours * 3600e6 AS BIGINT)
  AND abs(c.amt - a.amt) <= $layer_tolerance * a.amt
-- step: sg_hits
-- Windows anchored at the bucket of their first payment, so that a window depends only on later payments.
SELECT src, sink, wb AS b, count(DISTINCT mid) AS n_mid, min(t1) AS first_t, max(t2) AS last_t,
       list(DISTINCT in_txn) AS in_txns, list(DISTINCT out_txn) AS out_txns, list(DISTINCT mid) AS mids, sum(a1) AS amt
FROM (SELECT *, b - k AS wb FROM sg_paths CROSS JOIN (VALUES (0), (1)) AS ks(k))
GROUP BY src, sink, wb
HAVING count(DISTINCT mid) >= $layer_min
   AND min(t1) // CAST($layer_window_hours * 3600e6 AS BIGINT) = wb
-- step: gs_cand
-- Hub windows (a bucket and the next) with enough payments in and out: the only ones worth a distinct count.
SELECT acct, b AS wb FROM (
  SELECT acct, b, n_in, n_out, lead(n_in) OVER w AS next_in, lead(n_out) OVER w AS next_out, lead(b) OVER w AS next_b
  FROM ly_deg WINDOW w AS (PARTITION BY acct ORDER BY b)
) WHERE n_in + CASE WHEN next_b = b + 1 THEN next_in ELSE 0 END >= $gather_min
    AND n_out + CASE WHEN next_b = b + 1 THEN next_out ELSE 0 END >= $layer_min
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
    FROM ly_tx x JOIN (SELECT acct, wb, wb + k AS b FROM gs_cand CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
      ON c.acct = x.dst_id AND c.b = x.b
    UNION ALL
    SELECT x.src_id, x.dst_id, 'out', x.txn_id, x.t, x.amt, c.wb
    FROM ly_tx x JOIN (SELECT acct, wb, wb + k AS b FROM gs_cand CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
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
       list_concat(in_txns, out_txns) AS evidence
FROM sg_hits
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
