SELECT * FROM t WHERE day = '{{ ds }}'
