// Package contracts embeds the compiled demo contracts (chat, editor,
// movecraft) and their ABIs: a typed schema of each contract's entry
// functions, resources and events.
//
// The contracts are AssemblyScript (sources and SDK beside this file,
// built by build.sh into committed .wasm files against the scraft ABI v1).
// The ABI turns JSON arguments into the canonical codec bytes a call
// carries (EncodeArgs) and stored values, outputs and events back into JSON
// (DecodeResource, DecodeOutput, DecodeEvent), so tools can call contracts
// and print their state without knowing their layouts.
//
// Contracts and their ABIs are immutable once loaded and safe for
// concurrent use.
package contracts
