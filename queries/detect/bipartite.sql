-- name: detect_bipartite_candidates
-- kind: detect
-- description: Candidate edges of bipartite layers: within a window of two layering buckets, payments between accounts that passed money through near that window (pt_hits: an episode that ended at most a dwell window before the window starts and started before it ends), where the payer pays two or more such payees that are each paid by layer_min or more such payers (trimmed twice); hubs left out. Their connected components are taken on the engine (detect_bipartite) and the dense ones checked in Python.
-- inputs: dt_tx (detect_prep), pt_hits (detect_pass_through)
-- outputs: bp_hub(acct, b): the hub buckets of accounts with a pass-through episode (detect_bipartite takes them from layering's ly_hub when that ran); bp_edges(src, dst, wb, n, amt, first_t, last_t, txns); bp_node(wb, side, acct, node): a graph node per window, side (0 payer, 1 payee) and account; bp_graph(a, b): bp_edges as edges between those nodes (detect_bipartite takes their connected components)
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket; a window is a bucket and the next one.
-- param: layer_min DOUBLE = 3  Fewest payers paying the same payees.
-- param: layer_max DOUBLE = 60  An account with more payments than this in a bucket is a hub and left out.
-- param: dwell_hours DOUBLE = 48  How long before a window a pass-through episode of a member may have ended.
-- step: bp_busy
-- Accounts with a pass-through episode and more than layer_max payments in and out: only they can be hubs
-- among the accounts this detector looks at (layering's ly_acct counts every account).
SELECT acct, count(*) AS n FROM (
  SELECT src_id AS acct FROM dt_tx WHERE src_id IN (SELECT acct FROM pt_hits)
  UNION ALL
  SELECT dst_id FROM dt_tx WHERE dst_id IN (SELECT acct FROM pt_hits)
) GROUP BY acct
HAVING count(*) > $layer_max
-- step: bp_hub
-- Their hub buckets, as layering's ly_hub counts them: more than layer_max payments in and out in a bucket.
SELECT acct, b FROM (
  SELECT src_id AS acct, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx WHERE src_id IN (SELECT acct FROM bp_busy)
  UNION ALL
  SELECT dst_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT) FROM dt_tx WHERE dst_id IN (SELECT acct FROM bp_busy)
) GROUP BY acct, b
HAVING count(*) > $layer_max
-- step: bp_tx
-- Payments between accounts with a pass-through episode, neither end a hub in the payment's bucket, each
-- listed in both windows it belongs to (window wb is layering buckets wb and wb + 1).
SELECT x.txn_id, x.t, x.src_id AS src, x.dst_id AS dst, x.amt, x.b - k AS wb
FROM (SELECT txn_id, t, src_id, dst_id, amt, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx
      WHERE src_id IN (SELECT acct FROM pt_hits) AND dst_id IN (SELECT acct FROM pt_hits)) x
LEFT JOIN bp_hub s ON s.acct = x.src_id AND s.b = x.b
LEFT JOIN bp_hub d ON d.acct = x.dst_id AND d.b = x.b
CROSS JOIN (VALUES (0), (1)) AS ks(k)
WHERE s.acct IS NULL AND d.acct IS NULL
-- step: bp_pt
-- The windows in which each account counts as pass-through: one of its episodes ended at most a dwell window
-- before the window starts and started before the window ends. Episodes near the window, not anywhere in
-- history, keep incremental runs equal to full ones: a new payment changes only episodes starting at most
-- two dwell windows before it, and so only windows the family's span (2 windows + 2 dwell windows) reaches.
SELECT DISTINCT w.acct, w.wb
FROM (SELECT src AS acct, wb FROM bp_tx UNION SELECT dst, wb FROM bp_tx) w
JOIN pt_hits p ON p.acct = w.acct
WHERE p.last_out >= w.wb * CAST($layer_window_hours * 3600e6 AS BIGINT) - CAST($dwell_hours * 3600e6 AS BIGINT)
  AND p.first_in < (w.wb + 2) * CAST($layer_window_hours * 3600e6 AS BIGINT)
-- step: bp_pairs
SELECT x.src, x.dst, x.wb,
       count(*) AS n, sum(x.amt) AS amt, min(x.t) AS first_t, max(x.t) AS last_t, list(x.txn_id) AS txns
FROM bp_tx x
JOIN bp_pt s ON s.acct = x.src AND s.wb = x.wb
JOIN bp_pt d ON d.acct = x.dst AND d.wb = x.wb
GROUP BY 1, 2, 3
-- step: bp_trim1
SELECT p.* FROM bp_pairs p
JOIN (SELECT src, wb FROM bp_pairs GROUP BY 1, 2 HAVING count(*) >= 2) s ON s.src = p.src AND s.wb = p.wb
JOIN (SELECT dst, wb FROM bp_pairs GROUP BY 1, 2 HAVING count(*) >= $layer_min) d ON d.dst = p.dst AND d.wb = p.wb
-- step: bp_edges
SELECT p.* FROM bp_trim1 p
JOIN (SELECT src, wb FROM bp_trim1 GROUP BY 1, 2 HAVING count(*) >= 2) s ON s.src = p.src AND s.wb = p.wb
JOIN (SELECT dst, wb FROM bp_trim1 GROUP BY 1, 2 HAVING count(*) >= $layer_min) d ON d.dst = p.dst AND d.wb = p.wb
-- step: bp_node
-- A payer and a payee are different nodes even for one account, and each window is a graph of its own.
SELECT wb, side, acct, row_number() OVER (ORDER BY wb, side, acct) AS node FROM (
  SELECT DISTINCT wb, 0 AS side, src AS acct FROM bp_edges
  UNION ALL
  SELECT DISTINCT wb, 1, dst FROM bp_edges
)
-- step: bp_graph
SELECT s.node AS a, d.node AS b FROM bp_edges e
JOIN bp_node s ON s.wb = e.wb AND s.side = 0 AND s.acct = e.src
JOIN bp_node d ON d.wb = e.wb AND d.side = 1 AND d.acct = e.dst
