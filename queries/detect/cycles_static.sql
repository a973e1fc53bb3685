-- name: detect_cycles_static
-- kind: detect
-- description: Candidate account-to-account edges for length-bounded simple cycles with no time order: the candidate payments of detect_cycles aggregated per edge and window, then, without a quiet share, trimmed of edges that cannot lie on a cycle (cs_trim1 to cs_cand), with one, pruned to the edges a cycle with that share can pass (cs_quiet, cs_live, cs_keep), which leaves out more. detect_cycles runs one set of steps or the other.
-- inputs: cy_tx, cy_deg (detect_cycles)
-- outputs: cs_win(w, src_id, dst_id, amt, n, in_first): one row per edge of window w (buckets w and w + 1 of cycle_window_hours), its money and payments in the window, and whether it has a payment in bucket w; cs_cand: the edges of cs_win left by the trims; cs_quiet(w, acct): accounts whose only payments in window w are on one edge in and one out (a cycle through them uses both); cs_live(w, acct): those a cycle can pass; cs_keep: the edges of cs_win a cycle with the quiet share can pass.
-- param: cycle_window_hours DOUBLE = 72  All payments of a cycle happen within two buckets of this width, starting on a bucket boundary.
-- param: cycle_min_quiet_share DOUBLE = 0.5  Share of a cycle's accounts that must be quiet (0: none need be).
-- param: cycle_max_len INTEGER = 6  Most accounts in a cycle.
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
-- Accounts whose payments in the window (cy_deg counts all of them) are exactly those on their one candidate edge
-- in and one out: one pass over both ends of every edge, then the few with one of each against cy_deg.
WITH one AS (
  SELECT w, acct, sum(n) AS n FROM (
    SELECT w, dst_id AS acct, 1 AS is_in, n FROM cs_win
    UNION ALL
    SELECT w, src_id, 0, n FROM cs_win
  ) GROUP BY w, acct
  HAVING sum(is_in) = 1 AND count(*) = 2
)
SELECT o.w, o.acct FROM one o JOIN cy_deg d ON d.acct = o.acct AND d.b IN (o.w, o.w + 1)
GROUP BY o.w, o.acct, o.n
HAVING sum(d.n) = o.n
-- step: cs_live
-- The quiet accounts a cycle can pass. A quiet account has one payee and one payer, so a cycle through it goes on to
-- its payee, to that one's payee while it is quiet too, and so on, until it comes back or reaches a busy account;
-- the same backwards; the run of quiet accounts and its two busy ends lie on the cycle: at most cycle_max_len
-- payments in all. Walks along the one payee (payer) of each: at most cycle_max_len rows per quiet account. A chain
-- of forwarding accounts (every account quiet, no cycle) has none left; without this the search read all of them.
WITH RECURSIVE
link AS (
  SELECT q.w, q.acct, o.dst_id AS nxt, i.src_id AS prv FROM cs_quiet q
  JOIN cs_win o ON o.w = q.w AND o.src_id = q.acct
  JOIN cs_win i ON i.w = q.w AND i.dst_id = q.acct
),
ahead(w, start, cur, d) AS (
  SELECT w, acct, nxt, 1 FROM link
  UNION ALL
  SELECT a.w, a.start, l.nxt, a.d + 1 FROM ahead a JOIN link l ON l.w = a.w AND l.acct = a.cur
  WHERE a.cur <> a.start AND a.d < $cycle_max_len
),
back(w, start, cur, d) AS (
  SELECT w, acct, prv, 1 FROM link
  UNION ALL
  SELECT a.w, a.start, l.prv, a.d + 1 FROM back a JOIN link l ON l.w = a.w AND l.acct = a.cur
  WHERE a.cur <> a.start AND a.d < $cycle_max_len
),
ahead_end AS (  -- where each walk stopped: back at its start, or at a busy account (none: cut at cycle_max_len)
  SELECT w, start, min(d) AS d, bool_or(cur = start) AS round FROM ahead a
  WHERE cur = start OR NOT EXISTS (SELECT 1 FROM link l WHERE l.w = a.w AND l.acct = a.cur)
  GROUP BY w, start
),
back_end AS (
  SELECT w, start, min(d) AS d FROM back a
  WHERE cur = start OR NOT EXISTS (SELECT 1 FROM link l WHERE l.w = a.w AND l.acct = a.cur)
  GROUP BY w, start
)
SELECT a.w, a.start AS acct FROM ahead_end a JOIN back_end b ON b.w = a.w AND b.start = a.start
WHERE a.round OR a.d + b.d <= $cycle_max_len
-- step: cs_keep
-- With a quiet share above 0 a cycle passes a quiet account and at most B = floor((1 - share) * cycle_max_len)
-- busy ones (the search's own bound, static_cycles in fundtrace/detect/cycles.py). So each busy account of a cycle
-- lies on a run of busy accounts, at most B long, from a quiet account's payee to a quiet account's payer: its
-- distance forward from such a payee plus its distance back from such a payer, through busy accounts, is at most
-- B - 1. Only edges whose two ends are quiet accounts a cycle can pass (cs_live) or such busy accounts are kept;
-- in a mesh of busy accounts that is a few around the quiet ones (1 M random payments among 20 k accounts: 610 k
-- candidate edges, 25 quiet accounts). Each walk reads the edges of its own side, filtered once (one table of
-- every edge with flags for both ends cost 4.2-4.7 s against 3.0 s on 10 M random payments among 200 k accounts).
WITH RECURSIVE
lim AS (SELECT CAST(floor((1 - $cycle_min_quiet_share) * $cycle_max_len + 1e-9) AS INTEGER) AS b),
busy_edge AS (  -- edges into a busy account (the runs' steps), with whether they leave a live quiet one
  SELECT e.w, e.src_id, e.dst_id, qs.acct IS NOT NULL AS from_quiet FROM cs_win e
  LEFT JOIN cs_live qs ON qs.w = e.w AND qs.acct = e.src_id
  LEFT JOIN cs_quiet qd ON qd.w = e.w AND qd.acct = e.dst_id
  WHERE qd.acct IS NULL
),
edge_from_busy AS (  -- edges out of a busy account, with whether they reach a live quiet one
  SELECT e.w, e.src_id, e.dst_id, qd.acct IS NOT NULL AS to_quiet FROM cs_win e
  LEFT JOIN cs_quiet qs ON qs.w = e.w AND qs.acct = e.src_id
  LEFT JOIN cs_live qd ON qd.w = e.w AND qd.acct = e.dst_id
  WHERE qs.acct IS NULL
),
fwd(w, acct, d) AS (
  SELECT w, dst_id, 0 FROM busy_edge WHERE from_quiet AND (SELECT b FROM lim) >= 1
  UNION
  SELECT e.w, e.dst_id, f.d + 1 FROM fwd f JOIN busy_edge e ON e.w = f.w AND e.src_id = f.acct
  WHERE f.d + 1 <= (SELECT b FROM lim) - 1
),
bwd(w, acct, d) AS (
  SELECT w, src_id, 0 FROM edge_from_busy WHERE to_quiet AND (SELECT b FROM lim) >= 1
  UNION
  SELECT e.w, e.src_id, f.d + 1 FROM bwd f JOIN edge_from_busy e ON e.w = f.w AND e.dst_id = f.acct
  WHERE f.d + 1 <= (SELECT b FROM lim) - 1
),
node AS (
  SELECT w, acct FROM cs_live
  UNION
  SELECT f.w, f.acct FROM (SELECT w, acct, min(d) AS d FROM fwd GROUP BY w, acct) f
  JOIN (SELECT w, acct, min(d) AS d FROM bwd GROUP BY w, acct) k ON k.w = f.w AND k.acct = f.acct
  WHERE f.d + k.d <= (SELECT b FROM lim) - 1
)
SELECT e.w, e.src_id, e.dst_id, e.amt, e.in_first FROM cs_win e
JOIN node s ON s.w = e.w AND s.acct = e.src_id
JOIN node t ON t.w = e.w AND t.acct = e.dst_id
