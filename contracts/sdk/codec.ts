// The canonical codec, byte for byte the same as Go's protocol.Encoder and
// protocol.Decoder: fixed-width little-endian integers, ULEB128 lengths,
// length-prefixed byte strings, strings and vectors, bool as 0 or 1, an
// address as 16 raw bytes, an option as a 0/1 tag then the value.

import { Address, ADDRESS_LEN } from "./address";
import { abortWith, ERR_BAD_INPUT } from "./abort";

// Writer appends canonical encodings to a growing buffer.
export class Writer {
  private buf: Uint8Array;
  private n: i32 = 0;

  constructor(capacity: i32 = 64) {
    this.buf = new Uint8Array(capacity < 8 ? 8 : capacity);
  }

  // length is the number of bytes written so far.
  get length(): i32 {
    return this.n;
  }

  // reserve makes room for k more bytes and returns where they go.
  private reserve(k: i32): usize {
    const need = this.n + k;
    if (need > this.buf.length) {
      let cap = this.buf.length << 1;
      while (cap < need) cap <<= 1;
      const nb = new Uint8Array(cap);
      memory.copy(nb.dataStart, this.buf.dataStart, <usize>this.n);
      this.buf = nb;
    }
    const p = this.buf.dataStart + <usize>this.n;
    this.n = need;
    return p;
  }

  u8(v: u8): Writer {
    store<u8>(this.reserve(1), v);
    return this;
  }

  bool(v: bool): Writer {
    return this.u8(v ? 1 : 0);
  }

  u16(v: u16): Writer {
    store<u16>(this.reserve(2), v);
    return this;
  }

  u32(v: u32): Writer {
    store<u32>(this.reserve(4), v);
    return this;
  }

  u64(v: u64): Writer {
    store<u64>(this.reserve(8), v);
    return this;
  }

  i32(v: i32): Writer {
    store<i32>(this.reserve(4), v);
    return this;
  }

  i64(v: i64): Writer {
    store<i64>(this.reserve(8), v);
    return this;
  }

  uleb(v: u64): Writer {
    do {
      let b = <u8>(v & 0x7f);
      v >>= 7;
      if (v != 0) b |= 0x80;
      this.u8(b);
    } while (v != 0);
    return this;
  }

  // len writes a vector's element count.
  len(n: i32): Writer {
    return this.uleb(<u64>n);
  }

  // raw writes the first n bytes at ptr with no length prefix.
  raw(ptr: usize, n: i32): Writer {
    if (n > 0) memory.copy(this.reserve(n), ptr, <usize>n);
    return this;
  }

  // fixed writes b with no length prefix.
  fixed(b: Uint8Array): Writer {
    return this.raw(b.dataStart, b.length);
  }

  // bytes writes a length-prefixed byte string.
  bytes(b: Uint8Array): Writer {
    this.len(b.length);
    return this.fixed(b);
  }

  // string writes s as a length-prefixed UTF-8 string.
  string(s: string): Writer {
    const u = String.UTF8.encode(s);
    this.len(u.byteLength);
    return this.raw(changetype<usize>(u), u.byteLength);
  }

  address(a: Address): Writer {
    return this.raw(a.ptr, ADDRESS_LEN);
  }

  // option writes the tag of an option; the value follows when present.
  option(present: bool): Writer {
    return this.u8(present ? 1 : 0);
  }

  // finish returns the bytes written (a view, not a copy).
  finish(): Uint8Array {
    return this.buf.subarray(0, this.n);
  }
}

// Reader decodes canonical encodings. Any malformed input aborts the call
// with ERR_BAD_INPUT and a message naming the field and the offset.
export class Reader {
  buf: Uint8Array;
  off: i32 = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  get remaining(): i32 {
    return this.buf.length - this.off;
  }

  fail(what: string): void {
    abortWith(ERR_BAD_INPUT, "bad input: " + what + " at byte " + this.off.toString());
  }

  private take(k: i32, what: string): usize {
    if (k < 0 || this.remaining < k) this.fail("truncated " + what);
    const p = this.buf.dataStart + <usize>this.off;
    this.off += k;
    return p;
  }

  u8(): u8 {
    return load<u8>(this.take(1, "u8"));
  }

  bool(): bool {
    const v = this.u8();
    if (v > 1) this.fail("bool byte " + v.toString());
    return v == 1;
  }

  u16(): u16 {
    return load<u16>(this.take(2, "u16"));
  }

  u32(): u32 {
    return load<u32>(this.take(4, "u32"));
  }

  u64(): u64 {
    return load<u64>(this.take(8, "u64"));
  }

  i32(): i32 {
    return load<i32>(this.take(4, "i32"));
  }

  i64(): i64 {
    return load<i64>(this.take(8, "i64"));
  }

  // uleb reads a ULEB128 value and refuses over-long or overflowing forms.
  uleb(): u64 {
    let v: u64 = 0;
    let shift: u64 = 0;
    let count = 0;
    while (true) {
      const b = <u64>this.u8();
      count++;
      if (shift == 63 && b > 1) this.fail("ULEB128 overflows 64 bits");
      v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (count > 1 && b == 0) this.fail("over-long ULEB128");
        return v;
      }
      shift += 7;
      if (shift > 63) this.fail("ULEB128 overflows 64 bits");
    }
    return v;
  }

  // len reads a length or element count of at most max. Every encoded
  // element takes at least one byte, so it is also bounded by what is left.
  len(max: i32): i32 {
    const v = this.uleb();
    if (v > <u64>max) this.fail("length " + v.toString() + " exceeds " + max.toString());
    if (v > <u64>this.remaining) this.fail("length " + v.toString() + " beyond the input");
    return <i32>v;
  }

  // fixed reads exactly n bytes into a new array.
  fixed(n: i32): Uint8Array {
    const p = this.take(n, "bytes");
    const out = new Uint8Array(n);
    if (n > 0) memory.copy(out.dataStart, p, <usize>n);
    return out;
  }

  // bytes reads a length-prefixed byte string of at most max bytes.
  bytes(max: i32): Uint8Array {
    return this.fixed(this.len(max));
  }

  // stringBytes reads a length-prefixed string of at most max bytes that
  // must be valid UTF-8, and returns its bytes unchanged.
  stringBytes(max: i32): Uint8Array {
    const start = this.off;
    const b = this.bytes(max);
    if (!validUtf8(b)) {
      this.off = start;
      this.fail("string is not valid UTF-8");
    }
    return b;
  }

  // string reads a length-prefixed UTF-8 string of at most max bytes.
  string(max: i32): string {
    const b = this.stringBytes(max);
    return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length);
  }

  address(): Address {
    return Address.fromPtr(this.take(ADDRESS_LEN, "address"));
  }

  // option reads an option's tag: true when a value follows.
  option(): bool {
    const t = this.u8();
    if (t > 1) this.fail("option tag " + t.toString());
    return t == 1;
  }

  // finish aborts unless every byte was consumed.
  finish(): void {
    if (this.off != this.buf.length) this.fail("trailing bytes (" + this.remaining.toString() + " left)");
  }
}

// validUtf8 reports whether b is well-formed UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF), as Go's utf8.Valid.
export function validUtf8(b: Uint8Array): bool {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = <i32>b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i + need >= n) return false;
    const c1 = <i32>b[i + 1];
    if (c1 < lo || c1 > hi) return false;
    for (let k = 2; k <= need; k++) {
      const ck = <i32>b[i + k];
      if (ck < 0x80 || ck > 0xbf) return false;
    }
    i += need + 1;
  }
  return true;
}
