// The scraft contract SDK for AssemblyScript (ABI v1).
//
// An entry function is an exported (i32) => i32: its parameter is the byte
// length of the call's input, its result 0. Read the input with input(len),
// decode it with the Reader, write a result with output().

import { Address } from "./address";
import { Reader, Writer } from "./codec";
import * as env from "./env";
import { utf8Name } from "./names";

export { Address, ADDRESS_LEN } from "./address";
export { Reader, Writer, validUtf8 } from "./codec";
export {
  abortWith,
  ERR_BAD_INPUT,
  ERR_NOT_FOUND,
  ERR_EXISTS,
  ERR_RUNTIME,
} from "./abort";
export {
  borrowGlobal,
  tryBorrowGlobal,
  exists,
  moveTo,
  moveFrom,
  putGlobal,
  getRaw,
  getInto,
  hasRaw,
  putRaw,
  delRaw,
} from "./storage";

// The event type that asks the node to take the member out of the channel.
export const EVENT_LEAVE = "scraft::Leave";
// The event type that asks the node to close the channel.
export const EVENT_CLOSE = "scraft::Close";

// input reads the call's args (len bytes, the entry function's parameter).
export function input(len: i32): Reader {
  const b = new Uint8Array(len < 0 ? 0 : len);
  if (len > 0) env.input_read(b.dataStart);
  return new Reader(b);
}

// sender is the address that signed the call (the joining or leaving member
// for on_join and on_leave).
export function sender(): Address {
  const a = new Address();
  env.sender(a.ptr);
  return a;
}

// height is this transaction's height in the channel.
export function height(): u64 {
  return <u64>env.height();
}

// timestampMs is the leader's timestamp carried in the log.
export function timestampMs(): i64 {
  return env.timestamp_ms();
}

// output sets the call's return value.
export function output(data: Uint8Array): void {
  env.output_write(data.dataStart, data.length);
}

// emit records an event of the given type.
export function emit(type: string, data: Uint8Array): void {
  const t = utf8Name(type);
  env.emit(changetype<usize>(t), t.byteLength, data.dataStart, data.length);
}

// emitLeave asks the node to take addr out of the channel.
export function emitLeave(addr: Address): void {
  emit(EVENT_LEAVE, new Writer(16).address(addr).finish());
}
