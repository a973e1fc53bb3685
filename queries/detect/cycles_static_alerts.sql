-- name: detect_cycles_static_alerts
-- kind: detect
-- description: Alerts for the static cycles found in the candidate edges (src/fundtrace/detect/cycles.py): every candidate payment on the cycle's edges within its window is evidence.
-- inputs: cs_found(cid, w, length, akey), cs_found_edges(cid, w, src_id, dst_id) (registered by cycles.py), cy_tx (detect_cycles), accounts (holder_id)
-- outputs: cs_alerts: hit rows for fundtrace.detect.base.collect, one per cycle and window.
-- param: cycle_window_hours DOUBLE = 72  Width of the buckets; a window is a bucket and the next.
-- param: cycle_min_len INTEGER = 3  Fewest distinct holders of a cycle's accounts (accounts without a holder count as their own).
-- step: cs_pay
SELECT e.cid, x.txn_id, x.t, x.amt, x.src_id, x.dst_id
FROM cs_found_edges e
JOIN cy_tx x ON x.src_id = e.src_id AND x.dst_id = e.dst_id AND x.b IN (e.w, e.w + 1)
-- step: cs_alerts
-- The amount is the smallest edge's money: what went all the way round at most.
WITH edge AS (
  SELECT cid, src_id, sum(amt) AS amt, min(t) AS first_t, max(t) AS last_t, count(*) AS n, list(txn_id) AS txns
  FROM cs_pay GROUP BY cid, src_id, dst_id
), hit AS (
  SELECT cid, min(first_t) AS start_t, max(last_t) AS end_t, sum(n) AS n, min(amt) AS amount,
         list({'account_id': src_id, 'role': 'member', 'level': CAST(NULL AS INTEGER)} ORDER BY src_id) AS members,
         list_sort(flatten(list(txns))) AS evidence
  FROM edge GROUP BY cid
)
SELECT 'cycle' AS typology, f.akey,
       least(1.0, 0.3 + 0.1 * f.length) AS score,
       make_timestamp(h.start_t) AS start_ts, make_timestamp(h.end_t) AS end_ts,
       CAST(h.amount AS DECIMAL(18, 4)) AS amount,
       'Money went round ' || CAST(f.length AS VARCHAR) || ' accounts and back to the first within '
         || CAST(round((h.end_t - h.start_t) / 3600e6, 1) AS VARCHAR) || ' h, in ' || CAST(h.n AS VARCHAR)
         || ' payments in any time order (a static cycle).' AS summary,
       h.members, h.evidence
FROM cs_found f JOIN hit h USING (cid)
-- through cycle_min_len holders at least (two people's accounts going round is a back-and-forth between them)
WHERE (SELECT count(DISTINCT coalesce(a.holder_id, CAST(e.src_id AS VARCHAR)))
       FROM cs_found_edges e LEFT JOIN accounts a ON a.account_id = e.src_id WHERE e.cid = f.cid) >= $cycle_min_len
