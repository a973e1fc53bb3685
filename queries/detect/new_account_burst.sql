-- name: detect_new_account_burst
-- kind: detect
-- description: New-account burst: an account opened (accounts.opened_at) while the workspace was watching that moves many payments or much money within its first burst window.
-- inputs: dt_tx (detect_prep), accounts, transactions (earliest time only)
-- outputs: nb_hits(acct, opened_t, n, amt, first_t, last_t); the last step is alert rows.
-- param: burst_hours DOUBLE = 72  How long after opening an account counts as new.
-- param: burst_min_txns DOUBLE = 10  Fewest payments in or out within the window that make a burst.
-- param: burst_min_amount DOUBLE = 50000  ... or the least money in plus out within the window that makes a burst.
-- param: not_openings VARCHAR = none  Comma-separated opening times that are none (a registry loaded or migrated in bulk, AMLSim's day 0: see opened_share_max in fundtrace.detect.fit): no account counts as opened then.
-- step: nb_open
-- Accounts active in the window whose opening time the registry gives, opened while the workspace was watching
-- (a first payment alone does not say when an account was opened).
-- (Whether it moved money in the window is nb_hits' join; a semi-join here would build on all payments.)
SELECT ac.account_id AS acct, epoch_us(ac.opened_at) AS opened_t
FROM accounts ac
WHERE ac.opened_at IS NOT NULL AND ac.opened_at >= (SELECT min(ts) FROM transactions)
  AND ac.opened_at NOT IN (SELECT CAST(x AS TIMESTAMP) FROM (SELECT unnest(string_split($not_openings, ',')) AS x)
                           WHERE x NOT IN ('', 'none'))
-- step: nb_hits
SELECT o.acct, o.opened_t, count(*) AS n, sum(x.amt) AS amt, min(x.t) AS first_t, max(x.t) AS last_t,
       list(x.txn_id ORDER BY x.txn_id) AS txns, list(DISTINCT x.cp) AS cps
FROM nb_open o
JOIN (SELECT txn_id, t, amt, src_id AS acct, dst_id AS cp FROM dt_tx
      UNION ALL SELECT txn_id, t, amt, dst_id, src_id FROM dt_tx) x
  ON x.acct = o.acct AND x.t >= o.opened_t AND x.t <= o.opened_t + CAST($burst_hours * 3600e6 AS BIGINT)
GROUP BY o.acct, o.opened_t
HAVING count(*) >= $burst_min_txns OR sum(x.amt) >= $burst_min_amount
-- step: nb_alerts
SELECT 'new_account_burst' AS typology, CAST(acct AS VARCHAR) AS akey,
       least(1.0, greatest(n / ($burst_min_txns * 2.0), amt / ($burst_min_amount * 2.0))) AS score,
       make_timestamp(first_t) AS start_ts, make_timestamp(last_t) AS end_ts, CAST(amt AS DECIMAL(18, 4)) AS amount,
       'Account opened at ' || CAST(make_timestamp(opened_t) AS VARCHAR) || ' moved ' || CAST(n AS VARCHAR)
         || ' payments totalling ' || CAST(round(amt, 2) AS VARCHAR) || ' within ' || CAST($burst_hours AS VARCHAR)
         || ' h of opening.' AS summary,
       list_append(list_transform(cps, lambda c: {'account_id': c, 'role': 'member', 'level': CAST(NULL AS INTEGER)}),
                   {'account_id': acct, 'role': 'hub', 'level': CAST(NULL AS INTEGER)}) AS members,
       txns AS evidence
FROM nb_hits
