-- name: detect_structuring
-- kind: detect
-- description: Structuring: an account paying (or being paid) repeatedly amounts just under a reporting threshold within a window of two structuring buckets.
-- inputs: dt_tx (detect_prep)
-- outputs: st_hits(acct, dir, b, n, amt, first_t, last_t); the last step is alert rows.
-- param: threshold DOUBLE = 50000  The reporting threshold (CNY 50,000 for large cash and transfer reports).
-- param: margin DOUBLE = 0.1  An amount in [threshold * (1 - margin), threshold) is just under it.
-- param: structuring_min DOUBLE = 3  Fewest such payments that count.
-- param: structuring_window_hours DOUBLE = 168  Width of a structuring bucket; a bucket and the next one are looked at together.
-- step: st_tx
SELECT txn_id, t, src_id, dst_id, amt, t // CAST($structuring_window_hours * 3600e6 AS BIGINT) AS b
FROM dt_tx WHERE amt >= $threshold * (1 - $margin) AND amt < $threshold
-- step: st_hits
SELECT acct, dir, wb AS b, count(*) AS n, sum(amt) AS amt, min(t) AS first_t, max(t) AS last_t,
       list(txn_id ORDER BY txn_id) AS txns, list(DISTINCT cp) AS cps
FROM (
  SELECT src_id AS acct, dst_id AS cp, 'out' AS dir, txn_id, t, amt, b - k AS wb FROM st_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)
  UNION ALL
  SELECT dst_id, src_id, 'in', txn_id, t, amt, b - k FROM st_tx CROSS JOIN (VALUES (0), (1)) AS ks(k)
)
GROUP BY acct, dir, wb
HAVING count(*) >= $structuring_min AND min(t) // CAST($structuring_window_hours * 3600e6 AS BIGINT) = wb
-- step: st_alerts
SELECT 'structuring' AS typology, CAST(acct AS VARCHAR) || ':' || dir || ':' || CAST(b AS VARCHAR) AS akey,
       least(1.0, n / ($structuring_min * 2.0)) AS score,
       make_timestamp(first_t) AS start_ts, make_timestamp(last_t) AS end_ts, CAST(amt AS DECIMAL(18, 4)) AS amount,
       'Account ' || CASE WHEN dir = 'out' THEN 'made ' ELSE 'received ' END || CAST(n AS VARCHAR)
         || ' payments just under the reporting threshold of ' || CAST($threshold AS VARCHAR)
         || ', totalling ' || CAST(round(amt, 2) AS VARCHAR) || '.' AS summary,
       list_append(list_transform(cps, lambda c: {'account_id': c, 'role': 'member', 'level': CAST(NULL AS INTEGER)}),
                   {'account_id': acct, 'role': 'hub', 'level': CAST(NULL AS INTEGER)}) AS members,
       txns AS evidence
FROM st_hits
