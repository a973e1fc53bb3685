-- name: account_scores
-- kind: score
-- description: Score every transacting account in [0, 1] with reason codes whose contributions add up to the score.
-- inputs: transactions, detect_fx (the rates of the last detect run), accounts, alerts, alert_members, trace_flows, trace_holdings, freeze_requests
-- outputs: the rows of account_scores (see migrations/0004_score.sql); temp table sc_holdings (kept holdings per case)
-- param: as_of TIMESTAMP                  The data time scored (transactions after it are ignored).
-- param: rule VARCHAR = lifo              The tracing rule whose holdings count as victims' money.
-- param: min_held_share DOUBLE = 0.1      A case's holding below this share of the case money that reached the account is residue, not held money.
-- param: recent_days INTEGER = 7          The window of in_recent / out_recent.
-- param: new_days INTEGER = 60            An account opened this recently counts as new.
-- param: holds_full DOUBLE = 5000         Money held (or passed on) at which HOLDS_VICTIM_FUNDS (VICTIM_FUNDS_PASSED) reaches its weight.
-- param: flow_min DOUBLE = 10000          FLOW_BALANCE needs at least this much money in.
-- param: flow_tolerance DOUBLE = 0.1      FLOW_BALANCE: money out within this share of money in.
-- param: innocent_kinds VARCHAR = business,merchant,utility,government,payroll,atm  Account kinds whose score is damped (an ATM is a terminal, not a mule).
-- param: innocent_factor DOUBLE = 0.25    The share of the score an innocent kind keeps (below review_at: never more than allow).
-- param: w_pass_through DOUBLE = 0.2
-- param: w_chain DOUBLE = 0.35
-- param: w_fan_in DOUBLE = 0.1
-- param: w_fan_out DOUBLE = 0.08
-- param: w_scatter_gather DOUBLE = 0.45
-- param: w_gather_scatter DOUBLE = 0.15
-- param: w_stacked DOUBLE = 0.45
-- param: w_bipartite DOUBLE = 0.3
-- param: w_cycle DOUBLE = 0.08
-- param: w_structuring DOUBLE = 0.35
-- param: w_ring DOUBLE = 0.25
-- param: w_new_account_burst DOUBLE = 0.15
-- param: w_dormant_active DOUBLE = 0.05
-- param: w_holds DOUBLE = 0.35
-- param: w_multi_case DOUBLE = 0.1
-- param: w_passed DOUBLE = 0.25
-- param: w_flow DOUBLE = 0.1
-- param: w_new DOUBLE = 0.1
-- param: w_from_frozen DOUBLE = 0.3
-- param: review_at DOUBLE = 0.3           Band thresholds: review from here ...
-- param: hold_at DOUBLE = 0.5             ... hold from here ...
-- param: freeze_at DOUBLE = 0.7           ... freeze from here.

-- step: sc_frozen
-- Accounts under an active stop-payment or freeze. (Payees of payments held by `fundtrace screen` are not
-- included: one false hold would then hold every later payment to that payee.)
SELECT DISTINCT account_key(bank, account) AS account_id FROM freeze_requests
WHERE status = 'active' AND request_type <> 'UNFREEZE' AND (expires_at IS NULL OR expires_at > $as_of)

-- step: sc_stats
-- Names come from the accounts registry; only accounts missing from it are named from their transactions.
-- Amounts are compared in one currency at the rates of the last detect run (detect_fx; as paid without one),
-- kept DECIMAL(18, 4) (a wider type cost 25 % more here at 10 M payments): a converted amount beyond it, which
-- no real payment reaches, counts as the largest one.
WITH tx AS (
    SELECT t.src_id, t.dst_id, t.ts,
           CASE WHEN fx.rate IS NULL THEN t.amount
                ELSE coalesce(TRY_CAST(CAST(t.amount AS DOUBLE) * fx.rate AS DECIMAL(18, 4)),
                              CAST(99999999999999.9999 AS DECIMAL(18, 4))) END AS amount
    FROM transactions t LEFT JOIN detect_fx fx ON fx.currency = t.currency WHERE t.ts <= $as_of
), o AS (
    SELECT src_id AS id, count(*) AS n_out, sum(amount) AS out_amount, max(amount) AS max_out, min(ts) AS f,
           max(ts) AS l, coalesce(sum(amount) FILTER (WHERE ts > $as_of - to_days($recent_days)), 0) AS out_recent
    FROM tx GROUP BY 1
), i AS (
    SELECT dst_id AS id, count(*) AS n_in, sum(amount) AS in_amount, min(ts) AS f, max(ts) AS l,
           coalesce(sum(amount) FILTER (WHERE ts > $as_of - to_days($recent_days)), 0) AS in_recent,
           coalesce(sum(amount) FILTER (WHERE src_id IN (SELECT account_id FROM sc_frozen)), 0) AS from_frozen
    FROM tx GROUP BY 1
), k AS (
    SELECT coalesce(o.id, i.id) AS account_id,
           coalesce(i.n_in, 0) AS n_in, coalesce(o.n_out, 0) AS n_out,
           coalesce(i.in_amount, 0) AS in_amount, coalesce(o.out_amount, 0) AS out_amount, o.max_out,
           least(o.f, i.f) AS first_ts, greatest(o.l, i.l) AS last_ts,
           coalesce(i.in_recent, 0) AS in_recent, coalesce(o.out_recent, 0) AS out_recent,
           coalesce(i.from_frozen, 0) AS from_frozen
    FROM o FULL OUTER JOIN i ON o.id = i.id
), named AS (
    SELECT k.*, a.bank, a.account FROM k LEFT JOIN accounts a ON a.account_id = k.account_id
), missing AS (
    SELECT account_id FROM named WHERE bank IS NULL
), unknown AS (
    SELECT id, any_value(bank) AS bank, any_value(account) AS account FROM (
        SELECT src_id AS id, src_bank AS bank, src_account AS account FROM transactions
        WHERE src_id IN (SELECT account_id FROM missing)
        UNION ALL
        SELECT dst_id, dst_bank, dst_account FROM transactions WHERE dst_id IN (SELECT account_id FROM missing)
    ) GROUP BY 1
)
SELECT n.account_id, coalesce(n.bank, u.bank) AS bank, coalesce(n.account, u.account) AS account,
       n.* EXCLUDE (account_id, bank, account)
FROM named n LEFT JOIN unknown u ON u.id = n.account_id

-- step: sc_typ
SELECT m.account_id,
       max(a.score) FILTER (WHERE a.typology = 'pass_through') AS pass_through,
       max(a.score) FILTER (WHERE a.typology = 'chain') AS chain,
       max(a.score) FILTER (WHERE a.typology = 'fan_in') AS fan_in,
       max(a.score) FILTER (WHERE a.typology = 'fan_out') AS fan_out,
       max(a.score) FILTER (WHERE a.typology = 'scatter_gather') AS scatter_gather,
       max(a.score) FILTER (WHERE a.typology = 'gather_scatter') AS gather_scatter,
       max(a.score) FILTER (WHERE a.typology = 'stacked') AS stacked,
       max(a.score) FILTER (WHERE a.typology = 'bipartite') AS bipartite,
       max(a.score) FILTER (WHERE a.typology = 'cycle') AS cycle,
       max(a.score) FILTER (WHERE a.typology = 'structuring') AS structuring,
       max(a.score) FILTER (WHERE a.typology = 'card_farm_ring') AS ring,
       max(a.score) FILTER (WHERE a.typology = 'new_account_burst') AS new_account_burst,
       max(a.score) FILTER (WHERE a.typology = 'dormant_active') AS dormant_active
FROM alert_members m JOIN alerts a ON a.alert_id = m.alert_id
WHERE m.role <> 'source' AND a.start_ts <= $as_of
GROUP BY m.account_id

-- step: sc_holdings
-- Per (case, account): the victims' money held under the rule, kept when it is at least min_held_share of the
-- case money that reached the account (what is left behind after passing the money on is residue).
WITH inflow AS (
    SELECT case_id, dst_bank AS bank, dst_account AS account,
           sum(CASE $rule WHEN 'poison' THEN taint_poison WHEN 'haircut' THEN taint_haircut WHEN 'fifo' THEN taint_fifo
                          WHEN 'lifo' THEN taint_lifo ELSE taint_libr END) AS tin,
           list(txn_id ORDER BY txn_id) AS txns
    FROM trace_flows WHERE dst_bank IS NOT NULL GROUP BY ALL
), h AS (
    SELECT h.case_id, h.bank, h.account, h.account_id, h.hop, h.first_tainted_at, h.last_tainted_at, h.balance,
           h.as_of,
           CASE $rule WHEN 'poison' THEN held_poison WHEN 'haircut' THEN held_haircut WHEN 'fifo' THEN held_fifo
                      WHEN 'lifo' THEN held_lifo ELSE held_libr END AS held
    FROM trace_holdings h
)
SELECT h.*, coalesce(i.tin, h.held) AS tin, coalesce(i.txns, []) AS txns
FROM h LEFT JOIN inflow i ON i.case_id = h.case_id AND i.bank = h.bank AND i.account = h.account
WHERE h.held > 0 AND h.held >= $min_held_share * coalesce(i.tin, h.held)

-- step: sc_passed
SELECT account_key(src_bank, src_account) AS account_id,
       sum(CASE $rule WHEN 'poison' THEN taint_poison WHEN 'haircut' THEN taint_haircut WHEN 'fifo' THEN taint_fifo
                      WHEN 'lifo' THEN taint_lifo ELSE taint_libr END) AS passed
FROM trace_flows WHERE hop >= 1 AND src_bank IS NOT NULL GROUP BY 1

-- step: sc_raw
WITH hold AS (
    SELECT account_id, sum(held) AS held, count(DISTINCT case_id) AS cases FROM sc_holdings GROUP BY 1
)
SELECT s.*, a.kind, a.phone, a.opened_at,
       coalesce(t.ring, 0) > 0 AS ring,
       coalesce(h.held, 0) AS held_victim, coalesce(h.cases, 0) AS cases,
       s.account_id IN (SELECT account_id FROM sc_frozen) AS frozen,
       list_contains(string_split($innocent_kinds, ','), a.kind) AS innocent,
       CASE WHEN t.account_id IS NULL AND h.account_id IS NULL AND p.account_id IS NULL AND s.from_frozen = 0
                 AND NOT coalesce(a.opened_at > $as_of - to_days($new_days), false)
                 AND NOT (s.n_in >= 2 AND s.in_amount >= $flow_min
                          AND abs(s.out_amount - s.in_amount) <= $flow_tolerance * s.in_amount)
            THEN []  -- no signal at all: most accounts, skipped cheaply
            ELSE list_filter([
           {'contribution': $w_pass_through * coalesce(t.pass_through, 0), 'code': 'PASS_THROUGH'},
           {'contribution': $w_chain * coalesce(t.chain, 0), 'code': 'CHAIN'},
           {'contribution': $w_fan_in * coalesce(t.fan_in, 0), 'code': 'FAN_IN'},
           {'contribution': $w_fan_out * coalesce(t.fan_out, 0), 'code': 'FAN_OUT'},
           {'contribution': $w_scatter_gather * coalesce(t.scatter_gather, 0), 'code': 'SCATTER_GATHER'},
           {'contribution': $w_gather_scatter * coalesce(t.gather_scatter, 0), 'code': 'GATHER_SCATTER'},
           {'contribution': $w_stacked * coalesce(t.stacked, 0), 'code': 'STACKED'},
           {'contribution': $w_bipartite * coalesce(t.bipartite, 0), 'code': 'BIPARTITE'},
           {'contribution': $w_cycle * coalesce(t.cycle, 0), 'code': 'CYCLE'},
           {'contribution': $w_structuring * coalesce(t.structuring, 0), 'code': 'STRUCTURING'},
           {'contribution': $w_ring * coalesce(t.ring, 0), 'code': 'RING'},
           {'contribution': $w_new_account_burst * coalesce(t.new_account_burst, 0), 'code': 'NEW_ACCOUNT_BURST'},
           {'contribution': $w_dormant_active * coalesce(t.dormant_active, 0), 'code': 'DORMANT_ACTIVE'},
           {'contribution': $w_holds * least(1.0, coalesce(h.held, 0) / $holds_full), 'code': 'HOLDS_VICTIM_FUNDS'},
           {'contribution': CASE WHEN coalesce(h.cases, 0) >= 2 THEN $w_multi_case ELSE 0 END, 'code': 'MULTI_CASE'},
           {'contribution': $w_passed * least(1.0, coalesce(p.passed, 0) / $holds_full), 'code': 'VICTIM_FUNDS_PASSED'},
           {'contribution': CASE WHEN s.n_in >= 2 AND s.in_amount >= $flow_min
                                  AND abs(s.out_amount - s.in_amount) <= $flow_tolerance * s.in_amount
                                 THEN $w_flow ELSE 0 END, 'code': 'FLOW_BALANCE'},
           {'contribution': CASE WHEN a.opened_at > $as_of - to_days($new_days) THEN $w_new ELSE 0 END,
            'code': 'NEW_ACCOUNT'},
           {'contribution': CASE WHEN s.in_amount > 0
                                 THEN $w_from_frozen * least(1.0, 2 * s.from_frozen / s.in_amount) ELSE 0 END,
            'code': 'FROM_FROZEN'}
       ], lambda x: x.contribution >= 0.001) END AS raw
FROM sc_stats s
LEFT JOIN accounts a ON a.account_id = s.account_id
LEFT JOIN sc_typ t ON t.account_id = s.account_id
LEFT JOIN hold h ON h.account_id = s.account_id
LEFT JOIN sc_passed p ON p.account_id = s.account_id

-- step: sc_scaled
-- Contributions above a total of 1 are scaled down together; each is floored to 0.001 so the sum stays <= 1.
SELECT * EXCLUDE (raw, tot),
       list_filter(list_transform(raw, lambda x: {'contribution': floor(x.contribution * 1000 / greatest(tot, 1.0)) / 1000,
                                             'code': x.code}), lambda x: x.contribution > 0) AS pos
FROM (SELECT *, list_sum(list_transform(raw, lambda x: x.contribution)) AS tot FROM sc_raw)

-- step: sc_final
-- An innocent kind (merchant, business ...) keeps innocent_factor of its score: the rest is one negative reason.
WITH d AS (
    SELECT *, coalesce(list_sum(list_transform(pos, lambda x: x.contribution)), 0) AS pos_sum FROM sc_scaled
), r AS (
    SELECT *,
           list_sort(CASE WHEN innocent AND pos_sum > 0
                THEN list_append(pos, {'contribution': -floor((1 - $innocent_factor) * pos_sum * 1000) / 1000,
                                       'code': 'INNOCENT_KIND'})
                ELSE pos END, 'DESC') AS reason_list
    FROM d
)
SELECT bank, account, account_id,
       round(coalesce(list_sum(list_transform(reason_list, lambda x: x.contribution)), 0), 3) AS score,
       reason_list, kind, phone, opened_at, first_ts, last_ts, n_in, n_out,
       CAST(in_amount AS DECIMAL(18, 4)) AS in_amount, CAST(out_amount AS DECIMAL(18, 4)) AS out_amount,
       CAST(max_out AS DECIMAL(18, 4)) AS max_out,
       CAST(in_recent AS DECIMAL(18, 4)) AS in_recent, CAST(out_recent AS DECIMAL(18, 4)) AS out_recent,
       ring, CAST(round(held_victim, 4) AS DECIMAL(18, 4)) AS held_victim, CAST(cases AS INTEGER) AS cases, frozen
FROM r
