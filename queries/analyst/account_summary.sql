-- name: account_summary
-- kind: analyst
-- description: One account's ledger over a period: payments in and out, amounts, counterparties, cash-outs, first and last payment.
-- inputs: transactions, accounts
-- outputs: bank, account, holder_name, kind, opened_at, n_in, n_out, in_amount, out_amount, net, cash_out_amount, counterparties, first_ts, last_ts
-- param: account VARCHAR          The account, as BANK:ACCOUNT.
-- param: since TIMESTAMP = NULL   Count payments at or after this UTC time (default: from the first).
-- param: until TIMESTAMP = NULL   Count payments before this UTC time (default: up to the last).
WITH me AS (
    SELECT split_part($account, ':', 1) AS bank, substr($account, strpos($account, ':') + 1) AS account
), k AS (
    SELECT bank, account, account_key(bank, account) AS id FROM me
), legs AS (
    SELECT t.ts, t.amount, 'in' AS dir, t.src_id AS other, t.channel
    FROM transactions t JOIN k ON t.dst_id = k.id AND t.dst_bank = k.bank AND t.dst_account = k.account
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR t.ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR t.ts < CAST($until AS TIMESTAMP))
    UNION ALL
    SELECT t.ts, t.amount, 'out', t.dst_id, t.channel
    FROM transactions t JOIN k ON t.src_id = k.id AND t.src_bank = k.bank AND t.src_account = k.account
    WHERE (CAST($since AS TIMESTAMP) IS NULL OR t.ts >= CAST($since AS TIMESTAMP))
      AND (CAST($until AS TIMESTAMP) IS NULL OR t.ts < CAST($until AS TIMESTAMP))
), known AS (
    SELECT k.bank, k.account FROM k
    WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.bank = k.bank AND a.account = k.account)
       OR EXISTS (SELECT 1 FROM legs)
)
SELECT known.bank, known.account, any_value(a.holder_name) AS holder_name, any_value(a.kind) AS kind,
       any_value(a.opened_at) AS opened_at,
       count(l.ts) FILTER (WHERE l.dir = 'in') AS n_in,
       count(l.ts) FILTER (WHERE l.dir = 'out') AS n_out,
       coalesce(sum(l.amount) FILTER (WHERE l.dir = 'in'), 0)::DECIMAL(18, 4) AS in_amount,
       coalesce(sum(l.amount) FILTER (WHERE l.dir = 'out'), 0)::DECIMAL(18, 4) AS out_amount,
       (coalesce(sum(l.amount) FILTER (WHERE l.dir = 'in'), 0)
        - coalesce(sum(l.amount) FILTER (WHERE l.dir = 'out'), 0))::DECIMAL(18, 4) AS net,
       coalesce(sum(l.amount) FILTER (WHERE l.dir = 'out' AND l.channel IN ('atm', 'crypto', 'cross_border')),
                0)::DECIMAL(18, 4) AS cash_out_amount,
       count(DISTINCT l.other) AS counterparties,
       min(l.ts) AS first_ts, max(l.ts) AS last_ts
FROM known
LEFT JOIN accounts a ON a.bank = known.bank AND a.account = known.account
LEFT JOIN legs l ON true
GROUP BY known.bank, known.account
