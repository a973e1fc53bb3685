-- name: detect_chain
-- kind: detect
-- description: Chains and stacked layers: time-respecting multi-hop paths of payments through pass-through episodes, each hop leaving within the dwell window with at most the amount that came in (plus tolerance), walked from the first payment (the root) down to max_hops.
-- inputs: pt_hits and pt_pay (detect_pass_through)
-- outputs: ch_hops(in_txn, out_txn, in_t, out_t, acct, b, in_src, in_amt, in_cash, out_dst, out_amt, out_cash): each hop with its two payments; ch_all: the hops walked; ch_walk(root_txn, txn_id, depth): every payment reachable from a root and its hop number (0 = the root).
-- An incremental run (fundtrace.detect) runs ch_hops for the accounts new payments touched, replaces ch_all by the
-- stored hops it keeps plus those, and ch_roots by the roots whose walk can reach a changed hop
-- (detect_chain_dirty); the steps from ch_walk on are the same.
-- param: dwell_hours DOUBLE = 48  How long money may stay in a mule before the next hop.
-- param: hop_tolerance DOUBLE = 0.05  A hop may move this much more than the payment feeding it.
-- param: min_hop_share DOUBLE = 0.05  A hop smaller than this share of the payment feeding it is not part of the chain.
-- param: max_hops INTEGER = 6  Longest path walked, in payments after the root.
-- param: chain_min_levels INTEGER = 2  Fewest mule levels (accounts that received and passed the money on, in sequence) that make a chain.
-- step: ch_hops
-- Payment i into a pass-through account X (acct, episode bucket b) followed by payment o out of X within the
-- dwell window, with what the walk needs of both payments (a hop is identified by its two payments). The
-- episodes' payments in (first_in to last_in) and out (first_in to last_out) are pass-through's pt_pay.
SELECT i.txn_id AS in_txn, o.txn_id AS out_txn, i.t AS in_t, o.t AS out_t, h.acct, h.b,
       i.src_id AS in_src, i.amt AS in_amt, i.cash_out AS in_cash, o.dst_id AS out_dst, o.amt AS out_amt,
       o.cash_out AS out_cash
FROM pt_hits h
JOIN pt_pay i ON i.acct = h.acct AND i.b = h.b AND i.dir = 'in'
JOIN pt_pay o ON o.acct = h.acct AND o.b = h.b AND o.dir = 'out'
WHERE o.t >= i.t AND o.t <= i.t + CAST($dwell_hours * 3600e6 AS BIGINT)
  AND o.amt <= i.amt * (1 + $hop_tolerance) AND o.amt >= i.amt * $min_hop_share
  AND o.txn_id <> i.txn_id
-- step: ch_all
-- The hops the walks take (an incremental run: the stored ones it keeps and the new ones).
SELECT * FROM ch_hops
-- step: ch_roots
-- A root is a payment into a chain that no earlier hop feeds.
SELECT DISTINCT in_txn AS root_txn FROM ch_all
WHERE in_txn NOT IN (SELECT out_txn FROM ch_all)
-- step: ch_walk
WITH RECURSIVE walk(root_txn, txn_id, depth) AS (
  SELECT root_txn, root_txn, 0 FROM ch_roots
  UNION
  SELECT w.root_txn, h.out_txn, w.depth + 1
  FROM walk w JOIN ch_all h ON h.in_txn = w.txn_id
  WHERE w.depth < $max_hops
)
SELECT root_txn, txn_id, min(depth) AS depth FROM walk GROUP BY root_txn, txn_id
-- step: ch_pay
-- The walks' payments, from their hops: an incremental run walks stored hops whose payments it did not read.
SELECT DISTINCT txn_id, src_id, dst_id, t, amt, cash_out FROM (
  SELECT in_txn AS txn_id, in_src AS src_id, acct AS dst_id, in_t AS t, in_amt AS amt, in_cash AS cash_out
  FROM ch_all WHERE in_txn IN (SELECT txn_id FROM ch_walk)
  UNION ALL
  SELECT out_txn, acct, out_dst, out_t, out_amt, out_cash FROM ch_all WHERE out_txn IN (SELECT txn_id FROM ch_walk)
)
-- step: ch_tx
SELECT w.root_txn, w.depth, x.txn_id, x.src_id, x.dst_id, make_timestamp(x.t) AS ts, x.t, x.amt, x.cash_out
FROM ch_walk w JOIN ch_pay x ON x.txn_id = w.txn_id
-- step: ch_acct
-- Per chain and account: its mule level (hops from the root's payer) and whether it passed money on.
SELECT root_txn, acct, min(lvl) AS level, max(sends) AS sends FROM (
  SELECT root_txn, dst_id AS acct, depth + 1 AS lvl, 0 AS sends FROM ch_tx
  UNION ALL
  SELECT root_txn, src_id, depth, 1 FROM ch_tx
) GROUP BY root_txn, acct
-- step: ch_shape
SELECT root_txn, max(CASE WHEN sends = 1 AND level >= 1 THEN level END) AS levels,
       max(CASE WHEN sends = 1 AND level >= 1 THEN width END) AS width,
       sum(CASE WHEN sends = 1 AND level >= 1 THEN 1 ELSE 0 END) AS n_mules,
       sum(CASE WHEN sends = 0 THEN 1 ELSE 0 END) AS n_sinks
FROM (SELECT *, count(*) OVER (PARTITION BY root_txn, level, sends) AS width FROM ch_acct)
GROUP BY root_txn
HAVING max(CASE WHEN sends = 1 AND level >= 1 THEN level END) >= $chain_min_levels
-- step: ch_alerts
SELECT CASE WHEN s.width > 1 THEN 'stacked' ELSE 'chain' END AS typology,
       s.root_txn AS akey,
       least(1.0, 0.4 + 0.15 * s.levels) AS score,
       r.ts AS start_ts, e.end_ts, CAST(r.amt AS DECIMAL(18, 4)) AS amount,
       'Payment ' || s.root_txn || ' of ' || CAST(round(r.amt, 2) AS VARCHAR) || ' was passed on through '
         || CAST(s.n_mules AS VARCHAR) || ' mule account(s) in ' || CAST(s.levels AS VARCHAR) || ' level(s) within '
         || CAST(round((e.end_t - r.t) / 3600e6, 1) AS VARCHAR) || ' h, ending at ' || CAST(s.n_sinks AS VARCHAR)
         || ' account(s)' || CASE WHEN e.cash_out > 0 THEN ' and cashed out' ELSE '' END || '.' AS summary,
       m.members, e.evidence
FROM ch_shape s
JOIN ch_tx r ON r.root_txn = s.root_txn AND r.txn_id = s.root_txn
JOIN (SELECT root_txn, make_timestamp(max(t)) AS end_ts, max(t) AS end_t, list(DISTINCT txn_id ORDER BY txn_id) AS evidence,
             sum(CASE WHEN cash_out THEN 1 ELSE 0 END) AS cash_out
      FROM ch_tx GROUP BY root_txn) e ON e.root_txn = s.root_txn
JOIN (SELECT root_txn, list({'account_id': acct,
                             'role': CASE WHEN level = 0 THEN 'source' WHEN sends = 1 THEN 'mule' ELSE 'sink' END,
                             'level': CASE WHEN level >= 1 AND sends = 1 THEN CAST(level AS INTEGER) END}) AS members
      FROM ch_acct GROUP BY root_txn) m ON m.root_txn = s.root_txn
