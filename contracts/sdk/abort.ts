// Aborting a call. The host's abort stops the call and drops its changes;
// these helpers add codes and UTF-8 messages.

import * as env from "./env";

// Abort codes used by the SDK itself. Contracts use codes from 100 up.
// ERR_BAD_INPUT: the call's input (or a stored value) does not decode.
export const ERR_BAD_INPUT: i32 = 1;
// ERR_NOT_FOUND: borrowGlobal or moveFrom of an absent resource.
export const ERR_NOT_FOUND: i32 = 2;
// ERR_EXISTS: moveTo onto a resource that already exists.
export const ERR_EXISTS: i32 = 3;
// ERR_RUNTIME: AssemblyScript's own abort (assertion, index out of range,
// allocation failure).
export const ERR_RUNTIME: i32 = 4;

// abortWith stops the call with code and a message. It never returns.
export function abortWith(code: i32, msg: string): void {
  const u = String.UTF8.encode(msg);
  env.abort(code, changetype<usize>(u), u.byteLength);
  unreachable();
}

// asAbort replaces AssemblyScript's abort builtin (build flag
// --use abort=sdk/abort/asAbort), so runtime errors reach the host's abort
// with ERR_RUNTIME instead of importing env.abort.
export function asAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let m = message !== null ? message : "abort";
  if (fileName !== null) m += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  abortWith(ERR_RUNTIME, m);
}
