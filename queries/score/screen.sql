-- name: screen_payments
-- kind: score
-- description: Score incoming payments before they settle, against the workspace's per-account state.
-- inputs: _screen_batch (temp: txn_id, ts, src_bank, src_account, dst_bank, dst_account, amount, currency, channel),
--   account_scores, transactions, calls, flagged_phones
-- outputs: txn_id, ts, src_bank, src_account, dst_bank, dst_account, amount, currency, decision, score, reasons
-- param: review_at DOUBLE = 0.3            A payment scoring at least this is reviewed ...
-- param: hold_at DOUBLE = 0.5              ... and at least this is held.
-- param: payee_review_at DOUBLE = 0.3      A payee scoring at least this counts as a likely mule.
-- param: w_payee_frozen DOUBLE = 0.6       The payee is under an active freeze or stop-payment.
-- param: w_payee_score DOUBLE = 0.6        Times the payee's own score, when it is a likely mule.
-- param: w_payee_ring DOUBLE = 0.2         The payee is in a card-farm ring.
-- param: w_payee_holds DOUBLE = 0.3        The payee holds reported victims' money (and is a likely mule).
-- param: w_payee_new_pass DOUBLE = 0.25    The payee is new and passes its money on.
-- param: w_new_payee DOUBLE = 0.1          The payer, with a history, never paid this payee before.
-- param: w_large DOUBLE = 0.2              The payment is large against the payer's own history.
-- param: w_scam_call DOUBLE = 0.35         A flagged phone card called the payer just before it paid someone new.
-- param: new_days INTEGER = 60             A payee opened (or first seen) this recently is new.
-- param: pass_share DOUBLE = 0.8           Passing through: recent money out at least this share of recent money in.
-- param: large_factor DOUBLE = 3           Large: at least this many times the payer's average payment ...
-- param: large_min DOUBLE = 5000           ... and at least this much, and above the payer's largest payment.
-- param: min_history INTEGER = 3           NEW_PAYEE needs a payer with at least this many payments.
-- param: call_hours DOUBLE = 24            SCAM_CALL: the call came at most this long before the payment.

-- step: sp_batch
SELECT b.*, account_key(b.src_bank, b.src_account) AS src_id, account_key(b.dst_bank, b.dst_account) AS dst_id
FROM _screen_batch b

-- step: sp_known_pairs
-- The batch's payers first (a small IN filter), then their pairs: about 2x faster than a semi-join on both ids.
SELECT DISTINCT t.src_id, t.dst_id
FROM (SELECT src_id, dst_id FROM transactions WHERE src_id IN (SELECT src_id FROM sp_batch)) t
JOIN (SELECT DISTINCT src_id, dst_id FROM sp_batch) b ON t.src_id = b.src_id AND t.dst_id = b.dst_id

-- step: sp_called
SELECT DISTINCT b.txn_id
FROM sp_batch b
JOIN account_scores p ON p.account_id = b.src_id
JOIN calls c ON c.callee = p.phone
WHERE c.caller IN (SELECT phone FROM flagged_phones)
  AND c.ts <= b.ts AND c.ts >= b.ts - to_seconds(CAST($call_hours * 3600 AS BIGINT))

-- step: sp_raw
SELECT b.txn_id, b.ts, b.src_bank, b.src_account, b.dst_bank, b.dst_account, b.amount, b.currency,
       list_filter([
           {'contribution': CASE WHEN q.frozen THEN $w_payee_frozen ELSE 0 END, 'code': 'PAYEE_FROZEN'},
           {'contribution': CASE WHEN q.score >= $payee_review_at THEN $w_payee_score * q.score ELSE 0 END,
            'code': 'PAYEE_MULE'},
           {'contribution': CASE WHEN q.ring THEN $w_payee_ring ELSE 0 END, 'code': 'PAYEE_RING'},
           {'contribution': CASE WHEN q.held_victim > 0 AND q.score >= $payee_review_at THEN $w_payee_holds ELSE 0 END,
            'code': 'PAYEE_HOLDS_VICTIM_FUNDS'},
           {'contribution': CASE WHEN coalesce(q.opened_at, q.first_ts) > b.ts - to_days($new_days)
                                  AND q.in_recent > 0 AND q.out_recent >= $pass_share * q.in_recent
                                 THEN $w_payee_new_pass ELSE 0 END, 'code': 'PAYEE_NEW_PASS_THROUGH'},
           {'contribution': CASE WHEN p.n_out >= $min_history AND k.src_id IS NULL THEN $w_new_payee ELSE 0 END,
            'code': 'NEW_PAYEE'},
           {'contribution': CASE WHEN p.n_out > 0 AND b.amount >= $large_min AND b.amount > p.max_out
                                  AND b.amount >= $large_factor * p.out_amount / p.n_out
                                 THEN $w_large ELSE 0 END, 'code': 'LARGE_FOR_PAYER'},
           {'contribution': CASE WHEN c.txn_id IS NOT NULL AND k.src_id IS NULL THEN $w_scam_call ELSE 0 END,
            'code': 'SCAM_CALL'}
       ], lambda x: x.contribution >= 0.001) AS raw
FROM sp_batch b
LEFT JOIN account_scores q ON q.account_id = b.dst_id
LEFT JOIN account_scores p ON p.account_id = b.src_id
LEFT JOIN sp_known_pairs k ON k.src_id = b.src_id AND k.dst_id = b.dst_id
LEFT JOIN sp_called c ON c.txn_id = b.txn_id

-- step: sp_scored
WITH s AS (
    SELECT * EXCLUDE (raw),
           list_sort(list_transform(raw, lambda x: {'contribution': floor(x.contribution * 1000 / greatest(tot, 1.0)) / 1000,
                                               'code': x.code}), 'DESC') AS parts
    FROM (SELECT *, coalesce(list_sum(list_transform(raw, lambda x: x.contribution)), 0) AS tot FROM sp_raw)
)
SELECT txn_id, ts, src_bank, src_account, dst_bank, dst_account, amount, currency,
       CASE WHEN score >= $hold_at THEN 'hold' WHEN score >= $review_at THEN 'review' ELSE 'allow' END AS decision,
       score, reasons
FROM (
    SELECT *, round(coalesce(list_sum(list_transform(parts, lambda x: x.contribution)), 0), 3) AS score,
           array_to_string(list_transform(parts, lambda x: x.code || ' ' || printf('%.3f', x.contribution)), '; ')
               AS reasons
    FROM s
)
ORDER BY txn_id
