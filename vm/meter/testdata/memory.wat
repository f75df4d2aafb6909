;; memory.grow and bulk memory.
(module
  (memory 1 100)
  (data $d "hello, world")
  ;; grow(n) grows one page at a time, n times; returns the final size.
  (func (export "grow") (param $n i32) (result i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (drop (memory.grow (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (memory.size))
  ;; grow_by(n) grows by n pages at once; returns the old size or -1.
  (func (export "grow_by") (param $n i32) (result i32)
    (memory.grow (local.get $n)))
  ;; fill(n) fills n bytes with 7 and returns the byte at n-1.
  (func (export "fill") (param $n i32) (result i32)
    (memory.fill (i32.const 0) (i32.const 7) (local.get $n))
    (i32.load8_u (i32.sub (local.get $n) (i32.const 1))))
  ;; copy(n) copies n bytes from 0 to 1024 and returns the byte at 1024+n-1.
  (func (export "copy") (param $n i32) (result i32)
    (memory.copy (i32.const 1024) (i32.const 0) (local.get $n))
    (i32.load8_u (i32.add (i32.const 1023) (local.get $n))))
  ;; init(n) copies n bytes of the data segment to 2048, returns the last.
  (func (export "init") (param $n i32) (result i32)
    (memory.init $d (i32.const 2048) (i32.const 0) (local.get $n))
    (i32.load8_u (i32.add (i32.const 2047) (local.get $n))))
  (func (export "drop") (param i32) (result i32)
    (data.drop $d)
    (i32.const 1)))
