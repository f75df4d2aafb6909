(module
  (memory (export "memory") 1)
  (func (export "f") (param i32) (result i32)
    (drop (f32.add (f32.const 1) (f32.const 2)))
    (i32.const 0)))
