-- name: detect_pass_through
-- kind: detect
-- description: Pass-through episodes: money into an account in one dwell-window bucket, out again within the dwell window, out close to in and little left (FlowScope flow balance min(in,out) - alpha*|in-out|).
-- inputs: dt_tx (detect_prep), accounts (kind)
-- outputs: pt_hits(acct, b, n_in, n_out, in_amt, out_amt, flow, kept, first_in, last_in, last_out, first_ts, last_ts, score); pt_pay(acct, b, dir, txn_id, t, src_id, dst_id, amt, cash_out): each episode's payments in and out; pt_evidence and pt_members (long tables for collect()); the last step is alert rows without lists.
-- param: dwell_hours DOUBLE = 48  How long money may stay in an account and still count as passed through.
-- param: keep_max DOUBLE = 0.15  The largest share of the money in that may stay behind (a mule's commission).
-- param: over_max DOUBLE = 0.1  How much more may leave than came in (the mule's own money on top).
-- param: income_max DOUBLE = 0.5  Largest share of a bucket's money in that may come from accounts of the income kinds (employers, governments, merchants' refunds); above it the money is income being spent, not passed on.
-- param: income_kinds VARCHAR = business,merchant,utility,government,payroll  Account kinds whose payments to an account are its income.
-- param: alpha DOUBLE = 1.0  FlowScope's penalty on the in/out imbalance.
-- param: min_amount DOUBLE = 100  Smallest amount passed through that counts.
-- param: max_in DOUBLE = 30  An account receiving more payments than this in one bucket is a business hub, not a mule.
-- step: pt_income
-- Accounts whose payments are income to their payees (an employer's salary): a small build side.
SELECT account_id FROM accounts WHERE lower(kind) IN (SELECT unnest(string_split($income_kinds, ',')))
-- step: pt_hits
-- Incoming money per (account, bucket of dwell width) (pt_in), then the money out of each in-bucket's
-- account between its first payment in and a dwell window after its last, from the same and the next
-- bucket (pt_out): joining on the bucket and the next one keeps the join linear (PERFORMANCE.md lesson 1)
-- instead of sum(in_degree * out_degree). Kept when out is close to in and enough passed through. pt_in
-- is a CTE, not a step: its 3.4 M rows at 10 M payments would hold ~160 MB until the detector collects.
-- pt_out carries the in-bucket's figures through its group-by (any_value: one in-bucket per group), so pt_in
-- has one consumer and is neither materialised nor joined a second time (~20 % less CPU at 10 M).
-- A bucket counts payments out only until the account's next bucket with money in starts (next_in, taken
-- before the max_in/min_amount filter): a busy mule's back-to-back episodes less than a dwell window apart
-- each keep their own payments out instead of both breaking over_max. Incremental runs stay exact: a next_in
-- cuts bucket b only if it is before last_in + dwell < (b + 2) * dwell; one the batch adds or removes is a new
-- payment (at or after since) or a same-holder transfer whose standing a new payment changes (at or after
-- since - dwell, prep.sql dt_onward), so b > since / dwell - 3, i.e. b >= floor(since / dwell) - 2: the bucket
-- of _pt_cutoff (detect/__init__.py). Its account is touched (it or its holder's sibling got a new payment),
-- so all its payments from the cutoff on are in dt_tx (tests/test_detect_pt_quality.py).
WITH pt_in AS (
  SELECT * FROM (
    SELECT dst_id AS acct, t // CAST($dwell_hours * 3600e6 AS BIGINT) AS b,
           count(*) AS n_in, sum(amt) AS in_amt, min(t) AS first_in, max(t) AS last_in,
           sum(CASE WHEN src_id IN (SELECT account_id FROM pt_income) THEN amt ELSE 0 END) AS inc_amt,
           lead(min(t)) OVER (PARTITION BY dst_id ORDER BY t // CAST($dwell_hours * 3600e6 AS BIGINT)) AS next_in
    FROM dt_tx
    GROUP BY 1, 2)
  WHERE n_in <= $max_in AND in_amt >= $min_amount  -- less in can never pass min_amount through
    AND inc_amt <= $income_max * in_amt  -- mostly a salary or other income: spending, not passing on
),
pt_out AS (  -- each payment out counts for the in-buckets of its own bucket and of the one before: the
            -- payments are doubled on the probe side, the 3.4 M in-buckets hashed once (~10 % less CPU
            -- than doubling the in-buckets)
  SELECT i.acct, i.b, any_value(i.n_in) AS n_in, any_value(i.in_amt) AS in_amt, any_value(i.first_in) AS first_in,
         any_value(i.last_in) AS last_in, count(*) AS n_out, sum(o.amt) AS out_amt, max(o.t) AS last_out
  FROM (SELECT src_id, t, amt, t // CAST($dwell_hours * 3600e6 AS BIGINT) - k AS b
        FROM dt_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)) o
  JOIN pt_in i ON i.acct = o.src_id AND i.b = o.b
  WHERE o.t >= i.first_in AND o.t <= i.last_in + CAST($dwell_hours * 3600e6 AS BIGINT)
    AND (i.next_in IS NULL OR o.t < i.next_in)
  GROUP BY 1, 2
)
SELECT acct, b, n_in, n_out, in_amt, out_amt,
       least(in_amt, out_amt) - $alpha * abs(in_amt - out_amt) AS flow,
       (in_amt - out_amt) / in_amt AS kept,
       first_in, last_in, last_out,
       make_timestamp(first_in) AS first_ts, make_timestamp(last_out) AS last_ts,
       least(1.0, greatest(0.0, (least(in_amt, out_amt) - $alpha * abs(in_amt - out_amt)) / in_amt))
         * (1.0 - 0.5 / (1 + n_out)) AS score
FROM pt_out
WHERE out_amt >= (1 - $keep_max) * in_amt
  AND out_amt <= (1 + $over_max) * in_amt
  AND least(in_amt, out_amt) >= $min_amount
-- step: pt_pay
-- The payments in and out of each episode (the episode's account, bucket and direction; the payment as in
-- dt_tx): its evidence, and the payments chain hops pair up (queries/detect/chain.sql), read once.
SELECT h.acct, h.b, 'in' AS dir, x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.cash_out
FROM pt_hits h JOIN dt_tx x ON x.dst_id = h.acct AND x.t BETWEEN h.first_in AND h.last_in
UNION ALL
SELECT h.acct, h.b, 'out', x.txn_id, x.t, x.src_id, x.dst_id, x.amt, x.cash_out
FROM pt_hits h JOIN dt_tx x ON x.src_id = h.acct AND x.t BETWEEN h.first_in AND h.last_out
-- step: pt_evidence
-- The payments in and out of each episode, with the counterparty and its role (long tables for collect()).
SELECT 'pass_through' AS typology, CAST(acct AS VARCHAR) || ':' || CAST(b AS VARCHAR) AS akey, acct, txn_id,
       CASE WHEN dir = 'in' THEN src_id ELSE dst_id END AS account_id,
       CASE WHEN dir = 'in' THEN 'source' ELSE 'sink' END AS role
FROM pt_pay
-- step: pt_members
SELECT typology, akey, account_id, role, CAST(NULL AS INTEGER) AS level FROM pt_evidence
UNION ALL
SELECT 'pass_through', CAST(acct AS VARCHAR) || ':' || CAST(b AS VARCHAR), acct, 'mule', CAST(NULL AS INTEGER) FROM pt_hits
-- step: pt_alerts
-- One row per episode; members and evidence are the long tables pt_members and pt_evidence.
SELECT 'pass_through' AS typology,
       CAST(h.acct AS VARCHAR) || ':' || CAST(h.b AS VARCHAR) AS akey,
       h.score, h.first_ts AS start_ts, h.last_ts AS end_ts, CAST(least(h.in_amt, h.out_amt) AS DECIMAL(18, 4)) AS amount,
       'Account received ' || CAST(round(h.in_amt, 2) AS VARCHAR) || ' in ' || CAST(h.n_in AS VARCHAR)
         || ' payment(s) and sent ' || CAST(round(h.out_amt, 2) AS VARCHAR) || ' on in ' || CAST(h.n_out AS VARCHAR)
         || ' payment(s) within ' || CAST($dwell_hours AS VARCHAR) || ' h, keeping '
         || CAST(round(100 * greatest(h.kept, 0), 1) AS VARCHAR) || ' %.' AS summary
FROM pt_hits h  -- every episode has evidence: its payments in are the n_in >= 1 of its bucket
