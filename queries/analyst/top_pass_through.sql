-- name: top_pass_through
-- kind: analyst
-- description: Accounts that pass on about as much money as they receive, ranked by the money passed through.
-- inputs: transactions, alert_members
-- outputs: bank, account, n_in, n_out, in_amount, out_amount, passed, out_share, first_ts, last_ts, alerts
-- param: since TIMESTAMP = NULL     Count payments at or after this UTC time (default: from the first).
-- param: until TIMESTAMP = NULL     Count payments before this UTC time (default: up to the last).
-- param: min_amount DOUBLE = 1000   Only accounts receiving at least this much.
-- param: min_share DOUBLE = 0.8     Money out must be at least this share of money in (and in at least this share of out).
-- param: limit INTEGER = 20         Show at most this many accounts.
WITH t AS (
    SELECT * FROM transactions
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR ts < CAST($until AS TIMESTAMP))
), flow AS (
    SELECT dst_id AS id, count(*) AS n_in, sum(amount) AS in_amount, 0 AS n_out, 0 AS out_amount,
           min(ts) AS first_ts, max(ts) AS last_ts
    FROM t GROUP BY dst_id
    UNION ALL
    SELECT src_id, 0, 0, count(*), sum(amount), min(ts), max(ts) FROM t GROUP BY src_id
), acc AS (
    SELECT id, sum(n_in) AS n_in, sum(n_out) AS n_out, sum(in_amount) AS in_amount, sum(out_amount) AS out_amount,
           min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM flow GROUP BY id
), hits AS (
    SELECT * FROM acc
    WHERE in_amount >= $min_amount AND out_amount >= $min_share * in_amount AND in_amount >= $min_share * out_amount
    ORDER BY least(in_amount, out_amount) DESC, id LIMIT $limit
), names AS (
    SELECT DISTINCT dst_id AS id, dst_bank AS bank, dst_account AS account FROM t WHERE dst_id IN (SELECT id FROM hits)
)
SELECT n.bank, n.account, h.n_in::BIGINT AS n_in, h.n_out::BIGINT AS n_out,
       h.in_amount::DECIMAL(18, 4) AS in_amount, h.out_amount::DECIMAL(18, 4) AS out_amount,
       least(h.in_amount, h.out_amount)::DECIMAL(18, 4) AS passed,
       round(h.out_amount / h.in_amount, 4)::DOUBLE AS out_share, h.first_ts, h.last_ts,
       (SELECT count(DISTINCT m.alert_id) FROM alert_members m WHERE m.account_id = h.id AND m.role <> 'source') AS alerts
FROM hits h JOIN names n USING (id)
ORDER BY passed DESC, n.bank, n.account
