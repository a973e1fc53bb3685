-- name: detect_cycles_scope
-- kind: detect
-- description: What an incremental run of cycles must walk: per window, the accounts that can lie on a cycle (temporal or static) through an account new payments touched, by a bounded forward and backward walk from the touched accounts over the window's candidate payments, and the candidate payments between them.
-- inputs: cy_tx (detect_cycles, run up to that step over every payment of the family's context), dx_touched(account_id)
-- outputs: cy_sc_reach(w, acct): accounts within cycle_max_len hops of a touched account both ways in window w (buckets w and w + 1); cy_sc_tx: the rows of cy_tx whose two ends are in the reach of one window the payment belongs to.
-- param: cycle_max_len INTEGER = 6  Longest cycle, in payments.
-- step: cy_sc_edge
-- The account-to-account edges of each window: a payment of bucket b belongs to windows b - 1 and b.
SELECT DISTINCT w, src_id, dst_id FROM (
  SELECT b AS w, src_id, dst_id FROM cy_tx
  UNION ALL
  SELECT b - 1, src_id, dst_id FROM cy_tx
)
-- step: cy_sc_fwd
-- Forward distance from the nearest touched account in the window, up to cycle_max_len - 1 hops.
WITH RECURSIVE f(w, acct, d) AS (
  SELECT DISTINCT w, src_id, 0 FROM cy_sc_edge WHERE src_id IN (SELECT account_id FROM dx_touched)
  UNION
  SELECT e.w, e.dst_id, f.d + 1
  FROM f JOIN cy_sc_edge e ON e.w = f.w AND e.src_id = f.acct
  WHERE f.d < $cycle_max_len - 1
)
SELECT w, acct, min(d) AS d FROM f GROUP BY w, acct
-- step: cy_sc_reach
-- Backward distance to the nearest touched account, through accounts whose two distances add up to at most
-- cycle_max_len: every account of a cycle of at most that length through a touched account is one of them (along
-- the cycle it is that close both ways).
WITH RECURSIVE g(w, acct, d) AS (
  SELECT w, acct, 0 FROM cy_sc_fwd WHERE d = 0
  UNION
  SELECT e.w, e.src_id, g.d + 1
  FROM g
  JOIN cy_sc_edge e ON e.w = g.w AND e.dst_id = g.acct
  JOIN cy_sc_fwd f ON f.w = e.w AND f.acct = e.src_id
  WHERE g.d < $cycle_max_len - 1 AND f.d + g.d + 1 <= $cycle_max_len
)
SELECT DISTINCT w, acct FROM g
-- step: cy_sc_tx
-- Every payment of a cycle through a touched account is one of these: its accounts are all in its window's reach.
SELECT DISTINCT x.*
FROM cy_tx x
JOIN cy_sc_reach s ON s.acct = x.src_id AND s.w IN (x.b - 1, x.b)
JOIN cy_sc_reach d ON d.acct = x.dst_id AND d.w = s.w
