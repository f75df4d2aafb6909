// kv: a key-value register per key, for linearizability checks. Reads are
// transactions too (get goes through the log like a write), so a history of
// put, get and cas calls can be checked against a sequential register.
//
// Resources
//   kv::Entry at the derived account "kvkv"+key: the key's value. A key
//             never written reads as "".

import { Address, Reader, Writer, input, output, putGlobal, tryBorrowGlobal } from "../sdk";

// MAX_VALUE is the longest value in bytes.
const MAX_VALUE: i32 = 256;

class Entry {
  value: string = "";

  typeName(): string {
    return "kv::Entry";
  }
  encode(w: Writer): void {
    w.string(this.value);
  }
  decode(r: Reader): void {
    this.value = r.string(MAX_VALUE);
  }
}

function account(key: u32): Address {
  return Address.derive("kvkv", key, 0, 0);
}

function read(key: u32): string {
  const e = tryBorrowGlobal<Entry>(account(key));
  return e == null ? "" : e.value;
}

function write(key: u32, value: string): void {
  const e = new Entry();
  e.value = value;
  putGlobal<Entry>(account(key), e);
}

// put sets key to value.
export function put(len: i32): i32 {
  const r = input(len);
  const key = r.u32();
  const value = r.string(MAX_VALUE);
  r.finish();
  write(key, value);
  return 0;
}

// get outputs key's value ("" if never written).
export function get(len: i32): i32 {
  const r = input(len);
  const key = r.u32();
  r.finish();
  output(new Writer(MAX_VALUE + 8).string(read(key)).finish());
  return 0;
}

// cas sets key to value if it holds expect, and outputs whether it did.
export function cas(len: i32): i32 {
  const r = input(len);
  const key = r.u32();
  const expect = r.string(MAX_VALUE);
  const value = r.string(MAX_VALUE);
  r.finish();
  const swapped = read(key) == expect;
  if (swapped) write(key, value);
  output(new Writer(8).bool(swapped).finish());
  return 0;
}
