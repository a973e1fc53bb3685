-- name: trace_starts
-- kind: trace
-- description: Where each traced case's money starts: its report rows resolved to the victim's payments.
-- inputs: reports, transactions, _trace_cases(case_id) (a temp table of the cases to trace)
-- outputs: case_id, seq, txn_id, ts, dst_bank, dst_account, dst_id, amount, taint, reported_at, is_virtual, problem
-- A row with txn_id starts at that transaction. A row with first_bank/first_account starts at the victim's
-- transfer into it at paid_at for amount_lost when the ledger has one, else at a deposit known only from
-- the report (is_virtual); without paid_at, at the victim's latest transfer into it before reported_at.
WITH r AS (
    SELECT
        r.*,
        row_number() OVER (
            PARTITION BY r.case_id
            ORDER BY r.paid_at NULLS LAST, r.txn_id NULLS LAST, r.first_bank, r.first_account, r.amount_lost
        ) AS seq
    FROM reports r
    WHERE r.case_id IN (SELECT case_id FROM _trace_cases)
),
by_id AS (
    SELECT r.case_id, r.seq, t.txn_id, t.ts, t.dst_bank, t.dst_account, t.dst_id, t.amount,
           least(t.amount, r.amount_lost) AS taint
    FROM r JOIN transactions t ON t.txn_id = r.txn_id
    WHERE r.txn_id IS NOT NULL
),
by_account AS (
    SELECT r.case_id, r.seq, t.txn_id, t.ts, t.dst_bank, t.dst_account, t.dst_id, t.amount,
           least(t.amount, r.amount_lost) AS taint
    FROM r JOIN transactions t ON t.dst_id = account_key(r.first_bank, r.first_account)
    WHERE r.txn_id IS NULL
      AND (
          (r.paid_at IS NOT NULL AND t.ts = r.paid_at AND t.amount = r.amount_lost
           AND (r.victim_account IS NULL
                OR (t.src_account = r.victim_account AND (r.victim_bank IS NULL OR t.src_bank = r.victim_bank))))
          OR (r.paid_at IS NULL AND t.ts <= r.reported_at AND t.src_account = r.victim_account
              AND (r.victim_bank IS NULL OR t.src_bank = r.victim_bank))
      )
    QUALIFY row_number() OVER (PARTITION BY r.case_id, r.seq ORDER BY t.ts DESC, t.txn_id) = 1
),
found AS (SELECT * FROM by_id UNION ALL SELECT * FROM by_account)
SELECT
    r.case_id,
    r.seq,
    coalesce(f.txn_id, CASE WHEN r.txn_id IS NULL AND r.paid_at IS NOT NULL
                            THEN 'report:' || r.case_id || ':' || r.seq END) AS txn_id,
    coalesce(f.ts, CASE WHEN r.txn_id IS NULL THEN r.paid_at END) AS ts,
    coalesce(f.dst_bank, r.first_bank) AS dst_bank,
    coalesce(f.dst_account, r.first_account) AS dst_account,
    coalesce(f.dst_id, account_key(r.first_bank, r.first_account)) AS dst_id,
    CAST(coalesce(f.amount, r.amount_lost) AS DOUBLE) AS amount,
    CAST(coalesce(f.taint, r.amount_lost) AS DOUBLE) AS taint,
    r.reported_at,
    f.txn_id IS NULL AND r.txn_id IS NULL AND r.paid_at IS NOT NULL AS is_virtual,
    CASE
        WHEN f.txn_id IS NOT NULL THEN NULL
        WHEN r.txn_id IS NOT NULL THEN 'txn_id ' || r.txn_id || ' is not in transactions'
        WHEN r.first_account IS NULL THEN 'report row names neither txn_id nor first_account'
        WHEN r.paid_at IS NULL THEN 'no transfer from the victim to ' || r.first_account || ' before reported_at'
    END AS problem
FROM r LEFT JOIN found f ON f.case_id = r.case_id AND f.seq = r.seq
ORDER BY r.case_id, r.seq
