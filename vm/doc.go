// Package vm runs channel contracts, WASM modules written against the scraft
// ABI, in a deterministic, gas-metered wazero sandbox.
package vm
