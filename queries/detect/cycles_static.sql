-- name: detect_cycles_static
-- kind: detect
-- description: Candidate account-to-account edges for length-bounded simple cycles with no time order: the candidate payments of detect_cycles aggregated per edge and window, trimmed of edges that cannot lie on a cycle.
-- inputs: cy_tx (detect_cycles)
-- outputs: cs_cand(w, src_id, dst_id, amt, in_first): one row per edge of window w (buckets w and w + 1 of cycle_window_hours), its money in the window, and whether it has a payment in bucket w; cs_quiet(w, acct): accounts whose only payments in window w are on one candidate edge in and one out (a cycle through them uses both).
-- param: cycle_window_hours DOUBLE = 72  All payments of a cycle happen within two buckets of this width, starting on a bucket boundary.
-- step: cs_edge
SELECT b, src_id, dst_id, sum(amt) AS amt, count(*) AS n FROM cy_tx GROUP BY b, src_id, dst_id
-- step: cs_win
-- A window w holds the edges paid in bucket w or w + 1.
SELECT w, src_id, dst_id, sum(amt) AS amt, sum(n) AS n, bool_or(in_first) AS in_first FROM (
  SELECT b AS w, src_id, dst_id, amt, n, true AS in_first FROM cs_edge
  UNION ALL
  SELECT b - 1, src_id, dst_id, amt, n, false FROM cs_edge
) GROUP BY w, src_id, dst_id
-- step: cs_trim1
-- An edge lies on a cycle only if its payer is paid and its payee pays within the window; three rounds of trimming.
SELECT e.* FROM cs_win e
WHERE EXISTS (SELECT 1 FROM cs_win i WHERE i.w = e.w AND i.dst_id = e.src_id)
  AND EXISTS (SELECT 1 FROM cs_win o WHERE o.w = e.w AND o.src_id = e.dst_id)
-- step: cs_trim2
SELECT e.* FROM cs_trim1 e
WHERE EXISTS (SELECT 1 FROM cs_trim1 i WHERE i.w = e.w AND i.dst_id = e.src_id)
  AND EXISTS (SELECT 1 FROM cs_trim1 o WHERE o.w = e.w AND o.src_id = e.dst_id)
-- step: cs_cand
SELECT e.* FROM cs_trim2 e
WHERE EXISTS (SELECT 1 FROM cs_trim2 i WHERE i.w = e.w AND i.dst_id = e.src_id)
  AND EXISTS (SELECT 1 FROM cs_trim2 o WHERE o.w = e.w AND o.src_id = e.dst_id)
-- step: cs_quiet
-- Accounts left in cs_cand whose payments in the window (cy_deg counts all of them) are exactly those on
-- their one candidate edge in and one out.
WITH node AS (SELECT DISTINCT w, src_id AS acct FROM cs_cand),
edges AS (
  SELECT w, acct, sum(n_in) AS n_in, sum(n_out) AS n_out, sum(n) AS n FROM (
    SELECT n.w, n.acct, 1 AS n_in, 0 AS n_out, e.n FROM node n JOIN cs_win e ON e.w = n.w AND e.dst_id = n.acct
    UNION ALL
    SELECT n.w, n.acct, 0, 1, e.n FROM node n JOIN cs_win e ON e.w = n.w AND e.src_id = n.acct
  ) GROUP BY w, acct
),
busy AS (
  SELECT n.w, n.acct, sum(d.n) AS n FROM node n JOIN cy_deg d ON d.acct = n.acct AND d.b IN (n.w, n.w + 1)
  GROUP BY n.w, n.acct
)
SELECT e.w, e.acct FROM edges e JOIN busy b ON b.w = e.w AND b.acct = e.acct
WHERE e.n_in = 1 AND e.n_out = 1 AND b.n = e.n
