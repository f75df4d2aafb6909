// Host imports of the scraft ABI v1 (module "scraft"). Every pointer and
// length is an i32 offset or byte count in this module's memory; addresses
// are 16 raw bytes.

// @ts-ignore: decorator
@external("scraft", "input_read")
export declare function input_read(dst: usize): void;

// @ts-ignore: decorator
@external("scraft", "sender")
export declare function sender(dst: usize): void;

// @ts-ignore: decorator
@external("scraft", "height")
export declare function height(): i64;

// @ts-ignore: decorator
@external("scraft", "timestamp_ms")
export declare function timestamp_ms(): i64;

// @ts-ignore: decorator
@external("scraft", "res_get")
export declare function res_get(addr: usize, type: usize, type_len: i32, dst: usize, cap: i32): i32;

// @ts-ignore: decorator
@external("scraft", "res_put")
export declare function res_put(addr: usize, type: usize, type_len: i32, val: usize, val_len: i32): void;

// @ts-ignore: decorator
@external("scraft", "res_del")
export declare function res_del(addr: usize, type: usize, type_len: i32): i32;

// @ts-ignore: decorator
@external("scraft", "emit")
export declare function emit(type: usize, type_len: i32, data: usize, data_len: i32): void;

// @ts-ignore: decorator
@external("scraft", "output_write")
export declare function output_write(ptr: usize, len: i32): void;

// @ts-ignore: decorator
@external("scraft", "abort")
export declare function abort(code: i32, msg: usize, msg_len: i32): void;
