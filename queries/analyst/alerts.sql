-- name: alerts
-- kind: analyst
-- description: Stored alerts, highest score first, optionally of one typology (see `fundtrace explain ALERT_ID`).
-- inputs: alerts
-- outputs: alert_id, typology, score, start_ts, end_ts, amount, n_accounts, n_txns, summary
-- param: typology VARCHAR = NULL   Only alerts of this typology (e.g. chain, fan_in, card_farm_ring).
-- param: limit INTEGER = 50        Show at most this many alerts.
SELECT alert_id, typology, score, start_ts, end_ts, amount, n_accounts, n_txns, summary
FROM alerts
WHERE CAST($typology AS VARCHAR) IS NULL OR typology = CAST($typology AS VARCHAR)
ORDER BY score DESC, start_ts, alert_id
LIMIT $limit
