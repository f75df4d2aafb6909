// Package meter rewrites a WASM module so that it meters its own gas and
// call depth: the instrumenter behind the vm's bounded, deterministic
// execution.
package meter
