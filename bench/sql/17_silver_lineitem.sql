-- silver.lineitem: typed, valid lines of existing orders, parts and suppliers; the first landed
-- row of a key wins.
COPY (
    SELECT *
    FROM (
        SELECT
            as_bigint(l_orderkey) AS l_orderkey,
            as_bigint(l_partkey) AS l_partkey,
            as_bigint(l_suppkey) AS l_suppkey,
            as_int(l_linenumber) AS l_linenumber,
            as_decimal(l_quantity) AS l_quantity,
            as_decimal(l_extendedprice) AS l_extendedprice,
            as_decimal(l_discount) AS l_discount,
            as_decimal(l_tax) AS l_tax,
            l_returnflag,
            l_linestatus,
            as_date(l_shipdate) AS l_shipdate,
            as_date(l_commitdate) AS l_commitdate,
            as_date(l_receiptdate) AS l_receiptdate,
            l_shipinstruct,
            l_shipmode,
            l_comment,
            _batch_date,
            _source_file
        FROM landed_lineitem
        WHERE has_key(l_orderkey)
            AND has_key(l_linenumber)
            AND parses(l_orderkey, as_bigint(l_orderkey))
            AND parses(l_partkey, as_bigint(l_partkey))
            AND parses(l_suppkey, as_bigint(l_suppkey))
            AND parses(l_linenumber, as_int(l_linenumber))
            AND parses(l_quantity, as_decimal(l_quantity))
            AND parses(l_extendedprice, as_decimal(l_extendedprice))
            AND parses(l_discount, as_decimal(l_discount))
            AND parses(l_tax, as_decimal(l_tax))
            AND parses(l_shipdate, as_date(l_shipdate))
            AND parses(l_commitdate, as_date(l_commitdate))
            AND parses(l_receiptdate, as_date(l_receiptdate))
    )
    WHERE coalesce(l_quantity >= 0.01, TRUE)
        AND coalesce(l_extendedprice >= 0, TRUE)
        AND coalesce(l_discount BETWEEN 0 AND 1, TRUE)
        AND coalesce(l_tax BETWEEN 0 AND 1, TRUE)
        AND sane_date(l_shipdate)
        AND sane_date(l_commitdate)
        AND sane_date(l_receiptdate)
        AND l_orderkey IN (SELECT o_orderkey FROM read_parquet('${out}/silver/orders.parquet'))
        AND l_partkey IN (SELECT p_partkey FROM read_parquet('${out}/silver/part.parquet'))
        AND l_suppkey IN (SELECT s_suppkey FROM read_parquet('${out}/silver/supplier.parquet'))
    QUALIFY row_number() OVER (
        PARTITION BY l_orderkey, l_linenumber ORDER BY _batch_date, _source_file
    ) = 1
) TO '${out}/silver/lineitem.parquet' (FORMAT parquet, COMPRESSION zstd);
