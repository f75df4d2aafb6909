// Typed global storage in the spirit of Move: a resource of type T lives
// under an account address. A resource class T has a no-argument
// constructor and three methods:
//
//   typeName(): string        e.g. "chat::ChatGroup"
//   encode(w: Writer): void   canonical encoding of the value
//   decode(r: Reader): void   the inverse, filling this instance
//
// Values are copies: after changing a borrowed value write it back with
// putGlobal.

import { Address } from "./address";
import { Reader, Writer } from "./codec";
import { abortWith, ERR_EXISTS, ERR_NOT_FOUND } from "./abort";
import * as env from "./env";
import { utf8Name } from "./names";

// Reads go first to a scratch buffer, so a value costs one host call and
// an allocation of its own size; larger values take a second call.
const SCRATCH: i32 = 1024;
let scratch: Uint8Array | null = null;

// getRaw returns the stored bytes of (addr, type), or null if absent.
export function getRaw(addr: Address, type: string): Uint8Array | null {
  const t = utf8Name(type);
  let s = scratch;
  if (s === null) {
    s = new Uint8Array(SCRATCH);
    scratch = s;
  }
  const n = env.res_get(addr.ptr, changetype<usize>(t), t.byteLength, s.dataStart, SCRATCH);
  if (n < 0) return null;
  const buf = new Uint8Array(n);
  if (n <= SCRATCH) {
    memory.copy(buf.dataStart, s.dataStart, <usize>n);
  } else {
    env.res_get(addr.ptr, changetype<usize>(t), t.byteLength, buf.dataStart, n);
  }
  return buf;
}

// getInto copies the stored bytes of (addr, type) into dst when they fit and
// returns their length, or -1 if absent. Nothing is copied when the length
// exceeds dst.length.
export function getInto(addr: Address, type: string, dst: Uint8Array): i32 {
  const t = utf8Name(type);
  return env.res_get(addr.ptr, changetype<usize>(t), t.byteLength, dst.dataStart, dst.length);
}

// hasRaw reports whether (addr, type) exists.
export function hasRaw(addr: Address, type: string): bool {
  const t = utf8Name(type);
  return env.res_get(addr.ptr, changetype<usize>(t), t.byteLength, 0, 0) >= 0;
}

// putRaw creates or replaces (addr, type).
export function putRaw(addr: Address, type: string, val: Uint8Array): void {
  const t = utf8Name(type);
  env.res_put(addr.ptr, changetype<usize>(t), t.byteLength, val.dataStart, val.length);
}

// delRaw deletes (addr, type) and reports whether it existed.
export function delRaw(addr: Address, type: string): bool {
  const t = utf8Name(type);
  return env.res_del(addr.ptr, changetype<usize>(t), t.byteLength) == 1;
}

// exists<T> reports whether a T lives at addr.
export function exists<T>(addr: Address): bool {
  return hasRaw(addr, instantiate<T>().typeName());
}

// tryBorrowGlobal<T> returns the T at addr, or null if there is none.
export function tryBorrowGlobal<T>(addr: Address): T | null {
  const v = instantiate<T>();
  const b = getRaw(addr, v.typeName());
  if (b === null) return null;
  const r = new Reader(b);
  v.decode(r);
  r.finish();
  return v;
}

// borrowGlobal<T> returns the T at addr and aborts with ERR_NOT_FOUND if
// there is none.
export function borrowGlobal<T>(addr: Address): T {
  const v = tryBorrowGlobal<T>(addr);
  if (v === null) {
    abortWith(ERR_NOT_FOUND, instantiate<T>().typeName() + " not found at " + addr.toHex());
    return instantiate<T>();
  }
  return v;
}

// putGlobal<T> creates or replaces the T at addr (write back after a
// borrowGlobal).
export function putGlobal<T>(addr: Address, v: T): void {
  const w = new Writer(128);
  v.encode(w);
  putRaw(addr, v.typeName(), w.finish());
}

// moveTo<T> publishes v at addr and aborts with ERR_EXISTS if a T is
// already there.
export function moveTo<T>(addr: Address, v: T): void {
  if (hasRaw(addr, v.typeName())) {
    abortWith(ERR_EXISTS, v.typeName() + " already exists at " + addr.toHex());
  }
  putGlobal<T>(addr, v);
}

// moveFrom<T> removes the T at addr and returns it; aborts with
// ERR_NOT_FOUND if there is none.
export function moveFrom<T>(addr: Address): T {
  const v = borrowGlobal<T>(addr);
  delRaw(addr, v.typeName());
  return v;
}
