(module
  (import "scraft" "g" (global i32))
  (memory (export "memory") 1)
  (func (export "f") (param i32) (result i32) (i32.const 0)))
