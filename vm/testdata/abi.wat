;; The test contract of the vm package: every host function, every way a
;; call can end, and a small command interpreter ("run") that forwards its
;; input to host calls, for the table tests and FuzzHostFunctions.
(module
  (import "scraft" "input_read" (func $input_read (param i32)))
  (import "scraft" "sender" (func $sender (param i32)))
  (import "scraft" "height" (func $height (result i64)))
  (import "scraft" "timestamp_ms" (func $timestamp_ms (result i64)))
  (import "scraft" "res_get" (func $res_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "scraft" "res_put" (func $res_put (param i32 i32 i32 i32 i32)))
  (import "scraft" "res_del" (func $res_del (param i32 i32 i32) (result i32)))
  (import "scraft" "emit" (func $emit (param i32 i32 i32 i32)))
  (import "scraft" "output_write" (func $output_write (param i32 i32)))
  (import "scraft" "abort" (func $abort (param i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "boom")

  ;; Mutable state that must not survive a call: restored before each one.
  (global $calls (mut i32) (i32.const 0))
  (global $cur (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 0))

  ;; echo: output = input.
  (func (export "echo") (param $len i32) (result i32)
    (call $input_read (i32.const 4096))
    (call $output_write (i32.const 4096) (local.get $len))
    (i32.const 0))

  ;; count: output = [calls global after increment, memory cell after
  ;; increment], both 1 on every call if state is restored.
  (func (export "count") (param i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 104) (global.get $calls))
    (i32.store8 (i32.const 100) (i32.add (i32.load8_u (i32.const 100)) (i32.const 1)))
    (i32.store8 (i32.const 101) (i32.const 0))
    (i32.store16 (i32.const 102) (i32.const 0))
    (call $output_write (i32.const 100) (i32.const 8))
    (i32.const 0))

  (func (export "fail") (param i32) (result i32)
    (call $abort (i32.const 42) (i32.const 16) (i32.const 4))
    (i32.const 0))

  (func (export "ret7") (param i32) (result i32)
    (i32.const 7))

  (func (export "trap") (param i32) (result i32)
    unreachable)

  (func (export "loop") (param i32) (result i32)
    (loop $l (br $l))
    (i32.const 0))

  (func $rec (param $n i32) (result i32)
    (call $rec (i32.add (local.get $n) (i32.const 1))))
  (func (export "recurse") (param i32) (result i32)
    (call $rec (i32.const 0)))

  ;; grow: grows one page at a time until refused, then traps.
  (func (export "grow") (param i32) (result i32)
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)

  ;; grow1: grows one page and succeeds.
  (func (export "grow1") (param i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (i32.const 0))

  ;; spin: loops n times (n = the u32 input), output = the sum.
  (func (export "spin") (param i32) (result i32)
    (local $n i32) (local $i i32) (local $s i64)
    (call $input_read (i32.const 4096))
    (local.set $n (i32.load (i32.const 4096)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s (i64.add (local.get $s) (i64.extend_i32_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i64.store (i32.const 4096) (local.get $s))
    (call $output_write (i32.const 4096) (i32.const 8))
    (i32.const 0))

  ;; arg i of the current command.
  (func $arg (param $i i32) (result i32)
    (i32.load (i32.add (i32.add (global.get $cur) (i32.const 1))
                       (i32.shl (local.get $i) (i32.const 2)))))

  (func $put32 (param $v i32)
    (i32.store (global.get $out) (local.get $v))
    (global.set $out (i32.add (global.get $out) (i32.const 4))))
  (func $put64 (param $v i64)
    (i64.store (global.get $out) (local.get $v))
    (global.set $out (i32.add (global.get $out) (i32.const 8))))

  ;; run: the input (copied to 4096) is a list of 21-byte commands, an op
  ;; byte and five little-endian i32 arguments, followed by any data the
  ;; arguments point at. Values returned by host functions are appended to
  ;; a result area at 32768; op 10 writes that area as the output.
  ;;   1 input_read(a0)   2 sender(a0)   3 height   4 timestamp_ms
  ;;   5 res_get(a0..a4)  6 res_put(a0..a4)  7 res_del(a0..a2)
  ;;   8 emit(a0..a3)     9 output_write(a0, a1)   10 flush results
  ;;   11 abort(a0, a1, a2)   0 end
  (func (export "run") (param $len i32) (result i32)
    (local $end i32) (local $op i32)
    (call $input_read (i32.const 4096))
    (global.set $cur (i32.const 4096))
    (global.set $out (i32.const 32768))
    (local.set $end (i32.add (i32.const 4096) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (global.get $cur) (i32.const 21)) (local.get $end)))
        (local.set $op (i32.load8_u (global.get $cur)))
        (block $cont
          (block $b11 (block $b10 (block $b9 (block $b8 (block $b7 (block $b6
          (block $b5 (block $b4 (block $b3 (block $b2 (block $b1 (block $b0
            (br_table $b0 $b1 $b2 $b3 $b4 $b5 $b6 $b7 $b8 $b9 $b10 $b11 $b0 (local.get $op)))
            (br $done))
            (call $input_read (call $arg (i32.const 0))) (br $cont))
            (call $sender (call $arg (i32.const 0))) (br $cont))
            (call $put64 (call $height)) (br $cont))
            (call $put64 (call $timestamp_ms)) (br $cont))
            (call $put32 (call $res_get (call $arg (i32.const 0)) (call $arg (i32.const 1))
              (call $arg (i32.const 2)) (call $arg (i32.const 3)) (call $arg (i32.const 4)))) (br $cont))
            (call $res_put (call $arg (i32.const 0)) (call $arg (i32.const 1))
              (call $arg (i32.const 2)) (call $arg (i32.const 3)) (call $arg (i32.const 4))) (br $cont))
            (call $put32 (call $res_del (call $arg (i32.const 0)) (call $arg (i32.const 1))
              (call $arg (i32.const 2)))) (br $cont))
            (call $emit (call $arg (i32.const 0)) (call $arg (i32.const 1))
              (call $arg (i32.const 2)) (call $arg (i32.const 3))) (br $cont))
            (call $output_write (call $arg (i32.const 0)) (call $arg (i32.const 1))) (br $cont))
            (call $output_write (i32.const 32768) (i32.sub (global.get $out) (i32.const 32768))) (br $cont))
            (call $abort (call $arg (i32.const 0)) (call $arg (i32.const 1)) (call $arg (i32.const 2))))
        (global.set $cur (i32.add (global.get $cur) (i32.const 21)))
        (br $next)))
    (i32.const 0))
)
