-- name: detect_bipartite_scope
-- kind: detect
-- description: What an incremental run of bipartite recomputes (fundtrace.detect.scopes.bipartite_scope): the edges of a candidate graph that holds every window's candidate graph before and after the new payments, whose components with a touched account give the key accounts.
-- inputs: dt_tx (every payment of the family's context), pt_hits (every episode, the touched accounts' recomputed), detect_pt_hits (the stored episodes, the touched accounts' as they were before), bp_hub (hub buckets counted over every payment), dx_touched (the accounts new payments touched)
-- outputs: bp_sx(src, dst): candidate pairs of any window, before or after.
-- param: layer_window_hours DOUBLE = 72  Width of a layering bucket; a window is a bucket and the next one.
-- param: dwell_hours DOUBLE = 48  How long before a window a pass-through episode of a member may have ended.
-- step: bp_ep
-- Episodes: every one now, and the touched accounts' stored ones (those they had before this run).
SELECT acct, first_in, last_out FROM pt_hits
UNION ALL
SELECT acct, first_in, last_out FROM detect_pt_hits WHERE acct IN (SELECT account_id FROM dx_touched)
-- step: bp_sx
-- detect_bipartite_candidates' bp_tx and bp_pt, widened to hold the graphs before and after: a touched account
-- passes money through in a window by an episode of either, and is never a hub (its payments and so its hub
-- buckets changed); every other account's payments, episodes and hub buckets are as they were.
WITH x AS (
  SELECT x.src_id AS src, x.dst_id AS dst, x.b - k AS wb
  FROM (SELECT src_id, dst_id, t // CAST($layer_window_hours * 3600e6 AS BIGINT) AS b,
               src_id IN (SELECT account_id FROM dx_touched) AS src_touched,
               dst_id IN (SELECT account_id FROM dx_touched) AS dst_touched
        FROM dt_tx WHERE src_id IN (SELECT acct FROM bp_ep) AND dst_id IN (SELECT acct FROM bp_ep)) x
  LEFT JOIN bp_hub s ON s.acct = x.src_id AND s.b = x.b
  LEFT JOIN bp_hub d ON d.acct = x.dst_id AND d.b = x.b
  CROSS JOIN (VALUES (0), (1)) AS ks(k)
  WHERE (s.acct IS NULL OR x.src_touched) AND (d.acct IS NULL OR x.dst_touched)
),
pt AS (
  SELECT DISTINCT w.acct, w.wb
  FROM (SELECT src AS acct, wb FROM x UNION SELECT dst, wb FROM x) w
  JOIN bp_ep p ON p.acct = w.acct
  WHERE p.last_out >= w.wb * CAST($layer_window_hours * 3600e6 AS BIGINT) - CAST($dwell_hours * 3600e6 AS BIGINT)
    AND p.first_in < (w.wb + 2) * CAST($layer_window_hours * 3600e6 AS BIGINT)
)
SELECT DISTINCT x.src, x.dst FROM x
JOIN pt s ON s.acct = x.src AND s.wb = x.wb
JOIN pt d ON d.acct = x.dst AND d.wb = x.wb
