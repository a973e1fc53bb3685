-- name: detect_cycles
-- kind: detect
-- description: Temporal cycles (as in 2SCENT): payments a->b->...->a with strictly increasing times, all within the cycle window of the first payment, at most max_len payments, no account visited twice; hubs left out. A walk over candidate payments, one payment further per round (fundtrace.detect.cycles runs the rounds), that keeps only walks which can still come back in the payments left.
-- inputs: dt_tx (detect_prep), pt_hits (detect_pass_through), accounts (holder_id)
-- outputs: cy_tx(txn_id, t, src_id, dst_id, amt, b): the candidate payments (static cycles read them too); cy_near(target, sb, near): who pays whom among them; cy_walk: the walks of one round; cy_closed: the walks that came back; cy_found(start_txn, start_acct, start_t, end_t, accts, txns, amts): one row per cycle, keyed by its first payment and path.
-- param: cycle_window_hours DOUBLE = 72  All payments of a cycle happen within this time after its first payment.
-- param: cycle_max_len INTEGER = 6  Longest cycle, in payments.
-- param: cycle_min_len INTEGER = 3  Shortest cycle, in payments and in distinct holders (A pays B and B pays A back is everyday life, also when B pays from another own account).
-- param: cycle_tolerance DOUBLE = 0.2  Largest relative change of amount from one hop to the next; negative means amounts are not compared.
-- param: cycle_max_degree DOUBLE = 60  Accounts with more payments than this in a cycle bucket are hubs and are left out.
-- param: cycle_pass_through_only BOOLEAN = true  Walk only payments with a pass-through account (pt_hits) at one end at least, in an episode near the payment (see cy_cand): every hop of a cycle of 3 or more whose intermediates pass the money on has one.
-- param: dwell_hours DOUBLE = 48  How long before a payment a pass-through episode of one of its ends may have ended.
-- step: cy_cand
-- Payments with a pass-through account at one end (all payments when switched off), bucketed by window: an
-- episode of that account ending at most a dwell window before the payment and starting at most a cycle window
-- after it (a ring member often passes the ring's money on later, or passed money through just before).
-- Episodes near the payment, not anywhere in history, keep incremental runs equal to full ones.
SELECT txn_id, t, src_id, dst_id, amt, t // CAST($cycle_window_hours * 3600e6 AS BIGINT) AS b
FROM dt_tx WHERE NOT $cycle_pass_through_only
UNION
SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.t // CAST($cycle_window_hours * 3600e6 AS BIGINT)
FROM dt_tx x JOIN pt_hits p ON p.acct = x.src_id
 AND p.last_out >= x.t - CAST($dwell_hours * 3600e6 AS BIGINT)
 AND p.first_in <= x.t + CAST($cycle_window_hours * 3600e6 AS BIGINT)
WHERE $cycle_pass_through_only
UNION
SELECT x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.t // CAST($cycle_window_hours * 3600e6 AS BIGINT)
FROM dt_tx x JOIN pt_hits p ON p.acct = x.dst_id
 AND p.last_out >= x.t - CAST($dwell_hours * 3600e6 AS BIGINT)
 AND p.first_in <= x.t + CAST($cycle_window_hours * 3600e6 AS BIGINT)
WHERE $cycle_pass_through_only
-- step: cy_in1
-- A payment lies on a cycle only if its payer is paid and its payee pays within a bucket either side of it
-- (every payment of a cycle falls in two consecutive buckets): two rounds of trimming before the walk.
SELECT DISTINCT dst_id AS acct, b FROM cy_cand
-- step: cy_out1
SELECT DISTINCT src_id AS acct, b FROM cy_cand
-- step: cy_trim1
SELECT x.* FROM cy_cand x
WHERE EXISTS (SELECT 1 FROM cy_in1 i WHERE i.acct = x.src_id AND i.b BETWEEN x.b - 1 AND x.b + 1)
  AND EXISTS (SELECT 1 FROM cy_out1 o WHERE o.acct = x.dst_id AND o.b BETWEEN x.b - 1 AND x.b + 1)
-- step: cy_in2
SELECT DISTINCT dst_id AS acct, b FROM cy_trim1
-- step: cy_out2
SELECT DISTINCT src_id AS acct, b FROM cy_trim1
-- step: cy_trim2
SELECT x.* FROM cy_trim1 x
WHERE EXISTS (SELECT 1 FROM cy_in2 i WHERE i.acct = x.src_id AND i.b BETWEEN x.b - 1 AND x.b + 1)
  AND EXISTS (SELECT 1 FROM cy_out2 o WHERE o.acct = x.dst_id AND o.b BETWEEN x.b - 1 AND x.b + 1)
-- step: cy_ends
SELECT src_id AS acct FROM cy_trim2 UNION SELECT dst_id FROM cy_trim2
-- step: cy_deg
-- All payments (not only candidates) per bucket of the accounts left.
SELECT acct, b, sum(n) AS n FROM (
  SELECT src_id AS acct, t // CAST($cycle_window_hours * 3600e6 AS BIGINT) AS b, count(*) AS n
  FROM dt_tx WHERE src_id IN (SELECT acct FROM cy_ends) GROUP BY 1, 2
  UNION ALL
  SELECT dst_id, t // CAST($cycle_window_hours * 3600e6 AS BIGINT), count(*)
  FROM dt_tx WHERE dst_id IN (SELECT acct FROM cy_ends) GROUP BY 1, 2
) GROUP BY acct, b
-- step: cy_tx
-- Candidate payments: neither end is a hub in that bucket.
SELECT x.* FROM cy_trim2 x
JOIN cy_deg s ON s.acct = x.src_id AND s.b = x.b
JOIN cy_deg d ON d.acct = x.dst_id AND d.b = x.b
WHERE s.n <= $cycle_max_degree AND d.n <= $cycle_max_degree
-- step: cy_next
-- Each payment also serves walks that started in the bucket before.
SELECT txn_id, t, src_id, dst_id, amt, b - k AS sb FROM cy_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)
-- step: cy_near
-- Who pays whom among the candidate payments of each walk's window (target, sb: a walk's start account and
-- bucket; near: an account paying it): a walk one payment short of max_len can only come back through one.
SELECT DISTINCT dst_id AS target, sb, src_id AS near FROM cy_next
-- step: cy_walk
-- The walks of the first round: every candidate payment (walks that start in bucket sb).
SELECT txn_id AS start_txn, src_id AS start_acct, t AS start_t, b AS sb, dst_id AS cur, t AS cur_t, amt AS cur_amt,
       1 AS depth, [src_id, dst_id] AS accts, [txn_id] AS txns, [amt] AS amts
FROM cy_tx
-- step: cy_closed
-- The walks of the round that came back to their start with cycle_min_len payments or more (the runner adds each
-- later round's).
SELECT * FROM cy_walk WHERE cur = start_acct AND depth >= $cycle_min_len
-- step: cy_extend
-- The next round: each walk that has not come back takes one more candidate payment, later than its last and
-- within the window of its first, to an account it has not visited (or back to its start), the amount changing by
-- at most cycle_tolerance. Only walks that can still come back are kept: the last payment must return to the
-- start, the one before it must reach an account that pays the start in the window (cy_near). A recursive walk
-- kept every path to max_len and tested the end only then: on a dense mesh of equal payments (1,000 accounts,
-- 20,000 payments) it wrote tens of gigabytes to disk. The runner stops with an error past cycle_max_walks.
SELECT w.start_txn, w.start_acct, w.start_t, w.sb, n.dst_id AS cur, n.t AS cur_t, n.amt AS cur_amt, w.depth + 1 AS depth,
       list_append(w.accts, n.dst_id) AS accts, list_append(w.txns, n.txn_id) AS txns, list_append(w.amts, n.amt) AS amts
FROM cy_walk w JOIN cy_next n ON n.src_id = w.cur AND n.sb = w.sb
LEFT JOIN cy_near p ON p.target = w.start_acct AND p.sb = w.sb AND p.near = n.dst_id
WHERE w.cur <> w.start_acct AND w.depth < $cycle_max_len
  AND n.t > w.cur_t AND n.t <= w.start_t + CAST($cycle_window_hours * 3600e6 AS BIGINT)
  AND (n.dst_id = w.start_acct OR NOT list_contains(w.accts, n.dst_id))
  AND ($cycle_tolerance < 0 OR abs(n.amt - w.cur_amt) <= $cycle_tolerance * w.cur_amt)
  AND (n.dst_id = w.start_acct OR w.depth + 2 < $cycle_max_len OR (w.depth + 2 = $cycle_max_len AND p.near IS NOT NULL))
-- step: cy_found
SELECT start_txn, start_acct, start_t, cur_t AS end_t, depth AS length, accts, txns, amts
FROM cy_closed w
  -- ...through as many holders: A pays B, B moves it to B's other account, that one pays A back is a
  -- back-and-forth between two people (accounts without a holder count as their own holder)
WHERE (SELECT count(DISTINCT coalesce(h.holder_id, CAST(u.a AS VARCHAR)))
       FROM (SELECT unnest(w.accts) AS a) u LEFT JOIN accounts h ON h.account_id = u.a) >= $cycle_min_len
-- step: cy_alerts
SELECT 'cycle' AS typology, array_to_string(txns, ',') AS akey,
       least(1.0, 0.5 + 0.1 * length) AS score,
       make_timestamp(start_t) AS start_ts, make_timestamp(end_t) AS end_ts,
       CAST(list_min(amts) AS DECIMAL(18, 4)) AS amount,
       'Money went round ' || CAST(length AS VARCHAR) || ' accounts and came back to the first within '
         || CAST(round((end_t - start_t) / 3600e6, 1) AS VARCHAR) || ' h, in payments in time order.' AS summary,
       list_transform(list_distinct(accts), lambda a: {'account_id': a, 'role': 'member', 'level': CAST(NULL AS INTEGER)}) AS members,
       txns AS evidence
FROM cy_found
