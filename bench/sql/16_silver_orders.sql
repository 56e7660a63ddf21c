-- silver.orders: typed, valid orders of existing customers; the first landed row of a key wins.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(o_orderkey) AS o_orderkey,
            as_bigint(o_custkey) AS o_custkey,
            o_orderstatus,
            as_decimal(o_totalprice) AS o_totalprice,
            as_date(o_orderdate) AS o_orderdate,
            o_orderpriority,
            o_clerk,
            as_int(o_shippriority) AS o_shippriority,
            o_comment,
            _batch_date,
            _source_file
        FROM landed_orders
        WHERE has_key(o_orderkey)
            AND parses(o_orderkey, as_bigint(o_orderkey))
            AND parses(o_custkey, as_bigint(o_custkey))
            AND parses(o_totalprice, as_decimal(o_totalprice))
            AND parses(o_orderdate, as_date(o_orderdate))
            AND parses(o_shippriority, as_int(o_shippriority))
    )
    WHERE coalesce(o_totalprice >= 0, TRUE)
        AND sane_date(o_orderdate)
        AND o_custkey IN (SELECT c_custkey FROM read_parquet('${out}/silver/customer.parquet'))
    QUALIFY row_number() OVER (PARTITION BY o_orderkey ORDER BY _batch_date, _source_file) = 1
) TO '${out}/silver/orders.parquet' (FORMAT parquet, COMPRESSION zstd);
