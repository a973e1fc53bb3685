-- name: detect_corroborate
-- kind: detect
-- description: Corroboration of the raw alerts before they are published: an alert of a corroborated typology is kept only when one of its mules, hubs or members is a pass-through account over its whole history (a pass-through alert, in addition, a link to another such account or to a kept structural alert) (most of the money it ever received left again within the dwell window: the share of pass-through episodes in all its incoming money). Normal people forward money now and then (a salary to rent, a shared bill); a mule does little else. Terminals, merchants and other innocent kinds are not listed as sinks or members (the money left the system there; the payment stays in the evidence).
-- inputs: detect_raw_alerts, detect_raw_members, detect_raw_evidence, detect_pt_episodes, detect_in_totals (acct, in_amt, n_in: money and payments received from other accounts, all time), detect_sink_paid (alert_id, account_id, paid_share: the sinks' paid shares computed by earlier runs), transactions (evidence amounts; account life), detect_fx (currency, rate: amounts in one currency, as prep), accounts; for an incremental run (empty in a full one): dx_replaced (alert_id: raw alerts the run replaced or removed), dx_gone_members (account_id: members of the removed ones), dx_share_old (acct, share, n_in: the shares and payment counts of the accounts whose episodes or incoming money changed, before the change), alerts (the published alerts of the last run)
-- outputs: dc_share(acct, pt_amt, in_amt, share); dc_core(acct); dc_busy(acct); dc_flip(acct); dc_scope(alert_id: the alerts judged: all in a full run); dc_struct_all(alert_id); dc_life_cand(account_id); dc_life(acct, pays_out); dc_life_ok(alert_id); dc_yielded(alert_id); dc_keep(alert_id: those of dc_scope kept); dc_sink_new(alert_id, account_id, paid_share: to store in detect_sink_paid); dc_members (the published members of dc_keep).
-- param: share_min DOUBLE = 0.4  Smallest share of an account's incoming money that passed through it for the account to corroborate an alert.
-- param: incremental BOOLEAN = false  Judge only the alerts whose inputs changed (dc_scope); every other published alert stays as it is. Exact only without life_corroborates, life_members and fans_yield (they read what this run does not follow); the runner judges everything when one is set.
-- param: share_alone DOUBLE = 0.9  A pass-through alert needs no link when at least this share of all the account's incoming money passed through it (it does little else).
-- param: corroborate VARCHAR = pass_through,chain,stacked,fan_in,fan_out,gather_scatter,cycle  Typologies whose alerts need a corroborating account.
-- param: sink_share DOUBLE = 0.05  A sink of a pass-through, chain or stacked alert is listed only when it received at least this share of the alert's money from the alert's mules, or passes money through itself (an everyday payment out of a mule's account, a bill or a gift, is not where the money went).
-- param: sink_checked VARCHAR = pass_through,chain,stacked  Typologies whose sinks need that share or a pass-through of their own.
-- param: hub_corroborates VARCHAR = fan_in,fan_out,gather_scatter  Typologies whose hub itself must be the pass-through account (a fan's payees or payers say nothing about the hub).
-- param: path_corroborates VARCHAR = chain,stacked  Typologies whose mules must include path_core_min pass-through accounts (all of them when there are fewer).
-- param: path_core_min INTEGER = 2  Fewest pass-through mules of a chain or stacked alert: two ordinary people forwarding a small payment in a row happens, a path of accounts that mostly forward money does not.
-- param: layer_min DOUBLE = 3  Fewest payees of a gather-scatter hub that are not of an innocent kind.
-- param: innocent_kinds VARCHAR = business,merchant,utility,government,payroll,atm  Account kinds never listed as a sink or member.
-- param: busy_in DOUBLE = 0  An account that received at least this many payments over its history and is no pass-through account (share under share_min) is commerce, a shop or an employer: not listed as a sink or member, not a gather-scatter payee, and an alert whose hub or mule it is is dropped; 0: off (the runner sets it only when no account is of an innocent kind).
-- param: life_corroborates VARCHAR = none  Typologies whose alerts also need short-lived accounts: life_min of the members other than the hub, or the hub itself (none by default).
-- param: fans_yield VARCHAR = none  Typologies (fan_in, fan_out) whose alert gives way when its hub is the source, sink or hub of a kept scatter-gather or gather-scatter alert inside the fan's time span and fans_yield_share of the fan's counterparties are its members: the layering explains them (none by default).
-- param: fans_yield_share DOUBLE = 0.5  Share of a fan's counterparties that must belong to those layering alerts for the fan to give way.
-- param: life_members VARCHAR = none  Typologies whose published members other than the hub must be short-lived (a fan over months also collects ordinary customers' one-off payments).
-- param: unpublished VARCHAR = none  Typologies whose alerts are never kept (nor count as a kept structural alert).
-- param: life_sinks VARCHAR = none  Typologies of life_corroborates whose alerts also need a short-lived sink, even one that only receives (none by default).
-- param: life_min INTEGER = 2  Fewest short-lived members (other than the hub) that keep an alert of a life_corroborates typology.
-- param: life_max_txns INTEGER = 10  A short-lived account makes at most this many payments in and out over its whole history...
-- param: life_max_hours DOUBLE = 720  ...all within this many hours of its first one, and (except as a life_sinks sink) pays money out at least once (a card bought, used in a burst and dropped; a payee that only ever receives is an ordinary customer).
-- step: dc_share
-- detect_in_totals holds every account's incoming money over its whole history (kept up to date by the
-- runner from each new batch, so no run re-sums all transactions). The runner also runs this step itself,
-- before it stores the run's changes, for the shares before them (dx_share_old): it reads only those two
-- stored tables and takes no parameter.
SELECT p.acct, p.pt_amt, CAST(i.in_amt AS DOUBLE) AS in_amt, p.pt_amt / CAST(i.in_amt AS DOUBLE) AS share
FROM (SELECT acct, sum(in_amt) AS pt_amt FROM detect_pt_episodes GROUP BY acct) p
JOIN detect_in_totals i ON i.acct = p.acct
-- step: dc_core
SELECT acct FROM dc_share WHERE share >= $share_min
-- step: dc_busy
-- Busy accounts that keep their money: paid busy_in times or more over their history and no pass-through account.
SELECT acct FROM detect_in_totals WHERE $busy_in > 0 AND n_in >= $busy_in AND acct NOT IN (SELECT acct FROM dc_core)
-- step: dc_flip
-- Accounts whose standing changed (corroborating: share_min, alone: share_alone, busy: busy_in): only the
-- accounts whose episodes or incoming money changed can (dx_share_old holds their share and count before).
SELECT o.acct FROM dx_share_old o LEFT JOIN dc_share s ON s.acct = o.acct
WHERE coalesce(o.share >= $share_min, false) <> coalesce(s.share >= $share_min, false)
   OR coalesce(o.share >= $share_alone, false) <> coalesce(s.share >= $share_alone, false)
   OR ($busy_in > 0 AND coalesce(o.n_in >= $busy_in, false) <> (o.acct IN (SELECT acct FROM detect_in_totals
                                                                             WHERE n_in >= $busy_in)))
-- step: dc_scope1
-- The alerts whose own judgement can change: every raw alert in a full run; in an incremental one those the run
-- replaced and those with a member whose standing changed (an alert is judged by its own members and evidence,
-- the accounts' kinds and their standing).
SELECT alert_id FROM detect_raw_alerts WHERE NOT $incremental
UNION
SELECT alert_id FROM dx_replaced WHERE alert_id IN (SELECT alert_id FROM detect_raw_alerts)
UNION
SELECT alert_id FROM detect_raw_members WHERE account_id IN (SELECT acct FROM dc_flip)
-- step: dc_scope
-- ... and the pass-through alerts whose mule is a mule, hub or member of one of those that is structural or of a
-- removed structural alert (dx_gone_members): whether it belongs to a kept structural alert can change with them.
SELECT alert_id FROM dc_scope1
UNION
SELECT m.alert_id FROM detect_raw_members m JOIN detect_raw_alerts a ON a.alert_id = m.alert_id
WHERE $incremental AND a.typology = 'pass_through' AND m.role = 'mule'
  AND m.account_id IN (SELECT s.account_id FROM detect_raw_members s JOIN detect_raw_alerts sa ON sa.alert_id = s.alert_id
                       WHERE s.alert_id IN (SELECT alert_id FROM dc_scope1) AND sa.typology <> 'pass_through'
                         AND s.role IN ('mule', 'hub', 'member')
                       UNION ALL SELECT account_id FROM dx_gone_members)
-- step: dc_scope_members
-- Their members with their alert's typology, time span and amount (the steps below read only these, not every
-- raw member or alert: the alerts kept are among them). Joined from dc_scope, so that both stored tables are
-- filtered by it before they meet (a semi-join after joining every raw alert cost ~1.3x more).
SELECT m.alert_id, m.account_id, m.role, a.typology, a.start_ts, a.end_ts, a.amount, m.bank, m.account, m.level
FROM dc_scope s
JOIN detect_raw_alerts a ON a.alert_id = s.alert_id
JOIN detect_raw_members m ON m.alert_id = s.alert_id
-- step: dc_life_cand
-- Members of the raw alerts of life_corroborates or life_members typologies: the only accounts whose life is read.
SELECT DISTINCT m.account_id FROM detect_raw_members m JOIN detect_raw_alerts a ON a.alert_id = m.alert_id
WHERE a.typology IN (SELECT unnest(string_split($life_corroborates || ',' || $life_members, ',')))
-- step: dc_life
-- Short-lived accounts among them, over their whole history (as dc_share, so an incremental run equals a
-- full one): few payments within a short span; pays_out when at least one of them is a payment out.
SELECT acct, sum(is_out) > 0 AS pays_out FROM (
  SELECT src_id AS acct, ts, 1 AS is_out FROM transactions WHERE src_id <> dst_id
    AND src_id IN (SELECT account_id FROM dc_life_cand)
  UNION ALL
  SELECT dst_id, ts, 0 FROM transactions WHERE src_id <> dst_id
    AND dst_id IN (SELECT account_id FROM dc_life_cand)
)
GROUP BY acct
HAVING count(*) <= $life_max_txns
   AND epoch_us(max(ts)) - epoch_us(min(ts)) <= $life_max_hours * 3600e6
-- step: dc_life_ok
-- Alerts of a life_corroborates typology with life_min short-lived members other than the hub that pay
-- money out, or a short-lived hub; a life_sinks typology also needs a short-lived sink (one that only
-- receives counts: the scatter's payees are fresh accounts).
SELECT m.alert_id FROM detect_raw_members m
JOIN detect_raw_alerts a ON a.alert_id = m.alert_id
JOIN dc_life l ON l.acct = m.account_id
WHERE a.typology IN (SELECT unnest(string_split($life_corroborates, ',')))
GROUP BY m.alert_id, a.typology
HAVING (count(DISTINCT m.account_id) FILTER (WHERE m.role <> 'hub' AND l.pays_out) >= $life_min
        OR count(*) FILTER (WHERE m.role = 'hub' AND l.pays_out) > 0)
   AND (a.typology NOT IN (SELECT unnest(string_split($life_sinks, ',')))
        OR count(*) FILTER (WHERE m.role = 'sink') > 0)
-- step: dc_struct
-- Structural alerts (every typology but pass_through) of dc_scope that are kept. A gather-scatter hub must scatter
-- to layer_min payees that are not shops, utilities or other innocent kinds (paying bills is not scattering), nor
-- busy accounts that keep their money (dc_busy); an alert whose hub or mule is such a busy account is commerce (a
-- shop's takings, a business paying its suppliers), as one of an innocent kind is dropped when stored.
-- What the rules ask of an alert's members is counted in one pass over them (per).
WITH per AS (
  SELECT m.alert_id,
         count(DISTINCT m.account_id) FILTER (WHERE m.role = 'sink' AND b.acct IS NULL AND (ac.kind IS NULL
           OR lower(ac.kind) NOT IN (SELECT unnest(string_split($innocent_kinds, ','))))) AS payees,
         count(*) FILTER (WHERE m.role = 'hub' AND c.acct IS NOT NULL) > 0 AS hub_core,
         count(DISTINCT m.account_id) FILTER (WHERE m.role = 'mule') AS mules,
         count(DISTINCT m.account_id) FILTER (WHERE m.role = 'mule' AND c.acct IS NOT NULL) AS core_mules,
         count(*) FILTER (WHERE m.role IN ('mule', 'hub', 'member') AND c.acct IS NOT NULL) > 0 AS any_core,
         count(*) FILTER (WHERE m.role IN ('mule', 'hub') AND b.acct IS NOT NULL) > 0 AS busy_hub
  FROM dc_scope_members m
  LEFT JOIN accounts ac ON ac.account_id = m.account_id
  LEFT JOIN dc_core c ON c.acct = m.account_id
  LEFT JOIN dc_busy b ON b.acct = m.account_id
  WHERE m.typology <> 'pass_through'
  GROUP BY m.alert_id
)
SELECT a.alert_id FROM detect_raw_alerts a LEFT JOIN per p ON p.alert_id = a.alert_id
WHERE a.typology <> 'pass_through' AND a.alert_id IN (SELECT alert_id FROM dc_scope)
  AND a.typology NOT IN (SELECT unnest(string_split($unpublished, ',')))
  AND NOT coalesce(p.busy_hub, false)
  AND (a.typology NOT IN (SELECT unnest(string_split($life_corroborates, ','))) OR a.alert_id IN (SELECT alert_id FROM dc_life_ok))
  AND (a.typology <> 'gather_scatter' OR coalesce(p.payees, 0) >= $layer_min)
  AND (a.typology NOT IN (SELECT unnest(string_split($corroborate, ',')))
       OR (a.typology IN (SELECT unnest(string_split($hub_corroborates, ','))) AND coalesce(p.hub_core, false))
       OR (a.typology IN (SELECT unnest(string_split($path_corroborates, ',')))
           AND coalesce(p.mules, 0) > 0 AND p.core_mules >= least($path_core_min, p.mules))
       OR (a.typology NOT IN (SELECT unnest(string_split($hub_corroborates || ',' || $path_corroborates, ',')))
           AND coalesce(p.any_core, false)))
-- step: dc_yielded
-- Fan alerts (of dc_scope) that give way to kept layering alerts around their hub within their span: at least
-- fans_yield_share of the fan's counterparties are members of those layering alerts.
WITH f AS (
  SELECT a.alert_id, a.start_ts, a.end_ts, h.account_id AS hub_id FROM detect_raw_alerts a
  JOIN dc_scope_members h ON h.alert_id = a.alert_id AND h.role = 'hub'
  WHERE a.typology IN (SELECT unnest(string_split($fans_yield, ',')))
)
SELECT f.alert_id FROM f
JOIN dc_scope_members fm ON fm.alert_id = f.alert_id AND fm.role <> 'hub'
LEFT JOIN (  -- (dc_struct is part of dc_scope: its members are in dc_scope_members)
  SELECT DISTINCT l.account_id AS hub_id, o.account_id, l.start_ts, l.end_ts
  FROM dc_scope_members l
  JOIN dc_scope_members o ON o.alert_id = l.alert_id AND o.account_id <> l.account_id
  WHERE l.role IN ('source', 'sink', 'hub') AND l.typology IN ('scatter_gather', 'gather_scatter')
    AND l.alert_id IN (SELECT alert_id FROM dc_struct) AND l.account_id IN (SELECT hub_id FROM f)
) ly ON ly.hub_id = f.hub_id AND ly.account_id = fm.account_id AND ly.start_ts <= f.end_ts AND ly.end_ts >= f.start_ts
GROUP BY f.alert_id
HAVING count(DISTINCT ly.account_id) >= $fans_yield_share * count(DISTINCT fm.account_id)
   AND count(DISTINCT ly.account_id) > 0
-- step: dc_struct_all
-- Every kept structural alert: those of dc_scope just judged, and in an incremental run the published ones outside
-- it (unchanged; without fans_yield the published structural alerts are exactly the kept ones).
SELECT alert_id FROM dc_struct
UNION ALL
SELECT alert_id FROM alerts
WHERE $incremental AND typology <> 'pass_through' AND alert_id NOT IN (SELECT alert_id FROM dc_scope)
  AND alert_id NOT IN (SELECT alert_id FROM dx_replaced)
-- step: dc_keep
-- The alerts of dc_scope kept. A pass-through alert also needs a link: a payer or payee of the episode passes money through too
-- (a multi-hop structure), or the account is a mule, hub or member of a kept structural alert, or
-- nearly all its money ever passed through (share_alone).
SELECT alert_id FROM dc_struct WHERE alert_id NOT IN (SELECT alert_id FROM dc_yielded)
UNION ALL
SELECT m.alert_id FROM dc_scope_members m
WHERE m.typology = 'pass_through' AND m.role = 'mule'
  AND 'pass_through' NOT IN (SELECT unnest(string_split($unpublished, ',')))
  AND ('pass_through' NOT IN (SELECT unnest(string_split($corroborate, ',')))
       OR m.account_id IN (SELECT acct FROM dc_share WHERE share >= $share_alone)
       OR (m.account_id IN (SELECT acct FROM dc_core)
           AND (EXISTS (SELECT 1 FROM dc_scope_members o WHERE o.alert_id = m.alert_id AND o.role <> 'mule'
                        AND o.account_id IN (SELECT acct FROM dc_core))
                OR m.account_id IN (SELECT s.account_id FROM detect_raw_members s
                                    WHERE s.alert_id IN (SELECT alert_id FROM dc_struct_all)
                                      AND s.role IN ('mule', 'hub', 'member')))))
-- step: dc_sink_todo
-- Sinks of kept alerts of a checked typology whose paid share is not stored yet: detect_sink_paid keeps it per
-- raw alert (it depends only on the alert's own members, evidence and amount; the runner drops the rows of
-- replaced alerts, and all of them in a full run), so an incremental run reads only new or newly kept alerts'.
SELECT s.alert_id, s.account_id, s.start_ts, CAST(s.amount AS DOUBLE) AS amount
FROM dc_scope_members s
WHERE s.role = 'sink' AND s.alert_id IN (SELECT alert_id FROM dc_keep)
  AND s.typology IN (SELECT unnest(string_split($sink_checked, ',')))
  AND s.alert_id NOT IN (SELECT alert_id FROM detect_sink_paid)
-- step: dc_sink_tx
-- The payments that can count, looked up once by the accounts' integer ids (reading every payment's txn_id
-- string cost ~5x more): to one of those sinks from a mule or hub of one of those alerts, at or after the
-- earliest such alert's start (an alert's payments all come at or after its start_ts; transactions loaded in
-- time order skip the rest).
SELECT x.txn_id, x.src_id, x.dst_id, CAST(x.amount AS DOUBLE) * coalesce(fx.rate, 1.0) AS amount
FROM transactions x LEFT JOIN detect_fx fx ON fx.currency = x.currency
WHERE ts >= (SELECT min(start_ts) FROM dc_sink_todo)
  AND dst_id IN (SELECT account_id FROM dc_sink_todo)
  AND src_id IN (SELECT o.account_id FROM dc_scope_members o
                 WHERE o.role IN ('mule', 'hub') AND o.alert_id IN (SELECT alert_id FROM dc_sink_todo))
-- step: dc_sink_new
-- What each of those sinks received from the alert's mules and hubs, as a share of the alert's money (NULL:
-- nothing; stored too, so that the alert is not looked up again).
SELECT t.alert_id, t.account_id, sum(p.amount) / max(t.amount) AS paid_share
FROM dc_sink_todo t
LEFT JOIN (
  SELECT e.alert_id, x.dst_id, x.amount FROM detect_raw_evidence e
  JOIN dc_sink_tx x ON x.txn_id = e.txn_id
  WHERE e.alert_id IN (SELECT alert_id FROM dc_sink_todo)
    AND x.src_id IN (SELECT o.account_id FROM dc_scope_members o WHERE o.alert_id = e.alert_id AND o.role IN ('mule', 'hub'))
) p ON p.alert_id = t.alert_id AND p.dst_id = t.account_id
GROUP BY t.alert_id, t.account_id
-- step: dc_sink_paid
-- The paid share of every sink of a kept alert of a checked typology: stored or just computed.
SELECT alert_id, account_id, paid_share FROM detect_sink_paid WHERE alert_id IN (SELECT alert_id FROM dc_keep)
UNION ALL
SELECT alert_id, account_id, paid_share FROM dc_sink_new
-- step: dc_members
-- (dc_keep is part of dc_scope: its members are in dc_scope_members)
SELECT m.alert_id, m.bank, m.account, m.account_id, m.role, m.level
FROM dc_scope_members m
LEFT JOIN accounts ac ON ac.account_id = m.account_id
WHERE m.alert_id IN (SELECT alert_id FROM dc_keep)
  AND (m.role IN ('mule', 'hub', 'source') OR ac.kind IS NULL
       OR lower(ac.kind) NOT IN (SELECT unnest(string_split($innocent_kinds, ','))))
  AND (m.role IN ('mule', 'hub', 'source') OR m.account_id NOT IN (SELECT acct FROM dc_busy))
  AND (m.role = 'hub' OR m.typology NOT IN (SELECT unnest(string_split($life_members, ',')))
       OR m.account_id IN (SELECT acct FROM dc_life WHERE pays_out))
  AND (m.role <> 'sink' OR m.typology NOT IN (SELECT unnest(string_split($sink_checked, ',')))
       OR m.account_id IN (SELECT acct FROM dc_core)
       OR EXISTS (SELECT 1 FROM dc_sink_paid p WHERE p.alert_id = m.alert_id AND p.account_id = m.account_id
                  AND p.paid_share >= $sink_share))
