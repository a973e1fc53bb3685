-- name: detect_dormant_active
-- kind: detect
-- description: Dormant then active: an account with no payment for dormant_days (it had one before, or was opened while the workspace was watching) that then moves many payments or much money within the active window.
-- inputs: dt_tx (detect_prep), transactions, accounts; with stored_history detect_last_pay (acct, last_t, first_t: each account's last and first payment before the new ones, epoch microseconds) and detect_dormant_gaps (acct, wake_t, prev_t: every silence of dormant_days, as da_wake)
-- outputs: da_open(acct, opened_t): accounts opened while the workspace was watching; da_cand(acct): accounts that can have woken up; da_wake(acct, wake_t, prev_t): every silence of dormant_days in the window; da_hits(acct, wake_t, prev_t, n, amt, last_t); the last step is alert rows.
-- param: dormant_days DOUBLE = 180  Days without any payment that make an account dormant.
-- param: active_hours DOUBLE = 72  The window after waking up in which activity is counted.
-- param: active_min_txns DOUBLE = 5  Fewest payments in the window that make the wake-up suspicious.
-- param: active_min_amount DOUBLE = 50000  ... or the least money in plus out in the window.
-- param: ctx_from TIMESTAMP = 1970-01-01  The earliest time dt_tx holds (set by the runner); history before it is read from transactions.
-- param: not_openings VARCHAR = none  Comma-separated opening times that are none (a registry loaded or migrated in bulk, AMLSim's day 0: see opened_share_max in fundtrace.detect.fit): no account was opened then, so none was silent since.
-- param: stored_history BOOLEAN = false  Read the history before ctx_from from detect_last_pay and detect_dormant_gaps (set by the runner when they hold every payment before the new ones).
-- step: da_open
-- Accounts opened while the workspace was watching, as new_account_burst's nb_open: the opening stands for the
-- payment before the first for an account that never paid before (a registry's bulk date is no opening).
SELECT ac.account_id AS acct, epoch_us(ac.opened_at) AS opened_t
FROM accounts ac
WHERE ac.opened_at IS NOT NULL AND ac.opened_at >= (SELECT min(ts) FROM transactions)
  AND ac.opened_at NOT IN (SELECT CAST(x AS TIMESTAMP) FROM (SELECT unnest(string_split($not_openings, ',')) AS x)
                           WHERE x NOT IN ('', 'none'))
-- step: da_span
-- The first and last payment in the window read of each account that can have woken up: one row per account,
-- not per account-day. When everything read spans less than dormant_days and there is no history before it
-- (a full run), only an account opened while the workspace was watching can have been dormant.
SELECT acct, min(t) AS first_t, max(t) AS last_t FROM (
  SELECT src_id AS acct, t FROM dt_tx UNION ALL SELECT dst_id, t FROM dt_tx
)
WHERE $ctx_from > TIMESTAMP '1970-01-01'
   OR (SELECT max(t) - min(t) FROM dt_tx) >= CAST($dormant_days * 86400e6 AS BIGINT)
   OR acct IN (SELECT acct FROM da_open)
GROUP BY acct
-- step: da_before
-- The last payment before the window read, for accounts active in it (an incremental run reads a recent window
-- only; in a full run there is nothing before it). With stored_history it comes from the stored state instead of
-- every earlier payment: detect_last_pay has each account's last and first payment before the new ones (all in
-- the window). An account whose first payment is in the window has none before it (no row: its opening may stand
-- for one, as in a full run). Otherwise a last payment before the window is the last before it; for an account
-- that paid in the window too, the window starts inside a stored silence of dormant_days (detect_dormant_gaps)
-- whose start is the last before it, or else the account paid within dormant_days before its first payment in the
-- window, which then stands for that payment (no wake-up there either way; an alert there starts before the
-- runner's cutoff).
SELECT acct, max(t) AS last_t FROM (
  SELECT src_id AS acct, epoch_us(max(ts)) AS t FROM transactions
  WHERE NOT $stored_history AND ts < $ctx_from AND src_id IN (SELECT acct FROM da_span) GROUP BY 1
  UNION ALL
  SELECT dst_id, epoch_us(max(ts)) FROM transactions
  WHERE NOT $stored_history AND ts < $ctx_from AND dst_id IN (SELECT acct FROM da_span) GROUP BY 1
  UNION ALL
  SELECT s.acct, CASE WHEN l.last_t < epoch_us($ctx_from) THEN l.last_t ELSE coalesce(g.prev_t, s.first_t) END
  FROM da_span s
  JOIN detect_last_pay l ON l.acct = s.acct
  LEFT JOIN detect_dormant_gaps g ON g.acct = s.acct AND g.prev_t < epoch_us($ctx_from) AND g.wake_t >= epoch_us($ctx_from)
  WHERE $stored_history AND l.first_t < epoch_us($ctx_from)
) GROUP BY acct
-- step: da_cand
-- Only an account whose payments in the window span dormant_days, or whose first one comes dormant_days after
-- its last earlier payment (else its opening while the workspace was watching), can have woken up.
SELECT s.acct FROM da_span s
LEFT JOIN da_before b ON b.acct = s.acct
LEFT JOIN da_open o ON o.acct = s.acct
WHERE s.last_t - s.first_t >= CAST($dormant_days * 86400e6 AS BIGINT)
   OR s.first_t - coalesce(b.last_t, o.opened_t) >= CAST($dormant_days * 86400e6 AS BIGINT)
-- step: da_days
SELECT acct, t // 86400000000 AS d, min(t) AS first_t, max(t) AS last_t FROM (
  SELECT src_id AS acct, t FROM dt_tx WHERE src_id IN (SELECT acct FROM da_cand)
  UNION ALL SELECT dst_id, t FROM dt_tx WHERE dst_id IN (SELECT acct FROM da_cand)
) GROUP BY 1, 2
-- step: da_wake
-- The time before waking: the last payment, else the opening if the account was opened while the workspace was
-- watching (an account first seen now after an opening long before the data says nothing about dormancy).
SELECT acct, wake_t, prev_t FROM (
  SELECT w.acct, w.first_t AS wake_t,
         coalesce(w.prev_t, b.last_t, o.opened_t) AS prev_t
  FROM (SELECT acct, first_t, lag(last_t) OVER (PARTITION BY acct ORDER BY d) AS prev_t FROM da_days) w
  LEFT JOIN da_before b ON b.acct = w.acct AND w.prev_t IS NULL
  LEFT JOIN da_open o ON o.acct = w.acct AND w.prev_t IS NULL
) WHERE wake_t - prev_t >= CAST($dormant_days * 86400e6 AS BIGINT)
-- step: da_hits
SELECT w.acct, w.wake_t, w.prev_t, count(*) AS n, sum(x.amt) AS amt, max(x.t) AS last_t,
       list(x.txn_id ORDER BY x.txn_id) AS txns, list(DISTINCT x.cp) AS cps
FROM da_wake w
JOIN (SELECT txn_id, t, amt, src_id AS acct, dst_id AS cp FROM dt_tx WHERE src_id IN (SELECT acct FROM da_wake)
      UNION ALL SELECT txn_id, t, amt, dst_id, src_id FROM dt_tx WHERE dst_id IN (SELECT acct FROM da_wake)) x
  ON x.acct = w.acct AND x.t >= w.wake_t AND x.t <= w.wake_t + CAST($active_hours * 3600e6 AS BIGINT)
GROUP BY w.acct, w.wake_t, w.prev_t
HAVING count(*) >= $active_min_txns OR sum(x.amt) >= $active_min_amount
-- step: da_alerts
SELECT 'dormant_active' AS typology, CAST(acct AS VARCHAR) || ':' || CAST(wake_t AS VARCHAR) AS akey,
       least(1.0, greatest(n / ($active_min_txns * 2.0), amt / ($active_min_amount * 2.0))) AS score,
       make_timestamp(wake_t) AS start_ts, make_timestamp(last_t) AS end_ts, CAST(amt AS DECIMAL(18, 4)) AS amount,
       'Account silent for ' || CAST(CAST((wake_t - prev_t) // 86400000000 AS BIGINT) AS VARCHAR) || ' days then moved '
         || CAST(n AS VARCHAR) || ' payments totalling ' || CAST(round(amt, 2) AS VARCHAR) || ' within '
         || CAST($active_hours AS VARCHAR) || ' h.' AS summary,
       list_append(list_transform(cps, lambda c: {'account_id': c, 'role': 'member', 'level': CAST(NULL AS INTEGER)}),
                   {'account_id': acct, 'role': 'hub', 'level': CAST(NULL AS INTEGER)}) AS members,
       txns AS evidence
FROM da_hits
