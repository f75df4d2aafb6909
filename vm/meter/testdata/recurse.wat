;; Recursion: infinite, and to a chosen depth (direct and through a table).
(module
  (type $t (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $indirect)
  (func $forever (export "forever") (param i32) (result i32)
    (call $forever (local.get 0)))
  ;; depth(n) makes n nested calls and returns n.
  (func $depth (export "depth") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $depth (i32.sub (local.get $n) (i32.const 1)))))))
  (func $indirect (export "indirect") (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1)
        (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const 0)))))))
