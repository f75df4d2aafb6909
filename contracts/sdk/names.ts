// UTF-8 forms of resource and event type names. Names are usually string
// literals, the same object on every call, so a small cache keyed by the
// string's address saves a transcoding per host call.

const SLOTS: i32 = 16;
const keys = new StaticArray<usize>(SLOTS);
const vals = new StaticArray<ArrayBuffer | null>(SLOTS);
let next: i32 = 0;

// utf8Name returns name encoded as UTF-8.
export function utf8Name(name: string): ArrayBuffer {
  const k = changetype<usize>(name);
  for (let i = 0; i < SLOTS; i++) {
    if (unchecked(keys[i]) == k) {
      const v = unchecked(vals[i]);
      if (v !== null) return v;
    }
  }
  const u = String.UTF8.encode(name);
  unchecked((keys[next] = k));
  unchecked((vals[next] = u));
  next = (next + 1) % SLOTS;
  return u;
}
