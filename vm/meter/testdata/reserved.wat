(module (global (export "scraft_gas") (mut i64) (i64.const 0)))
