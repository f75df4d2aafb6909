(module
  (memory (export "memory") 1)
  (table $t 2 funcref)
  (elem declare func $f)
  (func $f (export "f") (param i32) (result i32)
    (table.set $t (i32.const 0) (ref.func $f))
    (i32.const 0)))
