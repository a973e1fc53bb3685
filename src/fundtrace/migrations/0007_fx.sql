-- 0007 exchange rates seen in the data: files that give a payment's amount both as paid and as received
-- (AMLworld's Amount Paid / Amount Received) tell the rate between the two currencies. Per load batch and
-- ordered pair of currencies (paid <> received): how many such payments, and the sum of ln(received / paid)
-- over them, so that batches add up exactly. Detection compares amounts in one currency with the rates derived
-- from these (fundtrace.detect.fit).

CREATE TABLE fx_pairs (
    batch_id INTEGER NOT NULL,
    paid     VARCHAR NOT NULL,
    received VARCHAR NOT NULL,
    n        BIGINT NOT NULL,
    sum_log  DOUBLE NOT NULL
);

-- The rates the last detect run compared amounts at (its fitted setting fx, see fundtrace.detect.settings): the
-- value of one unit of each currency in the currency it counted in. Empty: amounts compared as paid.
CREATE TABLE detect_fx (
    currency VARCHAR NOT NULL,
    rate     DOUBLE NOT NULL
);
