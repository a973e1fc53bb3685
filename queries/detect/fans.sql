-- name: detect_fans
-- kind: detect
-- description: Fan-in and fan-out: an account paid by (or paying) many distinct counterparties within a window of two fan buckets, in similar amounts, most counterparties paying only once; business hubs (too many counterparties) are left out.
-- inputs: dt_tx (detect_prep), pt_hits (detect_pass_through), accounts
-- outputs: fan_hits(acct, b, dir, n_cp, n_txn, amt, cv, one_shot, first_t, last_t, score); the last step is alert rows.
-- param: fan_window_hours DOUBLE = 72  Width of a fan bucket; a fan is counted over a bucket and the next one.
-- param: fan_min DOUBLE = 5  Fewest distinct counterparties that make a fan.
-- param: fan_max DOUBLE = 60  More distinct counterparties than this in the window is a business hub, not a fan.
-- param: fan_max_cv DOUBLE = 0.6  Largest coefficient of variation of the amounts (similar amounts).
-- param: fan_min_one_shot DOUBLE = 0.6  Smallest share of counterparties that pay (or are paid) only once in the window.
-- param: fan_pass_through BOOLEAN = true  The hub must also pass money through (a pass_through episode overlapping the fan): a mule forwards what it collects, a shop keeps it.
-- param: innocent_kinds VARCHAR = business,merchant,utility,government,payroll  Account kinds whose payments (a salary, a shop, a bill) never make a fan.
-- step: fan_innocent
SELECT account_id FROM accounts
WHERE lower(kind) IN (SELECT unnest(string_split($innocent_kinds, ',')))
-- step: fan_eps
-- The episodes fans consult (an incremental run keeps only its key accounts' here, see fundtrace.detect.sqlfamilies).
SELECT acct, first_in, last_out FROM pt_hits WHERE $fan_pass_through
-- step: fan_hubs
-- Where a fan's hub can be: with fan_pass_through only accounts with a pass-through episode (fan_kept
-- drops every other hub), and only in the fan buckets of a window that can overlap one of their episodes:
-- a window (buckets wb, wb + 1) overlaps an episode only if it starts at most one bucket before the
-- episode's first payment in and at most one after its last payment out, so bucket b serves a keepable
-- window only from first_in's bucket - 1 to last_out's bucket + 1. The other buckets' payments can make
-- no kept fan (a kept window has both its buckets here, whole), so they are left out: at 10 M payments
-- fan_pairs has 0.77 M rows instead of the 2.0 M of every bucket of these accounts.
SELECT DISTINCT acct, unnest(range(first_in // CAST($fan_window_hours * 3600e6 AS BIGINT) - 1,
                                   last_out // CAST($fan_window_hours * 3600e6 AS BIGINT) + 2)) AS b
FROM fan_eps
-- step: fan_pairs
-- Pre-aggregate per (account, counterparty, bucket): count(DISTINCT) on raw rows is the slow aggregate (lesson 4).
SELECT dst_id AS acct, src_id AS cp, 'in' AS dir, b,
       count(*) AS n, sum(amt) AS s, sum(amt * amt) AS s2, min(t) AS first_t, max(t) AS last_t
FROM (SELECT *, t // CAST($fan_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx) x
WHERE src_id NOT IN (SELECT account_id FROM fan_innocent)
  AND (NOT $fan_pass_through OR EXISTS (SELECT 1 FROM fan_hubs h WHERE h.acct = x.dst_id AND h.b = x.b))
GROUP BY 1, 2, 4
UNION ALL
SELECT src_id, dst_id, 'out', b,
       count(*), sum(amt), sum(amt * amt), min(t), max(t)
FROM (SELECT *, t // CAST($fan_window_hours * 3600e6 AS BIGINT) AS b FROM dt_tx) x
WHERE dst_id NOT IN (SELECT account_id FROM fan_innocent)
  AND (NOT $fan_pass_through OR EXISTS (SELECT 1 FROM fan_hubs h WHERE h.acct = x.src_id AND h.b = x.b))
GROUP BY 1, 2, 4
-- step: fan_cand
-- Windows (a bucket and the next) that can be a fan, from per-bucket totals: enough counterparties in all,
-- no bucket with more than fan_max (the window has at least as many), amounts similar enough (the
-- window's variation is exact from the buckets' sums of n, amount and amount squared; a hair of slack
-- for the order of summing) and enough counterparties paying once (at most those paying once in either
-- bucket). Only these are regrouped per counterparty; fan_hits applies every condition exactly.
SELECT acct, dir, b AS wb FROM (
  SELECT *,
         ncp + coalesce(next_ncp, 0) AS ncp_w,
         n + coalesce(next_n, 0) AS n_w, s + coalesce(next_s, 0) AS s_w, s2 + coalesce(next_s2, 0) AS s2_w
  FROM (
    SELECT acct, dir, b, ncp, n, s, s2, ones,
           CASE WHEN lead(b) OVER w = b + 1 THEN lead(ncp) OVER w END AS next_ncp,
           CASE WHEN lead(b) OVER w = b + 1 THEN lead(n) OVER w END AS next_n,
           CASE WHEN lead(b) OVER w = b + 1 THEN lead(s) OVER w END AS next_s,
           CASE WHEN lead(b) OVER w = b + 1 THEN lead(s2) OVER w END AS next_s2,
           CASE WHEN lead(b) OVER w = b + 1 THEN lead(ones) OVER w END AS next_ones
    FROM (SELECT acct, dir, b, count(*) AS ncp, sum(n) AS n, sum(s) AS s, sum(s2) AS s2,
                 count(*) FILTER (WHERE n = 1) AS ones
          FROM fan_pairs GROUP BY acct, dir, b)
    WINDOW w AS (PARTITION BY acct, dir ORDER BY b)
  )
)
WHERE ncp_w >= $fan_min
  AND ncp <= $fan_max AND coalesce(next_ncp, 0) <= $fan_max
  AND sqrt(greatest(s2_w / n_w - (s_w / n_w) ^ 2, 0)) / (s_w / n_w) <= $fan_max_cv * (1 + 1e-9) + 1e-12
  AND ones + coalesce(next_ones, 0) >= $fan_min_one_shot * greatest(ncp, coalesce(next_ncp, 0)) * (1 - 1e-9)
-- step: fan_win
SELECT p.acct, p.dir, c.wb, p.cp, sum(p.n) AS n, sum(p.s) AS s, sum(p.s2) AS s2, min(p.first_t) AS first_t,
       max(p.last_t) AS last_t
FROM (SELECT acct, dir, wb, wb + k AS b FROM fan_cand CROSS JOIN (VALUES (0), (1)) AS ks(k)) c
JOIN fan_pairs p ON p.acct = c.acct AND p.dir = c.dir AND p.b = c.b
GROUP BY p.acct, p.dir, c.wb, p.cp
-- step: fan_hits
SELECT acct, dir, wb AS b, count(*) AS n_cp, sum(n) AS n_txn, sum(s) AS amt,
       sqrt(greatest(sum(s2) / sum(n) - (sum(s) / sum(n)) ^ 2, 0)) / (sum(s) / sum(n)) AS cv,
       avg(CASE WHEN n = 1 THEN 1.0 ELSE 0.0 END) AS one_shot,
       min(first_t) AS first_t, max(last_t) AS last_t
FROM fan_win
GROUP BY acct, dir, wb
HAVING count(*) >= $fan_min AND count(*) <= $fan_max
   AND min(first_t) // CAST($fan_window_hours * 3600e6 AS BIGINT) = wb
   AND sqrt(greatest(sum(s2) / sum(n) - (sum(s) / sum(n)) ^ 2, 0)) / (sum(s) / sum(n)) <= $fan_max_cv
   AND avg(CASE WHEN n = 1 THEN 1.0 ELSE 0.0 END) >= $fan_min_one_shot
-- step: fan_kept
SELECT h.* FROM fan_hits h
WHERE NOT $fan_pass_through
   OR EXISTS (SELECT 1 FROM pt_hits p WHERE p.acct = h.acct AND p.first_in <= h.last_t AND p.last_out >= h.first_t)
-- step: fan_alerts
SELECT CASE WHEN h.dir = 'in' THEN 'fan_in' ELSE 'fan_out' END AS typology,
       CAST(h.acct AS VARCHAR) || ':' || CAST(h.b AS VARCHAR) AS akey,
       least(1.0, (h.n_cp / ($fan_min * 2.0)) * (1 - h.cv / 2) * h.one_shot) AS score,
       make_timestamp(h.first_t) AS start_ts, make_timestamp(h.last_t) AS end_ts,
       CAST(h.amt AS DECIMAL(18, 4)) AS amount,
       'Account ' || CASE WHEN h.dir = 'in' THEN 'received ' ELSE 'sent ' END || CAST(h.n_txn AS VARCHAR)
         || ' payments totalling ' || CAST(round(h.amt, 2) AS VARCHAR)
         || CASE WHEN h.dir = 'in' THEN ' from ' ELSE ' to ' END || CAST(h.n_cp AS VARCHAR)
         || ' distinct accounts in similar amounts (variation ' || CAST(round(h.cv, 2) AS VARCHAR) || ').' AS summary,
       list_append(e.members, {'account_id': h.acct, 'role': 'hub', 'level': CAST(NULL AS INTEGER)}) AS members,
       e.evidence
FROM fan_kept h
-- Members and evidence: the one-shot counterparties (a fan-in's payers are where the money entered: sources) (one payment in the window) and their payments; a
-- counterparty paying again and again is ordinary business with the hub, not part of the fan.
JOIN (
  SELECT h.acct, h.dir, h.b, list(DISTINCT x.txn_id ORDER BY x.txn_id) AS evidence,
         list(DISTINCT {'account_id': w.cp, 'role': CASE WHEN h.dir = 'in' THEN 'source' ELSE 'member' END,
                        'level': CAST(NULL AS INTEGER)}) AS members
  FROM fan_kept h
  JOIN fan_win w ON w.acct = h.acct AND w.dir = h.dir AND w.wb = h.b AND w.n = 1
  JOIN (SELECT txn_id, t, dst_id AS acct, src_id AS cp, 'in' AS dir FROM dt_tx
        WHERE dst_id IN (SELECT acct FROM fan_kept WHERE dir = 'in')
        UNION ALL SELECT txn_id, t, src_id, dst_id, 'out' FROM dt_tx
        WHERE src_id IN (SELECT acct FROM fan_kept WHERE dir = 'out')) x
    ON x.acct = h.acct AND x.dir = h.dir AND x.cp = w.cp AND x.t = w.first_t
  GROUP BY h.acct, h.dir, h.b
) e ON e.acct = h.acct AND e.dir = h.dir AND e.b = h.b
