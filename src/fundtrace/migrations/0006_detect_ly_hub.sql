-- 0006 layering's hub buckets, kept between runs (fundtrace.detect): every (account, layering bucket) with more
-- than layer_max payments in and out (queries/detect/layering.sql, ly_hub), over every payment. A full run
-- rewrites it; an incremental run recounts only the touched accounts' buckets in its context (only their counts
-- can change) and reads every other account's from here instead of counting every payment of the context.
-- detect_state 'ly_hub' names the last batch it is current for; without it an incremental run counts them all.

CREATE TABLE detect_ly_hub (
    acct UBIGINT,
    b    BIGINT,
    n    BIGINT
);
