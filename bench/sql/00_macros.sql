-- Lenient parsing, as in lakehouse.transforms.parse: surrounding whitespace is stripped and a value
-- that does not parse becomes NULL.
CREATE OR REPLACE MACRO as_bigint(v) AS TRY_CAST(trim(v) AS BIGINT);
CREATE OR REPLACE MACRO as_int(v) AS TRY_CAST(trim(v) AS INTEGER);
CREATE OR REPLACE MACRO as_decimal(v) AS TRY_CAST(trim(v) AS DECIMAL(15, 2));
CREATE OR REPLACE MACRO as_date(v) AS TRY_CAST(trim(v) AS DATE);

-- Row rules, as in lakehouse.transforms.silver: a key is present, a value is missing or parses,
-- dates fall in a sane range.
CREATE OR REPLACE MACRO has_key(v) AS nullif(trim(v), '') IS NOT NULL;
CREATE OR REPLACE MACRO parses(raw, typed) AS (raw IS NULL OR typed IS NOT NULL);
CREATE OR REPLACE MACRO sane_date(d) AS (d IS NULL OR d BETWEEN DATE '1900-01-01' AND DATE '2099-12-31');
