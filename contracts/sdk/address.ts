// Address: the 16-byte account identifier of the scraft ABI.

const HEX = "0123456789abcdef";

export const ADDRESS_LEN: i32 = 16;

export class Address {
  // The 16 raw bytes.
  bytes: Uint8Array = new Uint8Array(ADDRESS_LEN);

  // ptr is where the 16 bytes start in linear memory.
  get ptr(): usize {
    return this.bytes.dataStart;
  }

  // fromPtr copies 16 bytes from linear memory.
  static fromPtr(ptr: usize): Address {
    const a = new Address();
    store<u64>(a.ptr, load<u64>(ptr));
    store<u64>(a.ptr + 8, load<u64>(ptr + 8));
    return a;
  }

  // zero is 0x000…0.
  static zero(): Address {
    return new Address();
  }

  // channel is 0x000…01, the account that holds a channel's shared
  // resources (a chat group, a land), like Move's framework accounts.
  static channel(): Address {
    const a = new Address();
    a.bytes[15] = 1;
    return a;
  }

  // derive builds the account of a keyed sub-resource: a 4-byte ASCII tag
  // followed by three u32 keys, little endian. Derived accounts never
  // collide with member addresses in practice (those are hashes).
  static derive(tag: string, k0: u32, k1: u32, k2: u32): Address {
    const a = new Address();
    const n = tag.length < 4 ? tag.length : 4;
    for (let i = 0; i < n; i++) a.bytes[i] = <u8>tag.charCodeAt(i);
    store<u32>(a.ptr + 4, k0);
    store<u32>(a.ptr + 8, k1);
    store<u32>(a.ptr + 12, k2);
    return a;
  }

  equals(o: Address): bool {
    return load<u64>(this.ptr) == load<u64>(o.ptr) && load<u64>(this.ptr + 8) == load<u64>(o.ptr + 8);
  }

  isZero(): bool {
    return load<u64>(this.ptr) == 0 && load<u64>(this.ptr + 8) == 0;
  }

  // compare orders addresses bytewise, as the canonical encoding does.
  compare(o: Address): i32 {
    for (let i = 0; i < ADDRESS_LEN; i++) {
      const x = <i32>this.bytes[i];
      const y = <i32>o.bytes[i];
      if (x != y) return x < y ? -1 : 1;
    }
    return 0;
  }

  // toHex renders "0x" + 32 lowercase hex digits.
  toHex(): string {
    let s = "0x";
    for (let i = 0; i < ADDRESS_LEN; i++) {
      const b = <i32>this.bytes[i];
      s += HEX.charAt(b >> 4) + HEX.charAt(b & 15);
    }
    return s;
  }
}
