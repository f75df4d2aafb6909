;; Every non-float core v2 feature; each export takes an i32 and returns an
;; i32 so that tests can run them all alike.
(module
  (type $pair (func (param i32 i32) (result i32 i32)))
  (type $un (func (param i32) (result i32)))
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (memory 1)
  (table $t 4 10 funcref)
  (table $ext 2 externref)
  (global $g (mut i32) (i32.const 5))
  (global $h i64 (i64.const -7))
  (elem $e func $inc $dec)
  (elem (i32.const 0) $inc $dec)
  (elem declare func $swap)
  (data "\01\02\03\04")
  (start $init)

  (func $init (global.set $g (i32.const 11)))
  (func $inc (type $un) (i32.add (local.get 0) (i32.const 1)))
  (func $dec (type $un) (i32.sub (local.get 0) (i32.const 1)))
  (func $swap (type $pair) (local.get 1) (local.get 0))

  (func (export "multivalue") (param $x i32) (result i32)
    (call $swap (local.get $x) (i32.const 100))
    i32.sub
    i32.const 3
    i32.const 4
    ;; a block with a type-index block type taking two params
    block (type $pair)
      call $swap
    end
    i32.sub
    i32.add)
  (func (export "loop_params") (param $x i32) (result i32)
    (local.get $x)
    (loop (param i32) (result i32)
      (i32.add (i32.const 1))
      (local.tee $x)
      (br_if 0 (i32.lt_u (local.get $x) (i32.const 50)))))
  (func (export "signext") (param $x i32) (result i32)
    (i32.add
      (i32.extend8_s (local.get $x))
      (i32.wrap_i64 (i64.extend32_s (i64.extend_i32_u (i32.extend16_s (local.get $x)))))))
  (func (export "brtable") (param $x i32) (result i32)
    (block $c (block $b (block $a
      (br_table $a $b $c (local.get $x)))
      (return (i32.const 10)))
      (return (i32.const 20)))
    (i32.const 30))
  (func (export "indirect") (param $x i32) (result i32)
    (call_indirect $t (type $un) (local.get $x) (i32.and (local.get $x) (i32.const 1))))
  (func (export "tables") (param $x i32) (result i32)
    (local $old i32)
    (local.set $old (table.grow $t (ref.func $inc) (i32.const 3)))
    (table.fill $t (i32.const 4) (ref.func $dec) (i32.const 3))
    (table.copy $t $t (i32.const 2) (i32.const 0) (i32.const 2))
    (table.init $t $e (i32.const 0) (i32.const 1) (i32.const 1))
    (elem.drop $e)
    (table.set $t (i32.const 1) (table.get $t (i32.const 5)))
    (i32.add (i32.add (local.get $old) (table.size $t))
      (i32.add
        (call_indirect $t (type $un) (local.get $x) (i32.const 0))
        (call_indirect $t (type $un) (local.get $x) (i32.const 2)))))
  (func (export "refs") (param $x i32) (result i32)
    (i32.add
      (ref.is_null (table.get $ext (i32.const 0)))
      (i32.add (ref.is_null (ref.func $inc))
        (ref.is_null (ref.null extern)))))
  (func (export "select") (param $x i32) (result i32)
    (i32.add
      (select (i32.const 1) (i32.const 2) (local.get $x))
      (select (result i32) (i32.const 10) (i32.const 20) (i32.eqz (local.get $x)))))
  (func (export "i64ops") (param $x i32) (result i32)
    (i32.wrap_i64
      (i64.add
        (i64.rem_s (i64.mul (i64.extend_i32_s (local.get $x)) (i64.const 1000003)) (i64.const 97))
        (i64.add (global.get $h)
          (i64.div_u (i64.rotl (i64.const 0x123456789) (i64.const 7)) (i64.const 3))))))
  (func (export "i32ops") (param $x i32) (result i32)
    (i32.xor
      (i32.add (i32.clz (local.get $x)) (i32.popcnt (local.get $x)))
      (i32.div_s (i32.shl (local.get $x) (i32.const 3)) (i32.const -7))))
  (func (export "memops") (param $x i32) (result i32)
    (i64.store offset=8 (i32.const 0) (i64.extend_i32_u (local.get $x)))
    (i32.store16 (i32.const 4) (local.get $x))
    (i32.add (i32.load (i32.const 0))
      (i32.add (i32.load8_s offset=1 (i32.const 0))
        (i32.wrap_i64 (i64.load32_u (i32.const 8))))))
  (func (export "globals") (param $x i32) (result i32)
    (global.set $g (i32.add (global.get $g) (local.get $x)))
    (global.get $g))
  (func (export "host") (param $x i32) (result i32)
    (call $twice (local.get $x)))
  (func (export "ifelse") (param $x i32) (result i32)
    (local $r i32)
    (if (i32.gt_s (local.get $x) (i32.const 3))
      (then (local.set $r (i32.const 1)))
      (else (local.set $r (i32.const 2))))
    (if (i32.eqz (local.get $x)) (then (local.set $r (i32.add (local.get $r) (i32.const 40)))))
    (local.get $r))
  (func (export "trap") (param $x i32) (result i32)
    (if (local.get $x) (then unreachable))
    (nop)
    (i32.const 9)))
